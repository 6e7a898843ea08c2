#pragma once
// Buffers rows keyed by remote key and writes them in batches.

#include <cstddef>
#include <future>
#include <optional>
#include <unordered_map>
#include <vector>

#include "webhookdb/backfiller.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/replica_store.hpp"
#include "webhookdb/row.hpp"

namespace webhookdb {

class Replicator;

class WEBHOOKDB_EXPORT BulkBackfiller : public Backfiller {
 public:
  explicit BulkBackfiller(Replicator& replicator);
  ~BulkBackfiller() override;
  BulkBackfiller(const BulkBackfiller&) = delete;
  BulkBackfiller& operator=(const BulkBackfiller&) = delete;

  // Rows that a dry run would have written, in write order.
  [[nodiscard]] const std::vector<Row>& dry_run_rows() const noexcept { return dry_run_rows_; }

 protected:
  // Turns the item into a row (skipped when the replicator maps it to
  // nothing) and buffers it; a later item with the same key replaces the
  // earlier one. Flushes when backfill_batch_size() rows are pending.
  void handle_item(const nlohmann::json& item) override;
  void take_item(nlohmann::json&& item) override;
  void flush_pending_inserts(const std::optional<Checkpoint>& checkpoint) override;
  [[nodiscard]] bool has_pending_inserts() const override { return !pending_.empty(); }
  void finish_writes(bool rethrow) override;

  [[nodiscard]] virtual std::size_t backfill_batch_size() const { return 500; }
  // When false (WebhookDB's default) every conflict updates.
  [[nodiscard]] virtual bool apply_update_rule() const { return false; }
  [[nodiscard]] virtual bool dry_run() const { return false; }
  [[nodiscard]] virtual WriteMethod write_method() const { return WriteMethod::automatic; }
  // True: a full batch is written on another thread while the next one is
  // built from the following items (one batch in flight at most, so memory
  // stays bounded and checkpoints are saved in page order). An error of that
  // write surfaces at the next flush or at the end of the run.
  [[nodiscard]] virtual bool write_behind() const { return false; }
  // Hook to reshape an item (in place) before it becomes a row.
  virtual void prepare_body(nlohmann::json& /*item*/) {}

  [[nodiscard]] Replicator& replicator() const noexcept { return replicator_; }

 private:
  Replicator& replicator_;
  std::vector<Row> pending_;
  std::unordered_map<std::string, std::size_t> pending_index_;
  std::vector<Row> dry_run_rows_;
  // The batch (or page-boundary checkpoint) being written behind; it hands
  // the written rows back, to be freed while the next batch is written.
  std::future<std::vector<Row>> in_flight_;
  bool in_flight_checkpoint_only_ = false;

  std::vector<Row> await_in_flight();
};

}  // namespace webhookdb
