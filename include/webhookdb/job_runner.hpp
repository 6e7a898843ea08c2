#pragma once
// Runs one backfill job the way WebhookDB's job runner does, but for one
// rule: a job whose integration another run holds is not marked finished
// (WebhookDB's rule loses work when that run is the job's own paused
// previous run, or a job with other criteria); it comes back `locked`, and
// the caller runs it again later (the PostgreSQL worker gives it back to the
// queue with a delay; job_runner_handler re-runs it in process).

#include <cstdint>
#include <memory>
#include <string_view>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb {

enum class JobRunOutcome {
  ran,                  // backfill returned (finished, or error handled)
  missing,              // the job's row is gone
  locked,               // another run holds the integration: left untouched, run it again later
  already_finished,     // skipped
  credentials_missing,  // marked finished, not an error
};
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view to_string(JobRunOutcome outcome) noexcept;

class WEBHOOKDB_EXPORT JobRunner {
 public:
  JobRunner(std::shared_ptr<const Registry> registry, ReplicatorContext context);
  // Other errors (RetryOrDie, HTTP, store) propagate to the queue.
  JobRunOutcome run(std::int64_t job_id, const CancellationToken& cancel = CancellationToken{});

 private:
  std::shared_ptr<const Registry> registry_;
  ReplicatorContext context_;
};

// Enqueues the direct children of `job`.
WEBHOOKDB_EXPORT void enqueue_children(JobStore& store, JobQueue& queue, const BackfillJob& job);

}  // namespace webhookdb
