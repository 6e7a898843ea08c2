#include "webhookdb/pg/job_store.hpp"

#include <array>
#include <atomic>
#include <cstdio>
#include <functional>
#include <mutex>
#include <set>

#include "pg/pool_impl.hpp"
#include "pg/secret_box.hpp"
#include "pg/session_lock.hpp"
#include "pg/sql.hpp"
#include "pg/values.hpp"
#include "webhookdb/backfill_window.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"
#include "webhookdb/pg/advisory_lock.hpp"

namespace webhookdb::pg {
namespace {

using nlohmann::json;

constexpr const char* kIntegrationColumns =
    "id, opaque_id, service_name, table_name, api_url, backfill_key, backfill_secret, webhook_secret,"
    " depends_on_id, extract(epoch from last_backfilled_at)::text, skip_webhook_verification";
constexpr const char* kJobColumns =
    "id, opaque_id, service_integration_id, parent_job_id, incremental, criteria::text,"
    " extract(epoch from created_at)::text, extract(epoch from started_at)::text,"
    " extract(epoch from finished_at)::text";

// Text stored as it is; `what` names the field, the value never appears in
// the message (it may be a secret).
const std::string& checked(const std::string& text, const char* what) {
  if (text.find('\0') != std::string::npos) throw InvalidInput(std::string(what) + " contains a NUL byte");
  if (!sql::valid_utf8(text)) throw InvalidInput(std::string(what) + " is not valid UTF-8");
  return text;
}

std::optional<std::string> ts_param(const std::optional<Timestamp>& t) {
  if (!t) return std::nullopt;
  return values::timestamp_text(*t);
}

std::optional<Timestamp> ts_field(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return values::timestamp_from_epoch_text(std::string_view(f.c_str(), f.size()));
}

std::optional<std::int64_t> id_field(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::int64_t>();
}

// The secret columns, as stored: sealed under the current key, or plain text
// (rows written before encryption, or a store that opted into plain text).
struct SecretColumn {
  const char* column;
  const char* what;
  std::string ServiceIntegration::*field;
};
constexpr std::array<SecretColumn, 3> kSecretColumns = {{
    {"backfill_key", "backfill key", &ServiceIntegration::backfill_key},
    {"backfill_secret", "backfill secret", &ServiceIntegration::backfill_secret},
    {"webhook_secret", "webhook secret", &ServiceIntegration::webhook_secret},
}};

// Binds a sealed value to its row and column: a value copied to another row
// or column fails authentication.
std::string secret_aad(std::int64_t id, const SecretColumn& c) {
  return std::string("webhookdb_service_integrations.") + c.column + ":" + std::to_string(id);
}

std::string integration_name(std::int64_t id, const std::string& opaque_id) {
  return "integration " + std::to_string(id) + (opaque_id.empty() ? "" : " (" + opaque_id + ")");
}

// Which stored secrets a rewrite touches.
enum class Rewrite {
  plain_only,       // migrating plain-text rows
  not_current_key,  // rotation: plain text and values under previous keys
};

ServiceIntegration integration_from_stored(const pqxx::row& r) {
  ServiceIntegration si;
  si.id = r[0].as<std::int64_t>();
  si.opaque_id = r[1].as<std::string>();
  si.service_name = r[2].as<std::string>();
  si.table_name = r[3].as<std::string>();
  si.api_url = r[4].as<std::string>();
  si.backfill_key = r[5].as<std::string>();
  si.backfill_secret = r[6].as<std::string>();
  si.webhook_secret = r[7].as<std::string>();
  si.depends_on = id_field(r[8]);
  si.last_backfilled_at = ts_field(r[9]);
  si.skip_webhook_verification = r[10].as<bool>();
  return si;
}

ServiceIntegration integration_from(const pqxx::row& r, const SecretKeys& keys) {
  ServiceIntegration si = integration_from_stored(r);
  for (const auto& c : kSecretColumns) {
    std::string& value = si.*c.field;
    if (!detail::is_sealed(value)) continue;
    value = detail::open(keys, value, secret_aad(si.id, c),
                         "the " + std::string(c.what) + " of " + integration_name(si.id, si.opaque_id));
  }
  return si;
}

// The job's columns (kJobColumns) start at column `o` of `r`.
BackfillJob job_from(const pqxx::row& r, pqxx::row::size_type o = 0) {
  BackfillJob job;
  job.id = r[o].as<std::int64_t>();
  job.opaque_id = r[o + 1].as<std::string>();
  job.service_integration_id = r[o + 2].as<std::int64_t>();
  job.parent_job_id = id_field(r[o + 3]);
  job.incremental = r[o + 4].as<bool>();
  job.criteria = json::parse(r[o + 5].as<std::string>());
  job.created_at = ts_field(r[o + 6]).value_or(Timestamp{});
  job.started_at = ts_field(r[o + 7]);
  job.finished_at = ts_field(r[o + 8]);
  return job;
}

// Columns of an integration (kIntegrationColumns) in a result.
constexpr pqxx::row::size_type kIntegrationColumnCount = 11;

// The unique violation of an INSERT or UPDATE of an integration, as the
// question the caller acts on: which value is taken.
[[noreturn]] void integration_conflict(const pqxx::unique_violation& e, const ServiceIntegration& si) {
  if (std::string(e.what()).find("table_name_key") != std::string::npos) {
    throw InvalidPrecondition("another integration already uses table '" + sql::printable(si.table_name) +
                              "'");
  }
  throw InvalidPrecondition("an integration with opaque id " + si.opaque_id + " already exists");
}

// The statements every job run sends (find_job_and_integration, find_job,
// update_job, child_jobs) as prepared statements: libpqxx prepares one on a
// connection at its first use, so the server plans it once per connection
// instead of at every call. Named by their text (stores of several schemas
// may share a connection).
template <class... Args>
pqxx::result exec_prepared(pqxx::transaction_base& tx, const std::string& sql, Args&&... args) {
  char hash[24];
  std::snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(sql));
  const std::string name = std::string("webhookdb_jobs_") + hash;
  tx.conn().prepare(name, sql);
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

json checked_criteria(const json& criteria) {
  const json c = criteria.is_null() ? json::object() : criteria;
  if (!c.is_object()) throw InvalidPrecondition("backfill job criteria must be a JSON object");
  (void)backfill_window(c);  // a malformed window (backfill_window.hpp) is refused when the job is created
  return c;
}

// Held on a pooled lock session (src/pg/session_lock.hpp): released before
// the session is reused, and a session whose lock state is unknown is closed.
class PgIntegrationLock final : public IntegrationLock {
 public:
  explicit PgIntegrationLock(std::unique_ptr<detail::SessionLock> lock) : lock_(std::move(lock)) {}

