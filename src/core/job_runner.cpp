#include "webhookdb/job_runner.hpp"

#include "webhookdb/errors.hpp"

namespace webhookdb {

std::string_view to_string(JobRunOutcome outcome) noexcept {
  switch (outcome) {
    case JobRunOutcome::ran:
      return "ran";
    case JobRunOutcome::missing:
      return "missing";
    case JobRunOutcome::locked:
      return "locked";
    case JobRunOutcome::already_finished:
      return "already_finished";
    case JobRunOutcome::credentials_missing:
      return "credentials_missing";
  }
  return "unknown";
}

void enqueue_children(JobStore& store, JobQueue& queue, const BackfillJob& job) {
  for (const auto& child : store.child_jobs(job.id)) queue.enqueue(child.id);
}

JobRunner::JobRunner(std::shared_ptr<const Registry> registry, ReplicatorContext context)
    : registry_(std::move(registry)), context_(std::move(context)) {
  if (!registry_) throw InvalidPrecondition("JobRunner needs a registry");
  if (!context_.jobs) throw InvalidPrecondition("JobRunner needs a job store");
  if (!context_.clock) context_.clock = system_clock();
  if (!context_.registry) context_.registry = registry_;
}

JobRunOutcome JobRunner::run(std::int64_t job_id, const CancellationToken& cancel) {
  JobStore& store = *context_.jobs;
  // One read for both where the store can (PgJobStore: one statement).
  auto found = store.find_job_and_integration(job_id);
  if (!found || !found->integration) return JobRunOutcome::missing;
  auto& integration = found->integration;

  if (found->job.finished_at) return JobRunOutcome::already_finished;

  auto lock = store.try_lock_integration(integration->id);
  if (!lock) {
    // Another run is backfilling this integration. WebhookDB marks this job
    // finished here, which loses work: the holder may be this very job's
    // previous run (paused, late with its heartbeat) that has not finished,
    // or a job with other criteria or kind. The job is left as it is and
    // waits its turn; the caller runs it again later.
    return JobRunOutcome::locked;
  }
  // The job is not read again under the lock: the other run may have
  // finished it meanwhile, which JobStore::start_job finds as backfill marks
  // it started (one statement instead of a re-read and an update).
  BackfillJob& job = found->job;
  auto replicator = registry_->make(*integration, context_);
  try {
    replicator->backfill(job, cancel);
  } catch (const JobFinishedMeanwhile&) {
    return JobRunOutcome::already_finished;
  } catch (const CredentialsMissing&) {
    job.finished_at = context_.clock->now();
    store.update_job(job);
    return JobRunOutcome::credentials_missing;
  } catch (const InvalidPrecondition&) {
    // Deleted since it was read (start_job found no row): skipped as before.
    if (!store.find_job(job_id)) return JobRunOutcome::missing;
    throw;
  }
  return JobRunOutcome::ran;
}

}  // namespace webhookdb
