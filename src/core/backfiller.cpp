#include "webhookdb/backfiller.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "webhookdb/rate_limiter.hpp"

namespace webhookdb {

namespace {
thread_local bool page_ahead_fetch = false;

// Marks this thread's fetch as one of a known range while it lives.
class PageAheadScope {
 public:
  explicit PageAheadScope(bool ahead) noexcept : previous_(page_ahead_fetch) { page_ahead_fetch = ahead; }
  ~PageAheadScope() { page_ahead_fetch = previous_; }
  PageAheadScope(const PageAheadScope&) = delete;
  PageAheadScope& operator=(const PageAheadScope&) = delete;

 private:
  bool previous_;
};
}  // namespace

bool fetching_page_ahead() noexcept { return page_ahead_fetch; }

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

void Backfiller::save_before_failure() {
  // Only rows of pages handled in this run are pending: without them there is
  // nothing to save, and a checkpoint here could move a resumed job back.
  if (!runtime_.checkpoints || !has_pending_inserts()) return;
  try {
    flush_pending_inserts(checkpoint_here());
    finish_writes(true);
  } catch (const std::exception& e) {
    if (runtime_.logger) {
      runtime_.logger->log(LogLevel::warn, walk_name(runtime_.integration) +
                                               ": writing the pages before the failed one failed too (" +
                                               e.what() + "); they are fetched again on resume");
    }
  }
}

// The scheduler of run_concurrent. Pages are numbered in walk order (seq);
// fetchers take the next seq whose token is known: from the PagesAhead range
// when it covers it, else from the `next` of the page before it once that is
// fetched. The consumer takes the pages in seq order. Everything under mutex.
// Fetchers and the consumer wait on condition variables of their own, and a
// fetcher is woken only when there is a page to fetch, one at a time (each
// one that takes a page wakes the next if another can start): with one
// variable for all, each page's four notifications woke every idle fetcher
// (16 at 16 pages at once) to find nothing to do.
namespace {
struct ConcurrentWalk {
  struct Slot {
    std::string token;
    bool ahead = false;  // from the range, not from the page before it
    bool done = false;
    std::uint64_t generation = 0;
    BackfillPage page;
    std::exception_ptr error;
    // The page passed a limit (BackfillLimits): thrown once it is handled.
    std::exception_ptr error_after;
  };
  struct Task {
    std::uint64_t seq = 0;
    std::uint64_t generation = 0;
    std::string token;
    bool ahead = false;
  };

  std::mutex mutex;
  std::condition_variable fetchers_cv;  // a page may be taken, or the walk stopped
  std::condition_variable consumer_cv;  // the page the consumer waits for is done
  std::map<std::uint64_t, Slot> slots;  // scheduled and not consumed yet
  std::uint64_t consumed = 0;           // the seq the consumer waits for
  std::uint64_t next_seq = 0;           // the next seq to schedule
  std::uint64_t counted = 0;            // the next seq to count against the limits
  std::optional<std::string> follow;    // the token of next_seq when it is not in the range
  std::shared_ptr<const PagesAhead> range;
  std::uint64_t range_base = 0;  // the seq of range->token(0)
  std::uint64_t generation = 0;  // bumped when scheduled pages are discarded
  bool serial_only = false;      // a page disagreed with the range: no ranges any more
  bool range_seen = false;       // a page brought a range: the other fetchers may start
  bool end = false;              // no page after next_seq - 1
  bool failed = false;           // a fetch failed: schedule nothing more
  bool stopped = false;
  std::size_t window = 1;  // pages scheduled ahead of the consumer at most

  [[nodiscard]] bool in_range(std::uint64_t seq) const {
    return range && seq >= range_base && seq - range_base < range->count;
  }

  // take() would give a task.
  [[nodiscard]] bool can_take() const {
    return !stopped && !end && !failed && next_seq < consumed + window && (in_range(next_seq) || follow);
  }

  // Wakes everyone: the walk stopped or was cancelled. Takes the lock first so
  // a waiter between its check and its sleep is not missed.
  void wake_all() {
    { std::lock_guard lock(mutex); }
    fetchers_cv.notify_all();
    consumer_cv.notify_all();
  }

