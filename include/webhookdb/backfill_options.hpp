#pragma once
// How a replicator's backfills run: write mode, batch size, threads, retries
// and page-loop bounds, as data. A replicator returns them once from
// Replicator::backfill_options(); the base validates and caches them:
//
//   BackfillOptions backfill_options() const override {
//     return {.batch_size = 500, .parallel = 2, .retry_policy = polite_retry_policy()};
//   }

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "webhookdb/export.hpp"
#include "webhookdb/rate_limiter.hpp"
#include "webhookdb/retry_policy.hpp"

namespace webhookdb {

enum class BackfillWriteMode {
  // Rows are buffered and written in batches (staging COPY for large ones)
  // with the update rule applied: as safe as per_item and much faster.
  batched,
  // WebhookDB's: each item goes through upsert_webhook_body.
  per_item,
};

// Bounds on one run of the page loop, so that an API that never stops paging
// (empty pages, each with a new cursor, or an endless stream of pages) cannot
// hold a worker forever. Passing one fails the run with InvariantViolation
// (not retried). Set through BackfillOptions::limits, or on a backfiller:
//
//   backfiller->set_limits({.max_consecutive_empty_pages = 1000});
struct BackfillLimits {
  // Empty pages in a row that each still name a next page.
  std::uint64_t max_consecutive_empty_pages = 100;
  // Pages fetched by one backfill() call (a resumed run counts afresh).
  std::uint64_t max_pages = 10'000'000;
};

struct WEBHOOKDB_EXPORT BackfillOptions {
  BackfillWriteMode write_mode = BackfillWriteMode::batched;
  // Rows per write in batched mode (the backfillers' backfill_batch_size()).
  // Large enough that the pg adapter takes the staging-COPY path; a
  // checkpoint is saved with each batch.
  std::size_t batch_size = 2000;
  // Fetch the next page while the current one is written: fetch_backfill_page
  // then runs on another thread than the row writes.
  bool pipelined = true;
  // > 1 runs a job's backfillers on a pool of that many threads.
  int parallel = 0;
  // Pages fetched at once by a pipelined backfill while the pagination says
  // which pages follow (page numbers or offsets with a known total: a Link
  // header with rel="last", total_pages or total fields, a replicator's
  // BackfillPage::ahead); still written and checkpointed in page order.
  // Each fetch draws its own permit from the quota governor. 1: one at a
  // time. Cursor-style pagination is always fetched one page at a time.
  int concurrent_pages = 4;
  // nullptr: WebhookDB's page retries (3 attempts, waits 1 and 2 s) and
  // server faults become RetryOrDie at once. polite_retry_policy() opts in to
  // backoff with jitter and Retry-After; server faults then become
  // RetryOrDie only once its attempts are spent.
  std::shared_ptr<const RetryPolicy> retry_policy;
  // The RetryOrDie a server fault (timeout, connection error, 5xx) becomes.
  int server_error_retries = 2;
  std::chrono::seconds server_error_backoff{63};
  // Applied to the default backfillers (ServiceBackfiller).
  BackfillLimits limits;
  // An incremental backfill asks for changes since
  // floor_to_second(last_backfilled_at - incremental_lookback). Our mark
  // carries microseconds while many sources stamp whole seconds: an order
  // updated at 12:00:00.7, stored by Shopify as "12:00:00", after a run that
  // started at 12:00:00.3 fails both `updated_at >= 12:00:00.3` and, without
  // the lookback, an exclusive `updated_at > 12:00:00`. Truncating plus the
  // default 1 s catch it under either filter; rows fetched twice are refused
  // or rewritten by the update rule. Raise it for APIs whose updated-since
  // filters are eventually consistent (indexes that lag their writes).
  std::chrono::microseconds incremental_lookback = std::chrono::seconds(1);
  // The quota this replicator's requests draw from when its context has a
  // RateLimiter (rate_limiter.hpp): a shared quota key, and a static limit
  // for APIs that advertise none, e.g. {.limit = {.per_second = 100}}.
  RateLimitOptions rate_limit;

  // Throws BrokenSpecification naming `owner` and the field for a value that
  // cannot work: batch size or a limit of 0, negative threads, retries,
  // backoff or lookback, concurrent_pages outside 1..64.
  void validate(const std::string& owner) const;
};

}  // namespace webhookdb
