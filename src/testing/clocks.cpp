#include "webhookdb/errors.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::testing {

Timestamp ManualClock::default_start() {
  using namespace std::chrono;
  return Timestamp(sys_days(year(2024) / January / 1));
}

ManualClock::ManualClock() : now_(default_start()) {}
ManualClock::ManualClock(Timestamp start) : now_(start) {}

Timestamp ManualClock::now() const {
  std::lock_guard lock(mutex_);
  return now_;
}

void ManualClock::set(Timestamp t) {
  std::lock_guard lock(mutex_);
  now_ = t;
}

void ManualClock::advance(std::chrono::microseconds by) {
  std::lock_guard lock(mutex_);
  now_ += by;
}

RecordingSleeper::RecordingSleeper(std::shared_ptr<ManualClock> clock) : clock_(std::move(clock)) {}

void RecordingSleeper::sleep_for(std::chrono::milliseconds duration, const CancellationToken& cancel) {
  cancel.throw_if_cancelled();
  std::function<void(std::chrono::milliseconds)> hook;
  {
    std::lock_guard lock(mutex_);
    waits_.push_back(duration);
    hook = hook_;
  }
  if (clock_) clock_->advance(duration);
  if (hook) hook(duration);
  // The hook may have cancelled: a real sleeper would wake with Cancelled.
  cancel.throw_if_cancelled();
}

std::vector<std::chrono::milliseconds> RecordingSleeper::waits() const {
  std::lock_guard lock(mutex_);
  return waits_;
}

std::chrono::milliseconds RecordingSleeper::total() const {
  std::lock_guard lock(mutex_);
  std::chrono::milliseconds sum{0};
  for (auto w : waits_) sum += w;
  return sum;
}

void RecordingSleeper::clear() {
  std::lock_guard lock(mutex_);
  waits_.clear();
}

void RecordingSleeper::on_sleep(std::function<void(std::chrono::milliseconds)> hook) {
  std::lock_guard lock(mutex_);
  hook_ = std::move(hook);
}

}  // namespace webhookdb::testing
