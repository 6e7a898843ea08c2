#include "webhookdb/backfiller.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "webhookdb/rate_limiter.hpp"

namespace webhookdb {

struct Backfiller::Counters {
  mutable std::mutex mutex;
  BackfillProgress progress;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

Backfiller::Backfiller() : counters_(std::make_unique<Counters>()) {}
Backfiller::~Backfiller() = default;

void Backfiller::set_runtime(BackfillRuntime runtime) {
  runtime_ = std::move(runtime);
  active_cancel_ = runtime_.cancel;
}

void Backfiller::set_limits(BackfillLimits limits) {
  if (limits.max_pages == 0 || limits.max_consecutive_empty_pages == 0) {
    throw InvalidPrecondition("backfill limits must be positive (max_pages " +
                              std::to_string(limits.max_pages) + ", max_consecutive_empty_pages " +
                              std::to_string(limits.max_consecutive_empty_pages) + ")");
  }
  limits_ = limits;
}

BackfillProgress Backfiller::progress() const {
  std::lock_guard lock(counters_->mutex);
  return counters_->progress;
}

// rows written, then those changed (changed <= rows), as UpsertedRows:
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters)
void Backfiller::count_written(std::uint64_t rows, std::uint64_t changed) {
  std::lock_guard lock(counters_->mutex);
  counters_->progress.rows_written += rows;
  counters_->progress.rows_changed += changed;
}

std::shared_ptr<const RetryPolicy> Backfiller::retry_policy() const {
  static const auto policy = webhookdb_retry_policy(3);
  return policy;
}

int Backfiller::max_backfill_retry_attempts() const {
  return retry_policy()->max_attempts();
}

void Backfiller::wait_for_retry_attempt(int attempt, const HttpBaseError& error) {
  auto wait = retry_policy()->wait_before_retry(error, attempt);
  if (!wait) wait = std::chrono::seconds(attempt);
  auto sleeper = runtime_.sleeper ? runtime_.sleeper : real_sleeper();
  sleeper->sleep_for(*wait, active_cancel_);
}

void Backfiller::give_up(std::exception_ptr error) {
  std::rethrow_exception(std::move(error));
}

void Backfiller::flush_pending_inserts(const std::optional<Checkpoint>& /*checkpoint*/) {}

std::optional<Checkpoint> Backfiller::checkpoint_here() const {
  if (!runtime_.checkpoints || runtime_.job_id == 0) return std::nullopt;
  Checkpoint cp;
  cp.job_id = runtime_.job_id;
  cp.backfiller_key = checkpoint_key_;
  if (finished_) {
    cp.finished = true;
  } else {
    cp.next_token = at_page_boundary_ ? next_token_ : current_token_;
  }
  return cp;
}

BackfillPage Backfiller::fetch_with_retry(const std::string& token,
                                          const std::optional<Timestamp>& last_backfilled) {
  const int max_attempts = std::max(1, max_backfill_retry_attempts());
  const auto policy = retry_policy();
  for (int attempt = 1;; ++attempt) {
    active_cancel_.throw_if_cancelled();
    try {
      return fetch_backfill_page(token, last_backfilled, active_cancel_);
    } catch (const HttpBaseError& e) {
      const auto* http = dynamic_cast<const HttpError*>(&e);
      const bool unauthorized = http != nullptr && http->status() == 401;
      if (unauthorized || attempt >= max_attempts || active_cancel_.cancelled() ||
          !policy->wait_before_retry(e, attempt)) {
        give_up(std::current_exception());
      }
      if (runtime_.logger) {
        runtime_.logger->log(LogLevel::warn, "backfill " + runtime_.integration + ": attempt " +
                                                 std::to_string(attempt) + " failed (" + e.what() +
                                                 "), retrying");
      }
      {
        std::lock_guard lock(counters_->mutex);
        ++counters_->progress.retries;
      }
      wait_for_retry_attempt(attempt, e);
    }
  }
}

void Backfiller::report(bool done) {
  if (!runtime_.progress) return;
  BackfillProgress snapshot;
  {
    std::lock_guard lock(counters_->mutex);
    counters_->progress.done = done;
    counters_->progress.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - counters_->started);
    snapshot = counters_->progress;
  }
  runtime_.progress->on_progress(snapshot);
}

namespace {
void check_page(const BackfillPage& page, const std::string& integration) {
  if (page.items.is_null()) {
    std::string message = "backfill page is missing (null), the response probably lacks a key";
    if (!page.items_path.empty()) message += ": no array at '" + page.items_path + "'";
    if (!page.url.empty()) message += " in the response of " + redact_url(page.url);
    if (!integration.empty()) message += " (integration " + integration + ")";
    throw InvalidPostcondition(message);
  }
  if (!page.items.is_array()) {
    throw InvalidPostcondition("backfill page items must be an array, got " +
                               std::string(page.items.type_name()));
  }
}

// A token may be a next-page URL carrying an access token: redact first.
std::string shown(const std::string& token) {
  return redact_url(token).substr(0, 64);
}

std::string walk_name(const std::string& integration) {
  return integration.empty() ? "backfill" : "backfill of " + integration;
}

void check_token(const std::string& token, const std::string& next) {
  if (!next.empty() && next == token) {
    // A token may be a next-page URL carrying an access token: redact first.
    throw InvariantViolation("pagination token repeated ('" + redact_url(token).substr(0, 64) +
                             "'): following it would loop forever");
  }
}
}  // namespace

