#include "webhookdb/clock.hpp"

#include "webhookdb/errors.hpp"

namespace webhookdb {

Timestamp SystemClock::now() const {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

void RealSleeper::sleep_for(std::chrono::milliseconds duration, const CancellationToken& cancel) {
  if (cancel.wait_for(duration)) throw Cancelled();
}

std::shared_ptr<Clock> system_clock() {
  static const auto clock = std::make_shared<SystemClock>();
  return clock;
}

std::shared_ptr<Sleeper> real_sleeper() {
  static const auto sleeper = std::make_shared<RealSleeper>();
  return sleeper;
}

}  // namespace webhookdb
