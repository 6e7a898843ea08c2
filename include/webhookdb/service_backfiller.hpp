#pragma once
// The default backfiller, one per replicator: pages come from
// Replicator::fetch_backfill_page.

#include <optional>
#include <string>

#include "webhookdb/backfill_options.hpp"
#include "webhookdb/bulk_backfiller.hpp"
#include "webhookdb/export.hpp"

namespace webhookdb {

// One slice of a backfill (a time or id range) that runs as its own
// backfiller, in parallel with the others when BackfillOptions::parallel > 1.
struct BackfillPartition {
  // Stable across runs of a job: it is the backfiller's checkpoint key.
  std::string key;
  // Whatever the replicator needs to fetch the slice (e.g. {"created_gte":..}).
  nlohmann::json bounds;
};

class WEBHOOKDB_EXPORT ServiceBackfiller : public BulkBackfiller {
 public:
  explicit ServiceBackfiller(Replicator& replicator);
  ServiceBackfiller(Replicator& replicator, BackfillPartition partition);

 protected:
  // Timeouts, connection errors and 5xx become RetryOrDie with the
  // server_error_retries/server_error_backoff of the replicator's
  // BackfillOptions; other HTTP
  // errors propagate (and are retried by the page loop).
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& last_backfilled,
                                   const CancellationToken& cancel) override;
  void handle_item(const nlohmann::json& item) override;
  void take_item(nlohmann::json&& item) override;
  [[nodiscard]] std::size_t backfill_batch_size() const override;
  [[nodiscard]] bool apply_update_rule() const override { return true; }
  [[nodiscard]] std::shared_ptr<const RetryPolicy> retry_policy() const override;
  [[noreturn]] void give_up(std::exception_ptr error) override;
  [[nodiscard]] bool pipelined() const override;
  // Pipelined batched backfills also write behind: the next batch is built
  // while the current one is written.
  [[nodiscard]] bool write_behind() const override;
  // Enough pages to keep fetching while a batch is written.
  [[nodiscard]] std::size_t pipeline_depth() const override { return 16; }

 private:
  [[noreturn]] void retry_or_die(std::exception_ptr cause) const;
  // The replicator's, validated; it outlives its backfillers.
  const BackfillOptions& options_;
  std::optional<BackfillPartition> partition_;
};

}  // namespace webhookdb