 private:
  std::unique_ptr<detail::SessionLock> lock_;
};

}  // namespace

struct PgJobStore::State {
  std::shared_ptr<ConnectionPool> pool;
  std::shared_ptr<Clock> clock;
  std::mutex migrate_mutex;
  bool migrated = false;
  std::string integrations;  // quoted, qualified
  std::string jobs;
  SecretKeys keys;
  std::atomic<bool> defer_finishes{false};  // defer_finish_durability

  ConnectionPool::Impl& impl() const { return pool->impl(); }

  // The text stored for one secret of integration `si` (whose id is known):
  // sealed under the current key, '' for '', or plain text when the host opted
  // into it; else InvalidPrecondition.
  std::string stored_secret(const ServiceIntegration& si, const SecretColumn& c) const {
    const std::string& value = checked(si.*c.field, c.what);
    if (value.empty()) return value;
    if (keys.current) return detail::seal(*keys.current, value, secret_aad(si.id, c));
    if (keys.plain_text == PlainTextSecrets::refused) {
      throw InvalidPrecondition("refusing to store the " + std::string(c.what) + " of " +
                                integration_name(si.id, si.opaque_id) +
                                " in plain text: no secret key is configured (set WEBHOOKDB_SECRET_KEY or"
                                " WEBHOOKDB_SECRET_KEY_FILE, see webhookdb/pg/secret_key.hpp)");
    }
    if (detail::is_sealed(value)) {
      throw InvalidInput("the " + std::string(c.what) + " of " + integration_name(si.id, si.opaque_id) +
                         " starts with " + std::string(detail::kSealedPrefix) +
                         ", reserved for encrypted values");
    }
    return value;
  }

