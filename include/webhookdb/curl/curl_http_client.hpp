#pragma once
// HttpClient on libcurl. Connections are kept alive: each transfer borrows a
// handle (with its connection cache) from a pool and returns it, so a thread
// making request after request reuses one connection, and N threads use N.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "webhookdb/export.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/json_limits.hpp"

namespace webhookdb::curl {

// What a redirect to another origin (scheme, host or port) does. Credentials
// go only to the origin they were configured for: the request's origin.
enum class CrossOriginRedirect : std::uint8_t {
  // Follow it, sending none of the caller's headers (the request's own and
  // default_headers, whatever their names: X-Shopify-Access-Token is as
  // secret as Authorization) on that hop and every later one. Refused all
  // the same (InvariantViolation) when the hop would carry a credential of
  // the request in its URL, or resend a request body (307/308).
  follow_without_headers,
  // Never follow it: InvariantViolation naming both (redacted) URLs.
  refuse,
};

// The response cap was passed: a declared Content-Length above it (refused
// before any body byte is read) or a streamed body that grew past it (the
// transfer is cut off at once, so memory stays near the cap). Not an
// HttpBaseError: the page loop does not retry it and no job re-runs for it,
// since the same page would be as large again.
class WEBHOOKDB_EXPORT ResponseTooLarge : public InvalidInput {
 public:
  // NOLINTNEXTLINE(bugprone-easily-swappable-parameters): message first, as every Error
  ResponseTooLarge(const std::string& message, std::string url, std::size_t limit)
      : InvalidInput(message), url_(std::move(url)), limit_(limit) {}
  // Redacted.
  [[nodiscard]] const std::string& url() const noexcept { return url_; }
  [[nodiscard]] std::size_t limit() const noexcept { return limit_; }

 private:
  std::string url_;
  std::size_t limit_;
};

struct CurlOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  // Whole exchange, when the request does not set its own.
  std::chrono::milliseconds timeout{60'000};
  // Redirects followed (by this client, hop by hop, not by libcurl); 0
  // returns the 3xx response as it is. Past the limit the last 3xx becomes
  // an HttpError (not retried).
  int max_redirects = 5;
  CrossOriginRedirect cross_origin_redirects = CrossOriginRedirect::follow_without_headers;
  // Sends Accept-Encoding with every encoding libcurl decodes (gzip, deflate,
  // br, zstd) and decodes the body transparently.
  bool decompress = true;
  bool verify_tls = true;
  // CA bundle file / directory; empty: the system's.
  std::string ca_bundle;
  std::string ca_path;
  std::string user_agent = "webhookdb-cpp";
  // Sent with every request unless the request sets the same header.
  Headers default_headers;
  // A larger body (after decompression) fails the transfer with
  // ResponseTooLarge while it streams. The default is the JSON page limit:
  // a larger page would be refused by the parser anyway, after the download.
  std::size_t max_response_bytes = JsonLimits{}.max_bytes;
  // Idle handles (each with its cached connections) kept for reuse.
  std::size_t max_idle_handles = 64;
};

// Thread-safe. send() throws:
//   HttpTimeout          connect or total timeout, also mid-body after a 200
//   HttpConnectionError  refused, DNS, reset, TLS, truncated body
//   ResponseTooLarge     body past max_response_bytes (not retryable)
//   HttpError            status >= 400 (when raise_for_status), too many redirects
//   InvariantViolation   a cross-origin redirect refused (see CrossOriginRedirect)
//   Cancelled            the token fired; the transfer is aborted within milliseconds
//   InvalidPrecondition  a malformed URL, an unsupported scheme or a header with a line break
// Messages carry the method and the redacted URL, never credentials.
class WEBHOOKDB_EXPORT CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(CurlOptions options = {});
  ~CurlHttpClient() override;
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override;

  [[nodiscard]] const CurlOptions& options() const noexcept;
  // Handles waiting in the pool (for tests and metrics).
  [[nodiscard]] std::size_t idle_handles() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

[[nodiscard]] WEBHOOKDB_EXPORT std::shared_ptr<CurlHttpClient> make_curl_client(CurlOptions options = {});

}  // namespace webhookdb::curl
