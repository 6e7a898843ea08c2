// Deletes by webhook on PostgreSQL (issue 20 item 1): soft deletes are the
// deleted_at column through the update rule, as on the memory store
// (tests/memory/memory_deletes_test.cpp runs the same scenarios); hard deletes
// move the row into a tombstone table the update rule judges later rows against.

#include <gtest/gtest.h>

#include "../support/delete_scenarios.hpp"
#include "pg/pg_support.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/replica_store.hpp"

namespace webhookdb::pg {
namespace {

class PgSoftDeletes : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    store = std::make_shared<PgReplicaStore>(config(2));
    scenarios = std::make_unique<test::DeleteScenarios>(store, "items", DeleteMode::soft);
  }
  void TearDown() override {
    scenarios.reset();
    store.reset();
    test::PgTest::TearDown();
  }
  std::shared_ptr<PgReplicaStore> store;
  std::unique_ptr<test::DeleteScenarios> scenarios;
};

TEST_F(PgSoftDeletes, DeletionMarksTheRow) { scenarios->deletion_marks_or_removes(); }
TEST_F(PgSoftDeletes, OlderVersionNeverResurrects) { scenarios->older_version_never_resurrects(); }
TEST_F(PgSoftDeletes, NewerVersionRestores) { scenarios->newer_version_restores(); }
TEST_F(PgSoftDeletes, DeletionBeforeFirstSight) { scenarios->deletion_before_first_sight(); }
TEST_F(PgSoftDeletes, BatchWithDeletions) { scenarios->batch_with_deletions(); }

TEST_F(PgSoftDeletes, DeletedAtIsAnIndexedTimestamptzColumn) {
  auto r = admin_exec(
      "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = "
      "'deleted_at'",
      {store->qualified_name(scenarios->spec())});
  ASSERT_EQ(r.rows.size(), 1U);
  EXPECT_EQ(r.rows[0][0].value_or(""), "timestamp with time zone");
}

TEST_F(PgSoftDeletes, OptingInLaterAddsAnEmptyDeletedAtToExistingRows) {
  test::DeleteScenarios before(store, "later", DeleteMode::none);
  ASSERT_TRUE(before.send("a", "2024-05-01T10:00:00Z"));
  ASSERT_TRUE(before.send("b", "2024-05-01T10:00:00Z", /*deleted=*/true, "a deletion before opting in"));
  test::DeleteScenarios after(store, "later", DeleteMode::soft, test::DeleteScenarios::Table::existing);
  after.replicator().ensure_all_columns();
  EXPECT_TRUE(after.alive("a"));
  EXPECT_TRUE(after.alive("b"));  // not marked after the fact: nobody said it was a deletion then
  EXPECT_TRUE(after.send("a", "2024-05-01T11:00:00Z", true));
  EXPECT_FALSE(after.alive("a"));
}

// Hard deletes (issue 20): the row leaves the table for its tombstone table,
// which each later write of the key consults through the update rule.
class PgHardDeletes : public PgSoftDeletes {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    store = std::make_shared<PgReplicaStore>(config(2));
    scenarios = std::make_unique<test::DeleteScenarios>(store, "items", DeleteMode::hard);
  }
};

TEST_F(PgHardDeletes, DeletionRemovesTheRow) { scenarios->deletion_marks_or_removes(); }
TEST_F(PgHardDeletes, OlderVersionNeverResurrects) { scenarios->older_version_never_resurrects(); }
TEST_F(PgHardDeletes, NewerVersionRestores) { scenarios->newer_version_restores(); }
TEST_F(PgHardDeletes, DeletionBeforeFirstSight) { scenarios->deletion_before_first_sight(); }
TEST_F(PgHardDeletes, BatchWithDeletions) { scenarios->batch_with_deletions(); }

// The deletion is kept out of the table, in the tombstones, with its time;
// a restore moves it back (one row per key in either table, never both).
TEST_F(PgHardDeletes, TheTombstoneHoldsTheDeletionUntilANewerVersionRestoresIt) {
  ASSERT_TRUE(scenarios->send("t", "2024-05-01T10:00:00Z"));
  ASSERT_TRUE(scenarios->send("t", "2024-05-01T11:00:00Z", true));
  const std::string tomb = store->tombstone_table(scenarios->spec());
  const std::string table = store->qualified_name(scenarios->spec());
  auto in_tomb = admin_exec("SELECT deleted_at IS NOT NULL, at FROM " + tomb + " WHERE my_id = 't'");
  ASSERT_EQ(in_tomb.rows.size(), 1U);
  EXPECT_EQ(in_tomb.rows[0][0].value_or(""), "t");
  EXPECT_EQ(admin_exec("SELECT 1 FROM " + table + " WHERE my_id = 't'").rows.size(), 0U);
  EXPECT_EQ(store->count(scenarios->spec()), 0U);
  ASSERT_TRUE(scenarios->send("t", "2024-05-01T12:00:00Z"));
  EXPECT_EQ(admin_exec("SELECT 1 FROM " + tomb + " WHERE my_id = 't'").rows.size(), 0U);
  EXPECT_EQ(store->count(scenarios->spec()), 1U);
}

// Every write path (single row, multi-row INSERT, COPY direct and staged)
// consults the tombstones.
TEST_F(PgHardDeletes, EveryWriteMethodConsultsTheTombstones) {
  for (const WriteMethod method :
       {WriteMethod::single_row, WriteMethod::multi_row, WriteMethod::staging_copy, WriteMethod::automatic}) {
    const std::string id = "m" + std::to_string(static_cast<int>(method));
    ASSERT_TRUE(scenarios->send(id, "2024-05-01T10:00:00Z"));
    ASSERT_TRUE(scenarios->send(id, "2024-05-01T11:00:00Z", true));
    auto& r = scenarios->replicator();
    auto stale = r.rows_for_webhook_body({{"my_id", id}, {"at", "2024-05-01T10:30:00Z"}});
    auto fresh = r.rows_for_webhook_body({{"my_id", id + "-new"}, {"at", "2024-05-01T10:30:00Z"}});
    stale.insert(stale.end(), fresh.begin(), fresh.end());
    UpsertOptions options;
    options.method = method;
    const auto result = store->upsert(scenarios->spec(), stale, options);
    EXPECT_FALSE(result.changed[0]) << static_cast<int>(method);
    EXPECT_TRUE(result.changed[1]) << static_cast<int>(method);
    EXPECT_FALSE(scenarios->row(id)) << static_cast<int>(method);
  }
}

}  // namespace
}  // namespace webhookdb::pg
