#pragma once
// Backfill windows (issue 20): a job that re-fetches one range of the
// source's time or ids, `[from, to)`, without touching the incremental mark.
// The window travels in the job's criteria, so it is stored with the job in
// every job store, inherited by child jobs, and part of what makes two jobs
// the same:
//
//   nlohmann::json criteria = with_window({}, BackfillWindow::time_range(t0, t1));
//   BackfillJob job = jobs.create_recursive(integration, /*incremental=*/false, criteria);
//
// A windowed job fetches through Replicator::fetch_window_page (a replicator
// that does not override it refuses windowed jobs), never moves
// last_backfilled_at, and never sweeps (deletes.hpp).

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {

// What a window ranges over.
enum class WindowAxis {
  time,  // the source's timestamps (created, updated): from/to are Timestamps
  id,    // the source's ids: from/to are strings or integers, compared as the source orders them
};
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view to_string(WindowAxis axis) noexcept;

struct WEBHOOKDB_EXPORT BackfillWindow {
  WindowAxis axis = WindowAxis::time;
  // [from, to); a null bound is open. Time bounds are stored as ISO-8601
  // text (format_timestamp), id bounds as the JSON string or integer given.
  nlohmann::json from;
  nlohmann::json to;

  [[nodiscard]] static BackfillWindow time_range(std::optional<Timestamp> from, std::optional<Timestamp> to);
  [[nodiscard]] static BackfillWindow id_range(nlohmann::json from, nlohmann::json to);

  // The time bounds (axis time only; nullopt for an open bound).
  [[nodiscard]] std::optional<Timestamp> from_time() const;
  [[nodiscard]] std::optional<Timestamp> to_time() const;

  // {"axis": "time", "from": ..., "to": ...}
  [[nodiscard]] nlohmann::json to_json() const;

  friend bool operator==(const BackfillWindow&, const BackfillWindow&) = default;
};

// The criteria key a window lives under.
inline constexpr const char* kWindowCriteriaKey = "window";

// The window of a job's criteria, nullopt when it has none. A malformed one
// is an InvalidInput naming the field (criteria.window.from): an unknown axis,
// a bound of the wrong kind, both bounds open, or from not before to.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<BackfillWindow> backfill_window(const nlohmann::json& criteria);
// `criteria` (an object, or null for {}) with the window set.
[[nodiscard]] WEBHOOKDB_EXPORT nlohmann::json with_window(nlohmann::json criteria,
                                                          const BackfillWindow& window);

}  // namespace webhookdb
