#pragma once
// OAuth2 grants in PostgreSQL (<Config::schema>.webhookdb_oauth_grants), shared
// by every process of a fleet: the TokenStore of webhookdb/oauth2.hpp.
//
//   auto grants = std::make_shared<pg::PgOAuthTokenStore>(pool);   // keys from WEBHOOKDB_SECRET_KEY
//   grants->authorize(integration.id, client, {.refresh_token = first_refresh_token});
//   auto tokens = std::make_shared<oauth2::OAuth2Credentials>(curl_client, grants);
//   context.http = std::make_shared<CredentialAuth>(curl_client, tokens);
//
// One refresh at a time across processes: refresh() locks the integration's row
// (SELECT ... FOR UPDATE, waiting at most Options::lock_wait, then a retryable
// StoreError), re-reads it, and either finds a newer generation that another
// process stored (and reuses it) or asks the provider and stores the new access
// token and the rotated refresh token in the same transaction, before anyone
// uses them. If the process dies between the provider's answer and the commit,
// the stored refresh token is the old one: a provider that rotates refuses it
// (invalid_grant) and the integration is marked as needing re-authorisation,
// saying so; one that does not rotate simply answers the next refresh.
//
// The client secret, access token and refresh token are sealed with the secret
// box of webhookdb/pg/secret_key.hpp (the row and column as associated data):
// a dump of the table shows none of them. needs_reauthorization and
// reauthorization_reason are plain columns operators can query.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/oauth2.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/migrations.hpp"
#include "webhookdb/pg/secret_key.hpp"

namespace webhookdb::pg {

struct OAuthTokenStoreOptions {
  // How long refresh() waits for another process's refresh of the same
  // integration (its lock_timeout) before a retryable StoreError.
  std::chrono::milliseconds lock_wait = std::chrono::seconds(30);
  // 0: every load() reads its integration's row. Positive: load() first looks
  // in a list of the integrations holding a grant (up to 10,000; a longer
  // list is not kept), read again at most this often, and returns nullopt
  // for one it does not name without a statement: a grant another process
  // stores is seen within this long (this store's own authorize at once).
  // webhookdb-worker: 1 s (OAuth2Credentials asks again about a missing grant
  // only every no_grant_recheck, 30 s), so a static-key job reads no grant.
  std::chrono::milliseconds grant_list_every{0};
};

// Thread-safe.
class WEBHOOKDB_EXPORT PgOAuthTokenStore final : public oauth2::TokenStore {
 public:
  explicit PgOAuthTokenStore(std::shared_ptr<ConnectionPool> pool, SecretKeys keys = SecretKeys::from_environment(),
                             OAuthTokenStoreOptions options = {});
  ~PgOAuthTokenStore() override;
  PgOAuthTokenStore(const PgOAuthTokenStore&) = delete;
  PgOAuthTokenStore& operator=(const PgOAuthTokenStore&) = delete;

  void authorize(std::int64_t integration_id, const oauth2::ClientConfig& client,
                 const oauth2::Tokens& tokens) override;
  [[nodiscard]] std::optional<oauth2::Grant> load(std::int64_t integration_id) override;
  [[nodiscard]] oauth2::Grant refresh(std::int64_t integration_id, std::int64_t stale_generation,
                                      const Exchange& exchange) override;

  // The integrations whose grant the provider refused, in id order.
  [[nodiscard]] std::vector<std::int64_t> needing_reauthorization();
  // How many refreshes were stored for the integration (0 when it has no grant).
  [[nodiscard]] std::int64_t refresh_count(std::int64_t integration_id);

  // Key rotation (as PgJobStore::reencrypt_secrets): re-seals under the current
  // key every grant holding a value in plain text or under a previous key, in
  // one transaction. Returns the number of grants rewritten. InvalidPrecondition
  // without a current key.
  std::size_t reencrypt_secrets();

  // Runs the pending migrations of component "oauth_tokens" (also on first use).
  void migrate();
  [[nodiscard]] static const std::vector<Migration>& migrations();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace webhookdb::pg
