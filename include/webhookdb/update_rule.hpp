#pragma once
// The conditional-upsert rule: when may an incoming row replace a stored one.
// Declared once, it is evaluated in SQL by the pg adapter and in C++ by the
// memory store, so both behave the same.

#include <functional>
#include <string>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/row.hpp"

namespace webhookdb {

struct TableSpec;

struct WEBHOOKDB_EXPORT UpdateRule {
  enum class Kind {
    always,           // every conflict updates
    newer,            // stored.column < incoming.column (or stored is null)
    data_differs,     // stored.data IS DISTINCT FROM incoming.data
    custom,           // sql + fn supplied by the replicator
  };
  Kind kind = Kind::always;
  std::string column;
  // SQL boolean over the stored row (qualified by the table name, which the
  // adapter substitutes for {table}) and EXCLUDED, e.g.
  // "{table}.\"at\" < EXCLUDED.\"at\"".
  std::string sql;
  std::function<bool(const TableSpec& spec, const Row& stored, const Row& incoming)> fn;

  static UpdateRule always() { return {}; }
  static UpdateRule when_newer(std::string column_name) {
    UpdateRule r;
    r.kind = Kind::newer;
    r.column = std::move(column_name);
    return r;
  }
  static UpdateRule when_data_differs() {
    UpdateRule r;
    r.kind = Kind::data_differs;
    return r;
  }
  static UpdateRule custom(std::string sql_text,
                           std::function<bool(const TableSpec&, const Row&, const Row&)> check) {
    UpdateRule r;
    r.kind = Kind::custom;
    r.sql = std::move(sql_text);
    r.fn = std::move(check);
    return r;
  }

  // C++ evaluation, for in-memory stores.
  [[nodiscard]] bool allows(const TableSpec& spec, const Row& stored, const Row& incoming) const;

  // One row per key, in first-seen order: where a key repeats, the version
  // this rule lets replace the other. A store given both in one write would
  // keep the later one, whichever is newer.
  [[nodiscard]] std::vector<Row> collapse(const TableSpec& spec, std::vector<Row> rows) const;
};

}  // namespace webhookdb