void Backfiller::count_page(bool empty, const std::string& next) {
  ++pages_fetched_;
  empty_run_ = empty ? empty_run_ + 1 : 0;
  if (next.empty()) return;
  if (empty_run_ >= limits_.max_consecutive_empty_pages) {
    throw InvariantViolation(walk_name(runtime_.integration) + ": " + std::to_string(empty_run_) +
                             " consecutive empty pages, each with a new pagination token (the last '" +
                             shown(next) + "'): the API does not end the walk; stopping it " +
                             "(BackfillLimits::max_consecutive_empty_pages)");
  }
  if (pages_fetched_ >= limits_.max_pages) {
    const std::string budget = std::to_string(limits_.max_pages);
    throw InvariantViolation(walk_name(runtime_.integration) + ": the page budget of " + budget +
                             " pages is spent and the API still names a next page ('" + shown(next) +
                             "'); stopping the walk (BackfillLimits::max_pages)");
  }
}

bool Backfiller::consume_page(BackfillPage& page, const std::string& token) {
  check_page(page, runtime_.integration);
  current_token_ = token;
  next_token_ = page.next;
  at_page_boundary_ = false;
  for (auto& item : page.items) take_item(std::move(item));
  at_page_boundary_ = true;
  {
    std::lock_guard lock(counters_->mutex);
    ++counters_->progress.pages;
    counters_->progress.items += page.items.size();
    counters_->progress.bytes += page.bytes;
  }
  if (page.next.empty()) return false;
  // A checkpoint only means something once the page's rows are durable.
  if (runtime_.checkpoints && !has_pending_inserts()) {
    if (auto cp = checkpoint_here()) flush_pending_inserts(cp);
  }
  report(false);
  return true;
}

void Backfiller::run_serial(const std::optional<Timestamp>& last_backfilled) {
  std::string token = runtime_.start_token;
  while (true) {
    active_cancel_.throw_if_cancelled();
    BackfillPage page = fetch_with_retry(token, last_backfilled);
    check_page(page, runtime_.integration);
    check_token(token, page.next);
    std::string next = page.next;
    const bool empty = page.items.empty();
    if (!consume_page(page, token)) break;
    // After the page is handled: what the budget allowed is written.
    count_page(empty, next);
    token = std::move(next);
  }
}

void Backfiller::run_pipelined(const std::optional<Timestamp>& last_backfilled) {
  struct Slot {
    BackfillPage page;
    std::string token;
    std::exception_ptr error;
  };
  // Shared with the cancellation callback, which may outlive this frame.
  struct Shared {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<Slot> queue;
    bool producer_done = false;
  };
  auto shared = std::make_shared<Shared>();
  CancellationSource stop(runtime_.cancel);
  active_cancel_ = stop.token();
  const std::size_t depth = std::max<std::size_t>(1, pipeline_depth());
  // Wakes the producer if it waits for room when the run is cancelled.
  const auto wake = active_cancel_.subscribe([shared] {
    { std::lock_guard lock(shared->mutex); }
    shared->cv.notify_all();
  });

  std::thread producer([&, shared, lane = QuotaLaneScope::current()] {
    const QuotaLaneScope lane_scope(lane);  // fetches charge the lane of the thread that started the run
    std::string token = runtime_.start_token;
    try {
      while (true) {
        BackfillPage page = fetch_with_retry(token, last_backfilled);
        check_page(page, runtime_.integration);
        check_token(token, page.next);
        std::string next = page.next;
        const bool empty = page.items.empty();
        {
          std::unique_lock lock(shared->mutex);
          shared->cv.wait(lock, [&] { return shared->queue.size() < depth || active_cancel_.cancelled(); });
          if (active_cancel_.cancelled()) break;
          shared->queue.push_back(Slot{std::move(page), token, nullptr});
        }
        shared->cv.notify_all();
        if (next.empty()) break;
        count_page(empty, next);  // the page is queued: the consumer handles it first
        token = std::move(next);
      }
    } catch (...) {
      std::lock_guard lock(shared->mutex);
      shared->queue.push_back(Slot{{}, token, std::current_exception()});
    }
    {
      std::lock_guard lock(shared->mutex);
      shared->producer_done = true;
    }
    shared->cv.notify_all();
  });

  auto finish = [&] {
    active_cancel_.unsubscribe(wake);
    producer.join();
    active_cancel_ = runtime_.cancel;
  };
  try {
    while (true) {
      Slot slot;
      {
        std::unique_lock lock(shared->mutex);
        shared->cv.wait(lock, [&] { return !shared->queue.empty() || shared->producer_done; });
        if (shared->queue.empty()) break;
        slot = std::move(shared->queue.front());
        shared->queue.pop_front();
      }
      shared->cv.notify_all();
      if (slot.error) std::rethrow_exception(slot.error);
      if (!consume_page(slot.page, slot.token)) break;
    }
  } catch (...) {
    stop.cancel();
    finish();
    throw;
  }
  finish();
}

void Backfiller::backfill(const std::optional<Timestamp>& last_backfilled) {
  {
    std::lock_guard lock(counters_->mutex);
    counters_->progress.job_id = runtime_.job_id;
    counters_->progress.integration = runtime_.integration;
    counters_->progress.backfiller = checkpoint_key_;
    counters_->started = std::chrono::steady_clock::now();
  }
  finished_ = false;
  pages_fetched_ = 0;
  empty_run_ = 0;
  active_cancel_ = runtime_.cancel;
  try {
    if (pipelined()) {
      run_pipelined(last_backfilled);
    } else {
      run_serial(last_backfilled);
    }
    runtime_.cancel.throw_if_cancelled();
    finished_ = true;
    flush_pending_inserts(checkpoint_here());
    finish_writes(true);
  } catch (...) {
    // Nothing may still be writing once backfill() returns or throws: the
    // caller may retry the job, which reloads the checkpoints.
    finish_writes(false);
    throw;
  }
  report(true);
}

}  // namespace webhookdb
