#pragma once
// The HTTP port. Adapters (curl) implement send(); decorators wrap another
// client to add auth, retries, logging or fault injection.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"

namespace webhookdb {

// Case-insensitive lookup; the first match.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<std::string> find_header(const Headers& headers,
                                                                      std::string_view name);
// Every value of a repeated header, in order.
[[nodiscard]] WEBHOOKDB_EXPORT std::vector<std::string> find_headers(const Headers& headers,
                                                                     std::string_view name);

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Headers headers;
  std::string body;
  // Total time for the exchange; zero means the client's default.
  std::chrono::milliseconds timeout{0};
  // When true (the default) a status >= 400 throws HttpError.
  bool raise_for_status = true;
  // The integration the request is made for: credential decorators
  // (CredentialAuth, webhookdb/http_auth.hpp) take its credentials, so one
  // client serves every integration. Not sent.
  std::optional<std::int64_t> integration_id;
};

struct HttpResponse {
  int status = 0;
  Headers headers;
  std::string body;
  // The final URL after redirects (redacted form is the caller's job).
  std::string url;

  [[nodiscard]] std::optional<std::string> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

class WEBHOOKDB_EXPORT HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Thread-safe. Throws HttpError (status >= 400 when raise_for_status),
  // HttpTimeout, HttpConnectionError, or Cancelled when `cancel` fires; an
  // in-flight transfer is aborted promptly on cancellation.
  virtual HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) = 0;

  HttpResponse send(const HttpRequest& request) { return send(request, CancellationToken{}); }
  // True when this client (a CredentialAuth in its chain of decorators)
  // adds credentials of its own to the requests of `integration_id`, e.g. the
  // tokens of its OAuth2 grant: the integration needs no backfill key or
  // secret to be backfilled. False for plain adapters.
  [[nodiscard]] virtual bool authenticates(std::int64_t integration_id);
  HttpResponse get(const std::string& url, const Headers& headers = {},
                   const CancellationToken& cancel = CancellationToken{});
};

// Base for interceptors: forwards to the wrapped client unless overridden.
class WEBHOOKDB_EXPORT HttpClientDecorator : public HttpClient {
 public:
  explicit HttpClientDecorator(std::shared_ptr<HttpClient> next);
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override;
  // Asks the wrapped client.
  [[nodiscard]] bool authenticates(std::int64_t integration_id) override;

 protected:
  [[nodiscard]] HttpClient& next() const { return *next_; }

 private:
  std::shared_ptr<HttpClient> next_;
};

// Throws HttpError for a status >= 400 with the standard excerpt/redaction.
WEBHOOKDB_EXPORT void raise_for_status(const HttpRequest& request, const HttpResponse& response);
// Throws the HttpError for `response` whatever its status: URL redacted, and
// every credential `request` sent cut out of the body excerpt and headers.
[[noreturn]] WEBHOOKDB_EXPORT void throw_http_error(const HttpRequest& request, const HttpResponse& response);

}  // namespace webhookdb