  // The next fetch, if one may start now.
  std::optional<Task> take() {
    if (stopped || end || failed || next_seq >= consumed + window) return std::nullopt;
    Task task{next_seq, generation, {}, false};
    if (in_range(next_seq)) {
      task.token = range->token(next_seq - range_base);
      task.ahead = true;
    } else if (follow) {
      task.token = std::move(*follow);
      follow.reset();
    } else {
      return std::nullopt;  // waits for the page before it
    }
    slots[next_seq] = Slot{task.token, task.ahead, false, generation, {}, nullptr};
    ++next_seq;
    return task;
  }

  // A fetch finished; dropped when its page was discarded meanwhile. `count`
  // is Backfiller::count_page: the pages fetched are counted in page order as
  // soon as they are, so a limit stops the fetching as the serial loop does.
  void finish(const Task& task, BackfillPage page, std::exception_ptr error, bool ranges,
              const std::function<void(bool, const std::string&)>& count) {
    auto it = slots.find(task.seq);
    if (stopped || it == slots.end() || it->second.generation != task.generation) return;
    Slot& slot = it->second;
    slot.done = true;
    if (error) {
      slot.error = std::move(error);
      failed = true;
      return;
    }
    slot.page = std::move(page);
    for (auto c = slots.find(counted); c != slots.end() && c->first == counted && c->second.done && !c->second.error;
         c = slots.find(counted)) {
      ++counted;
      try {
        count(c->second.page.items.empty(), c->second.page.next);
      } catch (...) {
        c->second.error_after = std::current_exception();
        failed = true;
        return;
      }
    }
    const BackfillPage& fetched = slot.page;
    // The page after this one is not in the range: this page names it.
    if (task.seq + 1 == next_seq && !in_range(task.seq + 1)) {
      if (fetched.next.empty()) {
        end = true;
      } else if (ranges && !serial_only && fetched.ahead && fetched.ahead->count > 0 && fetched.ahead->token &&
                 fetched.ahead->token(0) == fetched.next) {
        range = fetched.ahead;
        range_base = task.seq + 1;
        range_seen = true;
      } else {
        follow = fetched.next;
      }
    }
  }

