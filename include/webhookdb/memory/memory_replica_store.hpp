#pragma once
// A ReplicaStore in memory, with the semantics of the SQL upsert: unique
// remote key, the update rule, skip_nil and keep_existing columns, the last
// duplicate of a batch wins, encoded NULs stripped, all-or-nothing batches and
// checkpoints saved with the rows. Thread-safe. For tests and small embeddings.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/replica_store.hpp"

namespace webhookdb::memory {

// One call to upsert(), as recorded for assertions.
struct UpsertCall {
  std::string table;  // schema.table
  std::size_t rows = 0;
  std::size_t changed = 0;
  UpsertOptions options;
  // False when the call threw (injected fault or invalid input): nothing was written.
  bool succeeded = false;
};

class WEBHOOKDB_EXPORT MemoryReplicaStore final : public ReplicaStore {
 public:
  MemoryReplicaStore();
  ~MemoryReplicaStore() override;
  MemoryReplicaStore(const MemoryReplicaStore&) = delete;
  MemoryReplicaStore& operator=(const MemoryReplicaStore&) = delete;

  // Validates the spec (BrokenSpecification) and creates the table if absent.
  void create_table(const TableSpec& spec) override;
  // Adds the spec's missing columns, filled from each row's data (a value that
  // cannot be computed is null, as a failed SQL cast would leave it empty).
  void ensure_all_columns(const TableSpec& spec) override;
  void drop_table(const TableSpec& spec) override;

  // StoreError (not retryable) when the table does not exist; InvalidInput for
  // a null key or a row whose value count differs from the spec's columns.
  UpsertResult upsert(const TableSpec& spec, std::span<const Row> rows,
                      const UpsertOptions& options = {}) override;

  [[nodiscard]] std::optional<Row> find(const TableSpec& spec, const nlohmann::json& key) override;
  [[nodiscard]] std::size_t count(const TableSpec& spec) override;
  // Visits a snapshot, so `visit` may call back into the store.
  void for_each(const TableSpec& spec, const std::function<void(const Row&)>& visit) override;

  [[nodiscard]] std::map<std::string, Checkpoint> load_checkpoints(std::int64_t job_id) override;
  void save_checkpoint(const Checkpoint& checkpoint) override;
  void clear_checkpoints(std::int64_t job_id) override;

  // The sweep: seen marks are upsert numbers, so a row written or seen after
  // begin_sweep_run is kept whatever the margin (one process, no clocks).
  void begin_sweep_run(const TableSpec& spec, const SweepRun& run) override;
  SweepResult sweep(const TableSpec& spec, const SweepRun& run) override;
  void end_sweep_run(std::int64_t job_id) override;

  // --- For tests ---
  // Every row of the table in key order (empty when the table is absent).
  [[nodiscard]] std::vector<Row> rows(const TableSpec& spec);
  [[nodiscard]] bool has_table(const TableSpec& spec) const;
  // The columns the stored table has (after create_table/ensure_all_columns).
  [[nodiscard]] std::vector<std::string> column_names(const TableSpec& spec) const;
  // The next `n` upsert calls throw `error` and write nothing.
  void fail_next_upserts(int n, std::exception_ptr error);
  // Runs before each upsert, outside the store's lock (to slow down or block a writer).
  void set_before_upsert(std::function<void(const TableSpec&, std::span<const Row>)> hook);

  [[nodiscard]] std::size_t upsert_calls() const;
  // Rows passed to successful upserts, and those of them inserted or updated.
  [[nodiscard]] std::size_t rows_written() const;
  [[nodiscard]] std::size_t rows_changed() const;
  [[nodiscard]] std::vector<UpsertCall> calls() const;
  [[nodiscard]] std::size_t checkpoint_saves() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace webhookdb::memory
