#include "webhookdb/pg/oauth_token_store.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <vector>

#include "pg/pool_impl.hpp"
#include "pg/secret_box.hpp"
#include "pg/sql.hpp"
#include "pg/values.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb::pg {
namespace {

using oauth2::ClientAuthentication;
using oauth2::GrantType;

constexpr const char* kGrantColumns =
    "integration_id, token_url, client_id, client_secret, scopes, grant_type, client_authentication,"
    " resource_origin, access_token, refresh_token, extract(epoch from issued_at)::text,"
    " extract(epoch from expires_at)::text, generation, needs_reauthorization, reauthorization_reason";

// The sealed columns and their associated data: a value copied to another row
// or column does not open.
enum class Sealed { client_secret, access_token, refresh_token };
const char* column_of(Sealed c) {
  switch (c) {
    case Sealed::client_secret: return "client_secret";
    case Sealed::access_token: return "access_token";
    case Sealed::refresh_token: return "refresh_token";
  }
  return "";
}
std::string aad(std::int64_t id, Sealed c) {
  return std::string("webhookdb_oauth_grants.") + column_of(c) + ":" + std::to_string(id);
}

std::string join_scopes(const std::vector<std::string>& scopes) {
  std::string out;
  for (const auto& s : scopes) out += (out.empty() ? "" : " ") + s;
  return out;
}
std::vector<std::string> split_scopes(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::optional<std::string> grant_ts_param(const std::optional<Timestamp>& t) {
  if (!t) return std::nullopt;
  return values::timestamp_text(*t);
}
std::optional<Timestamp> grant_ts_field(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return values::timestamp_from_epoch_text(std::string_view(f.c_str(), f.size()));
}

// What refresh() decided inside its transaction; thrown after the commit so
// that the re-authorisation mark is stored.
struct RefreshOutcome {
  oauth2::Grant grant;
  std::optional<std::string> reauthorization;
};

}  // namespace

struct PgOAuthTokenStore::State {
  std::shared_ptr<ConnectionPool> pool;
  SecretKeys keys;
  OAuthTokenStoreOptions options;
  std::string table;
  std::mutex migrate_mutex;
  bool migrated = false;

  ConnectionPool::Impl& impl() const { return pool->impl(); }

  // load()'s prepared statement, named by the table (stores of several
  // schemas may share a connection).
  std::string load_name;

  // OAuthTokenStoreOptions::grant_list_every: the integrations holding a
  // grant, as last read (sorted), and when; unknown while `grant_list_read`
  // is unset or the list was too long to keep.
  static constexpr std::size_t kGrantListMax = 10'000;
  std::mutex grant_list_mutex;
  std::optional<std::chrono::steady_clock::time_point> grant_list_read;
  bool grant_list_complete = false;
  std::vector<std::int64_t> grant_list;

  // True when a fresh enough list of the integrations holding a grant does
  // not name `id` (read again at most every grant_list_every).
  bool surely_without_grant(std::int64_t id) {
    if (options.grant_list_every.count() <= 0) return false;
    std::lock_guard lock(grant_list_mutex);
    const auto now = std::chrono::steady_clock::now();
    if (!grant_list_read || now - *grant_list_read >= options.grant_list_every) {
      std::vector<std::int64_t> ids;
      impl().autocommit("listing the integrations with an OAuth2 grant", [&](pqxx::nontransaction& tx) {
        for (const auto& row : tx.exec("SELECT integration_id FROM " + table + " ORDER BY 1 LIMIT " +
                                       std::to_string(kGrantListMax + 1))) {
          ids.push_back(row[0].as<std::int64_t>());
        }
      });
      grant_list_complete = ids.size() <= kGrantListMax;
      grant_list = grant_list_complete ? std::move(ids) : std::vector<std::int64_t>{};
      grant_list_read = now;
    }
    return grant_list_complete && !std::binary_search(grant_list.begin(), grant_list.end(), id);
  }

  // A grant stored by this process is seen by its next load() at once.
  void forget_grant_list() {
    std::lock_guard lock(grant_list_mutex);
    grant_list_read.reset();
  }

