// PgReplicaStore against a real server: table shape, upsert semantics through
// every write method, value round trips, hostile names, ensure_all_columns,
// checkpoints, advisory locks and avoid_writes.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pg/pg_support.hpp"
#include "webhookdb/converters.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/pg/advisory_lock.hpp"
#include "webhookdb/pg/replica_store.hpp"

namespace webhookdb::pg {
namespace {

using nlohmann::json;
using namespace webhookdb::test;

class PgReplicaTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    store = std::make_unique<PgReplicaStore>(config(3));
  }
  void TearDown() override {
    store.reset();
    test::PgTest::TearDown();
  }
  std::string q(const std::string& table) const { return schema().quoted() + ".\"" + table + "\""; }
  std::string scalar(const std::string& sql, const std::vector<Param>& params = {}) const {
    auto r = admin_exec(sql, params);
    return r.rows.at(0).at(0).value_or("<null>");
  }
  std::unique_ptr<PgReplicaStore> store;
};

class PgUpsertMethodTest : public PgReplicaTest, public ::testing::WithParamInterface<WriteMethod> {};

const auto kMethods = ::testing::Values(WriteMethod::single_row, WriteMethod::multi_row, WriteMethod::staging_copy);
std::string MethodName(const ::testing::TestParamInfo<WriteMethod>& info) { return method_name(info.param); }

Row every_type_row(const std::string& id) {
  Row row = full_row(id, "2024-03-01T12:34:56.789012Z", "Zo\xC3\xAB");
  row.values[AMOUNT] = 42;
  row.values[CREATED] = "2020-01-01T00:00:00Z";
  row.values[BIG] = 9007199254740993LL;
  row.values[PRICE] = 12.5;
  row.values[RATIO] = 0.1;
  row.values[FLAG] = true;
  row.values[DAY] = "2024-02-29";
  row.values[META] = {{"nested", {{"a", json::array({1, "two", nullptr, true})}}}};
  row.values[TAGS] = json::array({"a", "b"});
  row.values[INTS] = json::array({1, 2, 3});
  row.values[BIGS] = json::array({9007199254740993LL, -1});
  row.values[UID] = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
  row.enrichment = {{"enriched", 1}};
  row.data["deep"] = {{"list", json::array({1.5, "x"})}};
  return row;
}

// --- Table shape ---

TEST_F(PgReplicaTest, CreateTableHasWebhookdbShapeAndIndexes) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  store->create_table(spec);  // idempotent
  auto cols = admin_exec(
      "SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull FROM pg_attribute"
      " WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
      {q("items")});
  std::vector<std::string> got;
  for (const auto& r : cols.rows) got.push_back(*r[0] + " " + *r[1] + (*r[2] == "t" ? " not null" : ""));
  const std::vector<std::string> want = {
      "pk bigint not null", "id text not null", "at timestamp with time zone", "name text", "amount integer",
      "created timestamp with time zone", "big bigint", "price numeric", "ratio double precision",
      "flag boolean", "day date", "meta jsonb", "tags text[]", "ints integer[]", "bigs bigint[]", "uid uuid",
      "enrichment jsonb", "data jsonb not null"};
  EXPECT_EQ(got, want);
  // pk is the primary key; the remote key is unique.
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = "
                   "ANY(i.indkey) WHERE i.indrelid = to_regclass($1) AND i.indisunique AND a.attname = 'id'",
                   {q("items")}),
            "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary", {q("items")}),
            "1");
  // WebhookDB's index names; the index_not_null one is partial.
  for (const auto& idx : spec.indexes()) {
    auto def = admin_exec("SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = $2",
                          {schema_name(), idx.name});
    ASSERT_EQ(def.rows.size(), 1U) << idx.name;
    if (idx.columns[0] == "uid") {
      EXPECT_NE(def.rows[0][0]->find("WHERE (uid IS NOT NULL)"), std::string::npos);
    }
  }
  EXPECT_EQ(spec.indexes()[0].name, "svi_testitems_at_idx");
}

TEST_F(PgReplicaTest, LongIndexNamesAreShortenedAndDuplicatesRejected) {
  TableSpec spec = small_spec("longidx");
  spec.opaque_id = "svi_" + std::string(30, 'z');
  spec.columns.push_back(Column(std::string(40, 'c'), ColumnType::text).indexed());
  store->create_table(spec);
  const auto name = spec.indexes().at(0).name;
  EXPECT_LE(name.size(), 63U);
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = $2", {schema_name(), name}),
            "1");

  TableSpec dup = small_spec("dupidx");
  dup.columns[1].indexed();
  dup.extra_indexes.push_back(IndexSpec{{"name"}, "", false, ""});  // same name as the column index
  EXPECT_THROW(store->create_table(dup), BrokenSpecification);
  EXPECT_EQ(scalar("SELECT to_regclass($1) IS NULL", {q("dupidx")}), "t");
}

// --- Upsert semantics, through every method ---

TEST_P(PgUpsertMethodTest, EveryColumnTypeRoundTrips) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  const Row row = every_type_row("r1");
  Row sparse = full_row("r2", "2024-01-01T00:00:00Z", "sparse");  // nulls everywhere else
  auto result = store->upsert(spec, std::vector<Row>{row, sparse}, with_method(GetParam()));
  EXPECT_EQ(result.changed, (std::vector<bool>{true, true}));
  EXPECT_EQ(store->find(spec, "r1"), row);
  EXPECT_EQ(store->find(spec, "r2"), sparse);
  EXPECT_EQ(store->find(spec, "missing"), std::nullopt);
  EXPECT_EQ(store->count(spec), 2U);
}

TEST_P(PgUpsertMethodTest, NewerOverwritesOlderNeverDoes) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  const auto opts = with_method(GetParam());
  EXPECT_EQ(store->upsert(spec, std::vector<Row>{full_row("a", "2024-01-02T00:00:00Z", "v2")}, opts).changed,
            std::vector<bool>{true});
  // Older: untouched (not even a new row version).
  const std::string xmin = scalar("SELECT xmin::text FROM " + q("items") + " WHERE id = 'a'");
  EXPECT_EQ(store->upsert(spec, std::vector<Row>{full_row("a", "2024-01-01T00:00:00Z", "older")}, opts).changed,
            std::vector<bool>{false});
  EXPECT_EQ(store->upsert(spec, std::vector<Row>{full_row("a", "2024-01-02T00:00:00Z", "same time")}, opts).changed,
            std::vector<bool>{false});
  EXPECT_EQ(scalar("SELECT xmin::text FROM " + q("items") + " WHERE id = 'a'"), xmin);
  EXPECT_EQ(store->find(spec, "a")->values[NAME], "v2");
  // Newer: written.
  EXPECT_EQ(store->upsert(spec, std::vector<Row>{full_row("a", "2024-01-03T00:00:00Z", "v3")}, opts).changed,
            std::vector<bool>{true});
  EXPECT_EQ(store->find(spec, "a")->values[NAME], "v3");
  // Without the update rule every conflict updates.
  EXPECT_EQ(store->upsert(spec, std::vector<Row>{full_row("a", "2000-01-01T00:00:00Z", "forced")},
                          with_method(GetParam(), false))
                .changed,
            std::vector<bool>{true});
  EXPECT_EQ(store->find(spec, "a")->values[NAME], "forced");
  // A stored null timestamp never protects the row.
  Row no_time = full_row("n", "2024-01-01T00:00:00Z", "no time");
  no_time.values[AT] = nullptr;
  store->upsert(spec, std::vector<Row>{no_time}, opts);
  EXPECT_EQ(store->upsert(spec, std::vector<Row>{full_row("n", "1999-01-01T00:00:00Z", "timed")}, opts).changed,
            std::vector<bool>{true});
}

