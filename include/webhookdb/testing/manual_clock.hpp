#pragma once
// A Clock that moves only when told to. Thread-safe.

#include <chrono>
#include <mutex>

#include "webhookdb/clock.hpp"
#include "webhookdb/export.hpp"

namespace webhookdb::testing {

class WEBHOOKDB_EXPORT ManualClock final : public Clock {
 public:
  // 2024-01-01T00:00:00Z unless told otherwise.
  ManualClock();
  explicit ManualClock(Timestamp start);

  [[nodiscard]] Timestamp now() const override;
  void set(Timestamp t);
  void advance(std::chrono::microseconds by);

  [[nodiscard]] static Timestamp default_start();

 private:
  mutable std::mutex mutex_;
  Timestamp now_;
};

}  // namespace webhookdb::testing
