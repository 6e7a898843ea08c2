#include "webhookdb/bulk_backfiller.hpp"

#include "webhookdb/internal/replicator_gate.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb {

BulkBackfiller::BulkBackfiller(Replicator& replicator) : replicator_(replicator) {}

BulkBackfiller::~BulkBackfiller() { finish_writes(false); }

std::vector<Row> BulkBackfiller::await_in_flight() {
  if (!in_flight_.valid()) return {};
  return in_flight_.get();
}

void BulkBackfiller::finish_writes(bool rethrow) {
  if (!in_flight_.valid()) return;
  if (rethrow) {
    (void)in_flight_.get();
  } else {
    in_flight_.wait();
    try {
      in_flight_.get();
    } catch (...) {  // NOLINT(bugprone-empty-catch): the run's own error wins
    }
  }
}

void BulkBackfiller::handle_item(const nlohmann::json& item) { take_item(nlohmann::json(item)); }

void BulkBackfiller::take_item(nlohmann::json&& item) {
  prepare_body(item);
  auto row = replicator_.row_for(std::move(item));
  if (!row) return;
  std::string key = key_identity(row->key);
  if (auto it = pending_index_.find(key); it != pending_index_.end()) {
    // A page may repeat a key (an object updated mid-pagination). With the
    // update rule on, the batch keeps whichever version the rule would keep
    // in the table, so an older duplicate later in the batch never replaces
    // the newer one; without it the last one wins, as in the table.
    const TableSpec& spec = replicator_.table_spec();
    Row& kept = pending_[it->second];
    if (!apply_update_rule() || spec.update_rule.allows(spec, kept, *row)) kept = std::move(*row);
  } else {
    pending_index_.emplace(std::move(key), pending_.size());
    pending_.push_back(std::move(*row));
  }
  if (pending_.size() >= backfill_batch_size()) flush_pending_inserts(checkpoint_here());
}

void BulkBackfiller::flush_pending_inserts(const std::optional<Checkpoint>& checkpoint) {
  if (pending_.empty()) {
    if (!checkpoint || dry_run()) return;
    if (write_behind() && !checkpoint->finished) {
      // A page boundary with nothing buffered: saved once the batch being
      // written is, without making the page loop wait for it.
      if (in_flight_checkpoint_only_) finish_writes(true);  // one such save queued at most
      in_flight_ = std::async(std::launch::async,
                              [this, previous = std::move(in_flight_), cp = *checkpoint]() mutable {
                                if (previous.valid()) (void)previous.get();
                                replicator_.context().replica->save_checkpoint(cp);
                                return std::vector<Row>{};
                              });
      in_flight_checkpoint_only_ = true;
      return;
    }
    finish_writes(true);
    replicator_.context().replica->save_checkpoint(*checkpoint);
    return;
  }
  // Checked here, while the batch before this one may still be written.
  internal::ReplicatorGate(replicator_).check_rows(pending_);
  // The batch before this one is written first: checkpoints stay in order.
  // Its rows (and this batch's key index) are freed once the next write is
  // under way: freeing thousands of JSON documents takes milliseconds.
  std::vector<Row> written_before = await_in_flight();
  if (dry_run()) {
    dry_run_rows_.insert(dry_run_rows_.end(), std::make_move_iterator(pending_.begin()),
                         std::make_move_iterator(pending_.end()));
    pending_.clear();
    pending_index_.clear();
    return;
  }
  UpsertOptions options;
  options.apply_update_rule = apply_update_rule();
  options.method = write_method();
  options.checkpoint = checkpoint;
  options.seen = runtime().seen;
  std::vector<Row> rows = std::move(pending_);
  pending_ = {};
  const auto index = std::move(pending_index_);
  pending_index_ = {};
  const auto write = [this, options](const std::vector<Row>& batch) {
    const UpsertResult result = internal::ReplicatorGate(replicator_).write_checked_rows(batch, options);
    count_written(batch.size(), result.changed_count());
  };
  if (write_behind()) {
    in_flight_ = std::async(std::launch::async, [write, batch = std::move(rows)]() mutable {
      write(batch);
      return std::move(batch);
    });
    in_flight_checkpoint_only_ = false;
  } else {
    write(rows);
  }
}

}  // namespace webhookdb
