// Hostile identifiers and values through PgReplicaStore against a real
// PostgreSQL: table, schema, column and index names (from configuration) with
// quotes, semicolons, comments, placeholders, unicode, over-long names, NUL and
// invalid UTF-8. Each is either used exactly as written (quoted) or rejected
// with a clear BrokenSpecification before any SQL runs; in both cases nothing
// else happens: no extra relation or schema, and the victim table survives.

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "support/pg_test_env.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/replica_store.hpp"

namespace webhookdb::test {
namespace {

using nlohmann::json;

const std::vector<WriteMethod> kMethods = {WriteMethod::single_row, WriteMethod::multi_row,
                                           WriteMethod::staging_copy};

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

// Names PostgreSQL can hold exactly: each must round-trip byte for byte.
std::vector<std::string> acceptable_names() {
  return {
      "victim\"; DROP TABLE victim; --",
      "x'); DROP TABLE victim; --",
      "/* comment */ t -- trailing",
      "semi;colon",
      "$1",
      "?",
      "%s%n",
      "\"",
      "\"\"",
      " spaced ",
      "back\\slash",
      "U&\"\\0041\"",
      "E'\\x41'",
      "select",
      "MixedCase",
      "tab\there",
      "new\nline",
      "\xC3\x9Cn\xC3\xAF\x63\xC3\xB8\x64\xC3\xA9 \xE8\xA1\xA8 \xF0\x9F\x90\x98",  // Ünïcødé 表 🐘
      repeat("\xE2\x82\xAC", 21),                                             // 21 x € = 63 bytes
      std::string(63, 'n'),
  };
}

struct Unrepresentable {
  std::string name;
  std::string why;  // a word the error message must contain
};

// Names that cannot be stored as written: PostgreSQL would truncate them (and
// two long names could collide), or libpq would cut them at the NUL.
std::vector<Unrepresentable> unrepresentable_names() {
  return {
      {std::string(64, 'n'), "63 bytes"},
      {repeat("\xE2\x82\xAC", 22), "63 bytes"},  // 66 bytes: PostgreSQL would cut it to 21 characters
      {std::string("vic\0tim", 7), "NUL"},
      {std::string("x\0; DROP TABLE victim", 21), "NUL"},
      {"bad \xFF\xFE utf8", "UTF-8"},
      {"\xC3\x28", "UTF-8"},
      {"", "empty"},
  };
}

class HostileIdentifiers : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    admin_exec("CREATE TABLE " + schema().quoted() + ".victim (id integer)");
    admin_exec("INSERT INTO " + schema().quoted() + ".victim VALUES (1), (2), (3)");
    relations_before_ = relations();
    schemas_before_ = schemas();
  }

  // Every relation (table, index, sequence...) in the test schema.
  std::set<std::string> relations() const {
    std::set<std::string> out;
    auto r = admin_exec(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
        {schema_name()});
    for (const auto& row : r.rows) out.insert(*row[0]);
    return out;
  }
  std::set<std::string> schemas() const {
    std::set<std::string> out;
    // Without PostgreSQL's per-backend temp namespaces: the first temp table
    // of a session (the staging COPY path) creates one, and it stays. Nobody
    // else can create them (the pg_ prefix is reserved).
    // Nor the fixture schemas (<prefix>_<pid>_<n>_<random>, and names built
    // on them) of other test processes, which ctest runs alongside this one.
    const std::regex other_test(R"(^[a-z]+_([0-9]+)_[0-9]+_[0-9]+)");
    const std::string own_pid = std::to_string(::getpid());
    for (const auto& row : admin_exec("SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_(toast_)?temp_[0-9]+$'")
                               .rows) {
      std::smatch m;
      if (std::regex_search(*row[0], m, other_test) && m[1] != own_pid) continue;
      out.insert(*row[0]);
    }
    return out;
  }
  void expect_victim_intact() const {
    auto r = admin_exec("SELECT count(*) FROM " + schema().quoted() + ".victim");
    EXPECT_EQ(r.rows.at(0).at(0), std::optional<std::string>("3")) << "the victim table lost rows";
  }
  void expect_nothing_new() const {
    EXPECT_EQ(relations(), relations_before_) << "a relation appeared or vanished";
    EXPECT_EQ(schemas(), schemas_before_) << "a schema appeared or vanished";
    expect_victim_intact();
  }
  std::string table_kind(const std::string& schema_name_, const std::string& table) const {
    auto r = admin_exec(
        "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relname = $2",
        {schema_name_, table});
    return r.rows.empty() ? "" : r.rows[0][0].value_or("");
  }
  std::vector<std::string> column_names(pg::PgReplicaStore& store, const TableSpec& spec) const {
    auto r = admin_exec(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
        {store.qualified_name(spec)});
    std::vector<std::string> out;
    for (const auto& row : r.rows) out.push_back(*row[0]);
    return out;
  }

