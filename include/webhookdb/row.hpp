#pragma once
// One replicated row, as produced from a payload and written by a ReplicaStore.
// Its values are positional (TableSpec::columns order); read one by name with
// the table's spec:
//
//   const nlohmann::json& amount = row.value(replicator.table_spec(), "amount");

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"

namespace webhookdb {

struct TableSpec;

struct WEBHOOKDB_EXPORT Row {
  // The remote key value (string or integer).
  nlohmann::json key;
  // One value per TableSpec::columns entry, in declared order.
  std::vector<nlohmann::json> values;
  // null when the table has no enrichment column.
  nlohmann::json enrichment;
  // The stored resource (the `data` column).
  nlohmann::json data;

  // The value of column `name` of `spec` (the table this row belongs to): the
  // remote key, a denormalized column, "data" or "enrichment". The names stay
  // in the spec, not in each row, so building rows costs nothing more.
  // Throws InvalidPrecondition naming the column and table when the spec has
  // no such column or the row is shorter than the spec.
  [[nodiscard]] const nlohmann::json& value(const TableSpec& spec, const std::string& name) const;

  friend bool operator==(const Row&, const Row&) = default;
};

// A remote key as text for maps and sets: 1 and "1" stay distinct, and a
// string keeps its bytes (two keys of invalid UTF-8 never merge; the store
// refuses them by name later).
[[nodiscard]] WEBHOOKDB_EXPORT std::string key_identity(const nlohmann::json& key);

}  // namespace webhookdb
