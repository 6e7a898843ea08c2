#pragma once
// Credentials and logging as HttpClient decorators: a replicator's HTTP
// client is the plain adapter wrapped once, and the secret lives only in the
// decorator (never in a URL, an error message or a log line).
//
//   auto http = std::make_shared<BearerAuth>(curl_client, integration.backfill_key);

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "webhookdb/http_client.hpp"
#include "webhookdb/logger.hpp"

namespace webhookdb {

// "Basic base64(user:password)".
[[nodiscard]] std::string basic_auth_value(std::string_view user, std::string_view password);

// True for headers that carry credentials: Authorization, Proxy-Authorization,
// Cookie, Set-Cookie, and names with key, token, secret, password, signature,
// auth, session or credential in them (X-Api-Key, X-Shopify-Access-Token...).
[[nodiscard]] bool is_credential_header(std::string_view name);
// A copy without the credential headers, for messages and logs.
[[nodiscard]] Headers without_credentials(const Headers& headers);

// The credentials `request` sends, in the forms a server could echo them back
// in (some APIs answer "invalid api key sk_live_..."): the URL's userinfo
// (and its Basic form), the values of the query parameters redact_url hides,
// and the values of credential headers (with the token of a Bearer value and
// the user and password of a Basic one), each also percent-decoded and
// -encoded. Values shorter than 4 bytes are left out.
[[nodiscard]] std::vector<std::string> request_secrets(const HttpRequest& request);
// `text` with every occurrence of each secret replaced by REDACTED.
[[nodiscard]] std::string redact_secrets(std::string text, std::vector<std::string> secrets);

// Sets one header on every request unless the request already has it.
class HeaderAuth : public HttpClientDecorator {
 public:
  HeaderAuth(std::shared_ptr<HttpClient> next, std::string header, std::string value);
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override;

 private:
  std::string header_;
  std::string value_;
};

// Authorization: Bearer <token>.
class BearerAuth final : public HeaderAuth {
 public:
  BearerAuth(std::shared_ptr<HttpClient> next, std::string_view token);
};

// Authorization: Basic base64(user:password). Stripe's secret key is the user
// with an empty password.
class BasicAuth final : public HeaderAuth {
 public:
  BasicAuth(std::shared_ptr<HttpClient> next, std::string_view user, std::string_view password);
};

// One line per exchange: method, redacted URL, status or error, elapsed time
// and body size. Never headers, never bodies.
class LoggingHttpClient final : public HttpClientDecorator {
 public:
  LoggingHttpClient(std::shared_ptr<HttpClient> next, std::shared_ptr<Logger> logger,
                    LogLevel level = LogLevel::debug);
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override;

 private:
  std::shared_ptr<Logger> logger_;
  LogLevel level_;
};

}  // namespace webhookdb
