// Deletes by webhook on PostgreSQL (issue 20 item 1): soft deletes are the
// deleted_at column through the update rule, as on the memory store
// (tests/memory/memory_deletes_test.cpp runs the same scenarios); hard deletes
// are refused by this store until it keeps tombstones.

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

TEST_F(PgSoftDeletes, HardDeletesAreRefusedNamingTheTable) {
  try {
    test::DeleteScenarios hard(store, "gone", DeleteMode::hard);
    FAIL() << "expected BrokenSpecification";
  } catch (const BrokenSpecification& e) {
    EXPECT_NE(std::string(e.what()).find("gone"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace webhookdb::pg
