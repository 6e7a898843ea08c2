#include "webhookdb/memory/in_process_job_queue.hpp"

#include <condition_variable>
#include <map>
#include <mutex>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "webhookdb/errors.hpp"
#include "webhookdb/job_runner.hpp"

namespace webhookdb::memory {

std::string_view to_string(QueuedJobState state) noexcept {
  switch (state) {
    case QueuedJobState::waiting:
      return "waiting";
    case QueuedJobState::running:
      return "running";
    case QueuedJobState::succeeded:
      return "succeeded";
    case QueuedJobState::failed:
      return "failed";
    case QueuedJobState::cancelled:
      return "cancelled";
  }
  return "unknown";
}

struct InProcessJobQueue::Impl {
  explicit Impl(Options opts) : options(std::move(opts)), pool(options.threads == 0 ? 1 : options.threads) {
    if (!options.clock) options.clock = system_clock();
  }

  Options options;
  boost::asio::thread_pool pool;
  CancellationSource cancel;

  mutable std::mutex mutex;
  std::condition_variable idle;
  Handler handler;
  bool stopping = false;
  bool joined = false;
  // Jobs queued, delayed or running.
  std::size_t outstanding = 0;
  std::map<std::int64_t, QueuedJobRecord> records;
  std::map<std::uint64_t, std::shared_ptr<boost::asio::steady_timer>> timers;
  std::uint64_t next_timer = 1;

  void log(LogLevel level, const std::string& message) const noexcept {
    if (!options.logger) return;
    try {
      options.logger->log(level, message);
    } catch (...) {  // logging must not take the queue down
    }
  }

  std::chrono::milliseconds real_delay(std::chrono::milliseconds requested) const {
    if (requested.count() <= 0) return std::chrono::milliseconds(0);
    return options.delay ? options.delay(requested) : requested;
  }

  // Caller holds `mutex` and has counted the job in `outstanding`.
  void schedule_locked(std::int64_t job_id, std::chrono::milliseconds requested) {
    auto& rec = records[job_id];
    rec.job_id = job_id;
    rec.state = QueuedJobState::waiting;
    rec.requested_delay = requested;
    const auto wait = real_delay(requested);
    if (wait.count() <= 0) {
      boost::asio::post(pool, [this, job_id] { run(job_id); });
      return;
    }
    auto timer = std::make_shared<boost::asio::steady_timer>(pool.get_executor(), wait);
    const auto id = next_timer++;
    timers.emplace(id, timer);
    timer->async_wait([this, id, job_id, timer](const boost::system::error_code& ec) {
      bool aborted = false;
      {
        std::lock_guard lock(mutex);
        timers.erase(id);
        aborted = ec.failed() || stopping;
      }
      if (aborted) {
        finish(job_id, QueuedJobState::cancelled, "cancelled before it ran");
      } else {
        run(job_id);
      }
    });
  }

  void finish(std::int64_t job_id, QueuedJobState state, const std::string& error) noexcept {
    std::lock_guard lock(mutex);
    auto& rec = records[job_id];
    rec.job_id = job_id;
    rec.state = state;
    if (!error.empty()) rec.error = error;
    if (--outstanding == 0) idle.notify_all();
  }

  // Once stop() began, a job about to run (or to be scheduled again) ends
  // as cancelled instead. Called with `mutex` held.
  bool cancelled_by_stop_locked(std::int64_t job_id) {
    if (!stopping) return false;
    records[job_id].state = QueuedJobState::cancelled;
    if (--outstanding == 0) idle.notify_all();
    return true;
  }

  // Runs on a pool thread; nothing may escape.
  void run(std::int64_t job_id) noexcept {
    Handler h;
    {
      std::lock_guard lock(mutex);
      if (cancelled_by_stop_locked(job_id)) return;
      auto& rec = records[job_id];
      rec.state = QueuedJobState::running;
      ++rec.runs;
      h = handler;
    }
    try {
      h(job_id, cancel.token());
      finish(job_id, QueuedJobState::succeeded, {});
    } catch (const RetryOrDie& e) {
      on_retry_or_die(job_id, e);
    } catch (const RunLater& e) {
      run_later(job_id, e);
    } catch (const Cancelled& e) {
      finish(job_id, cancel.cancelled() ? QueuedJobState::cancelled : QueuedJobState::failed, e.what());
    } catch (const std::exception& e) {
      log(LogLevel::error, "backfill job " + std::to_string(job_id) + " failed: " + e.what());
      finish(job_id, QueuedJobState::failed, e.what());
    } catch (...) {
      log(LogLevel::error,
          "backfill job " + std::to_string(job_id) + " failed with a non-standard exception");
      finish(job_id, QueuedJobState::failed, "unknown error");
    }
  }

  void run_later(std::int64_t job_id, const RunLater& e) noexcept {
    try {
      std::lock_guard lock(mutex);
      if (cancelled_by_stop_locked(job_id)) return;
      // This run stays counted in `outstanding` for the next one.
      schedule_locked(job_id, e.delay());
    } catch (...) {
      finish(job_id, QueuedJobState::failed, "could not schedule the job again");
    }
  }