TEST_P(PgUpsertMethodTest, MixedBatchWritesExactlyTheRowsTheRuleAllows) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  const auto opts = with_method(GetParam());
  Row stored_null = full_row("stored-null", "2024-01-01T00:00:00Z", "v1");
  stored_null.values[AT] = nullptr;
  store->upsert(spec,
                std::vector<Row>{full_row("older", "2024-01-02T00:00:00Z", "v1"),
                                 full_row("same", "2024-01-02T00:00:00Z", "v1"),
                                 full_row("newer", "2024-01-02T00:00:00Z", "v1"),
                                 full_row("incoming-null", "2024-01-02T00:00:00Z", "v1"), stored_null},
                opts);
  const std::string versions = "SELECT string_agg(id || ':' || xmin::text, ',' ORDER BY id) FROM " + q("items");
  const std::string before = scalar(versions);
  Row incoming_null = full_row("incoming-null", "2024-01-01T00:00:00Z", "v2");
  incoming_null.values[AT] = nullptr;
  const std::vector<Row> batch = {full_row("older", "2024-01-01T00:00:00Z", "v2"),
                                  full_row("new", "2024-01-01T00:00:00Z", "v2"),
                                  full_row("same", "2024-01-02T00:00:00Z", "v2"),
                                  full_row("newer", "2024-01-03T00:00:00Z", "v2"),
                                  incoming_null,
                                  full_row("stored-null", "2000-01-01T00:00:00Z", "v2")};
  EXPECT_EQ(store->upsert(spec, batch, opts).changed, (std::vector<bool>{false, true, false, true, false, true}));
  for (const auto* id : {"older", "same", "incoming-null"}) EXPECT_EQ(store->find(spec, id)->values[NAME], "v1") << id;
  for (const auto* id : {"new", "newer", "stored-null"}) EXPECT_EQ(store->find(spec, id)->values[NAME], "v2") << id;
  // The rows left alone have no new version.
  const std::string after = scalar(versions);
  for (const auto* id : {"older:", "same:", "incoming-null:"}) {
    const auto version = [&](const std::string& list) {
      const auto at = list.find(id);
      return list.substr(at, list.find(',', at) - at);
    };
    EXPECT_EQ(version(after), version(before)) << id;
  }
  EXPECT_EQ(store->count(spec), 6U);
}

TEST_P(PgUpsertMethodTest, SkipNilAndKeepExisting) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  const auto opts = with_method(GetParam());
  Row r = full_row("a", "2024-01-01T00:00:00Z", "one");
  r.values[AMOUNT] = 5;
  r.values[CREATED] = "2020-01-01T00:00:00Z";
  store->upsert(spec, std::vector<Row>{r}, opts);
  r = full_row("a", "2024-01-02T00:00:00Z", "two");  // amount null, created null
  EXPECT_TRUE(store->upsert(spec, std::vector<Row>{r}, opts).changed[0]);
  auto got = store->find(spec, "a");
  EXPECT_EQ(got->values[AMOUNT], 5);                          // skip_nil: null does not overwrite
  EXPECT_EQ(got->values[CREATED], "2020-01-01T00:00:00Z");    // keep_existing
  EXPECT_EQ(got->values[NAME], "two");
  r = full_row("a", "2024-01-03T00:00:00Z", "three");
  r.values[AMOUNT] = 7;
  r.values[CREATED] = "2021-06-01T00:00:00Z";
  store->upsert(spec, std::vector<Row>{r}, opts);
  got = store->find(spec, "a");
  EXPECT_EQ(got->values[AMOUNT], 7);
  EXPECT_EQ(got->values[CREATED], "2020-01-01T00:00:00Z");
}

TEST_P(PgUpsertMethodTest, DuplicateKeysInOneBatchLastWins) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  const std::vector<Row> batch = {full_row("x", "2024-01-01T00:00:00Z", "first"),
                                  full_row("y", "2024-01-01T00:00:00Z", "y"),
                                  full_row("x", "2024-01-03T00:00:00Z", "second"),
                                  full_row("x", "2024-01-02T00:00:00Z", "third")};
  auto result = store->upsert(spec, batch, with_method(GetParam()));
  EXPECT_EQ(result.changed, (std::vector<bool>{false, true, false, true}));
  EXPECT_EQ(store->find(spec, "x")->values[NAME], "third");
  EXPECT_EQ(store->count(spec), 2U);
}

TEST_P(PgUpsertMethodTest, DataDiffersAndCustomRules) {
  TableSpec spec = small_spec("differs");
  spec.update_rule = UpdateRule::when_data_differs();
  store->create_table(spec);
  const auto opts = with_method(GetParam());
  Row r = small_row("a", "2024-01-01T00:00:00Z", "n");
  EXPECT_TRUE(store->upsert(spec, std::vector<Row>{r}, opts).changed[0]);
  EXPECT_FALSE(store->upsert(spec, std::vector<Row>{r}, opts).changed[0]);
  r.data["extra"] = 1;
  EXPECT_TRUE(store->upsert(spec, std::vector<Row>{r}, opts).changed[0]);

  TableSpec custom = small_spec("custom");
  custom.columns.push_back(Column("version", ColumnType::integer));
  custom.update_rule = UpdateRule::custom("{table}.\"version\" < EXCLUDED.\"version\"",
                                          [](const TableSpec&, const Row& s, const Row& i) {
                                            return s.values[2].get<int>() < i.values[2].get<int>();
                                          });
  store->create_table(custom);
  Row v = small_row("a", "2024-01-01T00:00:00Z", "v5");
  v.values.push_back(5);
  EXPECT_TRUE(store->upsert(custom, std::vector<Row>{v}, opts).changed[0]);
  v.values[2] = 4;
  v.values[1] = "v4";
  EXPECT_FALSE(store->upsert(custom, std::vector<Row>{v}, opts).changed[0]);
  v.values[2] = 6;
  v.values[1] = "v6";
  EXPECT_TRUE(store->upsert(custom, std::vector<Row>{v}, opts).changed[0]);
  EXPECT_EQ(store->find(custom, "a")->values[1], "v6");
}

TEST_P(PgUpsertMethodTest, CopyPathRoundTripsAwkwardText) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  const std::vector<std::string> texts = {
      "tab\there", "new\nline", "cr\rreturn", "back\\slash", "\\N", "quote\"double", "single'quote",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x8E\x89", "\xE4\xB8\xAD\xE6\x96\x87", "", "   ", "comma,{brace}", "NULL",
      "a\\tb literal", "trailing\\"};
  std::vector<Row> rows;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    Row r = full_row("key " + texts[i] + " #" + std::to_string(i), "2024-01-01T00:00:00Z", texts[i]);
    r.values[TAGS] = json::array({texts[i], "NULL", nullptr});
    r.values[META] = {{texts[i], texts[i]}};
    r.data["text"] = texts[i];
    r.enrichment = json::array({texts[i]});
    rows.push_back(r);
  }
  auto result = store->upsert(spec, rows, with_method(GetParam()));
  EXPECT_EQ(result.changed_count(), rows.size());
  for (const auto& r : rows) EXPECT_EQ(store->find(spec, r.key), r) << r.key.dump();
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("items") + " WHERE name = '\\N'"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("items") + " WHERE name IS NULL"), "0");
}

// A table written moments ago (webhook micro-batches) takes its small
// chunks through one prepared INSERT ... SELECT FROM unnest(arrays): every
// cell then travels inside an array literal, where quotes, backslashes,
// braces and the text NULL must survive.
TEST_F(PgReplicaTest, SmallBatchesIntoATableWrittenMomentsAgoRoundTripAwkwardText) {
  TableSpec spec;
  spec.table = "hot";
  spec.opaque_id = "svi_hot";
  spec.remote_key = Column("id", ColumnType::text);
  spec.columns = {Column("at", ColumnType::timestamptz), Column("name", ColumnType::text),
                  Column("meta", ColumnType::jsonb), Column("price", ColumnType::numeric),
                  Column("flag", ColumnType::boolean)};
  spec.enrichment = true;
  spec.update_rule = UpdateRule::when_newer("at");
  store->create_table(spec);
  const auto row_of = [](const std::string& id, const std::string& at, const json& name) {
    Row r;
    r.key = id;
    r.values = {at, name, {{"k", name}}, 12.5, nullptr};
    r.enrichment = json::array({name});
    r.data = {{"id", id}, {"at", at}, {"name", name}};
    return r;
  };
  // The first batch marks the table as written; the next ones are small chunks of a recent table.
  ASSERT_EQ(store->upsert(spec, std::vector<Row>{row_of("warm", "2024-01-01T00:00:00Z", "w")},
                          with_method(WriteMethod::multi_row))
                .changed_count(),
            1U);
  const std::vector<std::string> texts = {"quote\"double", "back\\slash", "{brace},comma", "NULL", "",
                                          "   ", "\\N", "tab\there", "emoji \xF0\x9F\x98\x80", "trailing\\"};
  std::vector<Row> rows;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    rows.push_back(row_of("key " + texts[i] + " #" + std::to_string(i), "2024-01-02T00:00:00Z", texts[i]));
  }
  rows.push_back(row_of("null name", "2024-01-02T00:00:00Z", nullptr));
  EXPECT_EQ(store->upsert(spec, rows, with_method(WriteMethod::multi_row)).changed_count(), rows.size());
  for (const auto& r : rows) EXPECT_EQ(store->find(spec, r.key), r) << r.key.dump();
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("hot") + " WHERE name = 'NULL'"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("hot") + " WHERE name IS NULL"), "1");
  // The update rule and the changed flags through the same path: older is left, newer written.
  std::vector<Row> older{row_of(rows[0].key.get<std::string>(), "2023-01-01T00:00:00Z", "older"),
                         row_of(rows[1].key.get<std::string>(), "2025-01-01T00:00:00Z", "newer")};
  const auto res = store->upsert(spec, older, with_method(WriteMethod::multi_row));
  EXPECT_EQ(res.changed, (std::vector<bool>{false, true}));
  EXPECT_EQ(store->find(spec, rows[0].key), rows[0]);
  EXPECT_EQ(store->find(spec, older[1].key), older[1]);
}

