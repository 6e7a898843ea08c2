#pragma once
// One exception hierarchy. Each type answers a question a caller acts on:
// is it worth retrying, which HTTP status, which integration.

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "webhookdb/export.hpp"

namespace webhookdb {

using Headers = std::vector<std::pair<std::string, std::string>>;

class WEBHOOKDB_EXPORT Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  // True when running the same operation again may succeed.
  [[nodiscard]] virtual bool retryable() const noexcept { return false; }
};

class WEBHOOKDB_EXPORT InvalidPrecondition : public Error {
 public:
  using Error::Error;
};

class WEBHOOKDB_EXPORT InvariantViolation : public Error {
 public:
  using Error::Error;
};

class WEBHOOKDB_EXPORT InvalidPostcondition : public Error {
 public:
  using Error::Error;
};

// Neither backfill key nor secret configured: not an error for the job runner.
class WEBHOOKDB_EXPORT CredentialsMissing : public Error {
 public:
  using Error::Error;
};

// A replicator's table or column specification is inconsistent.
class WEBHOOKDB_EXPORT BrokenSpecification : public Error {
 public:
  using Error::Error;
};

// A payload that cannot become a row: malformed JSON, wrong type, missing key.
// `where` names the place (column, key path, remote key) without any secret.
class WEBHOOKDB_EXPORT InvalidInput : public Error {
 public:
  InvalidInput(const std::string& message, std::string where)
      : Error(where.empty() ? message : message + " (at " + where + ")"), message_(message), where_(std::move(where)) {}
  explicit InvalidInput(const std::string& message) : Error(message), message_(message) {}
  // what() without the " (at <where>)" part, for callers that add context.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  [[nodiscard]] const std::string& where() const noexcept { return where_; }

 private:
  std::string message_;
  std::string where_;
};

// A cancellation token fired; the operation stopped early on purpose.
class WEBHOOKDB_EXPORT Cancelled : public Error {
 public:
  Cancelled() : Error("operation cancelled") {}
  using Error::Error;
};

// A failure of a storage adapter (database error, lost connection).
class WEBHOOKDB_EXPORT StoreError : public Error {
 public:
  StoreError(const std::string& message, bool retryable) : Error(message), retryable_(retryable) {}
  [[nodiscard]] bool retryable() const noexcept override { return retryable_; }

 private:
  bool retryable_;
};

// Root of the errors raised by the HTTP layer. The page loop retries these.
class WEBHOOKDB_EXPORT HttpBaseError : public Error {
 public:
  // `url` must already have secrets redacted (see redact_url).
  // message, then method, then url: distinct roles, one order in every HttpError:
  // NOLINTNEXTLINE(bugprone-easily-swappable-parameters)
  HttpBaseError(const std::string& message, std::string method, std::string url)
      : Error(message), method_(std::move(method)), url_(std::move(url)) {}
  [[nodiscard]] const std::string& method() const noexcept { return method_; }
  [[nodiscard]] const std::string& url() const noexcept { return url_; }
  [[nodiscard]] bool retryable() const noexcept override { return true; }

 private:
  std::string method_;
  std::string url_;
};

// The server answered with a status >= 400.
class WEBHOOKDB_EXPORT HttpError : public HttpBaseError {
 public:
  HttpError(int status, std::string method, std::string url, std::string body_excerpt = {},
            Headers headers = {});
  [[nodiscard]] int status() const noexcept { return status_; }
  // At most 1 KiB of the response body.
  [[nodiscard]] const std::string& body_excerpt() const noexcept { return body_excerpt_; }
  // Response headers (credentials-bearing ones removed).
  [[nodiscard]] const Headers& headers() const noexcept { return headers_; }
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
  [[nodiscard]] bool retryable() const noexcept override {
    return status_ == 408 || status_ == 429 || status_ >= 500;
  }

 private:
  int status_;
  std::string body_excerpt_;
  Headers headers_;
};

class WEBHOOKDB_EXPORT HttpTimeout : public HttpBaseError {
 public:
  using HttpBaseError::HttpBaseError;
};

// Refused, DNS failure, reset, TLS failure, truncated transfer.
class WEBHOOKDB_EXPORT HttpConnectionError : public HttpBaseError {
 public:
  using HttpBaseError::HttpBaseError;
};

// Tells the job system to run the whole job again later. Not an HTTP error,
// so the page loop does not retry it.
class WEBHOOKDB_EXPORT RetryOrDie : public Error {
 public:
  RetryOrDie(int retries, std::chrono::seconds backoff, std::exception_ptr cause, const std::string& what);
  [[nodiscard]] int retries() const noexcept { return retries_; }
  [[nodiscard]] std::chrono::seconds backoff() const noexcept { return backoff_; }
  [[nodiscard]] std::exception_ptr cause() const noexcept { return cause_; }
  [[nodiscard]] bool retryable() const noexcept override { return true; }

 private:
  int retries_;
  std::chrono::seconds backoff_;
  std::exception_ptr cause_;
};

// Replaces the values of secret-looking query parameters (key, token, secret,
// password, signature, auth...) and any user:password@ with "REDACTED".
[[nodiscard]] WEBHOOKDB_EXPORT std::string redact_url(std::string_view url);

// Message of an exception_ptr, for logs; never throws.
[[nodiscard]] WEBHOOKDB_EXPORT std::string describe(const std::exception_ptr& e) noexcept;

}  // namespace webhookdb
