#include "webhookdb/jobs/worker.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include "webhookdb/errors.hpp"
#include "webhookdb/jobs/webhook_inbox_processor.hpp"
#include "webhookdb/pg/job_control.hpp"

namespace webhookdb::jobs {
namespace {

std::string replace_all(std::string text, const std::string& needle, const std::string& with) {
  if (needle.empty()) return text;
  for (std::size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + with.size())) {
    text.replace(pos, needle.size(), with);
  }
  return text;
}

std::chrono::seconds transient_delay(std::chrono::seconds base, int attempt) {
  const int doublings = std::clamp(attempt - 1, 0, 10);
  return std::min<std::chrono::seconds>(base * (1LL << doublings), std::chrono::hours(1));
}

}  // namespace

std::string_view to_string(RunResult result) noexcept {
  switch (result) {
    case RunResult::completed:
      return "completed";
    case RunResult::retried:
      return "retried";
    case RunResult::failed:
      return "failed";
    case RunResult::released:
      return "released";
    case RunResult::lease_lost:
      return "lease_lost";
    case RunResult::cancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string default_worker_owner() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device rd;
  const auto r = (static_cast<std::uint64_t>(rd()) << 32U) ^ rd();
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%08llx", static_cast<unsigned long long>(r & 0xffffffffULL));
  return std::string(host[0] != '\0' ? host : "worker") + ":" + std::to_string(::getpid()) + ":" + suffix;
}

struct Worker::Impl {
  enum class Phase { created, started, stopped };

  std::shared_ptr<const Registry> registry;
  ReplicatorContext context;
  std::shared_ptr<pg::PgJobQueue> queue;
  WorkerOptions options;
  std::shared_ptr<Logger> logger;
  std::unique_ptr<JobRunner> runner;

  // Fired by request_stop: idle runners stop waiting, nobody takes a job.
  CancellationSource takes_stop;
  // Fired after the grace period: running jobs stop at a page boundary.
  CancellationSource jobs_stop;
  std::atomic<bool> stop_requested{false};

  mutable std::mutex mutex;
  mutable std::condition_variable cv;
  Phase phase = Phase::created;
  bool heartbeat_stop = false;
  // Running jobs: their lease (renewed by the heartbeat) and how to cancel
  // each; jobs whose lease another worker took.
  struct Held {
    pg::Lease lease;
    std::shared_ptr<CancellationSource> source;
    std::chrono::steady_clock::time_point started;
    // Cancelled by time slicing: it goes back to the queue behind the waiting jobs.
    bool yielding = false;
  };
  std::map<std::int64_t, Held> held;
  std::set<std::int64_t> lost;
  // Operators' cancels (PgJobControl): the requests, and the running jobs
  // they stopped.
  std::shared_ptr<pg::PgJobControl> control;
  // Persists the jobs' progress; holds their final reports for settle().
  std::shared_ptr<pg::PgProgressSink> progress;
  std::set<std::int64_t> cancel_asked;
  WorkerStats stats;
  std::mutex stop_mutex;  // serializes stop()

  std::vector<std::thread> runners;
  std::thread heartbeat;
  std::unique_ptr<WebhookInboxProcessor> inbox_processor;
  std::thread inbox_thread;

  void log(LogLevel level, const std::string& message) const { logger->log(level, message); }

  std::chrono::milliseconds heartbeat_interval() const {
    if (options.heartbeat_interval.count() > 0) return options.heartbeat_interval;
    return std::max(std::chrono::milliseconds(50), queue->options().lease / 3);
  }

  void runner_loop(int index) {
    int failures = 0;
    while (!stop_requested.load(std::memory_order_acquire)) {
      const std::uint64_t generation = queue->wake_generation();
      std::optional<pg::Lease> lease;
      try {
        lease = queue->take(options.owner);
        failures = 0;
      } catch (const std::exception& e) {
        if (failures++ % 20 == 0) {
          log(LogLevel::warn, "worker " + options.owner + " runner " + std::to_string(index) +
                                  ": taking a job failed (" + e.what() + "); trying again");
        }
        takes_stop.token().wait_for(std::min(options.poll_interval, std::chrono::milliseconds(1000)));
        continue;
      }
      if (!lease) {
        auto wait = options.poll_interval;
        try {
          if (auto due = queue->time_until_due()) {
            wait = std::clamp(*due, std::chrono::milliseconds(25), wait);
          }
        } catch (const std::exception&) {
          // The poll interval will do.
        }
        queue->wait_for_work(generation, wait, takes_stop.token());
        continue;
      }
      run_one(*lease);
    }
  }

  // The error text recorded in the queue: no secret of the integration in it.
  std::string scrubbed(std::int64_t job_id, const std::string& message) const {
    std::string text = message;
    try {
      if (auto job = context.jobs->find_job(job_id)) {
        if (auto si = context.jobs->find_integration(job->service_integration_id)) {
          for (const std::string* secret : {&si->backfill_secret, &si->backfill_key, &si->webhook_secret}) {
            if (secret->size() >= 3) text = replace_all(std::move(text), *secret, "REDACTED");
          }
        }
      }
    } catch (const std::exception&) {
      // Keep the message as it is: errors carry no secrets by contract.
    }
    return text;
  }

  // A job taken over from an expired lease: if the integration's lock is
  // still held, its previous holder is alive (a dead process's session lock
  // is gone at once) and keeps the job: it is handed back, not run here.
  bool previous_holder_alive(std::int64_t job_id) const {
    auto job = context.jobs->find_job(job_id);
    if (!job) return false;  // JobRunner skips it
    auto probe = context.jobs->try_lock_integration(job->service_integration_id);
    return probe == nullptr;
  }

  // A crash between "job finished" and "children enqueued" would strand the
  // children: a re-run that finds the job finished enqueues the missing ones.
  void ensure_children(std::int64_t job_id) {
    for (const auto& child : context.jobs->child_jobs(job_id)) {
      if (!child.finished_at && queue->enqueue_if_absent(child.id)) {
        log(LogLevel::info, "job " + std::to_string(child.id) + " (child of " + std::to_string(job_id) +
                                ") was never enqueued: enqueued now");
      }
    }
  }

  struct Deferral {
    enum class Kind { none, release_now, release_later, hand_back, busy };
    Kind kind = Kind::none;
    std::string why;
  };

  // How a run ended, as settle() needs it.
  struct Ending {
    Deferral deferral;         // why the job goes back without running to its end
    std::exception_ptr error;  // what the run threw
    bool lost = false;         // another worker took the lease over meanwhile
    bool yielded = false;      // time slicing cancelled it for waiting jobs
    bool cancel_asked = false;  // an operator cancelled it
  };

  // Runs one leased job: runs it (or defers it), records its end in the
  // queue, counts it, and reports it.
  void run_one(const pg::Lease& lease) {
    const auto started = std::chrono::steady_clock::now();
    auto source = std::make_shared<CancellationSource>(jobs_stop.token());
    hold(lease, source);
    JobReport report;
    report.job_id = lease.job_id;
    report.attempt = lease.attempt;
    Ending ending = run_or_defer(lease, source->token(), report);
    std::tie(ending.lost, ending.yielded) = let_go(lease.job_id);
    {
      std::lock_guard lock(mutex);
      ending.cancel_asked = cancel_asked.erase(lease.job_id) > 0;
    }
    settle(lease, ending, *source, report);
    // The final progress reports not written by complete() (another ending).
    if (progress) progress->flush_held(lease.job_id);
    report.elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    if (ending.yielded && report.result == RunResult::released) {
      report.error = "yielded its runner to waiting jobs after " + std::to_string(report.elapsed.count()) +
                     " ms (time slice); it resumes at its checkpoint";
    }
    count(report.result, ending.yielded && report.result == RunResult::released);
    announce(report);
  }

  static std::string job_name(std::int64_t job_id) { return "job " + std::to_string(job_id); }

  // The job is running here: the heartbeat renews its lease, and cancels it
  // through `source` if the lease is lost.
  void hold(const pg::Lease& lease, const std::shared_ptr<CancellationSource>& source) {
    {
      std::lock_guard lock(mutex);
      held[lease.job_id] = Held{lease, source, std::chrono::steady_clock::now(), false};
      ++stats.taken;
      ++stats.running;
    }
    log(LogLevel::info, job_name(lease.job_id) + " taken by " + options.owner + " (attempt " +
                            std::to_string(lease.attempt) +
                            (lease.recovered ? ", recovered from " + lease.previous_owner : "") + ")");
  }

  // Runs the job, unless it has to go back first (the worker is stopping, or
  // a live previous holder keeps it); sets report.outcome when it ran.
  Ending run_or_defer(const pg::Lease& lease, const CancellationToken& token, JobReport& report) {
    Ending ending;
    Deferral& deferral = ending.deferral;
    try {
      if (stop_requested.load(std::memory_order_acquire)) {
        deferral = {Deferral::Kind::release_now, "the worker is stopping"};
      } else if (lease.recovered && previous_holder_alive(lease.job_id)) {
        deferral = {lease.previous_token.empty() ? Deferral::Kind::release_later : Deferral::Kind::hand_back,
                    "its previous holder " + lease.previous_owner +
                        " still holds the integration's lock (alive but paused or late with its heartbeat)"};
      } else {
        report.outcome = runner->run(lease.job_id, token);
        if (*report.outcome == JobRunOutcome::already_finished) ensure_children(lease.job_id);
        if (*report.outcome == JobRunOutcome::locked) {
          deferral = {Deferral::Kind::busy,
                      "another run holds the integration's lock; the job waits its turn"};
        }
      }
    } catch (...) {
      ending.error = std::current_exception();
    }
    return ending;
  }

  // The job no longer runs here: whether its lease was lost meanwhile, and
  // whether time slicing cancelled it.
  std::pair<bool, bool> let_go(std::int64_t job_id) {
    std::lock_guard lock(mutex);
    bool yielding = false;
    if (auto it = held.find(job_id); it != held.end()) {
      yielding = it->second.yielding;
      held.erase(it);
    }
    return {lost.erase(job_id) > 0, yielding};
  }

  // Records the end of the run in the queue (report.result, report.error).
  void settle(const pg::Lease& lease, const Ending& ending, const CancellationSource& source,
              JobReport& report) {
    const std::exception_ptr& error = ending.error;
    try {
      if (ending.lost) {
        report.result = RunResult::lease_lost;
        if (error) report.error = scrubbed(lease.job_id, describe(error));
      } else if (ending.deferral.kind != Deferral::Kind::none && !error) {
        report.result = settle_deferral(lease, ending.deferral);
        report.error = "given back: " + ending.deferral.why;
      } else if (!error) {
        // With the run's final progress reports, in the same statement.
        const bool done = progress ? control->complete(lease, progress->take_held(lease.job_id), options.owner)
                                   : queue->complete(lease);
        report.result = done ? RunResult::completed : RunResult::lease_lost;
      } else {
        settle_error(lease, ending, source.cancelled(), report);
      }
    } catch (const std::exception& e) {
      // The queue is unreachable: the lease expires and the job is taken again.
      report.result = RunResult::lease_lost;
      report.error = scrubbed(lease.job_id, describe(error ? error : std::current_exception()));
      log(LogLevel::error, job_name(lease.job_id) + ": could not record the end of its run (" + e.what() +
                               "); its lease will expire and it will run again");
    }
  }

  void count(RunResult result, bool yielded) {
    {
      std::lock_guard lock(mutex);
      --stats.running;
      if (yielded) ++stats.yielded;
      switch (result) {
        case RunResult::completed:
          ++stats.completed;
          break;
        case RunResult::retried:
          ++stats.retried;
          break;
        case RunResult::failed:
          ++stats.failed;
          break;
        case RunResult::released:
          ++stats.released;
          break;
        case RunResult::lease_lost:
          ++stats.lease_lost;
          break;
        case RunResult::cancelled:
          ++stats.cancelled;
          break;
      }
    }
    cv.notify_all();
  }

  // Logs the run's end and hands the report to on_job_done.
  void announce(const JobReport& report) const {
    std::string line = job_name(report.job_id) + " " + std::string(to_string(report.result));
    if (report.outcome) line += " (" + std::string(to_string(*report.outcome)) + ")";
    line += " in " + std::to_string(report.elapsed.count()) + " ms";
    if (!report.error.empty()) line += ": " + report.error;
    const bool yielded = report.result == RunResult::released && report.error.rfind("yielded", 0) == 0;
    const LogLevel level = report.result == RunResult::failed                 ? LogLevel::error
                           : report.result == RunResult::completed || yielded ? LogLevel::info
                                                                              : LogLevel::warn;
    log(level, line);
    if (options.on_job_done) {
      try {
        options.on_job_done(report);
      } catch (...) {  // a callback must not take the worker down
      }
    }
  }

  RunResult settle_deferral(const pg::Lease& lease, const Deferral& deferral) {
    const auto in = [&](std::chrono::milliseconds delay) {
      return queue->options().clock->now() + std::chrono::duration_cast<std::chrono::microseconds>(delay);
    };
    const auto ok = [](bool kept) { return kept ? RunResult::released : RunResult::lease_lost; };
    switch (deferral.kind) {
      case Deferral::Kind::hand_back:
        // The holder keeps its job: its next heartbeat renews the lease.
        return ok(queue->hand_back(lease));
      case Deferral::Kind::release_later:
        // A holder whose token is unknown (a row from before lease tokens):
        // look again after a lease.
        return ok(queue->postpone(lease, in(queue->options().lease)));
      case Deferral::Kind::busy:
        return ok(queue->postpone(lease, in(options.busy_retry_delay)));
      case Deferral::Kind::release_now:
      case Deferral::Kind::none:
        break;
    }
    return ok(queue->release(lease));
  }

  void settle_error(const pg::Lease& lease, const Ending& ending, bool cancelled, JobReport& report) {
    const std::exception_ptr& error = ending.error;
    const std::string message = scrubbed(lease.job_id, describe(error));
    report.error = message;
    try {
      std::rethrow_exception(error);
    } catch (const RetryOrDie& e) {
      const auto decision = queue->retry_or_fail(lease, e.retries(), e.backoff(), message);
      report.result = decision == pg::RetryDecision::retried  ? RunResult::retried
                      : decision == pg::RetryDecision::failed ? RunResult::failed
                                                              : RunResult::lease_lost;
      return;
    } catch (const std::exception& e) {
      if (ending.cancel_asked && (cancelled || dynamic_cast<const Cancelled*>(&e) != nullptr)) {
        // Ends as cancelled, not failed; its checkpoints stay for the next enqueue.
        report.result = control->finish_cancelled(lease) ? RunResult::cancelled : RunResult::lease_lost;
        report.error = "cancelled by an operator; its checkpoints are kept";
        return;
      }
      if (cancelled || dynamic_cast<const Cancelled*>(&e) != nullptr) {
        // Stopped on purpose: its checkpoints stay, the next holder resumes.
        // A yield goes behind the jobs that arrive within the next slice too.
        const bool kept = ending.yielded && !stop_requested.load(std::memory_order_acquire)
                              ? queue->yield_to_waiting(lease, options.time_slice)
                              : queue->release(lease);
        report.result = kept ? RunResult::released : RunResult::lease_lost;
        report.error.clear();
        return;
      }
      const auto* err = dynamic_cast<const Error*>(&e);
      if (err != nullptr && err->retryable() && options.transient_retries > 0) {
        const auto decision =
            queue->retry_or_fail(lease, options.transient_retries,
                                 transient_delay(options.transient_backoff, lease.attempt), message);
        report.result = decision == pg::RetryDecision::retried  ? RunResult::retried
                        : decision == pg::RetryDecision::failed ? RunResult::failed
                                                                : RunResult::lease_lost;
        return;
      }
    } catch (...) {
    }
    report.result = queue->fail(lease, message) ? RunResult::failed : RunResult::lease_lost;
  }

  // Renews the leases of the running jobs every heartbeat interval and, with
  // time slicing, looks every 50 ms for a job to yield.
  void heartbeat_loop() {
    const auto interval = heartbeat_interval();
    const bool slicing = options.time_slice.count() > 0;
    const auto tick = slicing ? std::min(interval, std::chrono::milliseconds(50)) : interval;
    auto next_renewal = std::chrono::steady_clock::now() + interval;
    Fairness fairness;
    int failures = 0;
    while (true) {
      {
        std::unique_lock lock(mutex);
        if (cv.wait_for(lock, tick, [&] { return heartbeat_stop; })) return;
      }
      if (slicing) yield_for_waiting_jobs(fairness);
      if (std::chrono::steady_clock::now() < next_renewal) continue;
      next_renewal = std::chrono::steady_clock::now() + interval;
      renew_leases(failures);
    }
  }

  void renew_leases(int& failures) {
    std::vector<pg::Lease> snapshot;
    {
      std::lock_guard lock(mutex);
      for (const auto& [id, h] : held) snapshot.push_back(h.lease);
    }
    if (snapshot.empty()) return;
    std::vector<std::int64_t> still;
    try {
      // Only the leases this worker runs: never those a dead process left
      // under the same owner name.
      still = queue->renew(snapshot);
      failures = 0;
    } catch (const std::exception& e) {
      if (failures++ % 10 == 0)
        log(LogLevel::warn, "worker " + options.owner + ": lease renewal failed (" + e.what() + ")");
      return;
    }
    for (const auto& lease : snapshot) {
      const std::int64_t id = lease.job_id;
      if (std::binary_search(still.begin(), still.end(), id)) continue;
      std::shared_ptr<CancellationSource> source;
      {
        std::lock_guard lock(mutex);
        auto it = held.find(id);
        if (it == held.end() || it->second.lease.token != lease.token) continue;  // ended meanwhile
        lost.insert(id);
        source = it->second.source;
      }
      log(LogLevel::warn, "job " + std::to_string(id) + ": " + options.owner +
                              " lost its lease (another worker took the job over); cancelling this run");
      source->cancel();
    }
  }

  // A cancel request was sent (or the listener reconnected): the running
  // jobs an operator asked to stop are cancelled; they stop at a page
  // boundary, in-flight requests aborted, and settle() ends them as cancelled.
  void stop_cancelled_runs() {
    std::vector<pg::Lease> snapshot;
    {
      std::lock_guard lock(mutex);
      for (const auto& [id, h] : held) snapshot.push_back(h.lease);
    }
    if (snapshot.empty()) return;
    std::vector<std::int64_t> asked;
    try {
      asked = control->cancel_requested(snapshot);
    } catch (const std::exception& e) {
      log(LogLevel::warn, "worker " + options.owner + ": could not read cancel requests (" + e.what() + ")");
      return;
    }
    for (const std::int64_t id : asked) {
      std::shared_ptr<CancellationSource> source;
      {
        std::lock_guard lock(mutex);
        auto it = held.find(id);
        if (it == held.end() || !cancel_asked.insert(id).second) continue;
        source = it->second.source;
      }
      log(LogLevel::info, "job " + std::to_string(id) + ": cancelled by an operator; stopping at its next page");
      source->cancel();
    }
  }

  // When the database was last asked whether jobs wait.
  struct Fairness {
    std::uint64_t generation = 0;
    std::chrono::steady_clock::time_point asked{};
  };

  // Time slicing: when every runner is busy and some jobs ran longer than a
  // slice, asks how many jobs are due (only after a notification, or once a
  // slice) and cancels that many of the longest-running ones; they stop at a
  // page boundary and settle() gives them back to the queue.
  void yield_for_waiting_jobs(Fairness& fairness) {
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::pair<std::chrono::steady_clock::time_point, std::int64_t>> over;
    {
      std::lock_guard lock(mutex);
      if (stats.running < options.concurrency || stop_requested.load(std::memory_order_acquire)) return;
      for (const auto& [id, h] : held) {
        if (!h.yielding && now - h.started >= options.time_slice) over.emplace_back(h.started, id);
      }
    }
    if (over.empty()) return;
    const std::uint64_t generation = queue->wake_generation();
    if (generation == fairness.generation && now - fairness.asked < options.time_slice) return;
    fairness.generation = generation;
    fairness.asked = now;
    std::size_t due = 0;
    try {
      due = queue->due_count(over.size());
    } catch (const std::exception& e) {
      log(LogLevel::warn, "worker " + options.owner + ": could not look for waiting jobs (" + e.what() + ")");
      return;
    }
    std::sort(over.begin(), over.end());  // the longest-running first
    for (std::size_t i = 0; i < due && i < over.size(); ++i) {
      std::shared_ptr<CancellationSource> source;
      {
        std::lock_guard lock(mutex);
        auto it = held.find(over[i].second);
        if (it == held.end() || it->second.yielding) continue;
        it->second.yielding = true;
        source = it->second.source;
      }
      log(LogLevel::info, "job " + std::to_string(over[i].second) +
                              " ran longer than its time slice while jobs wait: it yields at its next page");
      source->cancel();
    }
  }
};

Worker::Worker(std::shared_ptr<const Registry> registry, ReplicatorContext context,
               std::shared_ptr<pg::PgJobQueue> queue, WorkerOptions options)
    : impl_(std::make_shared<Impl>()) {
  if (!registry) throw InvalidPrecondition("Worker needs a registry");
  if (!queue) throw InvalidPrecondition("Worker needs a job queue");
  if (!context.jobs) throw InvalidPrecondition("Worker needs a job store in its context");
  if (!context.replica) throw InvalidPrecondition("Worker needs a replica store in its context");
  if (options.concurrency < 1) {
    throw InvalidPrecondition("Worker concurrency must be at least 1, got " +
                              std::to_string(options.concurrency));
  }
  if (options.poll_interval.count() <= 0) throw InvalidPrecondition("Worker poll interval must be positive");
  if (options.time_slice.count() < 0) throw InvalidPrecondition("Worker time_slice must not be negative");
  if (options.busy_retry_delay.count() < 0)
    throw InvalidPrecondition("Worker busy_retry_delay must not be negative");
  if (options.owner.empty()) options.owner = default_worker_owner();
  context.queue = queue;
  if (!context.registry) context.registry = registry;
  impl_->logger =
      options.logger ? options.logger : (context.logger ? context.logger : std::make_shared<NullLogger>());
  if (!context.logger) context.logger = impl_->logger;
  impl_->registry = std::move(registry);
  impl_->queue = std::move(queue);
  impl_->options = std::move(options);
  impl_->control = std::make_shared<pg::PgJobControl>(impl_->queue, pg::PgJobControlOptions{impl_->logger, true});
  if (impl_->options.progress_interval.count() > 0) {
    auto sink = std::make_shared<pg::PgProgressSink>(impl_->control, impl_->options.owner, context.progress,
                                                     impl_->options.progress_interval, impl_->logger);
    // Final reports are written with the job's end (settle): no commit of their own.
    sink->hold_short_final_reports(true);
    impl_->progress = sink;
    context.progress = std::move(sink);
  }
  impl_->runner = std::make_unique<JobRunner>(impl_->registry, context);
  impl_->context = std::move(context);
}

Worker::~Worker() {
  try {
    stop();
  } catch (...) {
  }
}

void Worker::start() {
  std::lock_guard stop_lock(impl_->stop_mutex);
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->phase != Impl::Phase::created)
      throw InvalidPrecondition("Worker::start called twice or after stop");
    impl_->phase = Impl::Phase::started;
  }
  Impl* impl = impl_.get();
  if (impl_->options.webhook_inbox) {
    WebhookInboxProcessorOptions inbox_options;
    inbox_options.owner = impl_->options.owner;
    inbox_options.poll_interval = impl_->options.poll_interval;
    inbox_options.logger = impl_->logger;
    impl_->inbox_processor =
        std::make_unique<WebhookInboxProcessor>(impl_->options.webhook_inbox, impl_->context, inbox_options);
    impl_->inbox_thread = std::thread([impl] { impl->inbox_processor->run(impl->takes_stop.token()); });
  }
  impl_->control->watch_cancels([impl] { impl->stop_cancelled_runs(); });
  impl_->heartbeat = std::thread([impl] { impl->heartbeat_loop(); });
  for (int i = 0; i < impl_->options.concurrency; ++i) {
    impl_->runners.emplace_back([impl, i] { impl->runner_loop(i); });
  }
  impl_->log(LogLevel::info,
             "worker " + impl_->options.owner + " started: " + std::to_string(impl_->options.concurrency) +
                 " concurrent jobs, lease " + std::to_string(impl_->queue->options().lease.count()) + " ms");
}