  // InvalidPrecondition when any integration holds a sealed secret: this store
  // opted into plain text and has no key to read them with.
  void refuse_plain_text_over_sealed_rows() const {
    std::string where;
    for (const auto& c : kSecretColumns) {
      where += (where.empty() ? "" : " OR ") + std::string("starts_with(") + c.column + ", 'wdbenc:')";
    }
    auto& i = impl();
    const auto sealed = i.in_transaction("checking for encrypted secrets", i.config.retries, [&](pqxx::work& tx) {
      return tx.exec("SELECT count(*) FROM " + integrations + " WHERE " + where)[0][0].as<std::int64_t>();
    });
    if (sealed == 0) return;
    throw InvalidPrecondition(
        "plain-text secrets were opted into (WEBHOOKDB_PLAINTEXT_SECRETS) but " + std::to_string(sealed) +
        " integration(s) in " + integrations +
        " hold encrypted secrets, written by a process with a secret key: run this process with that key"
        " (WEBHOOKDB_SECRET_KEY or WEBHOOKDB_SECRET_KEY_FILE) instead of the plain-text opt-in");
  }

  // Seals the secrets `which` selects of every integration under the current
  // key, in one transaction (rows locked, so concurrent rewriters wait and
  // then find nothing left to do). Returns the number of rows rewritten.
  std::size_t rewrite_secrets(Rewrite which) const {
    if (!keys.current) throw InvalidPrecondition("re-encrypting secrets needs a current secret key");
    const std::string current = std::string(detail::kSealedPrefix) + "v1:" + keys.current->id() + ":";
    std::string where;
    for (const auto& c : kSecretColumns) {
      const std::string col = c.column;
      where += (where.empty() ? "" : " OR ") + std::string("(") + col + " <> '' AND " +
               (which == Rewrite::plain_only ? "NOT starts_with(" + col + ", 'wdbenc:')"
                                             : "NOT starts_with(" + col + ", $1)") +
               ")";
    }
    auto& i = impl();
    return i.in_transaction("encrypting integration secrets", i.config.retries, [&](pqxx::work& tx) {
      const std::string select = std::string("SELECT ") + kIntegrationColumns + " FROM " + integrations +
                                 " WHERE " + where + " ORDER BY id FOR UPDATE";
      const pqxx::result rows =
          which == Rewrite::plain_only ? tx.exec(select) : tx.exec_params(select, current);
      for (const auto& row : rows) {
        ServiceIntegration si = integration_from(row, keys);
        tx.exec_params("UPDATE " + integrations +
                           " SET backfill_key = $2, backfill_secret = $3, webhook_secret = $4 WHERE id = $1",
                       si.id, stored_secret(si, kSecretColumns[0]), stored_secret(si, kSecretColumns[1]),
                       stored_secret(si, kSecretColumns[2]));
      }
      return static_cast<std::size_t>(rows.size());
    });
  }

