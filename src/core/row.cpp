#include "webhookdb/row.hpp"

#include "webhookdb/errors.hpp"
#include "webhookdb/table_spec.hpp"

namespace webhookdb {

const nlohmann::json& Row::value(const TableSpec& spec, const std::string& name) const {
  if (name == spec.remote_key.name) return key;
  if (auto i = spec.column_index(name)) {
    if (*i < values.size()) return values[*i];
    throw InvalidPrecondition("row has " + std::to_string(values.size()) + " values; column '" + name +
                              "' is number " + std::to_string(*i + 1) + " of table " + spec.table);
  }
  if (name == "data") return data;
  if (name == "enrichment" && spec.enrichment) return enrichment;
  throw InvalidPrecondition("table " + spec.table + " has no column '" + name.substr(0, 64) + "'");
}

std::string key_identity(const nlohmann::json& key) {
  if (key.is_string()) return '"' + key.get_ref<const std::string&>();
  return key.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace webhookdb
