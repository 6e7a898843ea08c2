// The README's column-type table against PostgreSQL: every accepted row
// (tests/support/column_type_cases.hpp) is written through PgReplicaStore and
// read back as the table says; and for a corpus of numeric strings, the
// numeric column takes exactly those the server's ::numeric takes.

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "support/column_type_cases.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/row.hpp"
#include "webhookdb/table_spec.hpp"

namespace webhookdb::pg {
namespace {

using nlohmann::json;

class ColumnTypesPg : public test::PgTest {};

TEST_F(ColumnTypesPg, EveryAcceptedRowOfTheReadmeTableRoundTrips) {
  PgReplicaStore store(config(1));
  const auto cases = test::accepted_column_type_cases();
  TableSpec spec;
  spec.table = "column_types";
  spec.opaque_id = "svi_column_types";
  spec.remote_key = Column("id", ColumnType::text);
  for (std::size_t i = 0; i < cases.size(); ++i)
    spec.columns.emplace_back("c" + std::to_string(i), cases[i].type);
  spec.update_rule = UpdateRule::always();
  store.create_table(spec);

  // One row per case, with only that case's column set.
  std::vector<Row> rows;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const json resource{{"v", cases[i].input}};
    Column column("v", cases[i].type);
    if (cases[i].converter.fn) column.convert(cases[i].converter);
    Row row;
    row.key = "case" + std::to_string(i);
    row.values.assign(cases.size(), nullptr);
    row.values[i] = column.value_from(ConvertContext{resource, nullptr, nullptr, "v"});
    row.data = resource;
    rows.push_back(std::move(row));
  }
  UpsertOptions options;
  options.method = WriteMethod::single_row;
  (void)store.upsert(spec, rows, options);
  options.method = WriteMethod::staging_copy;  // the COPY path encodes the same values
  for (auto& row : rows) row.key = row.key.get<std::string>() + "_copy";
  (void)store.upsert(spec, rows, options);

  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const json expected = c.read_back.is_null() ? c.stored : c.read_back;
    for (const std::string suffix : {"", "_copy"}) {
      SCOPED_TRACE(std::string(sql_type(c.type)) + " <- " + c.input.dump() + " " + c.label + suffix);
      const auto row = store.find(spec, "case" + std::to_string(i) + suffix);
      ASSERT_TRUE(row);
      EXPECT_EQ(row->values.at(i), expected);
    }
  }
}

TEST_F(ColumnTypesPg, TheNumericColumnTakesExactlyTheStringsTheServerTakes) {
  const std::vector<std::string> corpus = {"0",         "-0",
                                           "+1.5",      ".5",
                                           "5.",        " 42 ",
                                           "1e5",       "1E-3",
                                           "1e+3",      "12345678901234567890.123456789",
                                           "NaN",       "nan",
                                           "inf",       "-inf",
                                           "+Infinity", "-Infinity",
                                           "1e131071",  "1e131072",
                                           "1e-16383",  "1e-16384",
                                           "0e999999",  "0.0000e-20000",
                                           "0x10",      "0x1p3",
                                           "1,5",       "1_000",
                                           "- 1",       "1 e5",
                                           "1e",        "e5",
                                           ".",         "1.2.3",
                                           "",          "abc",
                                           "1e999999",  "-nan",
                                           "+nan"};
  for (const auto& text : corpus) {
    bool ours = true;
    try {
      const json resource{{"v", text}};
      (void)Column("v", ColumnType::numeric).value_from(ConvertContext{resource, nullptr, nullptr, "v"});
    } catch (const InvalidInput&) {
      ours = false;
    }
    bool server = true;
    try {
      (void)admin_exec("SELECT $1::numeric", {text});
    } catch (const Error& e) {
      const std::string what = e.what();
      server = false;
      EXPECT_TRUE(what.find("invalid input syntax") != std::string::npos ||
                  what.find("overflows numeric format") != std::string::npos)
          << "unexpected server error for '" << text << "': " << what;
    }
    EXPECT_EQ(ours, server) << "'" << text << "': ours " << (ours ? "takes" : "refuses") << " it, the server "
                            << (server ? "takes" : "refuses") << " it";
  }
}

}  // namespace
}  // namespace webhookdb::pg
