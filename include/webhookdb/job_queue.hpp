#pragma once

#include <cstdint>
#include <optional>

#include "webhookdb/export.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {

// Where backfill jobs wait to be run: in-process, or PostgreSQL for workers.
class WEBHOOKDB_EXPORT JobQueue {
 public:
  virtual ~JobQueue() = default;
  // Thread-safe. `run_at` delays the run (RetryOrDie backoff).
  virtual void enqueue(std::int64_t job_id, std::optional<Timestamp> run_at = std::nullopt) = 0;
};

}  // namespace webhookdb
