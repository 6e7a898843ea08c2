#pragma once
// Injected time: retry and backoff tests run instantly with a manual clock.

#include <chrono>
#include <memory>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {

class WEBHOOKDB_EXPORT Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual Timestamp now() const = 0;
};

class WEBHOOKDB_EXPORT SystemClock final : public Clock {
 public:
  [[nodiscard]] Timestamp now() const override;
};

class WEBHOOKDB_EXPORT Sleeper {
 public:
  virtual ~Sleeper() = default;
  // Waits `duration`, or throws Cancelled as soon as `cancel` fires.
  virtual void sleep_for(std::chrono::milliseconds duration, const CancellationToken& cancel) = 0;
};

// Really waits, on the token's condition variable so cancellation wakes it.
class WEBHOOKDB_EXPORT RealSleeper final : public Sleeper {
 public:
  void sleep_for(std::chrono::milliseconds duration, const CancellationToken& cancel) override;
};

[[nodiscard]] WEBHOOKDB_EXPORT std::shared_ptr<Clock> system_clock();
[[nodiscard]] WEBHOOKDB_EXPORT std::shared_ptr<Sleeper> real_sleeper();

}  // namespace webhookdb
