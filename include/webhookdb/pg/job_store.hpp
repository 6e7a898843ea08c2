#pragma once
// JobStore on PostgreSQL: service integrations, backfill jobs and integration
// locks, in <Config::schema>.webhookdb_service_integrations and
// webhookdb_backfill_jobs (the fields of WebhookDB's tables).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/clock.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/job_store.hpp"
#include "webhookdb/pg/config.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/migrations.hpp"
#include "webhookdb/pg/secret_key.hpp"

namespace webhookdb::pg {

// Thread-safe. Secrets (backfill key and secret, webhook secret) are stored
// encrypted under the host's key (webhookdb/pg/secret_key.hpp): AES-256-GCM with
// the row id and column as associated data, so a dump of the table reveals no
// secret and a value copied to another row does not decrypt. Without a key, a
// store refuses to write a non-empty secret (InvalidPrecondition) unless the
// host opted into plain text. Secrets never appear in a log line or an error.
// A value that does not decrypt (tampered with, wrong row, key not configured)
// is an InvariantViolation naming the integration and the column.
//
// Integration locks are session-level advisory locks on
// (oid of webhookdb_service_integrations, integration id), each held by a
// connection of its own (not a pooled one, so long backfills never starve the
// pool) that is closed when the lock is destroyed. If the process dies, the
// server ends the session and the lock is gone at once: no lock rows to expire.
class WEBHOOKDB_EXPORT PgJobStore final : public JobStore {
 public:
  // created_at of jobs comes from `clock`. Migrations run on first use (or
  // migrate()); with a current key they also encrypt any plain-text secrets.
  // `keys` defaults to SecretKeys::from_environment() (WEBHOOKDB_SECRET_KEY...).
  explicit PgJobStore(Config config, std::shared_ptr<Clock> clock = system_clock(),
                      SecretKeys keys = SecretKeys::from_environment());
  explicit PgJobStore(std::shared_ptr<ConnectionPool> pool, std::shared_ptr<Clock> clock = system_clock(),
                      SecretKeys keys = SecretKeys::from_environment());
  ~PgJobStore() override;
  PgJobStore(const PgJobStore&) = delete;
  PgJobStore& operator=(const PgJobStore&) = delete;

  // InvalidPrecondition when the opaque id is taken.
  ServiceIntegration create_integration(ServiceIntegration integration) override;
  [[nodiscard]] std::optional<ServiceIntegration> find_integration(std::int64_t id) override;
  [[nodiscard]] std::optional<ServiceIntegration> find_integration_by_opaque_id(
      const std::string& opaque_id) override;
  [[nodiscard]] std::optional<ServiceIntegration> find_integration_by_table(const std::string& table_name) override;
  // All fields but id; InvalidPrecondition when it does not exist.
  void update_integration(const ServiceIntegration& integration) override;
  // In id order.
  [[nodiscard]] std::vector<ServiceIntegration> dependents_of(std::int64_t integration_id) override;
  // Its jobs go with it; its dependents keep existing with depends_on unset.
  void delete_integration(std::int64_t id) override;

  // A null criteria becomes {}; any other non-object is an InvalidPrecondition.
  BackfillJob create_job(BackfillJob job) override;
  // One transaction. A dependency cycle is an InvariantViolation and creates nothing.
  BackfillJob create_recursive(const ServiceIntegration& integration, bool incremental,
                               const nlohmann::json& criteria,
                               std::optional<std::int64_t> parent_job_id = std::nullopt) override;
  [[nodiscard]] std::optional<BackfillJob> find_job(std::int64_t id) override;
  // Both in one statement (one round trip per job run instead of two).
  [[nodiscard]] std::optional<JobAndIntegration> find_job_and_integration(std::int64_t job_id) override;
  // Persists started_at and finished_at in one statement (autocommit, no
  // BEGIN and COMMIT round trips); InvalidPrecondition when the job is gone.
  void update_job(const BackfillJob& job) override;
  // update_job's statement, guarded by `finished_at IS NULL` (when `job` is
  // unfinished): marks a run started and checks that no other run finished
  // the job meanwhile in one autocommit statement, without re-reading it.
  [[nodiscard]] bool start_job(const BackfillJob& job) override;
  // In id order.
  [[nodiscard]] std::vector<BackfillJob> child_jobs(std::int64_t job_id) override;
  // Deletes the job and its descendants.
  void delete_job(std::int64_t id) override;

  // The lock may outlive the store.
  [[nodiscard]] std::unique_ptr<IntegrationLock> try_lock_integration(std::int64_t integration_id) override;

  // For a worker: update_job calls that finish a job (finished_at set) commit
  // without waiting for the disk, as start_job always does. Only for a caller
  // that always commits, later, something that waits: the worker's queue
  // complete (or fail, or its next take), whose WAL comes after and makes the
  // finish durable with it. A server crash before that loses both, and the
  // job runs again, as after a crash before its end. Off by default.
  void defer_finish_durability(bool defer) noexcept;

  // Runs the pending migrations of component "job_store".
  void migrate();
  // Key rotation: re-encrypts under the current key every secret stored in
  // plain text or under a previous key, in one transaction; afterwards the
  // previous keys are no longer needed. Returns the number of integrations
  // rewritten. InvalidPrecondition without a current key.
  std::size_t reencrypt_secrets();
  [[nodiscard]] ConnectionPool& pool() const noexcept;
  [[nodiscard]] static const std::vector<Migration>& migrations();

 private:
  // Rows changed by update_job's statement (with `AND finished_at IS NULL`);
  // `wait` false: committed without waiting for the disk.
  std::size_t write_job(const BackfillJob& job, bool unless_finished, bool wait);
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace webhookdb::pg
