#pragma once
// ReplicaStore on PostgreSQL: replication tables, upserts (single-row,
// multi-row, or COPY into a staging table), reads, checkpoints, advisory locks.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"
#include "webhookdb/pg/config.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/migrations.hpp"
#include "webhookdb/replica_store.hpp"

namespace webhookdb::pg {

// Thread-safe. Every identifier is quoted; names longer than 63 bytes (which
// PostgreSQL would silently truncate), empty, or holding NUL or invalid UTF-8
// are a BrokenSpecification before any SQL runs. Values travel as bound
// parameters or COPY data, never in SQL text.
//
// Values of Row::values follow ColumnType: text/uuid/date as strings,
// timestamptz as ISO-8601 strings (written in UTC; read back with
// format_timestamp, so year-0 and offset times come back normalised), numbers
// and booleans as JSON numbers/booleans, arrays as JSON arrays, jsonb as JSON.
// NUL characters are removed from text and JSON (see json_text.hpp); invalid
// UTF-8 is an InvalidInput naming the remote key, and nothing of the batch is
// written. Database errors are StoreError, retryable for a lost connection, a
// deadlock, a serialization failure or a statement timeout; messages never
// hold the password or the failing row's values.
class WEBHOOKDB_EXPORT PgReplicaStore final : public ReplicaStore {
 public:
  explicit PgReplicaStore(Config config);
  // Shares a pool (e.g. with a PgJobStore on the same database).
  explicit PgReplicaStore(std::shared_ptr<ConnectionPool> pool);
  ~PgReplicaStore() override;
  PgReplicaStore(const PgReplicaStore&) = delete;
  PgReplicaStore& operator=(const PgReplicaStore&) = delete;

  // Creates the schema, the table (pk bigserial, remote key unique not null,
  // the columns, enrichment, data jsonb not null) and its indexes, when absent.
  void create_table(const TableSpec& spec) override;
  // Creates the table when absent. Otherwise adds the missing columns, fills
  // them from data/enrichment with UPDATEs over pk ranges of
  // Config::fill_chunk_rows (each its own transaction, so no table-wide lock is
  // held), then drops invalid indexes and creates the missing ones with
  // CREATE INDEX CONCURRENTLY. A column's value is computed by its converter's
  // SQL, or by casting the raw value to the column type.
  void ensure_all_columns(const TableSpec& spec) override;
  void drop_table(const TableSpec& spec) override;

  // One transaction: all rows and the checkpoint, or nothing. Duplicate keys:
  // the last one is written, the earlier ones report changed=false.
  // WriteMethod::automatic: COPY from Config::copy_threshold rows on, else
  // multi-row INSERTs. COPY sends a batch whose keys are all new straight
  // into the table, any other through a staging table and INSERT ... ON
  // CONFLICT. A lost connection before COMMIT runs the batch
  // again on a fresh connection (Config::retries).
  UpsertResult upsert(const TableSpec& spec, std::span<const Row> rows,
                      const UpsertOptions& options = {}) override;

  [[nodiscard]] std::optional<Row> find(const TableSpec& spec, const nlohmann::json& key) override;
  [[nodiscard]] std::size_t count(const TableSpec& spec) override;
  // Pages through the table by remote key; no connection is held while
  // `visit` runs, so it may call the store.
  void for_each(const TableSpec& spec, const std::function<void(const Row&)>& visit) override;

  // In <Config::schema>.webhookdb_backfill_checkpoints.
  [[nodiscard]] std::map<std::string, Checkpoint> load_checkpoints(std::int64_t job_id) override;
  void save_checkpoint(const Checkpoint& checkpoint) override;
  void clear_checkpoints(std::int64_t job_id) override;

  // Deletes (deletes.hpp). A table with deletes has a `webhookdb_seen_at`
  // column (the transaction time of the last write) and a seen set
  // (<table>_seen, or webhookdb_seen_<hash>: the keys the current sweeping
  // backfill listed, emptied when a new sweeping job begins, kept across a
  // resume); hard deletes move the deletion into a
  // tombstone table of the same columns (<table>_tombstones, or
  // webhookdb_tombstones_<hash> for long names) that each write of a key
  // first moves back, so the update rule judges later rows against it.
  // Sweep runs live in <Config::schema>.webhookdb_sweep_runs; the mark is
  // the server's now() at the job's first run, less SweepRun::margin; the
  // sweep is one UPDATE (soft) or DELETE ... INSERT into the tombstones
  // (hard) per pk range of SweepRun::batch_rows, each its own transaction.
  void begin_sweep_run(const TableSpec& spec, const SweepRun& run) override;
  SweepResult sweep(const TableSpec& spec, const SweepRun& run) override;
  void end_sweep_run(std::int64_t job_id) override;
  // The tombstone table of a hard-delete spec, quoted and qualified.
  [[nodiscard]] std::string tombstone_table(const TableSpec& spec) const;
  // Removes the tombstones deleted more than `retention` ago (at least an
  // hour), batch_rows per transaction; returns how many. sweep() calls it
  // with DeleteOptions::tombstone_retention; a host whose hard-delete tables
  // never sweep (Sweep::never) calls it itself, say daily. 0 for a spec
  // without hard deletes or a table without tombstones yet.
  std::size_t prune_tombstones(const TableSpec& spec, std::chrono::hours retention, std::size_t batch_rows = 5000);

  // --- PostgreSQL specifics ---

  // Runs `fn` holding a session advisory lock on (table oid, key) taken
  // without waiting (WebhookDB's with_advisory_lock), on a connection of its
  // own that is closed afterwards. Returns false, without running `fn`, when
  // another session holds the lock. The key is folded by advisory_lock_key();
  // a key below -2^31 is an InvalidInput. InvalidPrecondition when the table
  // does not exist.
  bool with_advisory_lock(const TableSpec& spec, std::int64_t key, const std::function<void()>& fn);

  // True while another session holds, or waits for, a SHARE UPDATE EXCLUSIVE,
  // EXCLUSIVE or ACCESS EXCLUSIVE lock on the table (LOCK TABLE, ALTER TABLE,
  // CREATE INDEX CONCURRENTLY, VACUUM FULL...): writes would queue behind it.
  [[nodiscard]] bool avoid_writes(const TableSpec& spec);

  // Creates the checkpoints table when missing (done on first use otherwise).
  void migrate();
  // The schema a spec's table lives in (Config::replica_schema or spec.schema).
  [[nodiscard]] std::string schema_of(const TableSpec& spec) const;
  // "schema"."table", quoted.
  [[nodiscard]] std::string qualified_name(const TableSpec& spec) const;
  [[nodiscard]] ConnectionPool& pool() const noexcept;
  // The migration steps of component "replica_store".
  [[nodiscard]] static const std::vector<Migration>& migrations();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace webhookdb::pg
