#pragma once
// A path into a JSON document, and the one function that follows it. Columns
// (data_key, event_key), webhook payload paths and the paginators' paths
// (items, has_more, next cursor) all read JSON through json_at.
//
//   const nlohmann::json* id = json_at(body, {"data", "0", "id"});
//   if (id != nullptr && id->is_string()) ...

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"

namespace webhookdb {

// {"data"}, {"links", "next"}, {"items", "0", "id"}; empty: the document itself.
using JsonPath = std::vector<std::string>;

// The value at `path` in `doc`, or nullptr when a step is missing. A step
// names an object key; on an array, a step of 1 to 9 decimal digits is an
// index (so {"data", "0"} is the first item). Never throws.
[[nodiscard]] WEBHOOKDB_EXPORT const nlohmann::json* json_at(const nlohmann::json& doc,
                                                             const JsonPath& path) noexcept;

}  // namespace webhookdb
