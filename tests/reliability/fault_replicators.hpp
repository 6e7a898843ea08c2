#pragma once
// The replicators of the fault matrix (tests/reliability/fault_worker.cpp and
// fault_matrix_test.cpp): the API server's charges, read through
//   fault_charge_v1   StartingAfter on <api_url> (/v1/charges: each object once)
//   fault_cursor_v1   Cursor on <api_url> (/cursor: some objects twice, the
//                     second time as a stale copy that must not win)
// with the polite retry policy (short waits, Retry-After honoured) so HTTP
// faults are retried inside the page loop, a short RetryOrDie backoff for
// when the policy gives up, and one written batch (and checkpoint) per page.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "webhookdb/converters.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/retry_policy.hpp"

namespace webhookdb::test {

inline constexpr const char* kFaultChargeService = "fault_charge_v1";
inline constexpr const char* kFaultCursorService = "fault_cursor_v1";
inline constexpr int kFaultPageSize = 100;

class FaultReplicatorBase : public Replicator {
 public:
  using Replicator::Replicator;


 protected:
  [[nodiscard]] BackfillOptions backfill_options() const override {
    PoliteRetryOptions o;
    o.max_attempts = 8;
    o.base = std::chrono::milliseconds(100);
    o.cap = std::chrono::milliseconds(2'000);
    o.max_total_wait = std::chrono::milliseconds(20'000);
    return {.batch_size = kFaultPageSize,
            .retry_policy = polite_retry_policy(o),
            .server_error_retries = 20,
            .server_error_backoff = std::chrono::seconds(1)};
  }
  [[nodiscard]] Column remote_key_column() const override { return Column("stripe_id", ColumnType::text).key("id"); }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override {
    return {Column("amount", ColumnType::bigint),
            Column("currency", ColumnType::text),
            Column("customer", ColumnType::text).optional(),
            Column("status", ColumnType::text),
            Column("created", ColumnType::timestamptz).convert(converters::unix_timestamp()),
            Column("updated", ColumnType::timestamptz).convert(converters::unix_timestamp()).indexed()};
  }
  // Older data never overwrites newer data.
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::when_newer("updated"); }
};

class FaultChargeReplicator final : public FaultReplicatorBase {
 public:
  using FaultReplicatorBase::FaultReplicatorBase;
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>&,
                                   const CancellationToken& cancel) override {
    return pages_.fetch(*context().http, HttpRequest{.url = integration().api_url}, token, cancel);
  }

 private:
  pagination::StartingAfter pages_{{.limit = kFaultPageSize}};
};

class FaultCursorReplicator final : public FaultReplicatorBase {
 public:
  using FaultReplicatorBase::FaultReplicatorBase;
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>&,
                                   const CancellationToken& cancel) override {
    return pages_.fetch(*context().http, HttpRequest{.url = integration().api_url}, token, cancel);
  }

 private:
  pagination::Cursor pages_{{.limit = kFaultPageSize}};
};

inline void register_fault_replicators(Registry& registry) {
  registry.add({.name = kFaultChargeService,
                .resource_name_singular = "Fault Charge",
                .resource_name_plural = "Fault Charges",
                .supports_backfill = true,
                .factory = Descriptor::factory_for<FaultChargeReplicator>()});
  registry.add({.name = kFaultCursorService,
                .resource_name_singular = "Fault Cursor Charge",
                .resource_name_plural = "Fault Cursor Charges",
                .supports_backfill = true,
                .factory = Descriptor::factory_for<FaultCursorReplicator>()});
}

}  // namespace webhookdb::test
