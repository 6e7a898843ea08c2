#pragma once
// A ProgressSink that keeps every event. Thread-safe.

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/logger.hpp"

namespace webhookdb::testing {

class WEBHOOKDB_EXPORT RecordingProgressSink final : public ProgressSink {
 public:
  void on_progress(const BackfillProgress& progress) override;

  [[nodiscard]] std::vector<BackfillProgress> events() const;
  // The latest event of one backfiller (by checkpoint key), or of any when empty.
  [[nodiscard]] std::optional<BackfillProgress> last(const std::string& backfiller = {}) const;
  void clear();

 private:
  mutable std::mutex mutex_;
  std::vector<BackfillProgress> events_;
};

}  // namespace webhookdb::testing
