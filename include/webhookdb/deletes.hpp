#pragma once
// Deletes by webhook (issue 20 item 1). A replicator opts in with
// delete_options(); a payload its deletion() hook calls deleted (by default:
// Stripe's `"deleted": true` objects and `*.deleted` event types, GitHub's
// `"action": "deleted"`) is written as a deletion:
//
//   DeleteOptions delete_options() const override { return {.mode = DeleteMode::soft}; }
//
// soft: the row stays, with `deleted_at` set to the time the deletion was
//   written; any later row the update rule accepts (the object was restored)
//   clears it.
// hard: the row is removed and the store keeps a tombstone (key, the
//   deletion's column values, deleted_at) so that an older version arriving
//   later (a backfill page fetched before the delete) is judged by the update
//   rule against the deletion and refused, while a newer one is inserted and
//   drops the tombstone.
// Deletes the source does not announce are found by the sweep: after a full,
// unwindowed backfill whose every backfiller finished without error, the rows
// nothing has written or listed since the run began (its seen marks survive a
// resume in another process) are marked deleted (soft) or removed behind a
// tombstone (hard); rows a webhook wrote or restored meanwhile are left alone.
// Either way a deletion is a row like any other for the update rule: it
// replaces the stored row only when the rule allows, so the columns the rule
// reads (an updated-at) must be filled for deletions too (Stripe: declare the
// column with .event({"created"}) so `customer.deleted` events carry it).

#include <chrono>
#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"

namespace webhookdb {

struct Payload;

enum class DeleteMode {
  none,  // deletions are not recognised: the default
  soft,  // a `deleted_at` column
  hard,  // the row removed, a tombstone kept
};

// The column that holds a deletion's time: the table's under soft deletes,
// the tombstone's under hard ones.
inline constexpr const char* kDeletedAtColumn = "deleted_at";

// Whether a full backfill sweeps (see above). Only with a mode other than none.
enum class Sweep {
  never,                // for APIs whose listing is not the whole set (recent items only, filtered)
  after_full_backfill,  // the default once a replicator opts in to deletes
};

struct DeleteOptions {
  DeleteMode mode = DeleteMode::none;
  Sweep sweep = Sweep::after_full_backfill;
  // Rows written within this long before a run began are left alone by its
  // sweep: a webhook's transaction that began before the run and committed
  // after it carries its start time, and the run's pages may have been
  // listed before it landed at the source. Such rows are swept next time.
  std::chrono::seconds sweep_margin{60};
  // Rows per sweep transaction: each batch holds its row locks only briefly,
  // so webhook writes to those rows wait at most one batch.
  std::size_t sweep_batch_rows = 5000;
  // Hard deletes: a tombstone older than this is removed by the next sweep of
  // its table (PgReplicaStore::prune_tombstones for tables that never sweep),
  // so the tombstones do not grow forever. Until then an older version of the
  // object (a webhook retried late, a page fetched before the delete) is
  // refused by the update rule; after it, such a version would be inserted
  // again, so keep this longer than the source retries its webhooks (Stripe:
  // 3 days). Zero: tombstones are kept forever.
  std::chrono::hours tombstone_retention{24 * 30};
};

// What a payload means.
enum class Deletion { none, deleted };

// The conventions deletion() recognises by default: the resource has
// `"deleted": true` (Stripe's deleted objects), the event's `type` ends in
// ".deleted" (Stripe's events), or the event or the body has
// `"action": "deleted"` (GitHub's webhooks).
[[nodiscard]] WEBHOOKDB_EXPORT Deletion deletion_by_convention(const Payload& payload);

}  // namespace webhookdb
