#pragma once
// How the page loop retries failed fetches.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "webhookdb/clock.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"

namespace webhookdb {

class WEBHOOKDB_EXPORT RetryPolicy {
 public:
  virtual ~RetryPolicy() = default;
  // Total attempts, the first included.
  [[nodiscard]] virtual int max_attempts() const = 0;
  // After attempt `attempt` (1-based) failed with `error`: how long to wait
  // before the next one, or nullopt to give up now.
  [[nodiscard]] virtual std::optional<std::chrono::milliseconds> wait_before_retry(
      const HttpBaseError& error, int attempt) const = 0;
};

// WebhookDB's: `attempts` attempts, waits of 1 s, 2 s, ... (attempt seconds);
// 401 never retried.
[[nodiscard]] WEBHOOKDB_EXPORT std::shared_ptr<const RetryPolicy> webhookdb_retry_policy(int attempts = 3);

struct PoliteRetryOptions {
  int max_attempts = 6;
  std::chrono::milliseconds base{500};
  std::chrono::milliseconds cap{30'000};
  // Giving up when the waits would add up past this.
  std::chrono::milliseconds max_total_wait{120'000};
  // Seeds the jitter; 0 picks a random seed.
  std::uint64_t seed = 0;
  // "Now" for Retry-After given as an HTTP date; null is the system clock.
  std::shared_ptr<const Clock> clock;
};

// Exponential backoff with full jitter and a cap; Retry-After (delta-seconds
// or HTTP date) honoured on 429 and 503; 401 and 403 never retried; other 4xx
// but 408 and 429 not retried either.
[[nodiscard]] WEBHOOKDB_EXPORT std::shared_ptr<const RetryPolicy> polite_retry_policy(
    PoliteRetryOptions options = {});

}  // namespace webhookdb