  void on_retry_or_die(std::int64_t job_id, const RetryOrDie& e) noexcept {
    try {
      std::string message;
      {
        std::lock_guard lock(mutex);
        auto& rec = records[job_id];
        if (!stopping && rec.retries < e.retries()) {
          ++rec.retries;
          rec.error = e.what();
          // The retry is counted before this run is uncounted: never idle in between.
          ++outstanding;
          schedule_locked(job_id, std::chrono::duration_cast<std::chrono::milliseconds>(e.backoff()));
          --outstanding;  // this run; the retry keeps the count above zero
          message = "backfill job " + std::to_string(job_id) + " will run again in " +
                    std::to_string(e.backoff().count()) + " s (retry " + std::to_string(rec.retries) +
                    " of " + std::to_string(e.retries()) + "): " + e.what();
        }
      }
      if (!message.empty()) {
        log(LogLevel::warn, message);
        return;
      }
      const std::string text = stopping_now()
                                   ? std::string(e.what())
                                   : "gave up after " + std::to_string(e.retries()) + " retries: " + e.what();
      log(LogLevel::error, "backfill job " + std::to_string(job_id) + " failed: " + text);
      finish(job_id, stopping_now() ? QueuedJobState::cancelled : QueuedJobState::failed, text);
    } catch (...) {
      finish(job_id, QueuedJobState::failed, "could not schedule a retry");
    }
  }

  bool stopping_now() const {
    std::lock_guard lock(mutex);
    return stopping;
  }
};

InProcessJobQueue::InProcessJobQueue(Handler handler) : InProcessJobQueue(std::move(handler), Options{}) {}

InProcessJobQueue::InProcessJobQueue(Handler handler, Options options)
    : impl_(std::make_shared<Impl>(std::move(options))) {
  impl_->handler = std::move(handler);
}

InProcessJobQueue::InProcessJobQueue(Options options) : impl_(std::make_shared<Impl>(std::move(options))) {}

InProcessJobQueue::~InProcessJobQueue() {
  shutdown();
}

void InProcessJobQueue::set_handler(Handler handler) {
  std::lock_guard lock(impl_->mutex);
  impl_->handler = std::move(handler);
}

void InProcessJobQueue::enqueue(std::int64_t job_id, std::optional<Timestamp> run_at) {
  std::chrono::milliseconds requested{0};
  if (run_at) {
    const auto ahead = *run_at - impl_->options.clock->now();
    // Round up so a job never runs before its run_at.
    requested = std::chrono::ceil<std::chrono::milliseconds>(ahead);
    if (requested.count() < 0) requested = std::chrono::milliseconds(0);
  }
  std::lock_guard lock(impl_->mutex);
  if (impl_->stopping)
    throw InvalidPrecondition("job queue is shut down; job " + std::to_string(job_id) + " not enqueued");
  if (!impl_->handler) throw InvalidPrecondition("job queue has no handler; call set_handler first");
  ++impl_->outstanding;
  auto& rec = impl_->records[job_id];
  rec = QueuedJobRecord{};
  rec.job_id = job_id;
  impl_->schedule_locked(job_id, requested);
}

void InProcessJobQueue::wait_idle() {
  std::unique_lock lock(impl_->mutex);
  impl_->idle.wait(lock, [&] { return impl_->outstanding == 0; });
}

bool InProcessJobQueue::wait_idle_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mutex);
  return impl_->idle.wait_for(lock, timeout, [&] { return impl_->outstanding == 0; });
}

void InProcessJobQueue::shutdown() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->joined) return;
    impl_->stopping = true;
    for (auto& [id, timer] : impl_->timers) timer->cancel();
  }
  impl_->cancel.cancel();
  impl_->pool.join();
  Handler released;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->joined = true;
    // The handler usually holds a context that holds this queue: dropping it
    // here breaks that cycle, so a shut-down queue and its runner are freed.
    released = std::move(impl_->handler);
    impl_->handler = nullptr;
  }
}

std::optional<QueuedJobRecord> InProcessJobQueue::record(std::int64_t job_id) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->records.find(job_id);
  if (it == impl_->records.end()) return std::nullopt;
  return it->second;
}

std::vector<QueuedJobRecord> InProcessJobQueue::records() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<QueuedJobRecord> out;
  for (const auto& [id, rec] : impl_->records) out.push_back(rec);
  return out;
}

std::vector<QueuedJobRecord> InProcessJobQueue::failed() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<QueuedJobRecord> out;
  for (const auto& [id, rec] : impl_->records) {
    if (rec.state == QueuedJobState::failed) out.push_back(rec);
  }
  return out;
}

InProcessJobQueue::Handler job_runner_handler(std::shared_ptr<JobRunner> runner,
                                              std::chrono::milliseconds busy_delay) {
  if (!runner) throw InvalidPrecondition("job_runner_handler needs a JobRunner");
  return [runner = std::move(runner), busy_delay](std::int64_t job_id, const CancellationToken& cancel) {
    if (runner->run(job_id, cancel) == JobRunOutcome::locked) {
      throw RunLater(busy_delay,
                     "job " + std::to_string(job_id) + " waits: another run holds its integration");
    }
  };
}

}  // namespace webhookdb::memory