  std::string sealed(std::int64_t id, Sealed c, const std::string& value) const {
    if (value.empty()) return value;
    if (value.find('\0') != std::string::npos || !sql::valid_utf8(value)) {
      throw InvalidInput(std::string("the OAuth2 ") + column_of(c) + " of integration " + std::to_string(id) +
                         " holds a NUL byte or is not valid UTF-8");
    }
    if (keys.current) return detail::seal(*keys.current, value, aad(id, c));
    if (keys.plain_text == PlainTextSecrets::refused) {
      throw InvalidPrecondition(std::string("refusing to store the OAuth2 ") + column_of(c) + " of integration " +
                                std::to_string(id) +
                                " in plain text: no secret key is configured (set WEBHOOKDB_SECRET_KEY or"
                                " WEBHOOKDB_SECRET_KEY_FILE, see webhookdb/pg/secret_key.hpp)");
    }
    return value;
  }
  std::string opened(std::int64_t id, Sealed c, const std::string& stored) const {
    if (!detail::is_sealed(stored)) return stored;
    return detail::open(keys, stored, aad(id, c),
                        std::string("the OAuth2 ") + column_of(c) + " of integration " + std::to_string(id));
  }

  oauth2::Grant grant_from(const pqxx::row& r) const {
    const auto id = r[0].as<std::int64_t>();
    oauth2::Grant g;
    g.client.token_url = r[1].as<std::string>();
    g.client.client_id = r[2].as<std::string>();
    g.client.client_secret = opened(id, Sealed::client_secret, r[3].as<std::string>());
    g.client.scopes = split_scopes(r[4].as<std::string>());
    g.client.grant = r[5].as<std::string>() == "refresh_token" ? GrantType::refresh_token
                                                                 : GrantType::client_credentials;
    g.client.authentication =
        r[6].as<std::string>() == "body" ? ClientAuthentication::body : ClientAuthentication::basic;
    g.client.resource_origin = r[7].as<std::string>();
    g.tokens.access_token = opened(id, Sealed::access_token, r[8].as<std::string>());
    g.tokens.refresh_token = opened(id, Sealed::refresh_token, r[9].as<std::string>());
    g.tokens.issued_at = grant_ts_field(r[10]);
    g.tokens.expires_at = grant_ts_field(r[11]);
    g.generation = r[12].as<std::int64_t>();
    g.needs_reauthorization = r[13].as<bool>();
    g.reauthorization_reason = r[14].as<std::string>();
    return g;
  }

