#pragma once
// A JobQueue that only records what was enqueued. Thread-safe.

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/job_queue.hpp"

namespace webhookdb::testing {

struct EnqueuedJob {
  std::int64_t job_id = 0;
  std::optional<Timestamp> run_at;
  friend bool operator==(const EnqueuedJob&, const EnqueuedJob&) = default;
};

class WEBHOOKDB_EXPORT RecordingJobQueue final : public JobQueue {
 public:
  void enqueue(std::int64_t job_id, std::optional<Timestamp> run_at = std::nullopt) override;

  [[nodiscard]] std::vector<EnqueuedJob> entries() const;
  [[nodiscard]] std::vector<std::int64_t> job_ids() const;
  void clear();

 private:
  mutable std::mutex mutex_;
  std::vector<EnqueuedJob> entries_;
};

}  // namespace webhookdb::testing
