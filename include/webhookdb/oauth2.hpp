#pragma once
// OAuth2 access tokens as a CredentialProvider (webhookdb/http_auth.hpp): the
// client-credentials and refresh-token grants (RFC 6749 sections 4.4 and 6),
// per integration, with one refresh at a time across every process that shares
// the TokenStore, rotated refresh tokens stored before they are used, and a
// 401 the provider marks as an expired token retried once after a refresh.
//
//   auto store = std::make_shared<pg::PgOAuthTokenStore>(pool);   // webhookdb/pg/oauth_token_store.hpp
//   store->authorize(integration.id, oauth2::ClientConfig{
//       .token_url = "https://auth.example.com/oauth/token",
//       .client_id = "...", .client_secret = "...", .scopes = {"read"},
//       .grant = oauth2::GrantType::refresh_token}, {.refresh_token = "first refresh token"});
//   auto tokens = std::make_shared<oauth2::OAuth2Credentials>(curl_client, store);
//   context.http = std::make_shared<CredentialAuth>(curl_client, tokens);   // one client, every integration
//
// A refresh the provider refuses for good (invalid_grant, invalid_client,
// unauthorized_client) marks the integration as needing re-authorisation in
// the store and throws ReauthorizationRequired (not retryable) then and on
// every later request, without asking the provider again, until the host
// stores a new grant with authorize(). No token, refresh token or client
// secret appears in an error or a log line. The core holds no I/O: the token
// endpoint is reached through the HttpClient it is given.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "webhookdb/clock.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb::oauth2 {

enum class GrantType {
  client_credentials,  // a new token from the client's own id and secret
  refresh_token,       // a new token (and maybe a new refresh token) from the last refresh token
};

// How the client proves who it is at the token endpoint (RFC 6749 2.3.1).
enum class ClientAuthentication {
  basic,  // Authorization: Basic (client_id:client_secret), the RFC's recommendation
  body,   // client_id and client_secret as form fields
};

struct WEBHOOKDB_EXPORT ClientConfig {
  std::string token_url;
  std::string client_id;
  std::string client_secret;
  std::vector<std::string> scopes;
  GrantType grant = GrantType::client_credentials;
  ClientAuthentication authentication = ClientAuthentication::basic;
  // When set, tokens are sent only to URLs of this origin (scheme://host:port):
  // a next-page link or redirect elsewhere carries none.
  std::string resource_origin;

  // InvalidInput naming `where` and the field (never a secret's value).
  void validate(std::string_view where) const;
  friend bool operator==(const ClientConfig&, const ClientConfig&) = default;
};

struct Tokens {
  std::string access_token;
  // Empty when the grant has none (client credentials) or the provider did not rotate it.
  std::string refresh_token;
  std::optional<Timestamp> issued_at;
  // nullopt: the provider gave no expires_in; the token is used until a 401.
  std::optional<Timestamp> expires_at;
  friend bool operator==(const Tokens&, const Tokens&) = default;
};

// What a TokenStore holds for one integration.
struct Grant {
  ClientConfig client;
  Tokens tokens;
  // +1 per stored refresh: tells a waiter that someone else refreshed.
  std::int64_t generation = 0;
  bool needs_reauthorization = false;
  // Why (the provider's error code), without a secret.
  std::string reauthorization_reason;
};

// The provider refused the grant for good: a person must authorise the
// integration again. Not retryable.
class WEBHOOKDB_EXPORT ReauthorizationRequired final : public Error {
 public:
  ReauthorizationRequired(std::int64_t integration_id, const std::string& reason);
  [[nodiscard]] std::int64_t integration_id() const noexcept { return integration_id_; }
  // What the provider said (no secret), as stored by a TokenStore.
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

 private:
  std::int64_t integration_id_;
  std::string reason_;
};

// The token endpoint answered something that is not a token (a 4xx other than
// the grant errors, a 200 without access_token...). Not retryable; 5xx, 429,
// timeouts and connection errors are HttpError & co. and retryable.
class WEBHOOKDB_EXPORT TokenEndpointError final : public Error {
 public:
  using Error::Error;
};

// One exchange at the token endpoint for `current` (its refresh token, for
// the refresh grant). A response without a refresh token keeps the current
// one. Throws ReauthorizationRequired for invalid_grant, invalid_client and
// unauthorized_client; no message holds the body, a token or the secret.
[[nodiscard]] WEBHOOKDB_EXPORT Tokens request_tokens(HttpClient& http, std::int64_t integration_id,
                                                     const Grant& current, Timestamp now,
                                                     const CancellationToken& cancel);