TEST_P(PgUpsertMethodTest, NulCharactersAreRemovedEscapedOnesKept) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  Row r = full_row(std::string("key\0nul", 7), "2024-01-01T00:00:00Z", std::string("a\0b", 3));
  r.values[TAGS] = json::array({std::string("x\0y", 3)});
  r.values[META] = {{std::string("k\0", 2), std::string("v\0", 2)}};
  r.data = {{"s", std::string("a\0b", 3)}, {"escaped", "\\u0000"}};
  store->upsert(spec, std::vector<Row>{r}, with_method(GetParam()));
  auto got = store->find(spec, "keynul");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->values[NAME], "ab");
  EXPECT_EQ(got->values[TAGS], json::array({"xy"}));
  EXPECT_EQ(got->values[META], (json{{"k", "v"}}));
  EXPECT_EQ(got->data["s"], "ab");
  EXPECT_EQ(got->data["escaped"], "\\u0000");  // a backslash then u0000: not a NUL, kept
}

// jsonb cannot hold NUL, so NULs are removed; a key that differs from a
// sibling only by NULs would then replace it. Such a document is refused.
TEST_P(PgUpsertMethodTest, ObjectKeysCollidingAfterNulRemovalAreRefused) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  const json colliding = json::parse(R"({"k\u0000":1,"k":2})");
  auto attempt = [&](const std::function<void(Row&)>& spoil, const std::string& where, const std::string& path) {
    Row r = full_row("nul-key", "2024-01-01T00:00:00Z", "x");
    spoil(r);
    try {
      store->upsert(spec, std::vector<Row>{r}, with_method(GetParam()));
      ADD_FAILURE() << where << ": stored as " << store->find(spec, "nul-key")->data.dump();
    } catch (const InvalidInput& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("NUL"), std::string::npos) << what;
      EXPECT_NE(what.find(where), std::string::npos) << what;
      EXPECT_NE(what.find(path), std::string::npos) << what;
      EXPECT_NE(e.where().find("nul-key"), std::string::npos) << what;
    }
  };
  attempt([&](Row& r) { r.data = colliding; }, "data", "k\\u0000");
  attempt([&](Row& r) { r.data = {{"id", "nul-key"}, {"info", {{"deep", colliding}}}}; }, "data", "info.deep");
  attempt([&](Row& r) { r.values[META] = colliding; }, "meta", "k\\u0000");
  attempt([&](Row& r) { r.enrichment = json::array({colliding}); }, "enrichment", "0");
  EXPECT_EQ(store->count(spec), 0U);
  // A key whose NULs can be removed without meeting a sibling is stored without them.
  Row fine = full_row("fine", "2024-01-01T00:00:00Z", "x");
  fine.data = json::parse(R"({"k\u0000":1,"j":2})");
  store->upsert(spec, std::vector<Row>{fine}, with_method(GetParam()));
  EXPECT_EQ(store->find(spec, "fine")->data, (json{{"k", 1}, {"j", 2}}));
}

TEST_P(PgUpsertMethodTest, InvalidUtf8NamesTheKeyAndWritesNothing) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  store->upsert(spec, std::vector<Row>{full_row("kept", "2024-01-01T00:00:00Z", "before")});
  auto attempt = [&](const std::function<void(Row&)>& spoil, const std::string& key) {
    std::vector<Row> batch;
    for (int i = 0; i < 3; ++i) batch.push_back(full_row("ok" + std::to_string(i), "2024-01-01T00:00:00Z", "fine"));
    batch.push_back(full_row(key, "2024-02-01T00:00:00Z", "bad"));
    batch.push_back(full_row("kept", "2025-01-01T00:00:00Z", "after"));
    spoil(batch[3]);
    UpsertOptions opts = with_method(GetParam());
    opts.checkpoint = Checkpoint{77, "b0", "tok", false};
    try {
      store->upsert(spec, batch, opts);
      ADD_FAILURE() << "invalid UTF-8 accepted";
    } catch (const InvalidInput& e) {
      EXPECT_NE(e.where().find("bad-key"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
    }
  };
  attempt([](Row& r) { r.data["s"] = "bad\xff"; }, "bad-key-data");
  attempt([](Row& r) { r.values[NAME] = "bad\xc3"; }, "bad-key-text");
  attempt([](Row& r) { r.values[TAGS] = json::array({"\xed\xa0\x80"}); }, "bad-key-array");
  attempt([](Row& r) { r.values[META] = {{"k", "\xff"}}; }, "bad-key-jsonb");
  attempt([](Row& r) { r.enrichment = "\xfe"; }, "bad-key-enrichment");
  try {
    store->upsert(spec, std::vector<Row>{full_row("bad-key \xff", "2024-01-01T00:00:00Z", "x")});
    ADD_FAILURE() << "invalid UTF-8 key accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(e.where().find("bad-key"), std::string::npos) << e.what();
  }
  EXPECT_EQ(store->count(spec), 1U);
  EXPECT_EQ(store->find(spec, "kept")->values[NAME], "before");
  EXPECT_TRUE(store->load_checkpoints(77).empty());
}

TEST_P(PgUpsertMethodTest, ADatabaseErrorWritesNothingOfTheBatch) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  std::vector<Row> batch;
  for (int i = 0; i < 20; ++i) batch.push_back(full_row("r" + std::to_string(i), "2024-01-01T00:00:00Z", "x"));
  batch[13].values[DAY] = "not a date";  // only the server finds this one
  UpsertOptions opts = with_method(GetParam());
  opts.checkpoint = Checkpoint{5, "b", "next", false};
  EXPECT_THROW(store->upsert(spec, batch, opts), InvalidInput);
  EXPECT_EQ(store->count(spec), 0U);
  EXPECT_TRUE(store->load_checkpoints(5).empty());
  batch[13].values[DAY] = "2024-01-01";
  EXPECT_EQ(store->upsert(spec, batch, opts).changed_count(), 20U);
  EXPECT_EQ(store->load_checkpoints(5).at("b"), (Checkpoint{5, "b", "next", false}));
}

TEST_P(PgUpsertMethodTest, BcTimestampsAreNormalisedToUtc) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  // Year 0 is refused, as PostgreSQL refuses it (issue 16); 1 BC is written "BC".
  Row r = full_row("y0", "0001-01-01T00:00:00+01:00", "1 BC in UTC");
  store->upsert(spec, std::vector<Row>{r}, with_method(GetParam()));
  EXPECT_EQ(store->find(spec, "y0")->values[AT], "0001-12-31T23:00:00Z BC");
}

INSTANTIATE_TEST_SUITE_P(Methods, PgUpsertMethodTest, kMethods, MethodName);

