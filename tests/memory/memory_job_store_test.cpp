// MemoryJobStore: ids, opaque ids, the injected clock, trees and locks.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "webhookdb/errors.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/testing/manual_clock.hpp"

namespace webhookdb::memory {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::vector<std::string> unusable_table_names() {
  return {std::string(64, 't'),     "tab\there", "new\nline", "del\x7f", "   ",
          std::string("nul\0x", 5), "bad \xff"};
}

class MemoryJobStoreTest : public ::testing::Test {
 protected:
  std::shared_ptr<testing::ManualClock> clock = std::make_shared<testing::ManualClock>();
  MemoryJobStore store{clock};

  ServiceIntegration make(const std::string& name, std::optional<std::int64_t> depends_on = std::nullopt) {
    ServiceIntegration si;
    si.service_name = name;
    si.table_name = name;
    si.depends_on = depends_on;
    return store.create_integration(si);
  }
};

TEST_F(MemoryJobStoreTest, IdsStartAtOneAndOpaqueIdsHavePrefixes) {
  auto a = make("a");
  auto b = make("b");
  EXPECT_EQ(a.id, 1);
  EXPECT_EQ(b.id, 2);
  EXPECT_THAT(a.opaque_id, StartsWith("svi_"));
  EXPECT_EQ(a.opaque_id.size(), 29U);  // 25 random base-36 characters: over 128 bits
  EXPECT_NE(a.opaque_id, b.opaque_id);
  auto job = store.create_job(BackfillJob{.service_integration_id = a.id});
  EXPECT_EQ(job.id, 1);
  EXPECT_THAT(job.opaque_id, StartsWith("bfj_"));
  ServiceIntegration given;
  given.opaque_id = "svi_given";
  EXPECT_EQ(store.create_integration(given).opaque_id, "svi_given");
  EXPECT_THROW(store.create_integration(given), InvalidPrecondition) << "opaque ids are unique";
}

TEST_F(MemoryJobStoreTest, CreatedAtComesFromTheClock) {
  auto a = make("a");
  clock->advance(std::chrono::hours(5));
  auto job = store.create_job(BackfillJob{.service_integration_id = a.id});
  EXPECT_EQ(job.created_at, testing::ManualClock::default_start() + std::chrono::hours(5));
  EXPECT_EQ(store.find_job(job.id)->created_at, job.created_at);
}

TEST_F(MemoryJobStoreTest, IntegrationsAreFoundUpdatedAndDeleted) {
  auto a = make("a");
  auto b = make("b", a.id);
  auto c = make("c", a.id);
  EXPECT_EQ(store.find_integration_by_opaque_id(b.opaque_id), b);
  EXPECT_FALSE(store.find_integration_by_opaque_id("svi_nope"));
  std::vector<std::int64_t> dependents;
  for (const auto& si : store.dependents_of(a.id)) dependents.push_back(si.id);
  EXPECT_THAT(dependents, ElementsAre(b.id, c.id));
  a.last_backfilled_at = clock->now();
  store.update_integration(a);
  EXPECT_EQ(store.find_integration(a.id)->last_backfilled_at, clock->now());
  store.delete_integration(c.id);
  EXPECT_FALSE(store.find_integration(c.id));
  ServiceIntegration ghost;
  ghost.id = 99;
  EXPECT_THROW(store.update_integration(ghost), InvalidPrecondition);
}

TEST_F(MemoryJobStoreTest, CreateRecursiveMakesOneJobPerDependentRecursively) {
  auto a = make("a");
  auto b = make("b", a.id);
  auto c = make("c", b.id);
  auto root = store.create_recursive(a, true, {{"k", 1}});
  ASSERT_EQ(store.jobs().size(), 3U);
  const auto b_jobs = store.child_jobs(root.id);
  ASSERT_EQ(b_jobs.size(), 1U);
  EXPECT_EQ(b_jobs[0].service_integration_id, b.id);
  const auto c_jobs = store.child_jobs(b_jobs[0].id);
  ASSERT_EQ(c_jobs.size(), 1U);
  EXPECT_EQ(c_jobs[0].service_integration_id, c.id);
  EXPECT_EQ(c_jobs[0].parent_job_id, b_jobs[0].id);
  EXPECT_TRUE(c_jobs[0].incremental);
  EXPECT_EQ(c_jobs[0].criteria, nlohmann::json({{"k", 1}}));
}

TEST_F(MemoryJobStoreTest, ADependencyCycleCreatesNothing) {
  auto a = make("a");
  auto b = make("b", a.id);
  a.depends_on = b.id;
  store.update_integration(a);
  EXPECT_THROW(store.create_recursive(a, false, nlohmann::json::object()), InvariantViolation);
  EXPECT_TRUE(store.jobs().empty());
}

TEST_F(MemoryJobStoreTest, CriteriaMustBeAnObject) {
  auto a = make("a");
  EXPECT_EQ(store.create_recursive(a, false, nullptr).criteria, nlohmann::json::object());
  EXPECT_THROW(store.create_recursive(a, false, nlohmann::json::array()), InvalidPrecondition);
  BackfillJob job;
  job.criteria = "text";
  EXPECT_THROW(store.create_job(job), InvalidPrecondition);
}

TEST_F(MemoryJobStoreTest, UpdateJobPersistsTheTimesOnly) {
  auto a = make("a");
  auto job = store.create_job(BackfillJob{.service_integration_id = a.id});
  job.started_at = clock->now();
  job.finished_at = clock->now() + std::chrono::seconds(3);
  job.incremental = true;  // not persisted by update_job
  store.update_job(job);
  const auto stored = store.find_job(job.id);
  EXPECT_EQ(stored->started_at, job.started_at);
  EXPECT_EQ(stored->finished_at, job.finished_at);
  EXPECT_FALSE(stored->incremental);
  BackfillJob ghost;
  ghost.id = 404;
  EXPECT_THROW(store.update_job(ghost), InvalidPrecondition);
}

TEST_F(MemoryJobStoreTest, DeletingAJobDeletesItsDescendants) {
  auto a = make("a");
  auto b = make("b", a.id);
  make("c", b.id);
  auto other = store.create_job(BackfillJob{.service_integration_id = a.id});
  auto root = store.create_recursive(a, false, nlohmann::json::object());
  store.delete_job(root.id);
  ASSERT_EQ(store.jobs().size(), 1U);
  EXPECT_EQ(store.jobs()[0].id, other.id);
}

TEST_F(MemoryJobStoreTest, IntegrationLocksAreExclusiveAndReleasedOnDestruction) {
  auto lock = store.try_lock_integration(1);
  ASSERT_TRUE(lock);
  EXPECT_TRUE(store.integration_locked(1));
  EXPECT_FALSE(store.try_lock_integration(1)) << "held";
  EXPECT_TRUE(store.try_lock_integration(2)) << "another integration";
  lock.reset();
  EXPECT_FALSE(store.integration_locked(1));
  EXPECT_TRUE(store.try_lock_integration(1));
}

TEST(MemoryJobStoreLock, MayOutliveTheStore) {
  std::unique_ptr<IntegrationLock> lock;
  {
    MemoryJobStore store;
    lock = store.try_lock_integration(1);
    ASSERT_TRUE(lock);
  }
  EXPECT_NO_THROW(lock.reset());
}

}  // namespace
}  // namespace webhookdb::memory