  // Inserts one job inside `tx`; returns it complete.
  BackfillJob insert_job(pqxx::work& tx, BackfillJob job) const {
    job.criteria = checked_criteria(job.criteria);
    if (job.opaque_id.empty()) job.opaque_id = new_opaque_id("bfj");
    job.created_at = clock->now();
    const std::string criteria = to_jsonb_text(job.criteria, "backfill job criteria");
    try {
      const auto r =
          tx.exec_params("INSERT INTO " + jobs +
                             " (opaque_id, service_integration_id, parent_job_id, incremental, criteria, "
                             "created_at, started_at,"
                             " finished_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6::timestamptz, "
                             "$7::timestamptz, $8::timestamptz)"
                             " RETURNING id",
                         checked(job.opaque_id, "job opaque id"), job.service_integration_id,
                         job.parent_job_id, job.incremental, criteria, values::timestamp_text(job.created_at),
                         ts_param(job.started_at), ts_param(job.finished_at));
      job.id = r[0][0].as<std::int64_t>();
    } catch (const pqxx::foreign_key_violation&) {
      throw InvalidPrecondition(
          "cannot create a backfill job: integration " + std::to_string(job.service_integration_id) +
          (job.parent_job_id ? " or parent job " + std::to_string(*job.parent_job_id) : "") +
          " does not exist");
    } catch (const pqxx::unique_violation&) {
      throw InvalidPrecondition("a backfill job with opaque id " + job.opaque_id + " already exists");
    }
    return job;
  }

  std::vector<std::int64_t> dependent_ids(pqxx::work& tx, std::int64_t id) const {
    std::vector<std::int64_t> out;
    for (const auto& row :
         tx.exec_params("SELECT id FROM " + integrations + " WHERE depends_on_id = $1 ORDER BY id", id)) {
      out.push_back(row[0].as<std::int64_t>());
    }
    return out;
  }

  void check_no_cycle(pqxx::work& tx, std::int64_t id, std::set<std::int64_t>& path) const {
    if (!path.insert(id).second) {
      throw InvariantViolation("integration dependency cycle through integration " + std::to_string(id));
    }
    for (auto dep : dependent_ids(tx, id)) check_no_cycle(tx, dep, path);
    path.erase(id);
  }