// A table of the same name but another shape (another program's, or an
// integration's of another kind) is named, not met with "column does not exist".
TEST_F(PgReplicaTest, CreatingATableOverOneOfAnotherShapeNamesIt) {
  admin_exec("CREATE TABLE " + q("items") + " (id integer, updated text)");
  try {
    store->create_table(full_spec());
    FAIL() << "created over a foreign table";
  } catch (const InvalidPrecondition& e) {
    EXPECT_NE(std::string(e.what()).find("items"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("another shape"), std::string::npos) << e.what();
  }
  admin_exec("DROP TABLE " + q("items"));
  store->create_table(full_spec());
  EXPECT_NO_THROW(store->create_table(full_spec())) << "its own table is fine";
}

// The same batches through every method (and the memory store) give the same rows.
TEST_F(PgReplicaTest, AllMethodsGiveTheRowsOfTheSingleRowPath) {
  std::mt19937 rng(1234);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::vector<std::vector<Row>> batches;
  for (int b = 0; b < 5; ++b) {
    std::vector<Row> batch;
    const int size = b == 4 ? 1500 : 300;
    for (int i = 0; i < size; ++i) {
      const std::string id = "k" + std::to_string(pick(700));
      const std::string at = "2024-01-" + std::string(pick(9) < 5 ? "0" : "1") + std::to_string(1 + pick(9)) +
                             "T0" + std::to_string(pick(10)) + ":00:00Z";
      Row r = full_row(id, at, "n" + std::to_string(b) + "-" + std::to_string(i));
      if (pick(3) != 0) r.values[AMOUNT] = pick(1000);
      if (pick(2) == 0) r.values[CREATED] = at;
      if (pick(4) == 0) r.values[AT] = nullptr;
      r.values[TAGS] = json::array({"t" + std::to_string(pick(5))});
      r.values[META] = {{"b", b}, {"i", i}};
      r.values[PRICE] = pick(10000) / 100.0;
      r.values[FLAG] = pick(2) == 0;
      r.enrichment = pick(2) == 0 ? json(nullptr) : json{{"e", i}};
      r.data["i"] = i;
      batch.push_back(std::move(r));
    }
    batches.push_back(std::move(batch));
  }
  const std::vector<WriteMethod> methods = {WriteMethod::single_row, WriteMethod::multi_row,
                                            WriteMethod::staging_copy, WriteMethod::automatic};
  std::vector<std::vector<Row>> tables;
  std::vector<std::vector<std::vector<bool>>> changes;
  for (const auto m : methods) {
    const TableSpec spec = full_spec("same_" + method_name(m));
    store->create_table(spec);
    std::vector<std::vector<bool>> changed;
    for (const auto& batch : batches) changed.push_back(store->upsert(spec, batch, with_method(m)).changed);
    changes.push_back(changed);
    tables.push_back(all_rows(*store, spec));
  }
  memory::MemoryReplicaStore mem;
  const TableSpec mem_spec = full_spec("same_memory");
  mem.create_table(mem_spec);
  std::vector<std::vector<bool>> mem_changed;
  for (const auto& batch : batches) mem_changed.push_back(mem.upsert(mem_spec, batch).changed);

  ASSERT_FALSE(tables[0].empty());
  for (std::size_t i = 1; i < methods.size(); ++i) {
    EXPECT_EQ(tables[i], tables[0]) << method_name(methods[i]);
    EXPECT_EQ(changes[i], changes[0]) << method_name(methods[i]);
  }
  EXPECT_EQ(mem.rows(mem_spec), tables[0]);
  EXPECT_EQ(mem_changed, changes[0]);
}

// --- Reading ---

TEST_F(PgReplicaTest, ForEachPagesInKeyOrderAndMayCallTheStore) {
  PgReplicaStore one(config(1));  // the visitor's own calls need the only connection
  const TableSpec spec = small_spec("paged");
  one.create_table(spec);
  std::vector<Row> rows;
  for (int i = 2499; i >= 0; --i) {
    char id[16];
    std::snprintf(id, sizeof id, "k%05d", i);
    rows.push_back(small_row(id, "2024-01-01T00:00:00Z", "n"));
  }
  one.upsert(spec, rows);
  std::vector<std::string> seen;
  one.for_each(spec, [&](const Row& r) {
    seen.push_back(r.key.get<std::string>());
    if (seen.size() % 1000 == 1) {
      EXPECT_TRUE(one.find(spec, r.key));
    }
  });
  ASSERT_EQ(seen.size(), 2500U);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 2500U);
}

// A bigint key's ::text cast keeps the column's name, so the keyset column
// once made ORDER BY <key> ambiguous (42702) and every read of a table with a
// numeric key failed (the GitHub example's comments list their issues so).
// Pages are in numeric order, not text order (9 before 10).
TEST_F(PgReplicaTest, ForEachPagesANumericKeyInNumericOrder) {
  TableSpec spec = small_spec("numeric_paged");
  spec.remote_key = Column("id", ColumnType::bigint);
  store->create_table(spec);
  std::vector<Row> rows;
  for (long long i = 2500; i >= 1; --i) {
    Row r = small_row("x", "2024-01-01T00:00:00Z", "n");
    r.key = i;
    rows.push_back(r);
  }
  store->upsert(spec, rows);
  std::vector<long long> seen;
  store->for_each(spec, [&](const Row& r) { seen.push_back(r.key.get<long long>()); });
  ASSERT_EQ(seen.size(), 2500U);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.front(), 1);
  EXPECT_EQ(seen.back(), 2500);
}

TEST_F(PgReplicaTest, IntegerAndUuidKeys) {
  TableSpec spec = small_spec("intkeys");
  spec.remote_key = Column("id", ColumnType::bigint);
  store->create_table(spec);
  Row a = small_row("x", "2024-01-01T00:00:00Z", "a");
  a.key = 9007199254740993LL;
  Row b = a;
  b.key = 2;
  Row b2 = b;
  b2.key = "002";  // the same key to the database: deduplicated, last wins
  b2.values[1] = "b2";
  auto res = store->upsert(spec, std::vector<Row>{a, b, b2}, with_method(WriteMethod::multi_row, false));
  EXPECT_EQ(res.changed, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(store->find(spec, 9007199254740993LL)->key, 9007199254740993LL);
  EXPECT_EQ(store->find(spec, 2)->values[1], "b2");

  TableSpec uspec = small_spec("uuidkeys");
  uspec.remote_key = Column("id", ColumnType::uuid);
  store->create_table(uspec);
  Row u1 = small_row("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "2024-01-01T00:00:00Z", "upper");
  Row u2 = small_row("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "2024-01-02T00:00:00Z", "lower");
  res = store->upsert(uspec, std::vector<Row>{u1, u2}, with_method(WriteMethod::staging_copy));
  EXPECT_EQ(res.changed, (std::vector<bool>{false, true}));
  EXPECT_EQ(store->count(uspec), 1U);
}

// --- Hostile names ---

TEST_F(PgReplicaTest, HostileNamesAreQuotedAndNothingElseRuns) {
  admin_exec("CREATE TABLE " + schema().quoted() + ".victim (id integer)");
  Config c = config(2);
  const std::string weird_schema = schema_name() + "\"; DROP TABLE victim; --";
  c.replica_schema = weird_schema;
  PgReplicaStore weird(c);
  TableSpec spec;
  spec.table = "Tab\"le; DROP TABLE victim; -- /* x */";
  spec.opaque_id = "svi_hostile";
  spec.remote_key = Column("k'ey\" ;", ColumnType::text);
  spec.columns = {Column("Col \"A\"", ColumnType::timestamptz).indexed(),
                  Column("semi;colon", ColumnType::text).indexed_not_null(),
                  Column("/* comment */ --", ColumnType::integer), Column("MixedCase", ColumnType::text),
                  Column(" spaced name ", ColumnType::text_array)};
  spec.update_rule = UpdateRule::when_newer("Col \"A\"");
  weird.create_table(spec);
  Row r;
  r.key = "k1";
  r.values = {"2024-01-01T00:00:00Z", "v", 1, "M", json::array({"a"})};
  r.data = {{"semi;colon", "v"}, {"added", 5}};
  for (auto m : {WriteMethod::single_row, WriteMethod::multi_row, WriteMethod::staging_copy}) {
    r.values[0] = "2024-01-0" + std::to_string(2 + static_cast<int>(m)) + "T00:00:00Z";
    EXPECT_EQ(weird.upsert(spec, std::vector<Row>{r}, with_method(m)).changed, std::vector<bool>{true});
  }
  EXPECT_EQ(weird.find(spec, "k1"), r);
  EXPECT_EQ(all_rows(weird, spec).size(), 1U);
  // A column added later, with a hostile name too.
  spec.columns.push_back(Column("add\"ed'", ColumnType::integer).key("added").indexed());
  weird.ensure_all_columns(spec);
  EXPECT_EQ(weird.find(spec, "k1")->values.back(), 5);
  EXPECT_TRUE(weird.with_advisory_lock(spec, 1, [] {}));
  EXPECT_FALSE(weird.avoid_writes(spec));

  // Exactly the names asked for, nothing else created, nothing dropped.
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                   " WHERE n.nspname = $1 AND c.relkind = 'r'",
                   {weird_schema}),
            "1");
  EXPECT_EQ(scalar("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                   " WHERE n.nspname = $1 AND c.relkind = 'r'",
                   {weird_schema}),
            spec.table);
  auto cols = admin_exec("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0"
                         " AND NOT attisdropped ORDER BY attnum",
                         {weird.qualified_name(spec)});
  std::vector<std::string> names;
  for (const auto& row : cols.rows) names.push_back(*row[0]);
  EXPECT_EQ(names, (std::vector<std::string>{"pk", "k'ey\" ;", "Col \"A\"", "semi;colon", "/* comment */ --",
                                             "MixedCase", " spaced name ", "data", "add\"ed'"}));
  EXPECT_EQ(scalar("SELECT to_regclass($1) IS NOT NULL", {schema().quoted() + ".victim"}), "t");
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexdef LIKE '%IS NOT NULL%'",
                   {weird_schema}),
            "1");
  weird.drop_table(spec);
  EXPECT_EQ(scalar("SELECT to_regclass($1) IS NULL", {weird.qualified_name(spec)}), "t");
  admin_exec("DROP SCHEMA \"" + schema_name() + "\"\"; DROP TABLE victim; --\" CASCADE");
}

