#pragma once
// Runs one backfill job the way WebhookDB's job runner does.

#include <cstdint>
#include <memory>
#include <string_view>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb {

enum class JobRunOutcome {
  ran,                  // backfill returned (finished, or error handled)
  missing,              // the job's row is gone
  locked,               // another run holds the integration: marked finished, skipped
  already_finished,     // skipped
  credentials_missing,  // marked finished, not an error
};
[[nodiscard]] std::string_view to_string(JobRunOutcome outcome) noexcept;

class JobRunner {
 public:
  JobRunner(std::shared_ptr<const Registry> registry, ReplicatorContext context);
  // Other errors (RetryOrDie, HTTP, store) propagate to the queue.
  JobRunOutcome run(std::int64_t job_id, const CancellationToken& cancel = CancellationToken{});

 private:
  std::shared_ptr<const Registry> registry_;
  ReplicatorContext context_;
};

// Enqueues the direct children of `job`.
void enqueue_children(JobStore& store, JobQueue& queue, const BackfillJob& job);

}  // namespace webhookdb