  static TableSpec spec_named(const std::string& table, const std::string& at_column = "at") {
    TableSpec spec;
    spec.table = table;
    spec.opaque_id = "svi_hostile";
    spec.remote_key = Column("id", ColumnType::text);
    spec.columns = {Column(at_column, ColumnType::timestamptz).indexed(), Column("name", ColumnType::text)};
    spec.update_rule = UpdateRule::when_newer(at_column);
    return spec;
  }
  static Row row(const std::string& id, const std::string& at, const std::string& name) {
    Row r;
    r.key = id;
    r.values = {at, name};
    r.data = {{"id", id}, {"at", at}, {"name", name}};
    return r;
  }
  // Writes, updates (newer), refuses an older version, through every method.
  static void exercise(pg::PgReplicaStore& store, const TableSpec& spec, const std::string& label) {
    int day = 1;
    for (auto method : kMethods) {
      UpsertOptions options;
      options.method = method;
      const std::string at = "2024-01-" + std::string(day < 10 ? "0" : "") + std::to_string(day) + "T00:00:00Z";
      ++day;
      auto result = store.upsert(spec, std::vector<Row>{row("k1", at, "v" + std::to_string(day)), row("k2", at, "w")},
                                 options);
      EXPECT_EQ(result.changed, (std::vector<bool>{true, true})) << label;
      auto older = store.upsert(spec, std::vector<Row>{row("k1", "2000-01-01T00:00:00Z", "old")}, options);
      EXPECT_EQ(older.changed, std::vector<bool>{false}) << label << ": an older row overwrote a newer one";
    }
    EXPECT_EQ(store.count(spec), 2U) << label;
    auto found = store.find(spec, "k1");
    ASSERT_TRUE(found) << label;
    EXPECT_EQ(found->values.at(1), json("v4")) << label;
  }

  std::set<std::string> relations_before_;
  std::set<std::string> schemas_before_;
};

TEST_F(HostileIdentifiers, TableNamesAreUsedExactlyAsWritten) {
  pg::PgReplicaStore store(config(2));
  for (const auto& name : acceptable_names()) {
    SCOPED_TRACE(name);
    const TableSpec spec = spec_named(name);
    store.create_table(spec);
    store.create_table(spec);  // idempotent: the existence check sees the same name
    EXPECT_EQ(table_kind(schema_name(), name), "r") << "no table with exactly this name";
    exercise(store, spec, name);
    EXPECT_FALSE(store.avoid_writes(spec));
    EXPECT_TRUE(store.with_advisory_lock(spec, 7, [] {}));
    store.drop_table(spec);
    EXPECT_EQ(table_kind(schema_name(), name), "");
    expect_nothing_new();
  }
}