void Worker::request_stop() noexcept {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stop_requested.store(true, std::memory_order_release);
  }
  impl_->cv.notify_all();
  impl_->takes_stop.cancel();
}

bool Worker::wait_for_stop_request(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->cv.wait_for(lock, timeout,
                            [&] { return impl_->stop_requested.load(std::memory_order_acquire); });
}

void Worker::stop(std::chrono::milliseconds grace) {
  std::lock_guard stop_lock(impl_->stop_mutex);
  request_stop();
  {
    std::unique_lock lock(impl_->mutex);
    if (impl_->phase != Impl::Phase::started) {
      impl_->phase = Impl::Phase::stopped;
      return;
    }
    if (grace.count() > 0) impl_->cv.wait_for(lock, grace, [&] { return impl_->stats.running == 0; });
  }
  impl_->jobs_stop.cancel();
  for (auto& t : impl_->runners) {
    if (t.joinable()) t.join();
  }
  impl_->runners.clear();
  impl_->control->stop_watching();
  if (impl_->inbox_thread.joinable()) impl_->inbox_thread.join();
  {
    std::lock_guard lock(impl_->mutex);
    impl_->heartbeat_stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->heartbeat.joinable()) impl_->heartbeat.join();
  {
    std::lock_guard lock(impl_->mutex);
    impl_->phase = Impl::Phase::stopped;
  }
  const auto s = stats();
  impl_->log(LogLevel::info, "worker " + impl_->options.owner + " stopped: " + std::to_string(s.completed) +
                                 " completed, " + std::to_string(s.retried) + " retried, " +
                                 std::to_string(s.failed) + " failed, " + std::to_string(s.released) +
                                 " released");
}

bool Worker::running() const noexcept {
  std::lock_guard lock(impl_->mutex);
  return impl_->phase == Impl::Phase::started;
}

const std::string& Worker::owner() const noexcept {
  return impl_->options.owner;
}

WorkerStats Worker::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

}  // namespace webhookdb::jobs
