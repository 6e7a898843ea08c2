#include "webhookdb/bulk_backfiller.hpp"

#include "webhookdb/replicator.hpp"

namespace webhookdb {

BulkBackfiller::BulkBackfiller(Replicator& replicator) : replicator_(replicator) {}

void BulkBackfiller::handle_item(const nlohmann::json& item) { take_item(nlohmann::json(item)); }

void BulkBackfiller::take_item(nlohmann::json&& item) {
  prepare_body(item);
  auto row = replicator_.row_for(std::move(item), nullptr, nullptr);
  if (!row) return;
  // Keyed by the remote key's JSON text, so 1 and "1" stay distinct.
  // (Invalid UTF-8 is replaced here, not thrown: write_rows rejects it by name.)
  std::string key = row->key.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (auto it = pending_index_.find(key); it != pending_index_.end()) {
    // A page may repeat a key (an object updated mid-pagination). With the
    // update rule on, the batch keeps whichever version the rule would keep
    // in the table, so an older duplicate later in the batch never replaces
    // the newer one; without it the last one wins, as in the table.
    const TableSpec& spec = replicator_.table_spec();
    Row& kept = pending_[it->second];
    if (!conditional_upsert() || spec.update_rule.allows(spec, kept, *row)) kept = std::move(*row);
  } else {
    pending_index_.emplace(std::move(key), pending_.size());
    pending_.push_back(std::move(*row));
  }
  if (pending_.size() >= upsert_page_size()) flush_pending_inserts(checkpoint_here());
}

void BulkBackfiller::flush_pending_inserts(const std::optional<Checkpoint>& checkpoint) {
  if (pending_.empty()) {
    if (checkpoint && !dry_run()) replicator_.context().replica->save_checkpoint(*checkpoint);
    return;
  }
  if (dry_run()) {
    dry_run_rows_.insert(dry_run_rows_.end(), std::make_move_iterator(pending_.begin()),
                         std::make_move_iterator(pending_.end()));
  } else {
    UpsertOptions options;
    options.apply_update_rule = conditional_upsert();
    options.method = write_method();
    options.checkpoint = checkpoint;
    const UpsertResult result = replicator_.write_rows(pending_, options);
    count_written(pending_.size(), result.changed_count());
  }
  pending_.clear();
  pending_index_.clear();
}

}  // namespace webhookdb
