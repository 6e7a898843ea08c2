#pragma once
// The port to where replication tables live (PostgreSQL, or memory in tests).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/checkpoint.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/row.hpp"
#include "webhookdb/table_spec.hpp"

namespace webhookdb {

enum class WriteMethod {
  automatic,  // the store picks (staging COPY for large batches)
  single_row,
  multi_row,
  staging_copy,  // COPY: all-new batches straight into the table, others staged
};

// Which rows of a batch get the seen mark the sweep reads (deletes.hpp).
enum class SeenMarks {
  written,    // the rows inserted or updated (every write marks its rows)
  every_row,  // also the rows the update rule left alone: a sweeping backfill saw them
};

struct UpsertOptions {
  // When false, every conflict updates (WebhookDB's bulk mode without conditional upserts).
  bool apply_update_rule = true;
  WriteMethod method = WriteMethod::automatic;
  // Saved in the same transaction as the rows.
  std::optional<Checkpoint> checkpoint;
  // The caller commits something later that waits for the disk (a job run's
  // end): like a checkpointed batch, this one need not wait itself (see
  // pg::Config::async_checkpointed_commits). Replicator::backfill sets it for
  // a first run's last batch, whose final checkpoint it leaves out.
  bool durable_later = false;
  // Only tables with deletes (TableSpec::deletes) keep seen marks.
  SeenMarks seen = SeenMarks::written;
};

// One sweeping backfill job (deletes.hpp), as the store knows it.
struct SweepRun {
  std::int64_t job_id = 0;
  // DeleteOptions::sweep_margin and sweep_batch_rows.
  std::chrono::seconds margin{60};
  std::size_t batch_rows = 5000;
  // DeleteOptions::tombstone_retention (zero: none are pruned).
  std::chrono::hours tombstone_retention{24 * 30};
};

struct SweepResult {
  std::size_t swept = 0;    // rows marked deleted or removed
  std::size_t batches = 0;  // transactions
  std::size_t pruned = 0;   // hard deletes: tombstones past the retention removed
};

struct UpsertResult {
  // One flag per input row: inserted or updated (false: update rule said no,
  // or the row was superseded by a later duplicate in the same batch).
  std::vector<bool> changed;
  [[nodiscard]] std::size_t changed_count() const noexcept {
    std::size_t n = 0;
    for (bool c : changed) n += c ? 1U : 0U;
    return n;
  }
};

class WEBHOOKDB_EXPORT ReplicaStore {
 public:
  virtual ~ReplicaStore() = default;

  // Creates the table and its indexes if absent.
  virtual void create_table(const TableSpec& spec) = 0;
  // Adds missing columns (filled from data), then missing indexes.
  virtual void ensure_all_columns(const TableSpec& spec) = 0;
  virtual void drop_table(const TableSpec& spec) = 0;

  // Writes the rows as one transaction (all or nothing). Duplicate keys in one
  // batch: the last one wins. Strips encoded NULs from JSON.
  virtual UpsertResult upsert(const TableSpec& spec, std::span<const Row> rows,
                              const UpsertOptions& options = {}) = 0;

  [[nodiscard]] virtual std::optional<Row> find(const TableSpec& spec, const nlohmann::json& key) = 0;
  [[nodiscard]] virtual std::size_t count(const TableSpec& spec) = 0;
  // Visits every row in remote key order.
  virtual void for_each(const TableSpec& spec, const std::function<void(const Row&)>& visit) = 0;

  // Checkpoints of one job, by backfiller key.
  [[nodiscard]] virtual std::map<std::string, Checkpoint> load_checkpoints(std::int64_t job_id) = 0;
  virtual void save_checkpoint(const Checkpoint& checkpoint) = 0;
  virtual void clear_checkpoints(std::int64_t job_id) = 0;

  // --- The sweep (deletes.hpp); the defaults refuse it (InvalidPrecondition) ---
  // Records when job `run.job_id` began (its first run; a resumed job keeps
  // the first mark), before any of its rows is written.
  virtual void begin_sweep_run(const TableSpec& spec, const SweepRun& run);
  // Marks deleted (soft) or removes behind tombstones (hard) every live row
  // that nothing wrote or marked seen since the run began (less the margin),
  // in transactions of run.batch_rows rows.
  virtual SweepResult sweep(const TableSpec& spec, const SweepRun& run);
  // Forgets the run (after its sweep, or when its job ends without one).
  virtual void end_sweep_run(std::int64_t job_id);
};

}  // namespace webhookdb
