#include "webhookdb/update_rule.hpp"

#include <unordered_map>

#include "webhookdb/table_spec.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {
namespace {

// SQL's "<" for two non-null stored values of one column.
bool less_than(ColumnType type, const nlohmann::json& a, const nlohmann::json& b) {
  if (type == ColumnType::timestamptz && a.is_string() && b.is_string()) {
    auto ta = parse_timestamp(a.get_ref<const std::string&>());
    auto tb = parse_timestamp(b.get_ref<const std::string&>());
    if (ta && tb) return *ta < *tb;
  }
  if (a.is_number() && b.is_number()) {
    if (a.is_number_integer() && b.is_number_integer()) return a.get<std::int64_t>() < b.get<std::int64_t>();
    return a.get<double>() < b.get<double>();
  }
  return a < b;
}

}  // namespace

bool UpdateRule::allows(const TableSpec& spec, const Row& stored, const Row& incoming) const {
  switch (kind) {
    case Kind::always:
      return true;
    case Kind::newer: {
      const auto idx = spec.column_index(column);
      if (!idx || *idx >= stored.values.size() || *idx >= incoming.values.size()) return true;
      const auto& s = stored.values[*idx];
      const auto& i = incoming.values[*idx];
      if (s.is_null()) return true;    // nothing to protect
      if (i.is_null()) return false;   // NULL < x is not true in SQL
      return less_than(spec.columns[*idx].type, s, i);
    }
    case Kind::data_differs:
      return stored.data != incoming.data;
    case Kind::custom:
      return fn ? fn(spec, stored, incoming) : true;
  }
  return true;
}

std::vector<Row> UpdateRule::collapse(const TableSpec& spec, std::vector<Row> rows) const {
  std::vector<Row> kept;
  kept.reserve(rows.size());
  std::unordered_map<std::string, std::size_t> position;
  for (Row& row : rows) {
    auto [at, inserted] = position.try_emplace(key_identity(row.key), kept.size());
    if (inserted) {
      kept.push_back(std::move(row));
    } else if (allows(spec, kept[at->second], row)) {
      kept[at->second] = std::move(row);
    }
  }
  return kept;
}

}  // namespace webhookdb
