#pragma once
// Shared helpers of the pg adapter tests.

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/pg_test_env.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/row.hpp"
#include "webhookdb/table_spec.hpp"

namespace webhookdb::test {

using nlohmann::json;

// Waits up to `limit` for `condition`; false on timeout.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

// A table with a column of every type, the "newer" rule on `at`, skip_nil
// `amount`, keep_existing `created`, and an enrichment column.
inline TableSpec full_spec(const std::string& table = "items") {
  TableSpec spec;
  spec.table = table;
  spec.opaque_id = "svi_test" + table;
  spec.remote_key = Column("id", ColumnType::text);
  spec.columns = {
      Column("at", ColumnType::timestamptz).indexed(),
      Column("name", ColumnType::text),
      Column("amount", ColumnType::integer).skip_nil(),
      Column("created", ColumnType::timestamptz).keep_existing(),
      Column("big", ColumnType::bigint),
      Column("price", ColumnType::numeric),
      Column("ratio", ColumnType::double_precision),
      Column("flag", ColumnType::boolean),
      Column("day", ColumnType::date),
      Column("meta", ColumnType::jsonb),
      Column("tags", ColumnType::text_array),
      Column("ints", ColumnType::integer_array),
      Column("bigs", ColumnType::bigint_array),
      Column("uid", ColumnType::uuid).indexed_not_null(),
  };
  spec.enrichment = true;
  spec.update_rule = UpdateRule::when_newer("at");
  return spec;
}

// A row of full_spec(): only key, at and name given, the rest null unless set.
inline Row full_row(const std::string& id, const std::string& at, const std::string& name) {
  Row row;
  row.key = id;
  row.values.assign(14, nullptr);
  row.values[0] = at;
  row.values[1] = name;
  row.enrichment = nullptr;
  row.data = {{"id", id}, {"at", at}, {"name", name}};
  return row;
}

// Column positions in full_spec().
enum Col : std::size_t { AT, NAME, AMOUNT, CREATED, BIG, PRICE, RATIO, FLAG, DAY, META, TAGS, INTS, BIGS, UID };

// A spec with a text key, `at` (newer rule) and `name`.
inline TableSpec small_spec(const std::string& table = "small") {
  TableSpec spec;
  spec.table = table;
  spec.opaque_id = "svi_" + table;
  spec.remote_key = Column("id", ColumnType::text);
  spec.columns = {Column("at", ColumnType::timestamptz), Column("name", ColumnType::text)};
  spec.update_rule = UpdateRule::when_newer("at");
  return spec;
}

inline Row small_row(const std::string& id, const std::string& at, const std::string& name) {
  Row row;
  row.key = id;
  row.values = {at, name};
  row.data = {{"id", id}, {"at", at}, {"name", name}};
  return row;
}

inline std::string method_name(WriteMethod m) {
  switch (m) {
    case WriteMethod::automatic: return "automatic";
    case WriteMethod::single_row: return "single_row";
    case WriteMethod::multi_row: return "multi_row";
    case WriteMethod::staging_copy: return "staging_copy";
  }
  return "?";
}

inline UpsertOptions with_method(WriteMethod m, bool apply_rule = true) {
  UpsertOptions o;
  o.method = m;
  o.apply_update_rule = apply_rule;
  return o;
}

inline std::vector<Row> all_rows(pg::PgReplicaStore& store, const TableSpec& spec) {
  std::vector<Row> out;
  store.for_each(spec, [&](const Row& r) { out.push_back(r); });
  return out;
}

}  // namespace webhookdb::test
