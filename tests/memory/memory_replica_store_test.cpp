// MemoryReplicaStore: the semantics the SQL upsert has.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "webhookdb/converters.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"

namespace webhookdb::memory {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;

TableSpec widgets() {
  TableSpec spec;
  spec.table = "widgets";
  spec.opaque_id = "svi_w";
  spec.remote_key = Column("id", ColumnType::text);
  Column at("at", ColumnType::timestamptz);
  at.indexed();
  Column color("color", ColumnType::text);
  color.skip_nil();
  Column first_seen("first_seen", ColumnType::text);
  first_seen.keep_existing();
  spec.columns = {at, color, first_seen};
  spec.update_rule = UpdateRule::when_newer("at");
  return spec;
}

Row widget(const std::string& id, const std::string& at, json color = "red", json first_seen = "s1",
           json data = nullptr) {
  if (data.is_null()) data = {{"id", id}, {"at", at}};
  return Row{id, {at, std::move(color), std::move(first_seen)}, nullptr, std::move(data)};
}

class MemoryReplicaStoreTest : public ::testing::Test {
 protected:
  MemoryReplicaStore store;
  TableSpec spec = widgets();
  void SetUp() override { store.create_table(spec); }

  UpsertResult put(std::vector<Row> rows, UpsertOptions options = {}) { return store.upsert(spec, rows, options); }
  Row get(const std::string& id) {
    auto row = store.find(spec, id);
    if (!row) throw std::runtime_error("no row " + id);
    return *row;
  }
};

TEST_F(MemoryReplicaStoreTest, InsertsAndFinds) {
  auto result = put({widget("a", "2024-01-01T00:00:00Z")});
  EXPECT_THAT(result.changed, ElementsAre(true));
  EXPECT_EQ(get("a"), widget("a", "2024-01-01T00:00:00Z"));
  EXPECT_FALSE(store.find(spec, "zz"));
  EXPECT_EQ(store.count(spec), 1U);
}

TEST_F(MemoryReplicaStoreTest, NewerOverwritesOlder) {
  put({widget("a", "2024-01-01T00:00:00Z", "red")});
  auto result = put({widget("a", "2024-01-02T00:00:00Z", "blue")});
  EXPECT_THAT(result.changed, ElementsAre(true));
  EXPECT_EQ(get("a").values[1], "blue");
  EXPECT_EQ(get("a").values[0], "2024-01-02T00:00:00Z");
}

TEST_F(MemoryReplicaStoreTest, OlderNeverOverwritesNewer) {
  put({widget("a", "2024-01-02T00:00:00Z", "blue")});
  auto older = put({widget("a", "2024-01-01T00:00:00Z", "red")});
  auto same = put({widget("a", "2024-01-02T00:00:00Z", "green")});
  EXPECT_THAT(older.changed, ElementsAre(false));
  EXPECT_THAT(same.changed, ElementsAre(false));
  EXPECT_EQ(get("a").values[1], "blue");
}

TEST_F(MemoryReplicaStoreTest, WithoutTheUpdateRuleEveryConflictUpdates) {
  put({widget("a", "2024-01-02T00:00:00Z", "blue")});
  UpsertOptions always;
  always.apply_update_rule = false;
  auto result = put({widget("a", "2024-01-01T00:00:00Z", "red")}, always);
  EXPECT_THAT(result.changed, ElementsAre(true));
  EXPECT_EQ(get("a").values[1], "red");
}

TEST_F(MemoryReplicaStoreTest, SkipNilColumnsKeepTheStoredValue) {
  put({widget("a", "2024-01-01T00:00:00Z", "red")});
  put({widget("a", "2024-01-02T00:00:00Z", nullptr)});
  EXPECT_EQ(get("a").values[1], "red");
  EXPECT_EQ(get("a").values[0], "2024-01-02T00:00:00Z");
  put({widget("b", "2024-01-01T00:00:00Z", nullptr)});
  EXPECT_TRUE(get("b").values[1].is_null()) << "an insert stores the null";
}

TEST_F(MemoryReplicaStoreTest, KeepExistingColumnsAreWrittenOnInsertOnly) {
  put({widget("a", "2024-01-01T00:00:00Z", "red", "first")});
  put({widget("a", "2024-01-02T00:00:00Z", "red", "second")});
  EXPECT_EQ(get("a").values[2], "first");
}

TEST_F(MemoryReplicaStoreTest, DuplicateKeysInOneBatchTheLastWins) {
  auto result = put({widget("a", "2024-01-03T00:00:00Z", "first"), widget("b", "2024-01-01T00:00:00Z"),
                     widget("a", "2024-01-01T00:00:00Z", "last")});
  EXPECT_THAT(result.changed, ElementsAre(false, true, true));
  EXPECT_EQ(result.changed_count(), 2U);
  EXPECT_EQ(get("a").values[1], "last") << "not the newest: the last of the batch";
  EXPECT_EQ(store.count(spec), 2U);
}

TEST_F(MemoryReplicaStoreTest, EncodedNulsAreRemovedEscapedBackslashesKept) {
  const json data = json::parse(R"({"id":"a","at":"2024-01-01T00:00:00Z","a":"x\u0000y","b":"x\\u0000y","k\u0000":1})");
  put({widget("a", "2024-01-01T00:00:00Z", json::parse(R"("re\u0000d")"), "s", data)});
  const auto row = get("a");
  EXPECT_EQ(row.data["a"], "xy");
  EXPECT_EQ(row.data["b"], "x\\u0000y");
  EXPECT_TRUE(row.data.contains("k"));
  EXPECT_EQ(row.values[1], "red");
  // What is stored is already what jsonb accepts: nothing left to strip.
  EXPECT_EQ(to_jsonb_text(row.data), row.data.dump());
  EXPECT_NE(row.data.dump().find(R"("x\\u0000y")"), std::string::npos);
}

TEST_F(MemoryReplicaStoreTest, ABatchIsAllOrNothing) {
  Row broken = widget("c", "2024-01-01T00:00:00Z");
  broken.values.pop_back();
  EXPECT_THROW(put({widget("a", "2024-01-01T00:00:00Z"), broken}), InvalidInput);
  Row no_key = widget("d", "2024-01-01T00:00:00Z");
  no_key.key = nullptr;
  EXPECT_THROW(put({widget("b", "2024-01-01T00:00:00Z"), no_key}), InvalidInput);
  EXPECT_EQ(store.count(spec), 0U);
  EXPECT_EQ(store.rows_written(), 0U);
}

TEST_F(MemoryReplicaStoreTest, AFailingUpdateRuleWritesNothing) {
  spec.update_rule = UpdateRule::custom("false", [](const TableSpec&, const Row&, const Row& in) -> bool {
    if (in.key == "boom") throw std::runtime_error("rule failed");
    return true;
  });
  put({widget("a", "2024-01-01T00:00:00Z"), widget("boom", "2024-01-01T00:00:00Z")});
  EXPECT_THROW(put({widget("a", "2024-01-02T00:00:00Z", "blue"), widget("boom", "2024-01-02T00:00:00Z")}),
               std::runtime_error);
  EXPECT_EQ(get("a").values[1], "red");
}

TEST_F(MemoryReplicaStoreTest, InjectedFaultsFailWholeCallsThenStop) {
  store.fail_next_upserts(2, std::make_exception_ptr(StoreError("connection lost", true)));
  EXPECT_THROW(put({widget("a", "2024-01-01T00:00:00Z")}), StoreError);
  EXPECT_THROW(put({widget("a", "2024-01-01T00:00:00Z")}), StoreError);
  EXPECT_NO_THROW(put({widget("a", "2024-01-01T00:00:00Z")}));
  EXPECT_EQ(store.upsert_calls(), 3U);
  const auto calls = store.calls();
  ASSERT_EQ(calls.size(), 3U);
  EXPECT_FALSE(calls[0].succeeded);
  EXPECT_TRUE(calls[2].succeeded);
  EXPECT_EQ(calls[2].table, "public.widgets");
  EXPECT_EQ(store.rows_written(), 1U);
}

TEST_F(MemoryReplicaStoreTest, TheCheckpointIsSavedWithTheRowsOnly) {
  UpsertOptions options;
  options.checkpoint = Checkpoint{7, "0", "page2", false};
  put({widget("a", "2024-01-01T00:00:00Z")}, options);
  EXPECT_EQ(store.load_checkpoints(7).at("0"), *options.checkpoint);

  store.fail_next_upserts(1, std::make_exception_ptr(StoreError("lost", true)));
  options.checkpoint = Checkpoint{7, "0", "page3", false};
  EXPECT_THROW(put({widget("b", "2024-01-01T00:00:00Z")}, options), StoreError);
  EXPECT_EQ(store.load_checkpoints(7).at("0").next_token, "page2") << "a failed write saves no checkpoint";
}

TEST_F(MemoryReplicaStoreTest, CheckpointsSaveLoadAndClear) {
  store.save_checkpoint({1, "a", "t1", false});
  store.save_checkpoint({1, "b", "", true});
  store.save_checkpoint({2, "a", "t9", false});
  store.save_checkpoint({1, "a", "t2", false});
  const auto one = store.load_checkpoints(1);
  ASSERT_EQ(one.size(), 2U);
  EXPECT_EQ(one.at("a").next_token, "t2");
  EXPECT_TRUE(one.at("b").finished);
  store.clear_checkpoints(1);
  EXPECT_TRUE(store.load_checkpoints(1).empty());
  EXPECT_EQ(store.load_checkpoints(2).size(), 1U);
  EXPECT_EQ(store.checkpoint_saves(), 4U);
}

TEST_F(MemoryReplicaStoreTest, ForEachVisitsRowsInKeyOrder) {
  put({widget("b", "2024-01-01T00:00:00Z"), widget("c", "2024-01-01T00:00:00Z"), widget("a", "2024-01-01T00:00:00Z")});
  std::vector<std::string> keys;
  store.for_each(spec, [&](const Row& row) { keys.push_back(row.key.get<std::string>()); });
  EXPECT_THAT(keys, ElementsAre("a", "b", "c"));
}

TEST_F(MemoryReplicaStoreTest, IntegerKeysAreOrderedNumerically) {
  TableSpec numbers = spec;
  numbers.table = "numbers";
  numbers.remote_key = Column("id", ColumnType::bigint);
  store.create_table(numbers);
  std::vector<Row> rows;
  for (int id : {10, 9, 100, -1}) rows.push_back(Row{id, {"2024-01-01T00:00:00Z", "c", "s"}, nullptr, json::object()});
  store.upsert(numbers, rows);
  std::vector<json> keys;
  store.for_each(numbers, [&](const Row& row) { keys.push_back(row.key); });
  EXPECT_THAT(keys, ElementsAre(-1, 9, 10, 100));
}

TEST_F(MemoryReplicaStoreTest, TablesMustExistAndSpecsMustBeValid) {
  TableSpec other = spec;
  other.table = "missing";
  EXPECT_THROW(store.upsert(other, std::vector<Row>{widget("a", "2024-01-01T00:00:00Z")}), StoreError);
  EXPECT_THROW((void)store.count(other), StoreError);
  TableSpec duplicate_index = spec;
  duplicate_index.table = "dups";
  duplicate_index.extra_indexes = {IndexSpec{{"at"}, "", false, ""}};
  EXPECT_THROW(store.create_table(duplicate_index), BrokenSpecification);
  EXPECT_FALSE(store.has_table(duplicate_index));
}

TEST_F(MemoryReplicaStoreTest, CreateTableTwiceKeepsTheRows) {
  put({widget("a", "2024-01-01T00:00:00Z")});
  store.create_table(spec);
  EXPECT_EQ(store.count(spec), 1U);
  store.drop_table(spec);
  EXPECT_FALSE(store.has_table(spec));
  EXPECT_TRUE(store.rows(spec).empty());
}

TEST_F(MemoryReplicaStoreTest, EnsureAllColumnsFillsANewColumnFromData) {
  put({widget("a", "2024-01-01T00:00:00Z", "red", "s", {{"id", "a"}, {"size", "12"}})});
  put({widget("b", "2024-01-01T00:00:00Z", "red", "s", {{"id", "b"}, {"size", "huge"}})});
  TableSpec grown = spec;
  Column size("size", ColumnType::integer);
  size.convert(converters::to_integer()).optional();
  grown.columns.push_back(size);
  store.ensure_all_columns(grown);
  EXPECT_THAT(store.column_names(grown), ::testing::Contains("size"));
  EXPECT_EQ(store.find(grown, "a")->values[3], 12);
  EXPECT_TRUE(store.find(grown, "b")->values[3].is_null()) << "a value that cannot convert stays null";
}

TEST_F(MemoryReplicaStoreTest, EnrichmentIsStoredWhenTheTableHasIt) {
  TableSpec enriched = spec;
  enriched.table = "enriched";
  enriched.enrichment = true;
  store.create_table(enriched);
  Row row = widget("a", "2024-01-01T00:00:00Z");
  row.enrichment = json::parse(R"({"extra":"e\u0000"})");
  store.upsert(enriched, std::vector<Row>{row});
  EXPECT_EQ(store.find(enriched, "a")->enrichment, json({{"extra", "e"}}));
}

}  // namespace
}  // namespace webhookdb::memory
