#pragma once
// Credentials and logging as HttpClient decorators: a replicator's HTTP
// client is the plain adapter wrapped once, and the secret lives only in the
// decorator (never in a URL, an error message or a log line).
//
//   auto http = std::make_shared<BearerAuth>(curl_client, integration.backfill_key);

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/logger.hpp"

namespace webhookdb {

// "Basic base64(user:password)".
[[nodiscard]] WEBHOOKDB_EXPORT std::string basic_auth_value(std::string_view user, std::string_view password);

// True for headers that carry credentials: Authorization, Proxy-Authorization,
// Cookie, Set-Cookie, and names with key, token, secret, password, signature,
// auth, session or credential in them (X-Api-Key, X-Shopify-Access-Token...).
[[nodiscard]] WEBHOOKDB_EXPORT bool is_credential_header(std::string_view name);
// A copy without the credential headers, for messages and logs.
[[nodiscard]] WEBHOOKDB_EXPORT Headers without_credentials(const Headers& headers);

// The credentials `request` sends, in the forms a server could echo them back
// in (some APIs answer "invalid api key sk_live_..."): the URL's userinfo
// (and its Basic form), the values of the query parameters redact_url hides,
// and the values of credential headers (with the token of a Bearer value and
// the user and password of a Basic one), each also percent-decoded and
// -encoded. Values shorter than 4 bytes are left out.
[[nodiscard]] WEBHOOKDB_EXPORT std::vector<std::string> request_secrets(const HttpRequest& request);
// `text` with every occurrence of each secret replaced by REDACTED.
[[nodiscard]] WEBHOOKDB_EXPORT std::string redact_secrets(std::string text, std::vector<std::string> secrets);

// Sets one header on every request unless the request already has it.
class WEBHOOKDB_EXPORT HeaderAuth : public HttpClientDecorator {
 public:
  HeaderAuth(std::shared_ptr<HttpClient> next, std::string header, std::string value);
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override;

 private:
  std::string header_;
  std::string value_;
};

// Authorization: Bearer <token>.
class WEBHOOKDB_EXPORT BearerAuth final : public HeaderAuth {
 public:
  BearerAuth(std::shared_ptr<HttpClient> next, std::string_view token);
};

// Authorization: Basic base64(user:password). Stripe's secret key is the user
// with an empty password.
class WEBHOOKDB_EXPORT BasicAuth final : public HeaderAuth {
 public:
  BasicAuth(std::shared_ptr<HttpClient> next, std::string_view user, std::string_view password);
};

// --- Credentials per integration: one HttpClient for every integration ---
//
//   // Static keys, read from each request's integration:
//   auto creds = std::make_shared<IntegrationCredentials>(
//       [store](std::int64_t id) -> std::optional<Credential> {
//         auto si = store->find_integration(id);
//         if (!si) return std::nullopt;
//         return bearer_credential(si->backfill_key);
//       });
//   auto shared = std::make_shared<CredentialAuth>(curl_client, creds);   // ONE client
//   context.http = shared;
//   // A replicator's requests name their integration:
//   auto http = for_integration(context.http, integration.id);
//
// OAuth2 tokens come from the same port (webhookdb/oauth2.hpp).

// One header that authenticates a request. `generation` says which version
// of a rotating credential it is (0 for static ones).
struct Credential {
  std::string header;
  std::string value;
  std::int64_t generation = 0;
};
[[nodiscard]] WEBHOOKDB_EXPORT Credential bearer_credential(std::string_view token);
[[nodiscard]] WEBHOOKDB_EXPORT Credential basic_credential(std::string_view user, std::string_view password);

// Where CredentialAuth gets the credential of each request. Thread-safe.
class WEBHOOKDB_EXPORT CredentialProvider {
 public:
  virtual ~CredentialProvider() = default;
  // The credential for `request` (usually found by request.integration_id),
  // or nullopt to send it as it is. May throw (ReauthorizationRequired...).
  [[nodiscard]] virtual std::optional<Credential> credential_for(const HttpRequest& request,
                                                                 const CancellationToken& cancel) = 0;
  // `response` is a 401 to `request`, sent with `used`. True when a new
  // credential is worth one retry (an expired token was refreshed).
  virtual bool renew(const HttpRequest& request, const Credential& used, const HttpResponse& response,
                     const CancellationToken& cancel);
  // True when the provider has a credential for `integration_id` (the
  // replicator then backfills an integration without a key or secret of its
  // own). Default: false.
  [[nodiscard]] virtual bool covers(std::int64_t integration_id);
};

// The same credential for every request.
class WEBHOOKDB_EXPORT StaticCredentials final : public CredentialProvider {
 public:
  explicit StaticCredentials(Credential credential);
  [[nodiscard]] std::optional<Credential> credential_for(const HttpRequest& request,
                                                         const CancellationToken& cancel) override;
  [[nodiscard]] bool covers(std::int64_t integration_id) override;

 private:
  Credential credential_;
};

// The credential of the request's integration, from a lookup the host gives
// (usually its JobStore). A request without an integration is sent as it is.
class WEBHOOKDB_EXPORT IntegrationCredentials final : public CredentialProvider {
 public:
  using Lookup = std::function<std::optional<Credential>(std::int64_t integration_id)>;
  explicit IntegrationCredentials(Lookup lookup);
  [[nodiscard]] std::optional<Credential> credential_for(const HttpRequest& request,
                                                         const CancellationToken& cancel) override;
  [[nodiscard]] bool covers(std::int64_t integration_id) override;

 private:
  Lookup lookup_;
};

// Adds the provider's credential to each request that does not carry that
// header already. On a 401 the provider may renew the credential: the request
// is then sent once more with the new one (never more than once).
class WEBHOOKDB_EXPORT CredentialAuth final : public HttpClientDecorator {
 public:
  CredentialAuth(std::shared_ptr<HttpClient> next, std::shared_ptr<CredentialProvider> provider);
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override;
  // The provider covers the integration (or a client further down does).
  [[nodiscard]] bool authenticates(std::int64_t integration_id) override;

 private:
  std::shared_ptr<CredentialProvider> provider_;
};

// Stamps `integration_id` on every request that names none, and forwards to
// the shared client (its connections and caches stay shared).
[[nodiscard]] WEBHOOKDB_EXPORT std::shared_ptr<HttpClient> for_integration(std::shared_ptr<HttpClient> shared,
                                                                           std::int64_t integration_id);

// One line per exchange: method, redacted URL, status or error, elapsed time
// and body size. Never headers, never bodies.
class WEBHOOKDB_EXPORT LoggingHttpClient final : public HttpClientDecorator {
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