TEST_F(PgReplicaTest, NamesOverSixtyThreeBytesAreRejectedBeforeAnySql) {
  const std::string long_name(64, 't');
  TableSpec spec = small_spec(long_name);
  try {
    store->create_table(spec);
    FAIL() << "a 64-byte table name was accepted";
  } catch (const BrokenSpecification& e) {
    EXPECT_NE(std::string(e.what()).find("63 bytes"), std::string::npos) << e.what();
  }
  EXPECT_THROW(store->upsert(spec, std::vector<Row>{small_row("a", "2024-01-01T00:00:00Z", "n")}),
               BrokenSpecification);
  TableSpec col = small_spec("okname");
  col.columns.push_back(Column(std::string(64, 'c'), ColumnType::text));
  EXPECT_THROW(store->create_table(col), BrokenSpecification);
  Config c = config(1);
  c.replica_schema = std::string(64, 's');
  PgReplicaStore long_schema(c);
  EXPECT_THROW(long_schema.create_table(small_spec("x")), BrokenSpecification);
  // Nothing was created: no table (not even a truncated one) and no schema.
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                   " WHERE n.nspname = $1",
                   {schema_name()}),
            "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sss%'"), "0");
}

// --- ensure_all_columns ---

TEST_F(PgReplicaTest, EnsureAllColumnsFillsTenThousandRowsAndAddsIndexes) {
  Config c = config(2);
  c.fill_chunk_rows = 3000;  // several chunks plus the open-ended last one
  PgReplicaStore chunked(c);
  TableSpec v1 = small_spec("grow");
  chunked.create_table(v1);
  std::vector<Row> rows;
  for (int i = 0; i < 10000; ++i) {
    Row r = small_row("k" + std::to_string(i), "2024-01-01T00:00:00Z", "n");
    r.data["amount"] = i;
    r.data["when"] = 1700000000 + i;
    r.data["labels"] = "a, b ,c";
    r.data["obj"] = {{"i", i}};
    r.data["nums"] = json::array({i, i + 1});
    rows.push_back(std::move(r));
  }
  chunked.upsert(v1, rows);

  TableSpec v2 = v1;
  v2.columns.push_back(Column("amount", ColumnType::integer).indexed());
  v2.columns.push_back(Column("when_at", ColumnType::timestamptz).key("when").convert(converters::unix_timestamp()));
  v2.columns.push_back(Column("labels", ColumnType::text_array).convert(converters::comma_separated()));
  v2.columns.push_back(Column("obj", ColumnType::jsonb));
  v2.columns.push_back(Column("nums", ColumnType::bigint_array).indexed_not_null());
  v2.enrichment = true;
  chunked.ensure_all_columns(v2);

  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("grow") + " WHERE amount = (data->>'amount')::integer"), "10000");
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("grow") + " WHERE when_at IS NULL OR obj IS NULL OR labels IS NULL"),
            "0");
  auto got = chunked.find(v2, "k42");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->values[2], 42);
  EXPECT_EQ(got->values[3], "2023-11-14T22:14:02Z");
  EXPECT_EQ(got->values[4], json::array({"a", "b", "c"}));
  EXPECT_EQ(got->values[5], (json{{"i", 42}}));
  EXPECT_EQ(got->values[6], json::array({42, 43}));
  EXPECT_EQ(got->enrichment, nullptr);
  for (const auto& idx : v2.indexes()) {
    EXPECT_EQ(scalar("SELECT indisvalid::text FROM pg_index WHERE indexrelid = to_regclass($1)",
                     {schema().quoted() + ".\"" + idx.name + "\""}),
              "true")
        << idx.name;
  }
  // Rows written after the change carry the new columns.
  Row later = small_row("new", "2024-01-02T00:00:00Z", "n");
  later.values.insert(later.values.end(), {1, "2024-01-01T00:00:00Z", json::array({"x"}), json::object(), nullptr});
  chunked.upsert(v2, std::vector<Row>{later});
  EXPECT_EQ(chunked.find(v2, "new"), later);
  chunked.ensure_all_columns(v2);  // nothing left to do
  EXPECT_EQ(chunked.count(v2), 10001U);
}

TEST_F(PgReplicaTest, EnsureAllColumnsReplacesAnInvalidIndexAndCreatesMissingTables) {
  TableSpec v1 = small_spec("invalid_idx");
  store->create_table(v1);
  std::vector<Row> rows;
  for (int i = 0; i < 50; ++i) {
    Row r = small_row("k" + std::to_string(i), "2024-01-01T00:00:00Z", "n");
    r.data["grp"] = i % 3;
    rows.push_back(r);
  }
  store->upsert(v1, rows);
  TableSpec v2 = v1;
  v2.columns.push_back(Column("grp", ColumnType::integer).indexed());
  const std::string idx = v2.indexes().at(0).name;
  // A failed CREATE INDEX CONCURRENTLY leaves an invalid index of that name.
  admin_exec("ALTER TABLE " + q("invalid_idx") + " ADD COLUMN grp integer");
  admin_exec("UPDATE " + q("invalid_idx") + " SET grp = 1");
  EXPECT_ANY_THROW(admin_exec("CREATE UNIQUE INDEX CONCURRENTLY \"" + idx + "\" ON " + q("invalid_idx") + " (grp)"));
  EXPECT_EQ(scalar("SELECT indisvalid::text FROM pg_index WHERE indexrelid = to_regclass($1)",
                   {schema().quoted() + ".\"" + idx + "\""}),
            "false");
  store->ensure_all_columns(v2);
  EXPECT_EQ(scalar("SELECT (indisvalid AND NOT indisunique)::text FROM pg_index WHERE indexrelid = to_regclass($1)",
                   {schema().quoted() + ".\"" + idx + "\""}),
            "true");
  // A table that does not exist yet is created.
  store->ensure_all_columns(small_spec("brand_new"));
  EXPECT_EQ(store->count(small_spec("brand_new")), 0U);
}

// --- Checkpoints ---

TEST_F(PgReplicaTest, CheckpointsSaveLoadClearAndTravelWithRows) {
  EXPECT_TRUE(store->load_checkpoints(1).empty());
  store->save_checkpoint({1, "a", "tok1", false});
  store->save_checkpoint({1, "a", "tok2", false});
  store->save_checkpoint({1, "b", "", true});
  store->save_checkpoint({2, "a", "other", false});
  auto cps = store->load_checkpoints(1);
  ASSERT_EQ(cps.size(), 2U);
  EXPECT_EQ(cps.at("a"), (Checkpoint{1, "a", "tok2", false}));
  EXPECT_EQ(cps.at("b"), (Checkpoint{1, "b", "", true}));
  store->clear_checkpoints(1);
  EXPECT_TRUE(store->load_checkpoints(1).empty());
  EXPECT_EQ(store->load_checkpoints(2).size(), 1U);
  // With rows, and alone (an empty page).
  const TableSpec spec = small_spec();
  store->create_table(spec);
  UpsertOptions opts;
  opts.checkpoint = Checkpoint{3, "p", "page2", false};
  store->upsert(spec, std::vector<Row>{small_row("a", "2024-01-01T00:00:00Z", "n")}, opts);
  EXPECT_EQ(store->load_checkpoints(3).at("p").next_token, "page2");
  opts.checkpoint = Checkpoint{3, "p", "", true};
  store->upsert(spec, std::span<const Row>{}, opts);
  EXPECT_TRUE(store->load_checkpoints(3).at("p").finished);
  EXPECT_THROW(store->save_checkpoint({4, "k", std::string("t\0k", 3), false}), InvalidInput);
  // The table lives in the configured schema.
  EXPECT_EQ(scalar("SELECT count(*) FROM " + schema().quoted() + ".webhookdb_backfill_checkpoints"), "2");
}

