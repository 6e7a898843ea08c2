#include "webhookdb/backfill_window.hpp"

#include "webhookdb/errors.hpp"

namespace webhookdb {
namespace {

using nlohmann::json;

constexpr const char* kWhere = "criteria.window";

json time_bound(const std::optional<Timestamp>& t) { return t ? json(format_timestamp(*t)) : json(nullptr); }

// A bound of the axis, normalised (time: format_timestamp of the parsed text).
json checked_bound(WindowAxis axis, const json& bound, const char* name) {
  const std::string where = std::string(kWhere) + "." + name;
  if (bound.is_null()) return bound;
  if (axis == WindowAxis::time) {
    if (!bound.is_string()) throw InvalidInput("a time window bound must be an ISO-8601 string", where);
    try {
      return format_timestamp(timestamp_from_text(bound.get_ref<const std::string&>()));
    } catch (const InvalidInput& e) {
      throw InvalidInput(e.message(), where);
    }
  }
  if (bound.is_string() || bound.is_number_integer()) return bound;
  throw InvalidInput("an id window bound must be a string or an integer", where);
}

// from < to, when both are given and comparable.
bool ordered(WindowAxis axis, const json& from, const json& to) {
  if (from.is_null() || to.is_null()) return true;
  if (axis == WindowAxis::time) {
    return timestamp_from_text(from.get_ref<const std::string&>()) <
           timestamp_from_text(to.get_ref<const std::string&>());
  }
  if (from.is_string() != to.is_string()) {
    throw InvalidInput("the id window bounds must both be strings or both be integers", kWhere);
  }
  return from < to;
}

}  // namespace

std::string_view to_string(WindowAxis axis) noexcept { return axis == WindowAxis::time ? "time" : "id"; }

BackfillWindow BackfillWindow::time_range(std::optional<Timestamp> from, std::optional<Timestamp> to) {
  return BackfillWindow{WindowAxis::time, time_bound(from), time_bound(to)};
}

BackfillWindow BackfillWindow::id_range(json from, json to) {
  return BackfillWindow{WindowAxis::id, std::move(from), std::move(to)};
}

std::optional<Timestamp> BackfillWindow::from_time() const {
  if (axis != WindowAxis::time || !from.is_string()) return std::nullopt;
  return timestamp_from_text(from.get_ref<const std::string&>());
}

std::optional<Timestamp> BackfillWindow::to_time() const {
  if (axis != WindowAxis::time || !to.is_string()) return std::nullopt;
  return timestamp_from_text(to.get_ref<const std::string&>());
}

json BackfillWindow::to_json() const {
  return json{{"axis", std::string(to_string(axis))}, {"from", from}, {"to", to}};
}

std::optional<BackfillWindow> backfill_window(const json& criteria) {
  if (!criteria.is_object()) return std::nullopt;
  const auto it = criteria.find(kWindowCriteriaKey);
  if (it == criteria.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) throw InvalidInput("a backfill window must be a JSON object", kWhere);
  BackfillWindow w;
  const json axis = it->value("axis", json("time"));
  if (axis == "time") {
    w.axis = WindowAxis::time;
  } else if (axis == "id") {
    w.axis = WindowAxis::id;
  } else {
    throw InvalidInput("the window axis must be \"time\" or \"id\"", std::string(kWhere) + ".axis");
  }
  w.from = checked_bound(w.axis, it->value("from", json(nullptr)), "from");
  w.to = checked_bound(w.axis, it->value("to", json(nullptr)), "to");
  if (w.from.is_null() && w.to.is_null()) {
    throw InvalidInput("a backfill window needs a from or a to bound (without both, it is a full backfill)", kWhere);
  }
  if (!ordered(w.axis, w.from, w.to)) throw InvalidInput("the window's from must come before its to", kWhere);
  return w;
}

json with_window(json criteria, const BackfillWindow& window) {
  if (criteria.is_null()) criteria = json::object();
  if (!criteria.is_object()) throw InvalidPrecondition("backfill job criteria must be a JSON object");
  criteria[kWindowCriteriaKey] = window.to_json();
  (void)backfill_window(criteria);  // refuses a malformed window here, not when the job runs
  return criteria;
}

}  // namespace webhookdb
