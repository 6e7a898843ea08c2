#pragma once
// One replicated row, as produced from a payload and written by a ReplicaStore.

#include <vector>

#include <nlohmann/json.hpp>

namespace webhookdb {

struct Row {
  // The remote key value (string or integer).
  nlohmann::json key;
  // One value per TableSpec::columns entry, in declared order.
  std::vector<nlohmann::json> values;
  // null when the table has no enrichment column.
  nlohmann::json enrichment;
  // The stored resource (the `data` column).
  nlohmann::json data;

  friend bool operator==(const Row&, const Row&) = default;
};

}  // namespace webhookdb
