#pragma once
// A JobQueue in PostgreSQL that any number of worker processes share.
//
// One row per backfill job in <schema>.webhookdb_job_queue (its own versioned
// migration, component "job_queue"). A worker takes the next due row with
// FOR UPDATE SKIP LOCKED and holds it under a lease that a heartbeat renews;
// when a worker dies its lease expires and the job is taken again (resuming
// at its checkpoints). enqueue() sends a NOTIFY that wakes one idle runner of
// each listening process; a fallback poll covers lost notifications.
//
// Order of takes: expired leases first, then jobs due now in line order (a
// job queued, re-queued or released goes to the back of the line, a job that
// yielded further back, see yield_to_waiting), then delayed jobs that are
// due, by run_at. Each is one index-ordered probe, so a
// take costs the same with 100 or 100,000 jobs queued.
//
// A job failed for good (fail, retry_or_fail out of retries, a lease lost
// max_attempts times) is also finished in PgJobStore's table of the same
// schema (finished_at, error), in the same transaction; requeue_failed
// undoes that.
//
// Two clocks, on purpose:
// - run_at (delayed re-runs) lives in the injected Clock's time, so tests move
//   backoffs with a manual clock. A job enqueued without run_at is due at once
//   whatever any machine's clock says.
// - Leases live in the database's time (clock_timestamp()), the one clock all
//   workers on all machines share, so clock skew never steals a live lease.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/clock.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/job_queue.hpp"
#include "webhookdb/logger.hpp"
#include "webhookdb/pg/config.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/migrations.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb::pg {

enum class QueueState {
  queued,   // waiting for run_at (or due now)
  running,  // leased by a worker
  done,     // the job runner returned (ran, skipped, finished...)
  failed,   // an error, or RetryOrDie with its retries used up; see last_error
  // Stopped by an operator (PgJobControl::request_cancel): not taken again,
  // its checkpoints kept; enqueue() queues it again and it resumes there.
  cancelled,
};
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view to_string(QueueState state) noexcept;

// What the queue knows about one job.
struct QueueEntry {
  std::int64_t job_id = 0;
  QueueState state = QueueState::queued;
  // Injected-clock time before which the job is not taken; nullopt: due now.
  std::optional<Timestamp> run_at;
  // Times the job was taken (a run, a re-run, a take-over after a lost lease).
  int attempts = 0;
  // Re-runs left; unset until the first retryable failure sets the budget.
  std::optional<int> retries_left;
  // The worker holding the lease; empty when none.
  std::string lease_owner;
  // Database time.
  std::optional<Timestamp> lease_expires_at;
  // The error of the latest failed run (kept after a later success).
  std::string last_error;
  // Database times.
  Timestamp enqueued_at{};
  Timestamp updated_at{};
  std::optional<Timestamp> finished_at;
};

// A job taken by a worker.
struct Lease {
  std::int64_t job_id = 0;
  // 1 for the first take.
  int attempt = 1;
  std::optional<int> retries_left;
  // The job was taken over from a worker whose lease had expired.
  bool recovered = false;
  std::string previous_owner;
  // The previous holder's lease token (recovered leases only), so that
  // hand_back() can return the job to a holder that turns out to be alive.
  std::string previous_token;
  // Who took it (for logs and operators) and a token unique to this take.
  // Every later call on the lease matches the token, not the owner's name:
  // a worker restarted under the same name (a stable pod or host name) must
  // not renew, complete or release the leases its dead predecessor left.
  std::string owner;
  std::string token;
};

enum class RetryDecision {
  retried,     // queued again at now + backoff
  failed,      // no retries left: failed for good
  lease_lost,  // another worker holds the job now: nothing was changed
};

struct PgJobQueueOptions {
  // run_at's time (see above). Default: the system clock.
  std::shared_ptr<Clock> clock;
  std::shared_ptr<Logger> logger;
  // How long a taken job stays leased without a heartbeat.
  std::chrono::milliseconds lease{30'000};
  // A job whose lease expired this many times (its worker died each time) is
  // failed instead of taken again: a job that kills its worker must not kill
  // every worker in turn. 0: no limit.
  int max_attempts = 20;
  // Run the migration in the constructor.
  bool migrate = true;
  // last_error is cut to this many bytes.
  std::size_t max_error_bytes = 2000;
  // retry_or_fail backs off for backoff * (1 + u), u uniform in [0,
  // retry_jitter]: never sooner than asked, and the retries of jobs that
  // failed together spread out instead of running in lockstep. 0: exact.
  double retry_jitter = 0.25;
};

class WEBHOOKDB_EXPORT PgJobQueue final : public JobQueue {
 public:
  // The queue's table lives in config.schema.
  explicit PgJobQueue(pg::Config config, PgJobQueueOptions options = {});
  // Shares a pool (with a PgJobStore on the same database, say).
  explicit PgJobQueue(std::shared_ptr<pg::ConnectionPool> pool, PgJobQueueOptions options = {});
  // Stops the listener thread, if started.
  ~PgJobQueue() override;
  PgJobQueue(const PgJobQueue&) = delete;
  PgJobQueue& operator=(const PgJobQueue&) = delete;

