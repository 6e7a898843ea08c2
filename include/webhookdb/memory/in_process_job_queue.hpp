#pragma once
// A JobQueue that runs jobs on a thread pool in this process. A RetryOrDie
// from the handler re-runs the job after its backoff, up to its retries, then
// the job is recorded as failed; any other error is recorded as failed.
// Nothing escapes a pool thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/clock.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/job_queue.hpp"
#include "webhookdb/logger.hpp"

namespace webhookdb {
class JobRunner;
}

namespace webhookdb::memory {

enum class QueuedJobState {
  waiting,  // queued, or delayed until its run_at / retry backoff
  running,
  succeeded,  // the handler returned
  failed,     // an error, or RetryOrDie with its retries used up
  cancelled,  // shut down before or while running
};
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view to_string(QueuedJobState state) noexcept;

// What the queue knows about a job id (the latest enqueue of it).
struct QueuedJobRecord {
  std::int64_t job_id = 0;
  QueuedJobState state = QueuedJobState::waiting;
  int runs = 0;     // handler invocations
  int retries = 0;  // re-runs caused by RetryOrDie
  // The delay asked for by the latest enqueue or retry (before Options::delay).
  std::chrono::milliseconds requested_delay{0};
  // The error of a failed run, or of the RetryOrDie that caused the latest retry.
  std::string error;
};

// Thrown by a handler: run this job again after `delay`. Not a failure and
// not a retry (no budget is used): the job waits its turn, e.g. while another
// run holds its integration.
class WEBHOOKDB_EXPORT RunLater : public Error {
 public:
  explicit RunLater(std::chrono::milliseconds delay, const std::string& why = "run again later")
      : Error(why), delay_(delay) {}
  [[nodiscard]] std::chrono::milliseconds delay() const noexcept { return delay_; }

 private:
  std::chrono::milliseconds delay_;
};

class WEBHOOKDB_EXPORT InProcessJobQueue final : public JobQueue {
 public:
  using Handler = std::function<void(std::int64_t job_id, const CancellationToken& cancel)>;

  struct Options {
    std::size_t threads = 2;
    // Turns run_at into a delay. Default: the system clock.
    std::shared_ptr<Clock> clock;
    // Maps a requested delay (run_at, RetryOrDie backoff) to the real wait, so
    // tests need not wait 63 s. Default: unchanged.
    std::function<std::chrono::milliseconds(std::chrono::milliseconds requested)> delay;
    // Failures and retries are logged here. Default: none.
    std::shared_ptr<Logger> logger;
  };

  explicit InProcessJobQueue(Handler handler);
  InProcessJobQueue(Handler handler, Options options);
  // The handler is set later with set_handler (when it needs the queue itself).
  explicit InProcessJobQueue(Options options);
  // shutdown().
  ~InProcessJobQueue() override;
  InProcessJobQueue(const InProcessJobQueue&) = delete;
  InProcessJobQueue& operator=(const InProcessJobQueue&) = delete;

  // Must be called before the first enqueue.
  void set_handler(Handler handler);

  // Thread-safe. A delayed job does not occupy a pool thread while it waits.
  // InvalidPrecondition after shutdown() or without a handler.
  void enqueue(std::int64_t job_id, std::optional<Timestamp> run_at = std::nullopt) override;

  // Blocks until nothing is queued, delayed or running.
  void wait_idle();
  // The same with a limit; false when it passed first.
  [[nodiscard]] bool wait_idle_for(std::chrono::milliseconds timeout);
  // Cancels running handlers through their token, drops queued and delayed
  // jobs (recorded as cancelled), joins the threads and drops the handler
  // (which often holds this queue through its context). Idempotent. Must not
  // be called from a handler.
  void shutdown();

  [[nodiscard]] std::optional<QueuedJobRecord> record(std::int64_t job_id) const;
  [[nodiscard]] std::vector<QueuedJobRecord> records() const;
  [[nodiscard]] std::vector<QueuedJobRecord> failed() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// A handler that runs each job with `runner` (outcomes other than errors are
// not failures: a skipped or finished job is a success for the queue). A job
// whose integration another run holds waits its turn: it runs again after
// `busy_delay` (RunLater), as often as it takes.
[[nodiscard]] WEBHOOKDB_EXPORT InProcessJobQueue::Handler job_runner_handler(
    std::shared_ptr<JobRunner> runner,
    std::chrono::milliseconds busy_delay = std::chrono::milliseconds(1000));

}  // namespace webhookdb::memory