// --- Advisory locks and avoid_writes ---

TEST_F(PgReplicaTest, AdvisoryLockOnTableOidAndNormalisedKey) {
  const TableSpec spec = small_spec("locked");
  store->create_table(spec);
  const std::string oid = scalar("SELECT to_regclass($1)::oid::text", {q("locked")});
  auto held = [&] {
    return admin_exec("SELECT objid::bigint::text FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid"
                      " AND objsubid = 2 ORDER BY objid",
                      {oid});
  };
  bool ran = false;
  EXPECT_TRUE(store->with_advisory_lock(spec, 5, [&] {
    ran = true;
    auto locks = held();
    ASSERT_EQ(locks.rows.size(), 1U);
    EXPECT_EQ(*locks.rows[0][0], "5");
    // Another session cannot take the same (normalised) key...
    bool inner = false;
    EXPECT_FALSE(store->with_advisory_lock(spec, 5, [&] { inner = true; }));
    EXPECT_FALSE(store->with_advisory_lock(spec, 5 + kMaxUint, [&] { inner = true; }));
    EXPECT_FALSE(inner);
    // ...but another key, yes.
    EXPECT_TRUE(store->with_advisory_lock(spec, 6, [&] { EXPECT_EQ(held().rows.size(), 2U); }));
  }));
  EXPECT_TRUE(ran);
  EXPECT_TRUE(held().rows.empty());
  // Keys between max int and max uint are folded into the negatives (pg_locks shows them unsigned).
  EXPECT_TRUE(store->with_advisory_lock(spec, kMaxInt + 10, [&] {
    EXPECT_EQ(*held().rows.at(0)[0], std::to_string(4294967296LL - 10));
  }));
  // A throwing body releases the lock; the error goes through.
  EXPECT_THROW(store->with_advisory_lock(spec, 7, [] { throw InvariantViolation("inside"); }), InvariantViolation);
  EXPECT_TRUE(held().rows.empty());
  bool below = false;
  EXPECT_THROW(store->with_advisory_lock(spec, kMinInt - 1, [&] { below = true; }), InvalidInput);
  EXPECT_FALSE(below);
  EXPECT_THROW(store->with_advisory_lock(small_spec("no_such_table"), 1, [] {}), InvalidPrecondition);
}

TEST_F(PgReplicaTest, AvoidWritesWhileAnotherSessionLocksTheTable) {
  const TableSpec spec = small_spec("busy");
  const TableSpec other = small_spec("calm");
  store->create_table(spec);
  store->create_table(other);
  EXPECT_FALSE(store->avoid_writes(spec));
  ConnectionPool locker(config(1));
  auto under_lock = [&](const std::string& mode, const std::function<void()>& check) {
    std::atomic<bool> locked{false};
    std::atomic<bool> release{false};
    std::thread t([&] {
      locker.transaction([&](Session& s) {
        s.exec("LOCK TABLE " + q("busy") + " IN " + mode + " MODE");
        locked = true;
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      });
    });
    if (eventually([&] { return locked.load(); })) {
      check();
    } else {
      ADD_FAILURE() << "LOCK TABLE " << mode << " never happened";
    }
    release = true;
    t.join();
  };
  under_lock("ACCESS EXCLUSIVE", [&] {
    EXPECT_TRUE(store->avoid_writes(spec));
    EXPECT_FALSE(store->avoid_writes(other));
  });
  under_lock("EXCLUSIVE", [&] { EXPECT_TRUE(store->avoid_writes(spec)); });
  under_lock("SHARE UPDATE EXCLUSIVE", [&] { EXPECT_TRUE(store->avoid_writes(spec)); });
  under_lock("ROW EXCLUSIVE", [&] { EXPECT_FALSE(store->avoid_writes(spec)); });
  EXPECT_FALSE(store->avoid_writes(spec));
}

// The COPY path copies keys it found missing straight into the table. Here
// another transaction inserts one of them after that check: the direct COPY
// waits on it, fails with a unique violation when it commits, and the batch
// runs again through the staging table, where the update rule still holds.
TEST_F(PgReplicaTest, CopyPathSurvivesAKeyInsertedConcurrentlyAfterItsCheck) {
  const TableSpec spec = small_spec("copyrace");
  store->create_table(spec);
  Config c = config(1);
  c.application_name = "copyrace_other";
  ConnectionPool other(c);
  Config mine = config(1);
  mine.application_name = "copyrace_writer";
  PgReplicaStore writer(mine);
  std::atomic<bool> blocked{false};
  UpsertResult res;
  std::thread upserter;
  other.transaction([&](Session& s) {
    // Newer than what the batch brings for k1: the batch must not overwrite it.
    s.exec("INSERT INTO " + q("copyrace") + " (id, at, name, data) VALUES ('k1', '2024-06-01T00:00:00Z', 'other', "
           "'{}')");
    upserter = std::thread([&] {
      res = writer.upsert(spec,
                          std::vector<Row>{small_row("k1", "2024-01-01T00:00:00Z", "batch"),
                                           small_row("k2", "2024-01-01T00:00:00Z", "batch")},
                          with_method(WriteMethod::staging_copy));
    });
    // Commits once the batch's COPY waits on k1's uncommitted index entry.
    blocked = eventually([&] {
      return scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'copyrace_writer'"
                    " AND wait_event_type = 'Lock'") == "1";
    });
  });
  upserter.join();
  ASSERT_TRUE(blocked) << "the batch never waited on the concurrent insert";
  EXPECT_EQ(res.changed, (std::vector<bool>{false, true}));
  EXPECT_EQ(store->find(spec, "k1")->values[1], "other");
  EXPECT_EQ(store->find(spec, "k2")->values[1], "batch");
  EXPECT_EQ(store->count(spec), 2U);
}

// Batches larger than one COPY chunk: rows are encoded while the COPY streams,
// a bad row after several chunks were sent still writes nothing, and the rows
// the update rule would leave alone are not sent at all.
TEST_F(PgReplicaTest, CopyPathStreamsBigBatchesAndSendsOnlyRowsToWrite) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  const std::string filler(1000, 'f');
  std::vector<Row> batch;
  for (int i = 0; i < 1500; ++i) {
    batch.push_back(full_row("k" + std::to_string(10000 + i), "2024-01-01T00:00:00Z", "v1"));
    batch.back().data["filler"] = filler;
  }
  UpsertOptions opts = with_method(WriteMethod::staging_copy);
  opts.checkpoint = Checkpoint{9, "b", "t1", false};
  batch.back().data["bad"] = std::string("\xff");
  try {
    store->upsert(spec, batch, opts);
    ADD_FAILURE() << "invalid UTF-8 accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(e.where().find("k11499"), std::string::npos) << e.what();
  }
  EXPECT_EQ(store->count(spec), 0U);
  EXPECT_TRUE(store->load_checkpoints(9).empty());

  batch.back().data.erase("bad");
  EXPECT_EQ(store->upsert(spec, batch, opts).changed_count(), 1500U);
  EXPECT_EQ(store->find(spec, "k10777")->data["filler"], filler);

  // Half the rows newer: exactly those are written.
  for (std::size_t i = 0; i < batch.size(); i += 2) {
    batch[i].values[AT] = "2024-01-02T00:00:00Z";
    batch[i].values[NAME] = "v2";
  }
  opts.checkpoint = Checkpoint{9, "b", "t2", false};
  const auto result = store->upsert(spec, batch, opts);
  for (std::size_t i = 0; i < batch.size(); ++i) ASSERT_EQ(result.changed[i], i % 2 == 0) << i;
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("items") + " WHERE name = 'v2'"), "750");
  EXPECT_EQ(store->load_checkpoints(9).at("b").next_token, "t2");

  // The same batch again: nothing to write, and nothing is sent: a stale row
  // whose data would fail to encode is not even looked at. The checkpoint still
  // moves.
  batch[3].data["bad"] = std::string("\xff");
  opts.checkpoint = Checkpoint{9, "b", "t3", false};
  EXPECT_EQ(store->upsert(spec, batch, opts).changed_count(), 0U);
  EXPECT_EQ(store->load_checkpoints(9).at("b").next_token, "t3");
  EXPECT_EQ(store->count(spec), 1500U);
}

