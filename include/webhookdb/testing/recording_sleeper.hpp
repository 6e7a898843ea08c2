#pragma once
// A Sleeper that never sleeps: it records each wait and advances an optional
// ManualClock by it, so retry and backoff tests run instantly and can assert
// the waits. Throws Cancelled when the token has fired. Thread-safe.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "webhookdb/clock.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/testing/manual_clock.hpp"

namespace webhookdb::testing {

class WEBHOOKDB_EXPORT RecordingSleeper final : public Sleeper {
 public:
  explicit RecordingSleeper(std::shared_ptr<ManualClock> clock = nullptr);

  void sleep_for(std::chrono::milliseconds duration, const CancellationToken& cancel) override;

  [[nodiscard]] std::vector<std::chrono::milliseconds> waits() const;
  [[nodiscard]] std::chrono::milliseconds total() const;
  void clear();
  // Called (outside the lock) on every wait after it is recorded, e.g. to
  // cancel a token from "inside" a backoff.
  void on_sleep(std::function<void(std::chrono::milliseconds)> hook);

 private:
  std::shared_ptr<ManualClock> clock_;
  mutable std::mutex mutex_;
  std::vector<std::chrono::milliseconds> waits_;
  std::function<void(std::chrono::milliseconds)> hook_;
};

}  // namespace webhookdb::testing
