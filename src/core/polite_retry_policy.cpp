// The polite retry policy: exponential backoff with full jitter and a cap,
// Retry-After honoured on 429 and 503, 401/403 (and other 4xx but 408/429)
// never retried, and a budget for the total wait of one page's retries.

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "webhookdb/retry_after.hpp"
#include "webhookdb/retry_policy.hpp"

namespace webhookdb {
namespace {

using std::chrono::milliseconds;

// RetryPolicy is stateless (wait_before_retry(error, attempt)), but a total
// wait budget needs the waits already given in the same retry loop. A page
// loop runs its attempts one after another on one thread, so the last answer
// is remembered per thread: it also makes a repeated question about the same
// failure (same error object, same attempt) get the same answer, jitter
// included. The record is keyed by the policy's options, not its address, so
// a replicator that returns a new polite_retry_policy() on every call still
// gets consistent answers. When the history is unknown (attempt n > 1 first
// seen on this thread) every earlier wait is assumed to have reached its
// backoff ceiling.
bool same_options(const PoliteRetryOptions& a, const PoliteRetryOptions& b) {
  return a.max_attempts == b.max_attempts && a.base == b.base && a.cap == b.cap &&
         a.max_total_wait == b.max_total_wait && a.seed == b.seed;
}

struct LastAnswer {
  bool valid = false;
  PoliteRetryOptions policy;
  // The failure asked about: an exception's address can be reused by the next
  // one, so its text and Retry-After are part of its identity.
  const void* error = nullptr;
  std::string error_text;
  std::optional<std::string> error_retry_after;
  int attempt = 0;
  milliseconds spent_before{0};  // waits given before this attempt's
  std::optional<milliseconds> wait;
};
thread_local LastAnswer t_last;

class PoliteRetryPolicy final : public RetryPolicy {
 public:
  explicit PoliteRetryPolicy(PoliteRetryOptions options) : options_(options) {
    options_.max_attempts = std::max(1, options_.max_attempts);
    options_.base = std::max(milliseconds(1), options_.base);
    options_.cap = std::max(options_.base, options_.cap);
  }

  [[nodiscard]] int max_attempts() const override { return options_.max_attempts; }

  [[nodiscard]] std::optional<milliseconds> wait_before_retry(const HttpBaseError& error,
                                                              int attempt) const override {
    std::string text = error.what();
    const auto* http = dynamic_cast<const HttpError*>(&error);
    auto header = http != nullptr ? http->header("Retry-After") : std::nullopt;
    if (t_last.valid && same_options(t_last.policy, options_) && t_last.error == &error &&
        t_last.attempt == attempt && t_last.error_text == text && t_last.error_retry_after == header) {
      return t_last.wait;
    }
    const milliseconds spent = spent_before(attempt);
    const auto wait = decide(error, attempt, spent);
    t_last = LastAnswer{true, options_, &error, std::move(text), std::move(header), attempt, spent, wait};
    return wait;
  }

 private:
  [[nodiscard]] std::optional<milliseconds> decide(const HttpBaseError& error, int attempt, milliseconds spent) const {
    if (attempt < 1 || attempt >= options_.max_attempts) return std::nullopt;
    const auto* http = dynamic_cast<const HttpError*>(&error);
    if (http != nullptr && (http->status() == 401 || http->status() == 403)) return std::nullopt;
    // HttpError: 408, 429 and 5xx only; timeouts and connection errors always.
    if (!error.retryable()) return std::nullopt;

    std::optional<milliseconds> wait;
    if (http != nullptr && (http->status() == 429 || http->status() == 503)) {
      // The server said when: wait exactly that, even past the cap (the
      // budget below still bounds it).
      const Timestamp now = options_.clock ? options_.clock->now()
                                           : std::chrono::time_point_cast<std::chrono::microseconds>(
                                                 std::chrono::system_clock::now());
      wait = retry_after(error, now);
    }
    if (!wait) wait = jitter(attempt);
    if (spent + *wait > options_.max_total_wait) return std::nullopt;
    return wait;
  }

  // min(cap, base * 2^(attempt-1)).
  [[nodiscard]] milliseconds ceiling(int attempt) const {
    const int doublings = std::clamp(attempt - 1, 0, 40);
    const double ms = static_cast<double>(options_.base.count()) * static_cast<double>(1ULL << doublings);
    if (ms >= static_cast<double>(options_.cap.count())) return options_.cap;
    return milliseconds(static_cast<milliseconds::rep>(ms));
  }

  // Full jitter: uniform in [0, ceiling].
  [[nodiscard]] milliseconds jitter(int attempt) const {
    std::uniform_int_distribution<milliseconds::rep> pick(0, ceiling(attempt).count());
    std::lock_guard lock(rng_mutex_);
    // Made on first use: replicators build a policy per page, and seeding a
    // 2.5 KB generator from std::random_device costs more than the page's
    // other bookkeeping.
    if (!rng_)
      rng_ = std::make_unique<std::mt19937_64>(options_.seed != 0 ? options_.seed : std::random_device{}());
    return milliseconds(pick(*rng_));
  }

  [[nodiscard]] milliseconds spent_before(int attempt) const {
    if (attempt <= 1) return milliseconds(0);
    if (t_last.valid && same_options(t_last.policy, options_) && t_last.attempt == attempt - 1) {
      return t_last.spent_before + t_last.wait.value_or(milliseconds(0));
    }
    milliseconds total{0};
    for (int k = 1; k < attempt; ++k) total += ceiling(k);
    return total;
  }

  PoliteRetryOptions options_;
  mutable std::mutex rng_mutex_;
  mutable std::unique_ptr<std::mt19937_64> rng_;
};

}  // namespace

std::shared_ptr<const RetryPolicy> polite_retry_policy(PoliteRetryOptions options) {
  return std::make_shared<PoliteRetryPolicy>(options);
}

}  // namespace webhookdb
