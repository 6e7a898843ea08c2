#pragma once
// The backfillers' door into a Replicator (libpqxx's internal/gates idea):
// the hooks and write steps a backfiller needs stay protected or private in
// Replicator, and only the classes named friends here may construct a gate.
// Not part of the API a replicator author or a host uses.
//
//   internal::ReplicatorGate gate(replicator);
//   BackfillPage page = gate.fetch_backfill_page(token, since, cancel);

#include <optional>
#include <span>
#include <string>

#include "webhookdb/replicator.hpp"

namespace webhookdb {

class BulkBackfiller;
class ServiceBackfiller;

namespace internal {

class ReplicatorGate {
  friend class webhookdb::BulkBackfiller;
  friend class webhookdb::ServiceBackfiller;

  explicit ReplicatorGate(Replicator& replicator) noexcept : replicator_(replicator) {}

  [[nodiscard]] const BackfillOptions& backfill_options() const {
    return replicator_.cached_backfill_options();
  }
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& last_backfilled,
                                   const CancellationToken& cancel) {
    return replicator_.fetch_backfill_page(token, last_backfilled, cancel);
  }
  BackfillPage fetch_partition_page(const BackfillPartition& partition, const std::string& token,
                                    const std::optional<Timestamp>& last_backfilled,
                                    const CancellationToken& cancel) {
    return replicator_.fetch_partition_page(partition, token, last_backfilled, cancel);
  }
  BackfillPage fetch_window_page(const WindowPageRequest& request) { return replicator_.fetch_window_page(request); }
  void check_rows(std::span<const Row> rows) const { replicator_.check_rows(rows); }
  UpsertResult write_checked_rows(std::span<const Row> rows, const UpsertOptions& options) {
    return replicator_.write_checked_rows(rows, options);
  }

  Replicator& replicator_;
};

}  // namespace internal
}  // namespace webhookdb
