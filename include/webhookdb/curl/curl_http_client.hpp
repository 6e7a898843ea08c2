#pragma once
// HttpClient on libcurl. Connections are kept alive: each transfer borrows a
// handle (with its connection cache) from a pool and returns it, so a thread
// making request after request reuses one connection, and N threads use N.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "webhookdb/http_client.hpp"

namespace webhookdb::curl {

struct CurlOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  // Whole exchange, when the request does not set its own.
  std::chrono::milliseconds timeout{60'000};
  // Redirects followed; 0 returns the 3xx response as it is. Past the limit
  // the last 3xx becomes an HttpError (not retried).
  int max_redirects = 5;
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
  // A larger body fails the transfer (HttpConnectionError) instead of
  // exhausting memory.
  std::size_t max_response_bytes = 512U * 1024U * 1024U;
  // Idle handles (each with its cached connections) kept for reuse.
  std::size_t max_idle_handles = 64;
};

// Thread-safe. send() throws:
//   HttpTimeout          connect or total timeout, also mid-body after a 200
//   HttpConnectionError  refused, DNS, reset, TLS, truncated body, oversized body
//   HttpError            status >= 400 (when raise_for_status), too many redirects
//   Cancelled            the token fired; the transfer is aborted within milliseconds
//   InvalidPrecondition  a malformed URL, an unsupported scheme or a header with a line break
// Messages carry the method and the redacted URL, never credentials.
class CurlHttpClient final : public HttpClient {
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

[[nodiscard]] std::shared_ptr<CurlHttpClient> make_curl_client(CurlOptions options = {});

}  // namespace webhookdb::curl