// After a batch of only new keys the next one is COPYed in without asking
// the table; whenever that guess is wrong the batch must come out exactly as
// if the table had been asked.
TEST_F(PgReplicaTest, AGuessThatEveryRowIsNewNeverChangesWhatIsWritten) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  const auto rows = [](int first, int n, const std::string& at, const std::string& name) {
    std::vector<Row> out;
    for (int i = first; i < first + n; ++i) out.push_back(full_row("g" + std::to_string(i), at, name));
    return out;
  };
  UpsertOptions opts = with_method(WriteMethod::staging_copy);
  EXPECT_EQ(store->upsert(spec, rows(0, 100, "2024-01-02T00:00:00Z", "a"), opts).changed_count(), 100U);
  EXPECT_EQ(store->upsert(spec, rows(100, 100, "2024-01-02T00:00:00Z", "b"), opts).changed_count(), 100U);

  // Older copies of 0-49, newer copies of 100-124, new 200-224.
  std::vector<Row> mixed = rows(0, 50, "2024-01-01T00:00:00Z", "older");
  for (auto& r : rows(100, 25, "2024-01-03T00:00:00Z", "newer")) mixed.push_back(std::move(r));
  for (auto& r : rows(200, 25, "2024-01-03T00:00:00Z", "new")) mixed.push_back(std::move(r));
  opts.checkpoint = Checkpoint{4, "b", "after-mixed", false};
  const auto result = store->upsert(spec, mixed, opts);
  for (std::size_t i = 0; i < mixed.size(); ++i) ASSERT_EQ(result.changed[i], i >= 50) << i;
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("items") + " WHERE name = 'older'"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("items") + " WHERE name = 'newer'"), "25");
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("items") + " WHERE name = 'new'"), "25");
  EXPECT_EQ(store->load_checkpoints(4).at("b").next_token, "after-mixed");

  // New keys again, then (guessing again) a batch that fails part-way:
  // nothing of it is written and its checkpoint is not saved.
  EXPECT_EQ(store->upsert(spec, rows(300, 100, "2024-01-02T00:00:00Z", "c"), opts).changed_count(), 100U);
  std::vector<Row> bad = rows(400, 100, "2024-01-02T00:00:00Z", "d");
  bad[70].data["x"] = std::string("\xff");
  opts.checkpoint = Checkpoint{4, "b", "after-bad", false};
  EXPECT_THROW(store->upsert(spec, bad, opts), InvalidInput);
  EXPECT_EQ(store->count(spec), 325U);
  EXPECT_EQ(store->load_checkpoints(4).at("b").next_token, "after-mixed");

  // Without the update rule, existing keys after new ones are overwritten.
  std::vector<Row> all_old = rows(300, 10, "2023-01-01T00:00:00Z", "overwritten");
  EXPECT_EQ(store->upsert(spec, all_old, with_method(WriteMethod::staging_copy, false)).changed_count(), 10U);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("items") + " WHERE name = 'overwritten'"), "10");
  EXPECT_EQ(store->count(spec), 325U);

  // Every row newer (the guess becomes "write them all, staged"), then a batch
  // for which that guess is wrong: older rows, one newer, one new.
  opts.checkpoint.reset();
  EXPECT_EQ(store->upsert(spec, rows(0, 100, "2024-02-01T00:00:00Z", "e"), opts).changed_count(), 100U);
  EXPECT_EQ(store->upsert(spec, rows(0, 100, "2024-02-02T00:00:00Z", "f"), opts).changed_count(), 100U);
  std::vector<Row> stale = rows(0, 100, "2024-02-01T12:00:00Z", "stale");
  stale[10].values[AT] = "2024-02-03T00:00:00Z";
  stale.push_back(full_row("g999", "2024-02-03T00:00:00Z", "stale"));
  const auto after = store->upsert(spec, stale, opts);
  for (std::size_t i = 0; i < stale.size(); ++i) ASSERT_EQ(after.changed[i], i == 10 || i == 100) << i;
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("items") + " WHERE name = 'f'"), "99");
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("items") + " WHERE name = 'stale'"), "2");
  // Nothing newer at all: nothing written.
  EXPECT_EQ(store->upsert(spec, rows(0, 100, "2024-01-01T00:00:00Z", "older"), opts).changed_count(), 0U);
  EXPECT_EQ(store->count(spec), 326U);
}

// Staged batches go through one temporary table per session and column list:
// the next batch reuses it (creating and dropping one per batch was catalog
// work on every batch), finds it empty, and a table whose columns changed
// gets a table of its own.
TEST_F(PgReplicaTest, StagingTableIsReusedEmptyAndFollowsTheColumns) {
  PgReplicaStore one(config(1));  // one session, so every batch meets the same staging table
  TableSpec spec = small_spec();
  // Columns no other test's table has in this order: tests running at the
  // same time stage tables of their own (staging tables are named by their
  // column types), and the catalog query below must not count them.
  spec.columns.push_back(Column("d", ColumnType::date));
  spec.columns.push_back(Column("r", ColumnType::double_precision));
  spec.columns.push_back(Column("u", ColumnType::uuid));
  spec.columns.push_back(Column("f", ColumnType::boolean));
  one.create_table(spec);
  const auto rows = [](int first, int n, const std::string& at, const std::string& name) {
    std::vector<Row> out;
    for (int i = first; i < first + n; ++i) {
      out.push_back(small_row("s" + std::to_string(i), at, name));
      out.back().values.resize(6, nullptr);
    }
    return out;
  };
  const auto stages = [&] {
    std::vector<std::string> out;
    for (const auto& r : admin_exec("SELECT c.oid::text FROM pg_class c JOIN pg_namespace n ON n.oid = "
                                    "c.relnamespace WHERE n.nspname LIKE 'pg_temp%' AND c.relname LIKE "
                                    "'webhookdb_stage%' AND (SELECT string_agg(format_type(a.atttypid, "
                                    "a.atttypmod), ',' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = "
                                    "c.oid AND a.attnum > 0 AND NOT a.attisdropped) LIKE $1 ORDER BY c.oid",
                                    {std::string("integer,text,timestamp with time zone,text,date,double "
                                                 "precision,uuid,boolean,%")})
                             .rows) {
      out.push_back(r[0].value_or(""));
    }
    return out;
  };
  const auto opts = with_method(WriteMethod::staging_copy);
  EXPECT_EQ(one.upsert(spec, rows(0, 50, "2024-01-01T00:00:00Z", "a"), opts).changed_count(), 50U);
  EXPECT_EQ(one.upsert(spec, rows(0, 50, "2024-01-02T00:00:00Z", "b"), opts).changed_count(), 50U);
  const auto first = stages();
  ASSERT_EQ(first.size(), 1U);

  // Rows left in the staging table would be written again: without the
  // update rule, the old copies of these keys make the INSERT touch a row
  // twice and fail.
  const auto result = one.upsert(spec, rows(0, 10, "2024-01-03T00:00:00Z", "c"),
                                 with_method(WriteMethod::staging_copy, false));
  EXPECT_EQ(result.changed_count(), 10U);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("small") + " WHERE name = 'b'"), "40");
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("small") + " WHERE name = 'c'"), "10");
  EXPECT_EQ(stages(), first);

  // A batch that fails part-way leaves the staging table usable and empty.
  std::vector<Row> bad = rows(0, 20, "2024-01-04T00:00:00Z", "d");
  bad[15].data["x"] = std::string("\xff");
  EXPECT_THROW(one.upsert(spec, bad, opts), InvalidInput);
  EXPECT_EQ(one.upsert(spec, rows(40, 20, "2024-01-04T00:00:00Z", "e"), opts).changed_count(), 20U);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("small") + " WHERE name = 'e'"), "20");
  EXPECT_EQ(one.count(spec), 60U);
  EXPECT_EQ(stages(), first);

  // A column added: its own staging table, and the new column is written.
  spec.columns.push_back(Column("note", ColumnType::text));
  one.ensure_all_columns(spec);
  std::vector<Row> wider = rows(0, 5, "2024-01-05T00:00:00Z", "f");
  for (auto& r : wider) r.values.push_back("noted");
  EXPECT_EQ(one.upsert(spec, wider, opts).changed_count(), 5U);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q("small") + " WHERE note = 'noted'"), "5");
  EXPECT_EQ(stages().size(), 2U);
}

