#pragma once
// Writes the webhooks waiting in a PgWebhookInbox: for each row, finds the
// integration by its opaque id (context.jobs), makes its replicator through
// context.registry and calls upsert_webhook (dependents are notified as
// usual); the row is deleted once written. Delivery is at least once: a row
// whose processor died is written again by another, which the update rule
// makes harmless.
//
//   auto inbox = std::make_shared<pg::PgWebhookInbox>(pool);
//   jobs::WebhookInboxProcessor processor(inbox, context);
//   std::thread t([&] { processor.run(stop.token()); });   // any number, in any process
//
// A failed write is retried after the inbox's backoff and fails for good
// after its max_attempts (a payload that cannot become a row, or an unknown
// integration, fails at once); the error recorded names no secret of the
// integration nor any credential header of the request.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/pg/webhook_inbox.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::jobs {

// How one row ended.
enum class InboxResult { written, retrying, failed, lease_lost, released };
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view to_string(InboxResult result) noexcept;

struct InboxReport {
  std::int64_t id = 0;
  std::string opaque_id;
  int attempt = 0;
  InboxResult result = InboxResult::written;
  // Rows written (after the replicator's skips).
  std::size_t rows = 0;
  // The recorded error (secrets removed); empty when none.
  std::string error;
};

struct WEBHOOKDB_EXPORT WebhookInboxProcessorOptions {
  // Names this processor in the inbox (operators); default "<host>:<pid>:<random>".
  std::string owner;
  // Rows taken per look at the inbox (under one lease), written with one
  // multi-row/COPY upsert per integration and deleted in one transaction.
  std::size_t batch = 256;
  // Longest idle wait in run() when no notification comes.
  std::chrono::milliseconds poll_interval{5'000};
  // Default: the context's logger.
  std::shared_ptr<Logger> logger;
  // Called after each row, on the processing thread. Must not throw.
  std::function<void(const InboxReport&)> on_processed;
};

struct InboxProcessorStats {
  std::uint64_t written = 0;
  std::uint64_t retrying = 0;
  std::uint64_t failed = 0;
  std::uint64_t lease_lost = 0;
};

class WEBHOOKDB_EXPORT WebhookInboxProcessor {
 public:
  // The context needs a job store (integrations) and a registry (replicators);
  // an InvalidPrecondition otherwise.
  WebhookInboxProcessor(std::shared_ptr<pg::PgWebhookInbox> inbox, ReplicatorContext context,
                        WebhookInboxProcessorOptions options = {});
  ~WebhookInboxProcessor();
  WebhookInboxProcessor(const WebhookInboxProcessor&) = delete;
  WebhookInboxProcessor& operator=(const WebhookInboxProcessor&) = delete;

  // Writes due rows until none is due (or `cancel` fires: rows taken but not
  // started go back to the inbox). Returns how many rows were handled. A
  // database failure of the inbox itself propagates.
  std::size_t process_available(const CancellationToken& cancel = {});
  // process_available, then sleep until a NOTIFY, a backoff ending or the poll
  // interval; until `cancel` fires. Inbox failures are logged and retried
  // after the poll interval. For a host's own thread.
  void run(const CancellationToken& cancel);

  [[nodiscard]] const std::string& owner() const noexcept;
  [[nodiscard]] InboxProcessorStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webhookdb::jobs
