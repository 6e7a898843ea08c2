#pragma once
// The README's column-type table ("Configuration reference"), as data: what
// each column type takes from each JSON type, what it stores, what PostgreSQL
// gives back, and what it refuses with which message. tests/core checks every
// row against Column::value_from; tests/pg writes every accepted row through
// PgReplicaStore and reads it back. Header-only: needs webhookdb::core.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/column.hpp"
#include "webhookdb/converters.hpp"

namespace webhookdb::test {

struct ColumnTypeCase {
  ColumnType type;
  nlohmann::json input;
  // What Column::value_from gives (and the store is handed).
  nlohmann::json stored;
  // What PgReplicaStore::find reads back; null here means "the same as stored".
  nlohmann::json read_back = nullptr;
  // The column's converter, when the row needs one.
  Converter converter = {};
  std::string label = {};
};

struct ColumnTypeRefusal {
  ColumnType type;
  nlohmann::json input;
  // A part of the InvalidInput's message.
  std::string message;
  Converter converter = {};
};

inline std::vector<ColumnTypeCase> accepted_column_type_cases() {
  using nlohmann::json;
  using T = ColumnType;
  return {
      {T::text, "hello", "hello"},
      {T::text, 42, "42"},
      {T::text, 1.5, "1.5"},
      {T::text, true, "true"},
      {T::integer, 42, 42},
      {T::integer, "-7", -7},
      {T::integer, 3.0, 3},
      {T::integer, 2147483647, 2147483647},
      {T::bigint, "9007199254740993", 9007199254740993LL, nullptr, {}, "a numeric-string key"},
      {T::bigint, 9223372036854775807LL, 9223372036854775807LL},
      {T::numeric,
       "12345678901234567890.123456789",
       "12345678901234567890.123456789",
       nullptr,
       {},
       "a decimal string, every digit kept"},
      {T::numeric, "19.99", "19.99", 19.99},
      {T::numeric, 19.99, 19.99},
      {T::numeric, 12345678901234567LL, 12345678901234567LL},
      {T::numeric, " 1e3 ", " 1e3 ", 1000},
      {T::numeric, "NaN", "NaN"},
      {T::numeric, "-Infinity", "-Infinity"},
      {T::double_precision, 0.1, 0.1},
      {T::double_precision, 42, 42.0},
      {T::boolean, true, true},
      {T::timestamptz, "2024-02-29T12:00:00+02:00", "2024-02-29T10:00:00Z"},
      {T::timestamptz, "Thu, 29 Feb 2024 10:00:00 +0000", "2024-02-29T10:00:00Z"},
      {T::timestamptz, 1709200800, "2024-02-29T10:00:00Z", nullptr, converters::unix_timestamp(),
       "unix seconds"},
      {T::timestamptz, "1709200800", "2024-02-29T10:00:00Z", nullptr, converters::unix_timestamp(),
       "unix seconds as a string"},
      {T::timestamptz, 1709200800000LL, "2024-02-29T10:00:00Z", nullptr, converters::unix_timestamp_ms(),
       "unix milliseconds"},
      {T::date, "2024-02-29", "2024-02-29"},
      {T::date, "2024-02-29T23:30:00-02:00", "2024-03-01", nullptr, converters::date(),
       "a timestamp's UTC date"},
      {T::jsonb, json{{"a", json::array({1, "x", nullptr})}}, json{{"a", json::array({1, "x", nullptr})}}},
      {T::jsonb, "a string", "a string"},
      {T::uuid, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
       "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
      {T::text_array, json::array({"a", 1, nullptr}), json::array({"a", "1", nullptr})},
      {T::text_array, "a, b,,c", json::array({"a", "b", "c"}), nullptr, converters::comma_separated(),
       "comma-separated text"},
      {T::integer_array, json::array({1, "2"}), json::array({1, 2})},
      {T::bigint_array, json::array({"9007199254740993", -1}), json::array({9007199254740993LL, -1})},
  };
}

inline std::vector<ColumnTypeRefusal> refused_column_type_cases() {
  using nlohmann::json;
  using T = ColumnType;
  return {
      {T::text, json{{"a", 1}}, "wrong type: expected text, got object"},
      {T::text, json::array({1}), "wrong type: expected text, got array"},
      {T::integer, 2147483648LL, "integer out of range for integer column"},
      {T::integer, 1.5, "wrong type: expected integer, got number"},
      {T::integer, "4.0", "wrong type: expected integer, got string"},
      {T::integer, true, "wrong type: expected integer, got boolean"},
      {T::bigint, 9223372036854775808ULL, "integer out of range"},
      {T::bigint, "9223372036854775808", "wrong type: expected bigint, got string"},
      {T::bigint, 1e19, "wrong type: expected bigint, got number"},
      {T::numeric, "0x10", "not a decimal number"},
      {T::numeric, "1,5", "not a decimal number"},
      {T::numeric, "", "not a decimal number"},
      {T::numeric, "1e999999", "numeric value out of PostgreSQL's range"},
      {T::numeric, true, "wrong type: expected numeric, got boolean"},
      {T::double_precision, "1.5", "wrong type: expected double precision, got string"},
      {T::boolean, "true", "wrong type: expected boolean, got string"},
      {T::boolean, 1, "wrong type: expected boolean, got number"},
      {T::timestamptz, 1709200800, "wrong type: expected timestamp string, got number"},
      {T::timestamptz, "yesterday", "not a timestamp"},
      {T::timestamptz, "294277-01-01T00:00:00Z", "out of range"},
      {T::date, "2024-02-30", "date out of range"},
      {T::date, "tomorrow", "not a date"},
      {T::uuid, "a0eebc999c0b4ef8bb6d6bb9bd380a11", "wrong type: expected uuid, got string"},
      {T::text_array, "a,b", "wrong type: expected array, got string"},
      {T::integer_array, json::array({1.5}), "wrong type: expected integer, got number"},
  };
}

}  // namespace webhookdb::test