// Backfill batches (they carry a checkpoint) do not wait for their WAL to be
// flushed: a crash loses them together with their checkpoint. Other writes
// wait, and a store can be told to always wait.
TEST_F(PgReplicaTest, OnlyCheckpointedBatchesCommitWithoutWaitingForTheDisk) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  admin_exec("CREATE TABLE " + schema().quoted() + ".commit_modes (mode text)");
  admin_exec("CREATE FUNCTION " + schema().quoted() +
             ".record_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$"
             " BEGIN INSERT INTO " +
             schema().quoted() +
             ".commit_modes VALUES (current_setting('synchronous_commit'));"
             " RETURN NULL; END $$");
  admin_exec("CREATE TRIGGER record_commit_mode AFTER INSERT OR UPDATE ON " + q("items") +
             " FOR EACH STATEMENT EXECUTE FUNCTION " + schema().quoted() + ".record_commit_mode()");
  const auto modes = [&] {
    auto r = admin_exec("SELECT string_agg(DISTINCT mode, ',') FROM " + schema().quoted() + ".commit_modes");
    admin_exec("DELETE FROM " + schema().quoted() + ".commit_modes");
    return r.rows.at(0).at(0).value_or("");
  };
  // The test server runs with synchronous_commit off: these connections ask for on.
  Config on = config(1);
  on.url +=
      std::string(on.url.find('?') == std::string::npos ? "?" : "&") + "options=-c%20synchronous_commit%3Don";
  store = std::make_unique<PgReplicaStore>(on);
  UpsertOptions backfill = with_method(WriteMethod::staging_copy);
  backfill.checkpoint = Checkpoint{5, "b", "t", false};
  store->upsert(spec, std::vector<Row>{full_row("c1", "2024-01-01T00:00:00Z", "x")}, backfill);
  EXPECT_EQ(modes(), "off");
  store->upsert(spec, std::vector<Row>{full_row("c2", "2024-01-01T00:00:00Z", "x")},
                with_method(WriteMethod::staging_copy));
  EXPECT_EQ(modes(), "on");
  store->upsert(spec, std::vector<Row>{full_row("c3", "2024-01-01T00:00:00Z", "x")},
                with_method(WriteMethod::single_row));
  EXPECT_EQ(modes(), "on");

  // A checkpoint saved on its own (at a page boundary after a batch) too.
  admin_exec("CREATE TRIGGER record_commit_mode AFTER INSERT OR UPDATE ON " + schema().quoted() +
             ".webhookdb_backfill_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION " + schema().quoted() +
             ".record_commit_mode()");
  store->save_checkpoint(Checkpoint{5, "b", "t2", false});
  EXPECT_EQ(modes(), "off");

  Config waits = on;
  waits.async_checkpointed_commits = false;
  PgReplicaStore careful(waits);
  careful.upsert(spec, std::vector<Row>{full_row("c4", "2024-01-01T00:00:00Z", "x")}, backfill);
  EXPECT_EQ(modes(), "on");
  careful.save_checkpoint(Checkpoint{5, "b", "t3", false});
  EXPECT_EQ(modes(), "on");
  EXPECT_EQ(store->count(spec), 4U);
  EXPECT_EQ(store->load_checkpoints(5).at("b").next_token, "t3");
}

TEST_F(PgReplicaTest, CopyBatchesIntoOneTableTakeTurns) {
  const TableSpec spec = full_spec();
  store->create_table(spec);
  // Each COPY into the table waits in a trigger, then records how many COPYs
  // into its schema are running (its own included); other statements pass through.
  const std::string overlap = schema().quoted() + ".copy_overlap";
  admin_exec("CREATE TABLE " + overlap + " (writers bigint)");
  admin_exec("CREATE FUNCTION " + schema().quoted() +
             ".record_copy_overlap() RETURNS trigger LANGUAGE plpgsql AS $$"
             " BEGIN IF current_query() NOT LIKE 'COPY %' THEN RETURN NULL; END IF;"
             " PERFORM pg_sleep(0.4); INSERT INTO " +
             overlap +
             " SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'COPY %'"
             " AND position(TG_TABLE_SCHEMA in query) > 0; PERFORM pg_sleep(0.1); RETURN NULL; END $$");
  admin_exec("CREATE TRIGGER record_copy_overlap AFTER INSERT ON " + q("items") +
             " FOR EACH STATEMENT EXECUTE FUNCTION " + schema().quoted() + ".record_copy_overlap()");
  int next_key = 0;
  // Four threads COPY a batch each at once; returns the most COPYs seen running.
  const auto most_at_once = [&](PgReplicaStore& writer) {
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int i = 0; i < 4; ++i) {
      const std::string key = "t" + std::to_string(next_key++);
      threads.emplace_back([&writer, &spec, &failures, key] {
        try {
          writer.upsert(spec, std::vector<Row>{full_row(key, "2024-01-01T00:00:00Z", "x")},
                        with_method(WriteMethod::staging_copy));
        } catch (const std::exception&) {
          ++failures;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    const std::string most = scalar("SELECT max(writers) FROM " + overlap);
    admin_exec("DELETE FROM " + overlap);
    return std::stoi(most);
  };
  const auto store_with = [&](int max_concurrent_copies) {
    Config cfg = config(4);
    cfg.max_concurrent_copies = max_concurrent_copies;
    return std::make_unique<PgReplicaStore>(cfg);
  };
  EXPECT_EQ(most_at_once(*store_with(1)), 1);
  EXPECT_EQ(most_at_once(*store_with(2)), 2);
  EXPECT_GE(most_at_once(*store_with(0)), 3);  // no limit
  EXPECT_EQ(store->count(spec), 12U);

  // Single-row writes (webhooks) never wait for a turn.
  auto one_at_a_time = store_with(1);
  std::thread copying([&] {
    one_at_a_time->upsert(spec, std::vector<Row>{full_row("slow", "2024-01-01T00:00:00Z", "x")},
                          with_method(WriteMethod::staging_copy));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = std::chrono::steady_clock::now();
  one_at_a_time->upsert(spec, std::vector<Row>{full_row("hook", "2024-01-01T00:00:00Z", "x")},
                        with_method(WriteMethod::single_row));
  const auto single_row_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  copying.join();
  EXPECT_LT(single_row_ms, 300) << "a single-row write waited for the COPY's turn";

  // A batch that cannot get a turn in acquire_timeout fails retryably, naming
  // the table, and writes nothing.
  Config impatient_cfg = config(4);
  impatient_cfg.max_concurrent_copies = 1;
  impatient_cfg.acquire_timeout = std::chrono::milliseconds(100);
  PgReplicaStore impatient(impatient_cfg);
  std::thread holder([&] {
    impatient.upsert(spec, std::vector<Row>{full_row("first", "2024-01-01T00:00:00Z", "x")},
                     with_method(WriteMethod::staging_copy));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  try {
    impatient.upsert(spec, std::vector<Row>{full_row("second", "2024-01-01T00:00:00Z", "x")},
                     with_method(WriteMethod::staging_copy));
    ADD_FAILURE() << "the second batch did not wait for its turn";
  } catch (const StoreError& e) {
    EXPECT_TRUE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("waiting for a turn to write into " + q("items")), std::string::npos)
        << e.what();
  }
  holder.join();
  EXPECT_FALSE(store->find(spec, "second").has_value());
  EXPECT_TRUE(store->find(spec, "first").has_value());
}

TEST_F(PgReplicaTest, DroppedTableIsGone) {
  const TableSpec spec = small_spec("dropme");
  store->create_table(spec);
  store->drop_table(spec);
  store->drop_table(spec);  // idempotent
  EXPECT_THROW((void)store->count(spec), StoreError);
}

}  // namespace
}  // namespace webhookdb::pg