  // One fetching thread: takes the next page to fetch, fetches it without the
  // lock, hands it in; until the walk is stopped.
  void fetch_loop(const std::function<BackfillPage(const std::string&)>& fetch, bool ranges,
                  const std::function<void(bool, const std::string&)>& count) {
    std::unique_lock lock(mutex);
    while (true) {
      std::optional<Task> task;
      fetchers_cv.wait(lock, [&] { return stopped || (task = take()).has_value(); });
      if (!task) return;
      const bool another = can_take();
      lock.unlock();
      if (another) fetchers_cv.notify_one();  // another fetcher may start too
      BackfillPage page;
      std::exception_ptr error;
      try {
        const PageAheadScope ahead(task->ahead);
        page = fetch(task->token);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      finish(*task, std::move(page), std::move(error), ranges, count);
      // This thread takes the next page itself (and wakes another fetcher if
      // a second one can start); the consumer wakes only for its page.
      if (task->seq == consumed) consumer_cv.notify_one();
    }
  }

  // The consumer's next page, in order; throws Cancelled when `cancel` fires
  // first. `scheduled_next`: the token fetched after it, when from the range.
  std::pair<std::uint64_t, Slot> next_in_order(const CancellationToken& cancel,
                                               std::optional<std::string>& scheduled_next) {
    std::unique_lock lock(mutex);
    consumer_cv.wait(lock, [&] {
      const auto it = slots.find(consumed);
      return (it != slots.end() && it->second.done) || cancel.cancelled();
    });
    const auto it = slots.find(consumed);
    if (it == slots.end() || !it->second.done) cancel.throw_if_cancelled();
    const std::uint64_t seq = consumed;
    Slot slot = std::move(it->second);
    slots.erase(it);
    ++consumed;
    scheduled_next.reset();
    if (in_range(seq + 1)) scheduled_next = range->token(seq + 1 - range_base);
    const bool room = can_take();
    lock.unlock();
    if (room) fetchers_cv.notify_one();  // room in the window
    return {seq, std::move(slot)};
  }

  [[nodiscard]] bool wants_fetchers() {
    std::lock_guard lock(mutex);
    return range_seen;
  }

  // The consumer found that page `seq` names another next page than the one
  // scheduled after it: drop what was scheduled and follow the page.
  void discard_after(std::uint64_t seq, const std::string& next) {
    ++generation;
    slots.erase(slots.upper_bound(seq), slots.end());
    counted = std::min(counted, seq + 1);  // the pages fetched again are counted again
    range.reset();
    serial_only = true;
    failed = false;
    end = next.empty();
    next_seq = seq + 1;
    if (next.empty()) {
      follow.reset();
    } else {
      follow = next;
    }
  }
};
}  // namespace

void Backfiller::run_concurrent(const std::optional<Timestamp>& last_backfilled, std::size_t fetchers) {
  auto walk = std::make_shared<ConcurrentWalk>();
  walk->window = fetchers + std::max<std::size_t>(1, pipeline_depth());
  walk->follow = runtime_.start_token;
  CancellationSource stop(runtime_.cancel);
  active_cancel_ = stop.token();
  const auto wake = active_cancel_.subscribe([walk] { walk->wake_all(); });

  const auto fetch_loop = [this, walk, &last_backfilled, fetchers, lane = QuotaLaneScope::current()] {
    const QuotaLaneScope lane_scope(lane);  // fetches charge the lane of the thread that started the run
    walk->fetch_loop([&](const std::string& token) { return fetch_with_retry(token, last_backfilled); },
                     fetchers > 1, [this](bool empty, const std::string& next) { count_page(empty, next); });
  };
  std::vector<std::thread> threads;
  threads.reserve(fetchers);
  const auto finish = [&] {
    {
      std::lock_guard lock(walk->mutex);
      walk->stopped = true;
    }
    walk->wake_all();
    active_cancel_.unsubscribe(wake);
    for (auto& t : threads) t.join();
    active_cancel_ = runtime_.cancel;
  };
  try {
    // One thread fetches until a page brings a known range: a cursor walk,
    // or a job of one page, never starts the others (thread starts are a
    // good part of a tiny job's cost, issue 18).
    threads.emplace_back(fetch_loop);
    std::optional<std::string> scheduled_next;
    while (true) {
      auto [seq, slot] = walk->next_in_order(active_cancel_, scheduled_next);
      if (threads.size() < fetchers && walk->wants_fetchers()) {
        while (threads.size() < fetchers) threads.emplace_back(fetch_loop);
      }
      if (slot.error) {
        // Pages before the failed one are written and checkpointed; the
        // job fails (or is retried) with the page's own error.
        if (!active_cancel_.cancelled()) save_before_failure();
        std::rethrow_exception(slot.error);
      }
      check_page(slot.page, runtime_.integration);
      check_token(slot.token, slot.page.next);
      if (scheduled_next && !slot.page.next.empty() && slot.page.next != *scheduled_next) {
        // The API names another page than the range said (a count that
        // changed, a URL written differently): follow the API, one page at a time.
        if (runtime_.logger) {
          runtime_.logger->log(LogLevel::warn, walk_name(runtime_.integration) + ": the page after '" +
                                                   shown(slot.token) + "' is '" + shown(slot.page.next) +
                                                   "', not the expected '" + shown(*scheduled_next) +
                                                   "'; fetching one page at a time from here");
        }
        {
          std::lock_guard lock(walk->mutex);
          walk->discard_after(seq, slot.page.next);
        }
        walk->fetchers_cv.notify_all();
      }
      // A page of the range that names no next page ends the walk (the count
      // shrank): the pages fetched after it are dropped with the run.
      if (!consume_page(slot.page, slot.token)) break;
      if (slot.error_after) std::rethrow_exception(slot.error_after);
    }
  } catch (...) {
    stop.cancel();
    finish();
    throw;
  }
  stop.cancel();  // fetches still running past the end are not needed
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
    if (pipelined() && runtime_.concurrent_pages > 1) {
      run_concurrent(last_backfilled, runtime_.concurrent_pages);
    } else if (pipelined()) {
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
