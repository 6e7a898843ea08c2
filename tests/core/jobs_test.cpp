// Backfill jobs: the dependents tree, enqueueing, fully_finished_at, status,
// and the job runner's skip rules.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support.hpp"
#include "webhookdb/job_runner.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb {
namespace {

using namespace webhookdb::testing;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

class JobsTest : public ::testing::Test {
 protected:
  TestHarness h;
  // a <- b <- c, a <- d
  ServiceIntegration a = h.integration("fake_v1");
  ServiceIntegration b =
      h.integration("fake_dependent_v1", [&](ServiceIntegration& s) { s.depends_on = a.id; });
  ServiceIntegration c =
      h.integration("fake_dependent_v1", [&](ServiceIntegration& s) { s.depends_on = b.id; });
  ServiceIntegration d =
      h.integration("fake_dependent_v1", [&](ServiceIntegration& s) { s.depends_on = a.id; });

  void finish(BackfillJob job, Timestamp at) {
    job.started_at = at - 1s;
    job.finished_at = at;
    h.jobs->update_job(job);
  }
};

TEST_F(JobsTest, CreateRecursiveBuildsTheDependentsTree) {
  const nlohmann::json criteria = {{"since", "2024"}};
  auto root = h.jobs->create_recursive(a, true, criteria);
  EXPECT_EQ(root.service_integration_id, a.id);
  EXPECT_FALSE(root.parent_job_id);

  const auto children = h.jobs->child_jobs(root.id);
  ASSERT_EQ(children.size(), 2U);
  std::vector<std::int64_t> child_integrations;
  for (const auto& child : children) {
    child_integrations.push_back(child.service_integration_id);
    EXPECT_EQ(child.parent_job_id, root.id);
    EXPECT_TRUE(child.incremental);
    EXPECT_EQ(child.criteria, criteria);
  }
  EXPECT_THAT(child_integrations, UnorderedElementsAre(b.id, d.id));

  const auto& b_job = children[0].service_integration_id == b.id ? children[0] : children[1];
  const auto grandchildren = h.jobs->child_jobs(b_job.id);
  ASSERT_EQ(grandchildren.size(), 1U);
  EXPECT_EQ(grandchildren[0].service_integration_id, c.id);
  EXPECT_TRUE(grandchildren[0].incremental);
  EXPECT_EQ(grandchildren[0].criteria, criteria);
  EXPECT_EQ(h.jobs->jobs().size(), 4U);
}

TEST_F(JobsTest, CreateRecursiveKeepsAFullBackfillFull) {
  auto root = h.jobs->create_recursive(a, false, nlohmann::json::object());
  for (const auto& job : h.jobs->jobs()) {
    EXPECT_FALSE(job.incremental);
    EXPECT_EQ(job.criteria, nlohmann::json::object());
  }
  EXPECT_EQ(h.jobs->child_jobs(root.id).size(), 2U);
}

TEST_F(JobsTest, CreateRecursiveFromALeafMakesOneJob) {
  auto job = h.jobs->create_recursive(c, false, nlohmann::json::object());
  EXPECT_TRUE(h.jobs->child_jobs(job.id).empty());
  EXPECT_EQ(h.jobs->jobs().size(), 1U);
}

TEST_F(JobsTest, EnqueueChildrenEnqueuesOnlyTheDirectChildren) {
  auto root = h.job(a);
  enqueue_children(*h.jobs, *h.queue, root);
  std::vector<std::int64_t> expected;
  for (const auto& child : h.jobs->child_jobs(root.id)) expected.push_back(child.id);
  EXPECT_EQ(expected.size(), 2U);
  EXPECT_THAT(h.queue->job_ids(), ::testing::ContainerEq(expected));
  for (const auto& e : h.queue->entries()) EXPECT_FALSE(e.run_at);
}

TEST_F(JobsTest, FullyFinishedAtIsNoneWhileAnyJobOfTheTreeIsUnfinished) {
  auto root = h.job(a);
  EXPECT_FALSE(fully_finished_at(*h.jobs, root));
  finish(root, test::ts("2024-02-01T00:00:00Z"));
  root = *h.jobs->find_job(root.id);
  EXPECT_FALSE(fully_finished_at(*h.jobs, root)) << "children unfinished";
  for (const auto& child : h.jobs->child_jobs(root.id)) finish(child, test::ts("2024-02-02T00:00:00Z"));
  EXPECT_FALSE(fully_finished_at(*h.jobs, root)) << "grandchild unfinished";
}

TEST_F(JobsTest, FullyFinishedAtIsTheLatestFinishedAtOfTheTree) {
  auto root = h.job(a);
  finish(root, test::ts("2024-02-01T00:00:00Z"));
  for (const auto& job : h.jobs->jobs()) {
    if (job.id == root.id) continue;
    finish(job, job.service_integration_id == c.id ? test::ts("2024-02-09T00:00:00Z")
                                                   : test::ts("2024-02-03T00:00:00Z"));
  }
  root = *h.jobs->find_job(root.id);
  EXPECT_EQ(fully_finished_at(*h.jobs, root), test::ts("2024-02-09T00:00:00Z"));
}

TEST_F(JobsTest, StatusIsEnqueuedThenInProgressThenFinished) {
  auto root = h.job(a);
  EXPECT_EQ(status(*h.jobs, root), JobStatus::enqueued);
  root.started_at = h.clock->now();
  h.jobs->update_job(root);
  EXPECT_EQ(status(*h.jobs, root), JobStatus::inprogress);
  finish(root, h.clock->now());
  root = *h.jobs->find_job(root.id);
  EXPECT_EQ(status(*h.jobs, root), JobStatus::inprogress) << "children are not finished";
  for (const auto& job : h.jobs->jobs()) {
    if (job.id != root.id) finish(job, h.clock->now());
  }
  EXPECT_EQ(status(*h.jobs, root), JobStatus::finished);
  EXPECT_EQ(to_string(JobStatus::inprogress), "inprogress");
}

// --- JobRunner ---

class JobRunnerTest : public ::testing::Test {
 protected:
  TestHarness h;
  JobRunner runner{h.registry, h.context()};
  ServiceIntegration si = h.integration();

