#include "webhookdb/backfill_job.hpp"

#include "webhookdb/job_store.hpp"

namespace webhookdb {

std::string_view to_string(JobStatus status) noexcept {
  switch (status) {
    case JobStatus::enqueued: return "enqueued";
    case JobStatus::inprogress: return "inprogress";
    case JobStatus::finished: return "finished";
  }
  return "unknown";
}

std::optional<Timestamp> fully_finished_at(JobStore& store, const BackfillJob& job) {
  if (!job.finished_at) return std::nullopt;
  Timestamp latest = *job.finished_at;
  for (const auto& child : store.child_jobs(job.id)) {
    auto child_finished = fully_finished_at(store, child);
    if (!child_finished) return std::nullopt;
    latest = std::max(latest, *child_finished);
  }
  return latest;
}

JobStatus status(JobStore& store, const BackfillJob& job) {
  if (!job.started_at) return JobStatus::enqueued;
  if (fully_finished_at(store, job)) return JobStatus::finished;
  return JobStatus::inprogress;
}

}  // namespace webhookdb