  // Inside the row lock: reuse, ask the provider, or report a refused grant.
  // NOLINTNEXTLINE(bugprone-easily-swappable-parameters): integration, then the generation seen stale (TokenStore's order)
  RefreshOutcome refresh_locked(pqxx::work& tx, std::int64_t id, std::int64_t stale_generation,
                                const Exchange& exchange) const {
    const pqxx::result rows =
        tx.exec_params("SELECT " + std::string(kGrantColumns) + " FROM " + table + " WHERE integration_id = $1 FOR UPDATE", id);
    if (rows.empty()) {
      throw InvalidPrecondition("integration " + std::to_string(id) + " has no OAuth2 grant (authorize it first)");
    }
    RefreshOutcome out{grant_from(rows[0]), std::nullopt};
    if (out.grant.needs_reauthorization) {
      out.reauthorization = out.grant.reauthorization_reason;
      return out;
    }
    if (out.grant.generation != stale_generation) return out;  // another process refreshed: reuse
    oauth2::Tokens tokens;
    try {
      tokens = exchange(out.grant);
    } catch (const oauth2::ReauthorizationRequired& e) {
      tx.exec_params("UPDATE " + table +
                         " SET needs_reauthorization = true, reauthorization_reason = $2, updated_at = now()"
                         " WHERE integration_id = $1",
                     id, e.reason());
      out.reauthorization = e.reason();
      return out;
    }
    // The new access token and the rotated refresh token are committed
    // together, before the caller (or anyone) uses them.
    tx.exec_params("UPDATE " + table +
                       " SET access_token = $2, refresh_token = $3, issued_at = $4::timestamptz,"
                       " expires_at = $5::timestamptz, generation = generation + 1,"
                       " refresh_count = refresh_count + 1, refreshed_at = now(), updated_at = now()"
                       " WHERE integration_id = $1",
                   id, sealed(id, Sealed::access_token, tokens.access_token),
                   sealed(id, Sealed::refresh_token, tokens.refresh_token), grant_ts_param(tokens.issued_at),
                   grant_ts_param(tokens.expires_at));
    out.grant.tokens = std::move(tokens);
    out.grant.generation += 1;
    return out;
  }
};

PgOAuthTokenStore::PgOAuthTokenStore(std::shared_ptr<ConnectionPool> pool, SecretKeys keys,
                                     OAuthTokenStoreOptions options)
    : state_(std::make_unique<State>()) {
  if (!pool) throw InvalidPrecondition("PgOAuthTokenStore needs a connection pool");
  state_->pool = std::move(pool);
  state_->keys = std::move(keys);
  state_->options = options;
  state_->table = sql::ident(state_->pool->config().schema, "schema") + ".webhookdb_oauth_grants";
  state_->load_name = "webhookdb_oauth_load_" + std::to_string(std::hash<std::string>{}(state_->table));
}

PgOAuthTokenStore::~PgOAuthTokenStore() = default;

const std::vector<Migration>& PgOAuthTokenStore::migrations() {
  // No foreign key to webhookdb_service_integrations: the store works beside
  // any JobStore, and migrations of separate components run in any order.
  static const std::vector<Migration> steps = {
      {1, "OAuth2 grants",
       "CREATE TABLE {schema}.webhookdb_oauth_grants ("
       " integration_id bigint PRIMARY KEY,"
       " token_url text NOT NULL,"
       " client_id text NOT NULL,"
       " client_secret text NOT NULL DEFAULT '',"
       " scopes text NOT NULL DEFAULT '',"
       " grant_type text NOT NULL CHECK (grant_type IN ('client_credentials', 'refresh_token')),"
       " client_authentication text NOT NULL CHECK (client_authentication IN ('basic', 'body')),"
       " resource_origin text NOT NULL DEFAULT '',"
       " access_token text NOT NULL DEFAULT '',"
       " refresh_token text NOT NULL DEFAULT '',"
       " issued_at timestamptz,"
       " expires_at timestamptz,"
       " generation bigint NOT NULL DEFAULT 1,"
       " refresh_count bigint NOT NULL DEFAULT 0,"
       " refreshed_at timestamptz,"
       " needs_reauthorization boolean NOT NULL DEFAULT false,"
       " reauthorization_reason text NOT NULL DEFAULT '',"
       " created_at timestamptz NOT NULL DEFAULT now(),"
       " updated_at timestamptz);"
       "CREATE INDEX ON {schema}.webhookdb_oauth_grants (integration_id) WHERE needs_reauthorization;"},
  };
  return steps;
}

void PgOAuthTokenStore::migrate() {
  std::lock_guard lock(state_->migrate_mutex);
  if (state_->migrated) return;
  pg::migrate(*state_->pool, "oauth_tokens", migrations());
  state_->migrated = true;
}

void PgOAuthTokenStore::authorize(std::int64_t integration_id, const oauth2::ClientConfig& client,
                                  const oauth2::Tokens& tokens) {
  client.validate("the OAuth2 client of integration " + std::to_string(integration_id));
  migrate();
  const State& s = *state_;
  auto& i = s.impl();
  i.in_transaction("storing the OAuth2 grant of integration " + std::to_string(integration_id), i.config.retries,
                   [&](pqxx::work& tx) {
                     tx.exec_params(
                         "INSERT INTO " + s.table +
                             " (integration_id, token_url, client_id, client_secret, scopes, grant_type,"
                             " client_authentication, resource_origin, access_token, refresh_token, issued_at,"
                             " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::timestamptz,"
                             " $12::timestamptz)"
                             " ON CONFLICT (integration_id) DO UPDATE SET token_url = EXCLUDED.token_url,"
                             " client_id = EXCLUDED.client_id, client_secret = EXCLUDED.client_secret,"
                             " scopes = EXCLUDED.scopes, grant_type = EXCLUDED.grant_type,"
                             " client_authentication = EXCLUDED.client_authentication,"
                             " resource_origin = EXCLUDED.resource_origin, access_token = EXCLUDED.access_token,"
                             " refresh_token = EXCLUDED.refresh_token, issued_at = EXCLUDED.issued_at,"
                             " expires_at = EXCLUDED.expires_at, generation = " + s.table + ".generation + 1,"
                             " needs_reauthorization = false, reauthorization_reason = '', updated_at = now()",
                         integration_id, client.token_url, client.client_id,
                         s.sealed(integration_id, Sealed::client_secret, client.client_secret),
                         join_scopes(client.scopes),
                         client.grant == GrantType::refresh_token ? "refresh_token" : "client_credentials",
                         client.authentication == ClientAuthentication::body ? "body" : "basic",
                         client.resource_origin, s.sealed(integration_id, Sealed::access_token, tokens.access_token),
                         s.sealed(integration_id, Sealed::refresh_token, tokens.refresh_token),
                         grant_ts_param(tokens.issued_at), grant_ts_param(tokens.expires_at));
                   });
  state_->forget_grant_list();
}

std::optional<oauth2::Grant> PgOAuthTokenStore::load(std::int64_t integration_id) {
  migrate();
  const State& s = *state_;
  if (state_->surely_without_grant(integration_id)) return std::nullopt;
  auto& i = s.impl();
  // One prepared statement in autocommit (no BEGIN and COMMIT round trips,
  // planned once per connection); a read, so tried again on a lost connection.
  const std::string sql = "SELECT " + std::string(kGrantColumns) + " FROM " + s.table + " WHERE integration_id = $1";
  return i.autocommit_idempotent("reading the OAuth2 grant of integration " + std::to_string(integration_id),
                                 [&](pqxx::nontransaction& tx) -> std::optional<oauth2::Grant> {
                                   tx.conn().prepare(s.load_name, sql);
                                   const auto rows = tx.exec_prepared(s.load_name, integration_id);
                                   if (rows.empty()) return std::nullopt;
                                   return s.grant_from(rows[0]);
                                 });
}

oauth2::Grant PgOAuthTokenStore::refresh(std::int64_t integration_id, std::int64_t stale_generation,
                                         const Exchange& exchange) {
  migrate();
  const State& s = *state_;
  auto& i = s.impl();
  // No retries: a transaction run again after the provider answered would
  // send the refresh token it had already spent.
  RefreshOutcome out = i.in_transaction(
      "refreshing the OAuth2 token of integration " + std::to_string(integration_id) +
          " (waiting at most " + std::to_string(s.options.lock_wait.count()) + " ms for another refresh)",
      0, [&](pqxx::work& tx) {
        tx.exec("SET LOCAL lock_timeout = " + std::to_string(std::max<std::int64_t>(1, s.options.lock_wait.count())));
        return s.refresh_locked(tx, integration_id, stale_generation, exchange);
      });
  if (out.reauthorization) throw oauth2::ReauthorizationRequired(integration_id, *out.reauthorization);
  return std::move(out.grant);
}

std::size_t PgOAuthTokenStore::reencrypt_secrets() {
  migrate();
  const State& s = *state_;
  if (!s.keys.current) throw InvalidPrecondition("re-encrypting OAuth2 grants needs a current secret key");
  std::string where;
  for (const char* col : {"client_secret", "access_token", "refresh_token"}) {
    where += (where.empty() ? "" : " OR ") + std::string("(") + col + " <> '' AND NOT starts_with(" + col + ", $1))";
  }
  auto& i = s.impl();
  return i.in_transaction("re-encrypting OAuth2 grants", i.config.retries, [&](pqxx::work& tx) {
    const auto rows = tx.exec_params("SELECT " + std::string(kGrantColumns) + " FROM " + s.table + " WHERE " + where +
                                         " ORDER BY integration_id FOR UPDATE",
                                     std::string(detail::kSealedPrefix) + "v1:" + s.keys.current->id() + ":");
    for (const auto& row : rows) {
      const auto id = row[0].as<std::int64_t>();
      const oauth2::Grant g = s.grant_from(row);
      tx.exec_params("UPDATE " + s.table +
                         " SET client_secret = $2, access_token = $3, refresh_token = $4 WHERE integration_id = $1",
                     id, s.sealed(id, Sealed::client_secret, g.client.client_secret),
                     s.sealed(id, Sealed::access_token, g.tokens.access_token),
                     s.sealed(id, Sealed::refresh_token, g.tokens.refresh_token));
    }
    return static_cast<std::size_t>(rows.size());
  });
}

std::vector<std::int64_t> PgOAuthTokenStore::needing_reauthorization() {
  migrate();
  auto& i = state_->impl();
  return i.in_transaction("listing integrations needing re-authorisation", i.config.retries, [&](pqxx::work& tx) {
    std::vector<std::int64_t> out;
    for (const auto& row :
         tx.exec("SELECT integration_id FROM " + state_->table + " WHERE needs_reauthorization ORDER BY 1")) {
      out.push_back(row[0].as<std::int64_t>());
    }
    return out;
  });
}

std::int64_t PgOAuthTokenStore::refresh_count(std::int64_t integration_id) {
  migrate();
  auto& i = state_->impl();
  return i.in_transaction("counting OAuth2 refreshes", i.config.retries, [&](pqxx::work& tx) {
    const auto rows =
        tx.exec_params("SELECT refresh_count FROM " + state_->table + " WHERE integration_id = $1", integration_id);
    return rows.empty() ? std::int64_t{0} : rows[0][0].as<std::int64_t>();
  });
}

}  // namespace webhookdb::pg