namespace webhookdb::memory {
namespace {

// Checked when the integration is created, not first at create_table.
TEST_F(MemoryJobStoreTest, TableNamesAreCheckedAndClaimedOnce) {
  for (const auto& bad : unusable_table_names()) {
    ServiceIntegration si;
    si.service_name = "x";
    si.table_name = bad;
    EXPECT_THROW(store.create_integration(si), InvalidInput) << bad;
  }
  EXPECT_NO_THROW(make(std::string(63, 't')));
  EXPECT_NO_THROW(make(" spaced "));
  auto first = make("shared");
  ServiceIntegration again;
  again.service_name = "y";
  again.table_name = "shared";
  try {
    store.create_integration(again);
    FAIL() << "two integrations claimed one table";
  } catch (const InvalidPrecondition& e) {
    EXPECT_THAT(e.what(), HasSubstr("shared"));
  }
  auto other = make("other");
  other.table_name = "shared";
  EXPECT_THROW(store.update_integration(other), InvalidPrecondition);
  other.table_name = "tab\there";
  EXPECT_THROW(store.update_integration(other), InvalidInput);
  first.api_url = "https://changed.test";
  EXPECT_NO_THROW(store.update_integration(first)) << "keeping its own table is no conflict";
  // No table (yet): any number of integrations.
  EXPECT_NO_THROW(make(""));
  EXPECT_NO_THROW(make(""));
  const auto found = store.find_integration_by_table(first.table_name);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, first.id);
  EXPECT_FALSE(store.find_integration_by_table("nobody's"));
  EXPECT_FALSE(store.find_integration_by_table(""));
}

}  // namespace
}  // namespace webhookdb::memory