  void SetUp() override { h.replicator(si); }  // creates the table
};

TEST_F(JobRunnerTest, RunsTheBackfill) {
  h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z")}));
  auto job = h.job(si);
  EXPECT_EQ(runner.run(job.id), JobRunOutcome::ran);
  const auto stored = h.jobs->find_job(job.id);
  EXPECT_TRUE(stored->started_at);
  EXPECT_TRUE(stored->finished_at);
  EXPECT_FALSE(h.jobs->integration_locked(si.id)) << "the lock is released";
}

TEST_F(JobRunnerTest, AMissingJobIsSkipped) {
  EXPECT_EQ(runner.run(999), JobRunOutcome::missing);
  EXPECT_EQ(h.http->request_count(), 0U);
}

TEST_F(JobRunnerTest, ALockedIntegrationLeavesTheJobUnfinishedToWaitItsTurn) {
  // WebhookDB marks such a job finished; when the holder is this job's own
  // paused run, or a job with other criteria, that loses work.
  auto job = h.job(si);
  auto held = h.jobs->try_lock_integration(si.id);
  ASSERT_TRUE(held);
  EXPECT_EQ(runner.run(job.id), JobRunOutcome::locked);
  EXPECT_FALSE(h.jobs->find_job(job.id)->finished_at) << "a locked-out job is never finished by the lock";
  EXPECT_FALSE(h.jobs->find_job(job.id)->started_at);
  EXPECT_EQ(h.http->request_count(), 0U);
  held.reset();
  h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z")}));
  EXPECT_EQ(runner.run(job.id), JobRunOutcome::ran) << "its turn came";
  EXPECT_TRUE(h.jobs->find_job(job.id)->finished_at);
}

TEST_F(JobRunnerTest, AnAlreadyFinishedJobIsSkipped) {
  auto job = h.job(si);
  job.finished_at = h.clock->now();
  h.jobs->update_job(job);
  EXPECT_EQ(runner.run(job.id), JobRunOutcome::already_finished);
  EXPECT_EQ(h.http->request_count(), 0U);
}

TEST_F(JobRunnerTest, MissingCredentialsFinishTheJobWithoutAnError) {
  auto bare = h.integration("fake_v1", [](ServiceIntegration& s) {
    s.backfill_key.clear();
    s.backfill_secret.clear();
  });
  auto job = h.job(bare);
  EXPECT_EQ(runner.run(job.id), JobRunOutcome::credentials_missing);
  EXPECT_TRUE(h.jobs->find_job(job.id)->finished_at);
}

TEST_F(JobRunnerTest, RetryOrDiePropagatesToTheQueue) {
  h.http->respond(503, "busy");
  auto job = h.job(si);
  EXPECT_THROW((void)runner.run(job.id), RetryOrDie);
  EXPECT_FALSE(h.jobs->find_job(job.id)->finished_at);
  EXPECT_FALSE(h.jobs->integration_locked(si.id)) << "the lock is released on error";
}

TEST_F(JobRunnerTest, ASuccessfulRunEnqueuesTheChildren) {
  auto child = h.integration("fake_dependent_v1", [&](ServiceIntegration& s) { s.depends_on = si.id; });
  h.replicator(child);
  h.http->respond_json(fake_page({})).repeat();
  auto job = h.job(si);
  EXPECT_EQ(runner.run(job.id), JobRunOutcome::ran);
  const auto children = h.jobs->child_jobs(job.id);
  ASSERT_EQ(children.size(), 1U);
  EXPECT_THAT(h.queue->job_ids(), ElementsAre(children[0].id));
  EXPECT_EQ(status(*h.jobs, *h.jobs->find_job(job.id)), JobStatus::inprogress) << "the child is not run yet";
  EXPECT_EQ(runner.run(children[0].id), JobRunOutcome::ran);
  EXPECT_EQ(status(*h.jobs, *h.jobs->find_job(job.id)), JobStatus::finished);
}

}  // namespace
}  // namespace webhookdb