TEST_F(HostileIdentifiers, ColumnNamesAreQuotedInEveryStatement) {
  pg::PgReplicaStore store(config(2));
  const auto names = acceptable_names();
  TableSpec spec = spec_named("cols", names[0]);
  spec.remote_key = Column(names[1], ColumnType::text);
  // Every hostile name as a column; every other one indexed, some partially
  // (their WHERE predicate names the column too).
  std::vector<std::string> expected = {"pk", names[1], names[0], "name"};
  for (std::size_t i = 2; i < names.size(); ++i) {
    Column c(names[i], ColumnType::text);
    if (i % 2 == 0) c.indexed();
    if (i % 4 == 0) c.indexed_not_null();
    spec.columns.push_back(c);
    expected.push_back(names[i]);
  }
  expected.push_back("data");
  store.create_table(spec);
  EXPECT_EQ(column_names(store, spec), expected);

  auto make = [&](const std::string& id, const std::string& at) {
    Row r = row(id, at, "n");
    for (std::size_t i = 2; i < names.size(); ++i) r.values.emplace_back("value of " + names[i]);
    return r;
  };
  for (auto method : kMethods) {
    UpsertOptions options;
    options.method = method;
    const std::string at = "2024-02-0" + std::to_string(1 + static_cast<int>(method)) + "T00:00:00Z";
    EXPECT_EQ(store.upsert(spec, std::vector<Row>{make("a", at), make("b", at)}, options).changed,
              (std::vector<bool>{true, true}));
    EXPECT_EQ(store.upsert(spec, std::vector<Row>{make("a", "1999-01-01T00:00:00Z")}, options).changed,
              std::vector<bool>{false});
  }
  auto found = store.find(spec, "a");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->values.back(), json("value of " + names.back()));

  // A hostile column added later is added, filled from data, and indexed.
  Row before = make("a", "2030-01-01T00:00:00Z");
  before.data["n"] = 41;
  store.upsert(spec, std::vector<Row>{before});
  Column added("added\"); DROP TABLE victim; --", ColumnType::integer);
  added.key("n").indexed_not_null();
  spec.columns.push_back(added);
  store.ensure_all_columns(spec);
  EXPECT_EQ(store.find(spec, "a")->values.back(), json(41));
  EXPECT_EQ(column_names(store, spec).back(), added.name);
  // Every index valid and on the intended column.
  auto invalid = admin_exec(
      "SELECT count(*) FROM pg_index i WHERE i.indrelid = to_regclass($1) AND NOT i.indisvalid",
      {store.qualified_name(spec)});
  EXPECT_EQ(invalid.rows[0][0], std::optional<std::string>("0"));
  auto partial = admin_exec(
      "SELECT count(*) FROM pg_index i WHERE i.indrelid = to_regclass($1) AND i.indpred IS NOT NULL",
      {store.qualified_name(spec)});
  std::size_t partial_expected = 1;  // `added`
  for (std::size_t i = 2; i < names.size(); ++i) partial_expected += (i % 4 == 0) ? 1U : 0U;
  EXPECT_EQ(partial.rows[0][0], std::optional<std::string>(std::to_string(partial_expected)));
  store.drop_table(spec);
  expect_nothing_new();
}

TEST_F(HostileIdentifiers, SchemaNamesAreQuotedForTablesAndCheckpoints) {
  const std::vector<std::string> hostile = {
      schema_name() + "\"; DROP TABLE victim; --",
      schema_name() + " /* x */ '",
      schema_name() + "_\xE8\xA1\xA8",
  };
  for (const auto& s : hostile) {
    SCOPED_TRACE(s);
    pg::Config c = config(2);
    c.replica_schema = s;
    c.schema = s;  // webhookdb's own tables (checkpoints) too
    {
      pg::PgReplicaStore store(c);
      const TableSpec spec = spec_named("t\"; DROP SCHEMA x; --");
      store.create_table(spec);
      EXPECT_EQ(table_kind(s, spec.table), "r");
      exercise(store, spec, s);
      Checkpoint cp;
      cp.job_id = 9;
      cp.backfiller_key = "partition:'; --";
      cp.next_token = "tok\"en";
      store.save_checkpoint(cp);
      auto loaded = store.load_checkpoints(9);
      ASSERT_EQ(loaded.size(), 1U);
      EXPECT_EQ(loaded.begin()->first, cp.backfiller_key);
      EXPECT_EQ(loaded.begin()->second.next_token, cp.next_token);
      store.clear_checkpoints(9);
    }
    std::string quoted = "\"";
    for (char ch : s) {
      if (ch == '"') quoted += '"';
      quoted += ch;
    }
    quoted += '"';
    admin_exec("DROP SCHEMA " + quoted + " CASCADE");
    expect_nothing_new();
  }
}

TEST_F(HostileIdentifiers, HostileOpaqueIdsMakeQuotedOrShortenedIndexNames) {
  pg::PgReplicaStore store(config(2));
  const std::vector<std::string> ids = {"svi_\"; DROP TABLE victim; --", "svi_' OR 1=1 --",
                                        "svi_" + repeat("\xE2\x82\xAC", 20), "svi_" + std::string(80, 'z')};
  int n = 0;
  for (const auto& id : ids) {
    SCOPED_TRACE(id);
    TableSpec spec = spec_named("ix" + std::to_string(++n));
    spec.opaque_id = id;
    store.create_table(spec);
    exercise(store, spec, id);
    // The index exists under the name the spec computes, and it is <= 63 bytes.
    for (const auto& idx : spec.indexes()) {
      EXPECT_LE(idx.name.size(), 63U) << idx.name;
      EXPECT_EQ(table_kind(schema_name(), idx.name), "i") << "no index named " << idx.name;
    }
    store.drop_table(spec);
    expect_nothing_new();
  }
}

