// Deletes by webhook on the memory store: soft (deleted_at) and hard
// (removed, with a tombstone the update rule judges later rows against).

#include <gtest/gtest.h>

#include "../support/delete_scenarios.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"

namespace webhookdb {
namespace {

class MemoryDeletes : public ::testing::TestWithParam<DeleteMode> {
 protected:
  std::shared_ptr<memory::MemoryReplicaStore> store = std::make_shared<memory::MemoryReplicaStore>();
  test::DeleteScenarios s{store, "items", GetParam()};
};

TEST_P(MemoryDeletes, DeletionMarksOrRemoves) { s.deletion_marks_or_removes(); }
TEST_P(MemoryDeletes, OlderVersionNeverResurrects) { s.older_version_never_resurrects(); }
TEST_P(MemoryDeletes, NewerVersionRestores) { s.newer_version_restores(); }
TEST_P(MemoryDeletes, DeletionBeforeFirstSight) { s.deletion_before_first_sight(); }
TEST_P(MemoryDeletes, BatchWithDeletions) { s.batch_with_deletions(); }

std::string ModeName(const ::testing::TestParamInfo<DeleteMode>& param) {
  return param.param == DeleteMode::soft ? "soft" : "hard";
}

INSTANTIATE_TEST_SUITE_P(Modes, MemoryDeletes, ::testing::Values(DeleteMode::soft, DeleteMode::hard), ModeName);

TEST(MemoryDeletesOff, ADeletedBodyIsAnOrdinaryRowWhenTheReplicatorDidNotOptIn) {
  auto store = std::make_shared<memory::MemoryReplicaStore>();
  test::DeleteScenarios s{store, "items", DeleteMode::none};
  EXPECT_TRUE(s.send("a", "2024-05-01T11:00:00Z", true));
  EXPECT_FALSE(s.spec().column_index(kDeletedAtColumn));
  EXPECT_TRUE(s.row("a"));
}

}  // namespace
}  // namespace webhookdb
