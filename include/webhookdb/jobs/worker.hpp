#pragma once
// Runs backfill jobs from a PgJobQueue, up to N at once, in this process.
//
//   auto queue = std::make_shared<pg::PgJobQueue>(config);
//   jobs::Worker worker(registry, context, queue, {.concurrency = 4});
//   worker.start();
//   ...
//   worker.stop();   // running jobs stop at a page boundary and go back to the queue
//
// Each job goes through core's JobRunner (WebhookDB's runner semantics: a
// missing job is skipped; a finished job is skipped; CredentialsMissing
// finishes the job and is not an error), except that a job whose integration
// another run holds is never finished by that: it waits its turn. Children
// are enqueued into the same queue by Replicator::backfill.
//
// A job is finished only by a run that completed it. A job taken over from
// an expired lease whose previous holder still holds the integration's lock
// (alive but paused, or late with its heartbeats) is handed back to that
// holder, which finishes it when it resumes; if the holder dies instead, its
// lock goes with its session and the next take resumes the job at its
// checkpoint.
//
// What the queue row becomes when a run ends:
//   returned (any JobRunOutcome but locked) done
//   locked (another run holds the integration) queued at now + busy_retry_delay
//   taken over from a live holder      handed back to that holder
//   RetryOrDie                          queued at now + backoff while its retries last, then failed
//   another error that says retryable() queued at now + transient_backoff * 2^n, transient_retries times
//   any other error                     failed, with its message (secrets of the integration removed)
//   cancelled by stop()                 queued at once, lease released: another worker resumes it
//   yielded (time slice, see below)     queued, due now, a slice behind the back of the line, checkpoints kept
//   lease lost (taken over elsewhere)   untouched: the run is cancelled, the new holder owns the row

// Fairness (time slicing): a job that has run longer than `time_slice` while
// other jobs are due and every runner of this worker is busy stops at its
// next page boundary (what it wrote stays, with its checkpoint) and goes back
// to the queue behind the jobs that waited and those queued within the next
// slice (PgJobQueue::yield_to_waiting); it resumes at its checkpoint on its
// next take, and each take runs at least one slice before it yields again
// (so long backfills keep making progress). A worker checks every 50 ms in
// memory, and asks the database how many jobs are due only when a
// notification arrived or a slice passed since it last asked.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "webhookdb/export.hpp"
#include "webhookdb/job_runner.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/webhook_inbox.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::jobs {

// How one run ended, as the queue recorded it.
// cancelled: stopped by an operator (pg::PgJobControl::request_cancel), its
// checkpoints kept; the queue holds it as 'cancelled' until enqueued again.
enum class RunResult { completed, retried, failed, released, lease_lost, cancelled };
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view to_string(RunResult result) noexcept;

struct JobReport {
  std::int64_t job_id = 0;
  int attempt = 0;
  RunResult result = RunResult::completed;
  // Set when the runner returned.
  std::optional<JobRunOutcome> outcome;
  // The recorded error (secrets removed); empty when none.
  std::string error;
  std::chrono::milliseconds elapsed{0};
};

struct WEBHOOKDB_EXPORT WorkerOptions {
  // Jobs run at once.
  int concurrency = 2;
  // Longest idle wait between looks at the queue when no notification comes
  // (a lost NOTIFY, a delayed job becoming due on another machine's clock).
  std::chrono::milliseconds poll_interval{5'000};
  // How often leases are renewed; zero: a third of the queue's lease.
  std::chrono::milliseconds heartbeat_interval{0};
  // Unique per worker; default "<host>:<pid>:<random>".
  std::string owner;
  // For errors other than RetryOrDie whose retryable() is true (a lost
  // database connection, say).
  int transient_retries = 3;
  std::chrono::seconds transient_backoff{30};
  // A job whose integration another run holds is given back, due again after this.
  std::chrono::milliseconds busy_retry_delay{2'000};
  // Time slicing (see above): a job that ran this long yields its runner to
  // waiting jobs at a page boundary. Zero: never.
  std::chrono::milliseconds time_slice{5'000};
  // What the backfillers report to the context's ProgressSink is also
  // written to PostgreSQL (pg::PgProgressSink) at most this often per job and
  // backfiller, plus each backfiller's final report, so operators on other
  // machines see it (`webhookdb jobs`). Zero: not written.
  std::chrono::milliseconds progress_interval{1'000};
  // Default: the context's logger.
  std::shared_ptr<Logger> logger;
  // Called after each run from the thread that ran it. Must not throw.
  std::function<void(const JobReport&)> on_job_done;
  // Set: one more thread writes the webhooks waiting in this inbox (a
  // WebhookInboxProcessor under this worker's owner name), stopped by stop()
  // with the runners (rows not started go back to the inbox).
  std::shared_ptr<pg::PgWebhookInbox> webhook_inbox;
};

struct WorkerStats {
  std::uint64_t taken = 0;
  std::uint64_t completed = 0;
  std::uint64_t retried = 0;
  std::uint64_t failed = 0;
  std::uint64_t released = 0;
  std::uint64_t lease_lost = 0;
  // Runs an operator cancelled.
  std::uint64_t cancelled = 0;
  // Runs that gave their runner to waiting jobs (counted in `released` too).
  std::uint64_t yielded = 0;
  int running = 0;
};

class WEBHOOKDB_EXPORT Worker {
 public:
  // The context needs a job store and a replica store; its queue is replaced
  // by `queue` so children are enqueued where this worker (and its peers) take them.
  Worker(std::shared_ptr<const Registry> registry, ReplicatorContext context,
         std::shared_ptr<pg::PgJobQueue> queue, WorkerOptions options = {});
  // stop().
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the runner threads and the heartbeat. InvalidPrecondition when
  // called twice or after stop().
  void start();
  // Stops taking jobs, waits up to `grace` for running jobs to end by
  // themselves, then cancels the rest through their CancellationToken
  // (backfillers stop at a page boundary, their last checkpoint stays), gives
  // their jobs back to the queue and joins every thread. Idempotent; safe
  // from any thread but a job's own.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(0));
  // Asks for stop() without waiting (from a signal-watching thread, say).
  void request_stop() noexcept;
  // True after start() and until stop() has joined.
  [[nodiscard]] bool running() const noexcept;
  // Blocks until stop is requested or `timeout` passes; true when requested.
  bool wait_for_stop_request(std::chrono::milliseconds timeout) const;

  [[nodiscard]] const std::string& owner() const noexcept;
  [[nodiscard]] WorkerStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// "<host>:<pid>:<8 random hex>".
[[nodiscard]] WEBHOOKDB_EXPORT std::string default_worker_owner();

}  // namespace webhookdb::jobs