TEST_F(HostileIdentifiers, UnrepresentableNamesAreRejectedBeforeAnySql) {
  pg::PgReplicaStore store(config(2));
  auto expect_rejected = [&](const TableSpec& spec, const std::string& why, const std::string& label) {
    try {
      store.create_table(spec);
      ADD_FAILURE() << label << ": accepted";
    } catch (const BrokenSpecification& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << label << ": " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << label << ": not a BrokenSpecification: " << e.what();
    }
    for (auto method : kMethods) {
      UpsertOptions options;
      options.method = method;
      EXPECT_THROW(store.upsert(spec, std::vector<Row>{row("k", "2024-01-01T00:00:00Z", "n")}, options),
                   BrokenSpecification)
          << label;
    }
    expect_nothing_new();
  };
  for (const auto& [name, why] : unrepresentable_names()) {
    expect_rejected(spec_named(name), why, "table");
    TableSpec col = spec_named("col_ok");
    col.columns[1].name = name;
    expect_rejected(col, name.empty() ? "no name" : why, "column");
    TableSpec key = spec_named("key_ok");
    key.remote_key.name = name;
    expect_rejected(key, name.empty() ? "no name" : why, "remote key");
    if (!name.empty()) {
      pg::Config c = config(1);
      c.replica_schema = name;
      pg::PgReplicaStore in_schema(c);
      try {
        in_schema.create_table(spec_named("fine"));
        ADD_FAILURE() << "schema accepted";
      } catch (const BrokenSpecification& e) {
        EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
      }
      expect_nothing_new();
    }
  }
}

TEST_F(HostileIdentifiers, ReservedAndDuplicateColumnNamesAreSpecificationErrors) {
  pg::PgReplicaStore store(config(1));
  for (const std::string name : {"pk", "data", "id", "at"}) {
    TableSpec spec = spec_named("dup");
    spec.columns.emplace_back(name, ColumnType::text);
    EXPECT_THROW(store.create_table(spec), BrokenSpecification) << name;
  }
  TableSpec spec = spec_named("dup");
  spec.remote_key.name = "data";
  EXPECT_THROW(store.create_table(spec), BrokenSpecification);
  expect_nothing_new();
}

TEST_F(HostileIdentifiers, HostileValuesAreDataInEveryWriteMethod) {
  pg::PgReplicaStore store(config(2));
  const TableSpec spec = spec_named("vals");
  store.create_table(spec);
  // Values that would break SQL splicing or COPY text escaping: quotes,
  // COPY's end-of-data marker, its NULL marker, tabs, newlines, backslashes.
  const std::vector<std::string> values = {
      "'); DROP TABLE victim; --", "\\.", "\\.\n", "\\N", "\\\\N", "a\tb", "a\nb\rc", "\\", "\"", "$1",
      "\xE8\xA1\xA8\xF0\x9F\x90\x98", "E'\\x00'", "",
  };
  int method_no = 0;
  for (auto method : kMethods) {
    ++method_no;
    std::vector<Row> rows;
    for (std::size_t i = 0; i < values.size(); ++i) {
      Row r = row(values[i] + "#" + std::to_string(method_no), "2024-01-01T00:00:00Z", values[i]);
      r.data["also"] = values[i];
      rows.push_back(r);
    }
    UpsertOptions options;
    options.method = method;
    auto result = store.upsert(spec, rows, options);
    EXPECT_EQ(result.changed_count(), values.size());
    for (const auto& r : rows) {
      auto found = store.find(spec, r.key);
      ASSERT_TRUE(found) << r.key;
      EXPECT_EQ(found->values.at(1), r.values.at(1)) << "method " << method_no << " changed a value";
      EXPECT_EQ(found->data, r.data);
      EXPECT_EQ(found->key, r.key);
    }
  }
  EXPECT_EQ(store.count(spec), 3 * values.size());
  store.drop_table(spec);
  expect_nothing_new();
}

}  // namespace
}  // namespace webhookdb::test
