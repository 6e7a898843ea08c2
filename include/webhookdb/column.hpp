#pragma once
// A replicated column: where its value comes from and how it is stored.

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"
#include "webhookdb/json_path.hpp"

namespace webhookdb {

enum class ColumnType {
  text,
  integer,
  bigint,
  numeric,
  double_precision,
  boolean,
  timestamptz,
  date,
  jsonb,
  text_array,
  integer_array,
  bigint_array,
  uuid,
};

// SQL spelling of the type ("timestamptz", "text[]"...).
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view sql_type(ColumnType type) noexcept;

// What a converter or defaulter sees. Pointers are null when absent.
struct ConvertContext {
  const nlohmann::json& resource;
  const nlohmann::json* event = nullptr;
  const nlohmann::json* enrichment = nullptr;
  std::string_view column;
};

// Turns the raw value found at the column's key into the stored value.
// Values are JSON: numbers, strings, booleans, arrays; timestamps as ISO-8601
// UTC strings (see format_timestamp); null for SQL NULL.
using ConvertFn = std::function<nlohmann::json(const nlohmann::json& value, const ConvertContext& ctx)>;

struct WEBHOOKDB_EXPORT Converter {
  ConvertFn fn;
  // Builds the SQL expression that computes the column from an existing row,
  // given the SQL expression of the raw value (e.g. (data->>'created')). Used
  // by ensure_all_columns to fill a column added to a table that has rows.
  // Empty: the adapter casts the raw value to the column type.
  std::function<std::string(const std::string& value_sql)> sql;
};

using DefaultFn = std::function<nlohmann::json(const ConvertContext& ctx)>;

struct WEBHOOKDB_EXPORT Column {
  std::string name;
  ColumnType type = ColumnType::text;
  // Path dug into the resource; empty means {name}.
  std::vector<std::string> data_key;
  // Path dug into the event when there is one; it wins over data_key.
  std::vector<std::string> event_key;
  bool from_enrichment = false;
  // A missing key gives null instead of an InvalidInput error.
  bool is_optional = false;
  Converter converter;
  // Used when the value found is null/missing.
  DefaultFn defaulter;
  bool index = false;
  // Partial index WHERE col IS NOT NULL.
  bool index_not_null = false;
  // A null value does not overwrite a stored one.
  bool skips_nil = false;
  // Written on insert; an update keeps the stored value.
  bool keeps_existing = false;

  Column() = default;
  Column(std::string name_, ColumnType type_) : name(std::move(name_)), type(type_) {}

  // Fluent setters, so a replicator declares columns in one expression each.
  // The flags they set read as predicates (is_optional, skips_nil,
  // keeps_existing) so that setter and flag do not share a name.
  Column& key(std::vector<std::string> path) { data_key = std::move(path); return *this; }
  Column& key(std::string k) { data_key = {std::move(k)}; return *this; }
  // key({"user", "login"}): preferred over the string overload for braced lists.
  Column& key(std::initializer_list<std::string> path) { data_key = path; return *this; }
  Column& event(std::vector<std::string> path) { event_key = std::move(path); return *this; }
  Column& event(std::initializer_list<std::string> path) { event_key = path; return *this; }
  Column& enrichment() { from_enrichment = true; return *this; }
  Column& optional() { is_optional = true; return *this; }
  Column& convert(Converter c) { converter = std::move(c); return *this; }
  Column& defaults(DefaultFn d) { defaulter = std::move(d); return *this; }
  Column& indexed() { index = true; return *this; }
  Column& indexed_not_null() { index = true; index_not_null = true; return *this; }
  Column& skip_nil() { skips_nil = true; return *this; }
  Column& keep_existing() { keeps_existing = true; return *this; }

  [[nodiscard]] std::vector<std::string> effective_data_key() const {
    return data_key.empty() ? std::vector<std::string>{name} : data_key;
  }

  // Finds the raw value (event_key, enrichment or data_key), applies the
  // converter and defaulter, and checks the result against the column type.
  // Throws InvalidInput naming the column and key when a required key is
  // missing or the value has the wrong type.
  [[nodiscard]] nlohmann::json value_from(const ConvertContext& ctx) const;
};

}  // namespace webhookdb