// Where grants live, and the one place a refresh happens. Thread-safe.
class WEBHOOKDB_EXPORT TokenStore {
 public:
  virtual ~TokenStore() = default;
  using Exchange = std::function<Tokens(const Grant& current)>;

  // Stores the client and its first tokens, clearing needs_reauthorization.
  virtual void authorize(std::int64_t integration_id, const ClientConfig& client, const Tokens& tokens) = 0;
  [[nodiscard]] virtual std::optional<Grant> load(std::int64_t integration_id) = 0;
  // Exclusive for `integration_id` across every user of the store: reads the
  // stored grant; when its generation is no longer `stale_generation` someone
  // else refreshed and it is returned as it is; else `exchange(grant)` runs and
  // its tokens are stored (generation + 1) before they are returned. A
  // ReauthorizationRequired from `exchange` is recorded, then rethrown.
  // InvalidPrecondition when there is no grant for the integration.
  [[nodiscard]] virtual Grant refresh(std::int64_t integration_id, std::int64_t stale_generation,
                                      const Exchange& exchange) = 0;
};

// One process's store (tests, a single host).
class WEBHOOKDB_EXPORT InMemoryTokenStore final : public TokenStore {
 public:
  void authorize(std::int64_t integration_id, const ClientConfig& client, const Tokens& tokens) override;
  [[nodiscard]] std::optional<Grant> load(std::int64_t integration_id) override;
  [[nodiscard]] Grant refresh(std::int64_t integration_id, std::int64_t stale_generation,
                              const Exchange& exchange) override;

 private:
  std::mutex mutex_;
  std::map<std::int64_t, Grant> grants_;
};

// When a 401 is answered with a new token and one retry.
enum class RetryUnauthorized {
  when_marked_expired,  // WWW-Authenticate says error="invalid_token" (RFC 6750 3.1)
  always,               // any 401 (providers that say nothing)
  never,
};

struct OAuth2Options {
  // Refresh when the token expires within this margin, or within a quarter of
  // its lifetime when that is shorter (2-second test tokens).
  std::chrono::milliseconds refresh_margin = std::chrono::seconds(60);
  RetryUnauthorized retry_unauthorized = RetryUnauthorized::when_marked_expired;
  // An integration found without a grant is sent without a token and asked
  // about again only after this long: a worker serving static-key and OAuth2
  // integrations through one client reads the store once per integration,
  // not once per request. A grant stored later is picked up within it.
  std::chrono::milliseconds no_grant_recheck = std::chrono::seconds(30);
};

// Bearer tokens for each request's integration (request.integration_id).
// Tokens are cached per process and read from the store when missing or due;
// refreshes go through TokenStore::refresh, so one process refreshes and the
// others reuse what it stored. `token_http` reaches the token endpoint (the
// plain client, not the CredentialAuth this provider serves).
class WEBHOOKDB_EXPORT OAuth2Credentials final : public CredentialProvider {
 public:
  OAuth2Credentials(std::shared_ptr<HttpClient> token_http, std::shared_ptr<TokenStore> store,
                    std::shared_ptr<Clock> clock = system_clock(), OAuth2Options options = {});
  [[nodiscard]] std::optional<Credential> credential_for(const HttpRequest& request,
                                                         const CancellationToken& cancel) override;
  bool renew(const HttpRequest& request, const Credential& used, const HttpResponse& response,
             const CancellationToken& cancel) override;
  // The integration has a grant in the store (one that needs
  // re-authorisation too: its jobs then fail saying so).
  [[nodiscard]] bool covers(std::int64_t integration_id) override;

 private:
  struct Cached {
    std::mutex mutex;  // one refresh at a time within the process
    std::optional<Grant> grant;
    // Set when the store had no grant: not asked again before then.
    std::optional<Timestamp> no_grant_until;
  };
  Cached& cached(std::int64_t integration_id);
  [[nodiscard]] bool due(const Grant& grant) const;
  Grant refreshed(std::int64_t integration_id, std::int64_t stale_generation, const CancellationToken& cancel);

  std::shared_ptr<HttpClient> token_http_;
  std::shared_ptr<TokenStore> store_;
  std::shared_ptr<Clock> clock_;
  OAuth2Options options_;
  std::mutex map_mutex_;
  std::map<std::int64_t, std::unique_ptr<Cached>> cache_;
};

}  // namespace webhookdb::oauth2