  // Creates or upgrades the queue's table (idempotent, safe from concurrent processes).
  void migrate();
  [[nodiscard]] static const std::vector<pg::Migration>& migrations();

  // --- JobQueue ---
  // Queues the job (due at `run_at`, or at once) and notifies the workers, in
  // one transaction. A job already queued keeps the earlier of the two due
  // times; a done or failed job is queued again with a fresh attempt count and
  // retry budget; a running job is left alone (its runner decides).
  void enqueue(std::int64_t job_id, std::optional<Timestamp> run_at = std::nullopt) override;
  // Queues the job only when the queue has no row for it. True when queued.
  bool enqueue_if_absent(std::int64_t job_id);

  // --- Worker side: `owner` names one worker (shown to operators) ---
  // Takes the next due job (queued with run_at <= now, or running with an
  // expired lease), lease until now + lease, under a fresh token. nullopt
  // when nothing is due.
  [[nodiscard]] std::optional<Lease> take(const std::string& owner);
  // Extends exactly these leases (the ones this worker is running); returns
  // the job ids still held, sorted (a job missing from it was taken over,
  // and its run should stop).
  [[nodiscard]] std::vector<std::int64_t> renew(const std::vector<Lease>& leases);
  // The run ended (any JobRunOutcome): done. False when the lease was lost.
  bool complete(const Lease& lease);
  // Gives the job back (worker stopping): queued, due at `run_at` (at once by
  // default), lease cleared. False when the lease was lost.
  bool release(const Lease& lease, std::optional<Timestamp> run_at = std::nullopt);
  // Time slicing: the job gave its runner to waiting jobs (it stopped at a
  // page boundary, its checkpoints kept). Queued, due now, lease cleared, its
  // place in line `behind` from now: after the jobs waiting now and those
  // queued within `behind`, so a stream of small jobs is not stuck behind it
  // again at its next take; after that it is first in line. False when the
  // lease was lost.
  bool yield_to_waiting(const Lease& lease, std::chrono::milliseconds behind);
  // The job did not run and waits its turn (another run holds its
  // integration): queued, due at `run_at`, lease cleared, and this take is
  // not counted in its attempts. False when the lease was lost.
  bool postpone(const Lease& lease, Timestamp run_at);
  // A recovered lease whose previous holder is alive after all (it still
  // holds the integration's lock: paused, or late with its heartbeat) goes
  // back to that holder: its token and owner are restored, its lease runs
  // for another `lease` from now and this take's attempt is not counted.
  // When the holder resumes, its next heartbeat renews the lease and it
  // finishes the job; if it dies instead, the lease expires again and the
  // next take (whose probe then finds the lock free) resumes the job at its
  // checkpoint. False when this lease was lost meanwhile.
  bool hand_back(const Lease& lease);
  // RetryOrDie: while retries remain (the budget starts at `retries` on the
  // first retry of a job), queued again at clock.now() + backoff; then failed
  // for good. `error` must hold no secret.
  RetryDecision retry_or_fail(const Lease& lease, int retries, std::chrono::seconds backoff,
                              const std::string& error);
  // Failed for good, with its error. False when the lease was lost.
  bool fail(const Lease& lease, const std::string& error);

  // --- Wake-ups ---
  // A counter bumped by every NOTIFY received (and every local enqueue).
  // Read it before take(); pass it to wait_for_work.
  [[nodiscard]] std::uint64_t wake_generation() const;
  // Returns at once when the generation moved past `seen`; else blocks
  // until a notification picks this waiter, `max_wait` passes or `cancel`
  // fires. One notification wakes one waiter (a listener reconnect wakes
  // them all). Starts the listener (a dedicated connection doing LISTEN) on
  // first use. True when woken by a notification.
  bool wait_for_work(std::uint64_t seen, std::chrono::milliseconds max_wait, const CancellationToken& cancel);
  // Jobs due now (queued, due by run_at), counting up to `at_most`.
  [[nodiscard]] std::size_t due_count(std::size_t at_most);
  // How long until the next queued job is due or a running job's lease
  // expires: zero when something is due now, nullopt when nothing is waiting.
  [[nodiscard]] std::optional<std::chrono::milliseconds> time_until_due();
  // True while the listener is connected and listening.
  [[nodiscard]] bool listening() const;

  // --- Operators ---
  [[nodiscard]] std::optional<QueueEntry> entry(std::int64_t job_id);
  // In job id order.
  [[nodiscard]] std::vector<QueueEntry> entries();
  [[nodiscard]] std::vector<QueueEntry> entries(QueueState state);
  [[nodiscard]] std::vector<QueueEntry> failed() { return entries(QueueState::failed); }
  // A failed job queued again (attempts and retry budget reset, last_error
  // kept until it runs). False when the job is not failed.
  bool requeue_failed(std::int64_t job_id, std::optional<Timestamp> run_at = std::nullopt);
  // Deletes done rows finished before `before` (database time). Returns how many.
  std::size_t purge_done(Timestamp before);

  [[nodiscard]] const PgJobQueueOptions& options() const noexcept;
  [[nodiscard]] pg::ConnectionPool& pool() const noexcept;
  // The NOTIFY channel.
  [[nodiscard]] const std::string& channel() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webhookdb::pg
