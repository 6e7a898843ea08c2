#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {

class JobStore;

enum class JobStatus { enqueued, inprogress, finished };
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view to_string(JobStatus status) noexcept;

// One run of backfilling one integration.
struct BackfillJob {
  std::int64_t id = 0;
  std::string opaque_id;  // bfj_...
  std::int64_t service_integration_id = 0;
  std::optional<std::int64_t> parent_job_id;
  bool incremental = false;
  // Always a JSON object; passed to Replicator::backfillers.
  nlohmann::json criteria = nlohmann::json::object();
  Timestamp created_at{};
  std::optional<Timestamp> started_at;
  std::optional<Timestamp> finished_at;

  friend bool operator==(const BackfillJob&, const BackfillJob&) = default;
};

// The latest finished_at of the job and all its descendants; nullopt while
// any of them is unfinished.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<Timestamp> fully_finished_at(JobStore& store,
                                                                          const BackfillJob& job);
// enqueued before start, finished when fully finished, else inprogress.
[[nodiscard]] WEBHOOKDB_EXPORT JobStatus status(JobStore& store, const BackfillJob& job);

}  // namespace webhookdb
