#include "webhookdb/backfiller.hpp"

#include <atomic>
#include <mutex>

namespace webhookdb {

struct Backfiller::Counters {
  mutable std::mutex mutex;
  BackfillProgress progress;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

Backfiller::Backfiller() : counters_(std::make_unique<Counters>()) {}
Backfiller::~Backfiller() = default;

void Backfiller::set_runtime(BackfillRuntime runtime) { runtime_ = std::move(runtime); }

BackfillProgress Backfiller::progress() const {
  std::lock_guard lock(counters_->mutex);
  return counters_->progress;
}

void Backfiller::count_written(std::uint64_t rows, std::uint64_t changed) {
  std::lock_guard lock(counters_->mutex);
  counters_->progress.rows_written += rows;
  counters_->progress.rows_changed += changed;
}

std::shared_ptr<const RetryPolicy> Backfiller::retry_policy() const {
  static const auto policy = webhookdb_retry_policy(3);
  return policy;
}

int Backfiller::max_backfill_retry_attempts() const { return retry_policy()->max_attempts(); }

void Backfiller::wait_for_retry_attempt(int attempt, const HttpBaseError& error) {
  auto wait = retry_policy()->wait_before_retry(error, attempt);
  if (!wait) wait = std::chrono::seconds(attempt);
  auto sleeper = runtime_.sleeper ? runtime_.sleeper : real_sleeper();
  sleeper->sleep_for(*wait, runtime_.cancel);
}

void Backfiller::give_up(std::exception_ptr error) { std::rethrow_exception(std::move(error)); }

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

BackfillPage Backfiller::fetch_with_retry(const std::string& token, const std::optional<Timestamp>& last_backfilled) {
  const int max_attempts = std::max(1, max_backfill_retry_attempts());
  const auto policy = retry_policy();
  for (int attempt = 1;; ++attempt) {
    runtime_.cancel.throw_if_cancelled();
    try {
      return fetch_backfill_page(token, last_backfilled);
    } catch (const HttpBaseError& e) {
      const auto* http = dynamic_cast<const HttpError*>(&e);
      const bool unauthorized = http != nullptr && http->status() == 401;
      if (unauthorized || attempt >= max_attempts || runtime_.cancel.cancelled() ||
          !policy->wait_before_retry(e, attempt)) {
        give_up(std::current_exception());
      }
      if (runtime_.logger) {
        runtime_.logger->log(LogLevel::warn, "backfill " + runtime_.integration + ": attempt " + std::to_string(attempt) +
                                                 " failed (" + e.what() + "), retrying");
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

void Backfiller::backfill(const std::optional<Timestamp>& last_backfilled) {
  {
    std::lock_guard lock(counters_->mutex);
    counters_->progress.job_id = runtime_.job_id;
    counters_->progress.integration = runtime_.integration;
    counters_->progress.backfiller = checkpoint_key_;
    counters_->started = std::chrono::steady_clock::now();
  }
  finished_ = false;
  std::string token = runtime_.start_token;
  while (true) {
    runtime_.cancel.throw_if_cancelled();
    current_token_ = token;
    at_page_boundary_ = false;
    BackfillPage page = fetch_with_retry(token, last_backfilled);
    if (page.items.is_null()) {
      throw InvalidPostcondition("backfill page is missing (null), the response probably lacks a key" +
                                 std::string(runtime_.integration.empty() ? "" : " (integration " + runtime_.integration + ")"));
    }
    if (!page.items.is_array()) {
      throw InvalidPostcondition("backfill page items must be an array, got " + std::string(page.items.type_name()));
    }
    next_token_ = page.next;
    for (const auto& item : page.items) handle_item(item);
    at_page_boundary_ = true;
    {
      std::lock_guard lock(counters_->mutex);
      ++counters_->progress.pages;
      counters_->progress.items += page.items.size();
      counters_->progress.bytes += page.bytes;
    }
    if (page.next.empty()) break;
    // A checkpoint only means something once the page's rows are durable.
    if (runtime_.checkpoints && !has_pending_inserts()) {
      if (auto cp = checkpoint_here()) flush_pending_inserts(cp);
    }
    if (page.next == token) {
      throw InvariantViolation("pagination token repeated ('" + token.substr(0, 64) +
                               "'): following it would loop forever");
    }
    token = std::move(page.next);
    report(false);
  }
  finished_ = true;
  flush_pending_inserts(checkpoint_here());
  report(true);
}

}  // namespace webhookdb