  BackfillJob create_tree(pqxx::work& tx, std::int64_t integration_id, bool incremental, const json& criteria,
                          std::optional<std::int64_t> parent) const {
    BackfillJob job;
    job.service_integration_id = integration_id;
    job.parent_job_id = parent;
    job.incremental = incremental;
    job.criteria = criteria;
    BackfillJob created = insert_job(tx, std::move(job));
    for (auto dep : dependent_ids(tx, integration_id))
      create_tree(tx, dep, incremental, criteria, created.id);
    return created;
  }
};

PgJobStore::PgJobStore(Config config, std::shared_ptr<Clock> clock, SecretKeys keys)
    : PgJobStore(std::make_shared<ConnectionPool>(std::move(config)), std::move(clock), std::move(keys)) {}

PgJobStore::PgJobStore(std::shared_ptr<ConnectionPool> pool, std::shared_ptr<Clock> clock, SecretKeys keys)
    : state_(std::make_unique<State>()) {
  state_->keys = std::move(keys);
  if (!pool) throw InvalidPrecondition("PgJobStore needs a connection pool");
  state_->pool = std::move(pool);
  state_->clock = clock ? std::move(clock) : system_clock();
  const std::string schema = sql::ident(state_->pool->config().schema, "schema");
  state_->integrations = schema + ".webhookdb_service_integrations";
  state_->jobs = schema + ".webhookdb_backfill_jobs";
}

PgJobStore::~PgJobStore() = default;

ConnectionPool& PgJobStore::pool() const noexcept {
  return *state_->pool;
}

const std::vector<Migration>& PgJobStore::migrations() {
  static const std::vector<Migration> steps = {
      {1, "service integrations and backfill jobs",
       "CREATE TABLE {schema}.webhookdb_service_integrations ("
       " id bigserial PRIMARY KEY,"
       " opaque_id text NOT NULL UNIQUE,"
       " service_name text NOT NULL,"
       " table_name text NOT NULL,"
       " api_url text NOT NULL DEFAULT '',"
       " backfill_key text NOT NULL DEFAULT '',"
       " backfill_secret text NOT NULL DEFAULT '',"
       " webhook_secret text NOT NULL DEFAULT '',"
       " depends_on_id bigint REFERENCES {schema}.webhookdb_service_integrations (id) ON DELETE SET NULL,"
       " last_backfilled_at timestamptz,"
       " skip_webhook_verification boolean NOT NULL DEFAULT false,"
       " created_at timestamptz NOT NULL DEFAULT now(),"
       " updated_at timestamptz);"
       "CREATE INDEX ON {schema}.webhookdb_service_integrations (depends_on_id);"
       "CREATE TABLE {schema}.webhookdb_backfill_jobs ("
       " id bigserial PRIMARY KEY,"
       " opaque_id text NOT NULL UNIQUE,"
       " service_integration_id bigint NOT NULL"
       "   REFERENCES {schema}.webhookdb_service_integrations (id) ON DELETE CASCADE,"
       " parent_job_id bigint REFERENCES {schema}.webhookdb_backfill_jobs (id) ON DELETE CASCADE,"
       " incremental boolean NOT NULL,"
       " criteria jsonb NOT NULL DEFAULT '{}',"
       " created_at timestamptz NOT NULL DEFAULT now(),"
       " updated_at timestamptz,"
       " started_at timestamptz,"
       " finished_at timestamptz);"
       "CREATE INDEX ON {schema}.webhookdb_backfill_jobs (service_integration_id);"
       "CREATE INDEX ON {schema}.webhookdb_backfill_jobs (parent_job_id);"},
      // Two integrations writing one table would overwrite each other's rows.
      // A database where two already share one is not changed: the step
      // stops, naming the tables, and runs again once an operator has given
      // each integration its own table ('' means none yet and may repeat).
      {2, "one integration per table",
       "DO $$ DECLARE shared text; BEGIN"
       " SELECT string_agg(quote_literal(table_name), ', ' ORDER BY table_name) INTO shared FROM ("
       "   SELECT table_name FROM {schema}.webhookdb_service_integrations WHERE table_name <> ''"
       "   GROUP BY table_name HAVING count(*) > 1) d;"
       " IF shared IS NOT NULL THEN RAISE EXCEPTION 'several service integrations claim the table(s) %;"
       " give each its own table_name, then migrate again', shared; END IF; END $$;"
       "CREATE UNIQUE INDEX webhookdb_service_integrations_table_name_key"
       " ON {schema}.webhookdb_service_integrations (table_name) WHERE table_name <> '';"},
      // A job the job queue (PgJobQueue) failed for good is finished here too,
      // with its error, so the two tables never disagree.
      {3, "backfill job error",
       "ALTER TABLE {schema}.webhookdb_backfill_jobs ADD COLUMN IF NOT EXISTS error text;"},
  };
  return steps;
}

void PgJobStore::migrate() {
  std::lock_guard lock(state_->migrate_mutex);
  if (state_->migrated) return;
  pg::migrate(*state_->pool, "job_store", migrations());
  // Rows written in plain text (before encryption, or by a store that opted
  // into it) are sealed as soon as a store with a key migrates.
  if (state_->keys.current) (void)state_->rewrite_secrets(Rewrite::plain_only);
  // A plain-text store on a database a keyed store has sealed could read none
  // of its secrets, and the keyed store would seal every plain row it wrote:
  // the two processes break each other. The plain-text one refuses to start.
  if (!state_->keys.current && state_->keys.plain_text == PlainTextSecrets::allowed) {
    state_->refuse_plain_text_over_sealed_rows();
  }
  state_->migrated = true;
}

std::size_t PgJobStore::reencrypt_secrets() {
  migrate();
  return state_->rewrite_secrets(Rewrite::not_current_key);
}

ServiceIntegration PgJobStore::create_integration(ServiceIntegration si) {
  migrate();
  if (si.opaque_id.empty()) si.opaque_id = new_opaque_id("svi");
  validate_table_name(checked(si.table_name, "table name"));
  auto& impl = state_->impl();
  si.id = impl.in_transaction("creating an integration", impl.config.retries, [&](pqxx::work& tx) {
    // The id first: it is the associated data the secrets are sealed with.
    ServiceIntegration row = si;
    row.id = tx.exec_params("SELECT nextval(pg_get_serial_sequence($1, 'id'))", state_->integrations)[0][0]
                 .as<std::int64_t>();
    try {
      tx.exec_params("INSERT INTO " + state_->integrations +
                         " (id, opaque_id, service_name, table_name, api_url, backfill_key, backfill_secret,"
                         " webhook_secret, depends_on_id, last_backfilled_at, skip_webhook_verification)"
                         " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::timestamptz, $11)",
                     row.id, checked(si.opaque_id, "opaque id"), checked(si.service_name, "service name"),
                     checked(si.table_name, "table name"), checked(si.api_url, "api url"),
                     state_->stored_secret(row, kSecretColumns[0]), state_->stored_secret(row, kSecretColumns[1]),
                     state_->stored_secret(row, kSecretColumns[2]), si.depends_on,
                     ts_param(si.last_backfilled_at), si.skip_webhook_verification);
      return row.id;
    } catch (const pqxx::unique_violation& e) {
      integration_conflict(e, si);
    } catch (const pqxx::foreign_key_violation&) {
      throw InvalidPrecondition("integration " + std::to_string(si.depends_on.value_or(0)) +
                                " (depends_on) does not exist");
    }
  });
  return si;
}

std::optional<ServiceIntegration> PgJobStore::find_integration(std::int64_t id) {
  migrate();
  return state_->impl().autocommit("reading an integration", [&](pqxx::nontransaction& tx) {
    std::optional<ServiceIntegration> out;
    const auto r = tx.exec_params(
        std::string("SELECT ") + kIntegrationColumns + " FROM " + state_->integrations + " WHERE id = $1",
        id);
    if (!r.empty()) out = integration_from(r[0], state_->keys);
    return out;
  });
}

std::optional<ServiceIntegration> PgJobStore::find_integration_by_opaque_id(const std::string& opaque_id) {
  migrate();
  if (opaque_id.find('\0') != std::string::npos || !sql::valid_utf8(opaque_id)) return std::nullopt;
  return state_->impl().autocommit("reading an integration", [&](pqxx::nontransaction& tx) {
    std::optional<ServiceIntegration> out;
    const auto r = tx.exec_params(std::string("SELECT ") + kIntegrationColumns + " FROM " +
                                      state_->integrations + " WHERE opaque_id = $1",
                                  opaque_id);
    if (!r.empty()) out = integration_from(r[0], state_->keys);
    return out;
  });
}

std::optional<ServiceIntegration> PgJobStore::find_integration_by_table(const std::string& table_name) {
  migrate();
  if (table_name.empty() || table_name.find('\0') != std::string::npos || !sql::valid_utf8(table_name)) {
    return std::nullopt;
  }
  return state_->impl().autocommit("reading an integration", [&](pqxx::nontransaction& tx) {
    std::optional<ServiceIntegration> out;
    const auto r = tx.exec_params(std::string("SELECT ") + kIntegrationColumns + " FROM " +
                                      state_->integrations + " WHERE table_name = $1",
                                  table_name);
    if (!r.empty()) out = integration_from(r[0], state_->keys);
    return out;
  });
}

void PgJobStore::update_integration(const ServiceIntegration& si) {
  migrate();
  validate_table_name(checked(si.table_name, "table name"));
  auto& impl = state_->impl();
  impl.in_transaction(
      "updating integration " + std::to_string(si.id), impl.config.retries, [&](pqxx::work& tx) {
        pqxx::result r;
        try {
          r = tx.exec_params(
              "UPDATE " + state_->integrations +
                  " SET opaque_id = $2, service_name = $3, table_name = $4, api_url = $5,"
                  " backfill_key = $6, backfill_secret = $7, webhook_secret = $8, depends_on_id = $9,"
                  " last_backfilled_at = $10::timestamptz, skip_webhook_verification = $11,"
                  " updated_at = now() WHERE id = $1",
              si.id, checked(si.opaque_id, "opaque id"), checked(si.service_name, "service name"),
              checked(si.table_name, "table name"), checked(si.api_url, "api url"),
              state_->stored_secret(si, kSecretColumns[0]), state_->stored_secret(si, kSecretColumns[1]),
              state_->stored_secret(si, kSecretColumns[2]), si.depends_on, ts_param(si.last_backfilled_at),
              si.skip_webhook_verification);
        } catch (const pqxx::unique_violation& e) {
          integration_conflict(e, si);
        } catch (const pqxx::foreign_key_violation&) {
          throw InvalidPrecondition("integration " + std::to_string(si.depends_on.value_or(0)) +
                                    " (depends_on) does not exist");
        }
        if (r.affected_rows() == 0) {
          throw InvalidPrecondition("no integration with id " + std::to_string(si.id) + " to update");
        }
      });
}

std::vector<ServiceIntegration> PgJobStore::dependents_of(std::int64_t integration_id) {
  migrate();
  return state_->impl().autocommit("reading dependent integrations", [&](pqxx::nontransaction& tx) {
    std::vector<ServiceIntegration> out;
    // Prepared: every backfill that writes rows asks (Replicator::notify_dependents).
    for (const auto& row : exec_prepared(tx,
                                         std::string("SELECT ") + kIntegrationColumns + " FROM " +
                                             state_->integrations + " WHERE depends_on_id = $1 ORDER BY id",
                                         integration_id)) {
      out.push_back(integration_from(row, state_->keys));
    }
    return out;
  });
}

void PgJobStore::delete_integration(std::int64_t id) {
  migrate();
  auto& impl = state_->impl();
  impl.in_transaction("deleting integration " + std::to_string(id), impl.config.retries, [&](pqxx::work& tx) {
    tx.exec_params("DELETE FROM " + state_->integrations + " WHERE id = $1", id);
  });
}

BackfillJob PgJobStore::create_job(BackfillJob job) {
  migrate();
  job.criteria = checked_criteria(job.criteria);
  auto& impl = state_->impl();
  return impl.in_transaction("creating a backfill job", impl.config.retries,
                             [&](pqxx::work& tx) { return state_->insert_job(tx, job); });
}

BackfillJob PgJobStore::create_recursive(const ServiceIntegration& integration, bool incremental,
                                         const json& criteria, std::optional<std::int64_t> parent_job_id) {
  migrate();
  const json c = checked_criteria(criteria);
  auto& impl = state_->impl();
  return impl.in_transaction("creating backfill jobs", impl.config.retries, [&](pqxx::work& tx) {
    std::set<std::int64_t> path;
    state_->check_no_cycle(tx, integration.id, path);
    return state_->create_tree(tx, integration.id, incremental, c, parent_job_id);
  });
}

std::optional<BackfillJob> PgJobStore::find_job(std::int64_t id) {
  migrate();
  return state_->impl().autocommit("reading a backfill job", [&](pqxx::nontransaction& tx) {
    std::optional<BackfillJob> out;
    const auto r = exec_prepared(
        tx, std::string("SELECT ") + kJobColumns + " FROM " + state_->jobs + " WHERE id = $1", id);
    if (!r.empty()) out = job_from(r[0]);
    return out;
  });
}

std::optional<PgJobStore::JobAndIntegration> PgJobStore::find_job_and_integration(std::int64_t job_id) {
  migrate();
  return state_->impl().autocommit(
      "reading a backfill job and its integration", [&](pqxx::nontransaction& tx) {
        std::optional<JobAndIntegration> out;
        const auto r = exec_prepared(tx,
                                     std::string("SELECT i.*, j.* FROM (SELECT ") + kJobColumns + " FROM " +
                                         state_->jobs + " WHERE id = $1) AS j LEFT JOIN LATERAL (SELECT " +
                                         kIntegrationColumns + " FROM " + state_->integrations +
                                         " WHERE id = j.service_integration_id) AS i ON true",
                                     job_id);
        if (r.empty()) return out;
        out.emplace();
        out->job = job_from(r[0], kIntegrationColumnCount);
        if (!r[0][0].is_null()) out->integration = integration_from(r[0], state_->keys);
        return out;
      });
}

// One statement in autocommit. It sets the same values whenever it runs, so
// a connection lost before the answer is tried again on a fresh one.
// `unless_finished` (start_job): only while the job is unfinished.
// `wait` false: committed without waiting for the disk (synchronous_commit
// off for this transaction alone, set in the statement itself: one round
// trip; a commit that waits cost the server about 0.3 ms of CPU, its
// fdatasync). start_job never waits, and that is safe: what the run writes
// after it (pages, checkpoints, its end) commits later in the WAL, so
// whenever any of it is durable, so is started_at; a server crash that loses
// started_at loses all of them, and the next run is a first run again (it
// reads no checkpoints, and none survived). A finish waits unless the caller
// said a later commit of its own makes it durable (defer_finish_durability).
std::size_t PgJobStore::write_job(const BackfillJob& job, bool unless_finished, bool wait) {
  migrate();
  auto& impl = state_->impl();
  const std::string what = "updating backfill job " + std::to_string(job.id);
  const std::string sql =
      "UPDATE " + state_->jobs +
      " SET started_at = $2::timestamptz, finished_at = $3::timestamptz, updated_at = now()" +
      (wait ? "" : " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS webhookdb_async") +
      " WHERE id = $1" + (unless_finished ? " AND finished_at IS NULL" : "");
  return impl.autocommit_idempotent(what, [&](pqxx::nontransaction& tx) {
    return static_cast<std::size_t>(
        exec_prepared(tx, sql, job.id, ts_param(job.started_at), ts_param(job.finished_at)).affected_rows());
  });
}

void PgJobStore::defer_finish_durability(bool defer) noexcept {
  state_->defer_finishes.store(defer, std::memory_order_release);
}

void PgJobStore::update_job(const BackfillJob& job) {
  const bool wait = !job.finished_at || !state_->defer_finishes.load(std::memory_order_acquire);
  if (write_job(job, false, wait) == 0) {
    throw InvalidPrecondition("no backfill job with id " + std::to_string(job.id) + " to update");
  }
}

bool PgJobStore::start_job(const BackfillJob& job) {
  if (write_job(job, !job.finished_at, false) > 0) return true;
  // Nothing written: finished meanwhile, or gone (rare: read again to tell).
  if (!find_job(job.id)) {
    throw InvalidPrecondition("no backfill job with id " + std::to_string(job.id) + " to update");
  }
  return false;
}

std::vector<BackfillJob> PgJobStore::child_jobs(std::int64_t job_id) {
  migrate();
  return state_->impl().autocommit("reading child jobs", [&](pqxx::nontransaction& tx) {
    std::vector<BackfillJob> out;
    for (const auto& row : exec_prepared(tx,
                                         std::string("SELECT ") + kJobColumns + " FROM " + state_->jobs +
                                             " WHERE parent_job_id = $1 ORDER BY id",
                                         job_id)) {
      out.push_back(job_from(row));
    }
    return out;
  });
}

void PgJobStore::delete_job(std::int64_t id) {
  migrate();
  auto& impl = state_->impl();
  impl.in_transaction(
      "deleting backfill job " + std::to_string(id), impl.config.retries,
      [&](pqxx::work& tx) { tx.exec_params("DELETE FROM " + state_->jobs + " WHERE id = $1", id); });
}

std::unique_ptr<IntegrationLock> PgJobStore::try_lock_integration(std::int64_t integration_id) {
  migrate();
  const std::int32_t objid = advisory_lock_key(integration_id);
  auto lock = detail::try_session_lock(state_->impl(), state_->integrations, objid,
                                       "locking integration " + std::to_string(integration_id));
  if (!lock) return nullptr;
  return std::make_unique<PgIntegrationLock>(std::move(lock));
}

}  // namespace webhookdb::pg
