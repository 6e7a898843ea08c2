// End to end: the fake replicator backfills mock HTTP pages into PostgreSQL,
// serially and in parallel, and the job runner runs jobs from PgJobStore.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "pg/pg_support.hpp"
#include "webhookdb/job_runner.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/testing/capturing_logger.hpp"
#include "webhookdb/testing/fake_replicator.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/mock_http_client.hpp"
#include "webhookdb/testing/recording_job_queue.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::pg {
namespace {

using nlohmann::json;
using testing::fake_item;
using testing::fake_page;

class PgBackfillTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    pool = std::make_shared<ConnectionPool>(config(4));
    replica = std::make_shared<PgReplicaStore>(pool);
    jobs = std::make_shared<PgJobStore>(pool, clock);
    fake = testing::register_fakes(*registry);
  }
  void TearDown() override {
    replica.reset();
    jobs.reset();
    pool.reset();
    test::PgTest::TearDown();
  }

  ReplicatorContext context() const {
    ReplicatorContext ctx;
    ctx.http = http;
    ctx.replica = replica;
    ctx.jobs = jobs;
    ctx.queue = queue;
    ctx.clock = clock;
    ctx.sleeper = sleeper;
    ctx.logger = logger;
    ctx.registry = registry;
    return ctx;
  }

  ServiceIntegration integration(const std::string& service) {
    ServiceIntegration si;
    si.service_name = service;
    si.table_name = service + "_rows";
    si.api_url = "https://api.example.test/" + service;
    si.backfill_key = "bfkey";
    si.backfill_secret = "bfsecret";
    return jobs->create_integration(si);
  }

  // `n` items ids prefix0..prefix<n-1>, at 2024-01-01 + minutes.
  static std::vector<json> items(const std::string& prefix, int from, int n, int minute = 0) {
    std::vector<json> out;
    for (int i = from; i < from + n; ++i) {
      char at[32];
      std::snprintf(at, sizeof at, "2024-01-01T%02d:%02d:00Z", minute / 60, minute % 60);
      out.push_back(fake_item(prefix + std::to_string(i), at, {{"i", i}}));
    }
    return out;
  }

  std::shared_ptr<testing::ManualClock> clock = std::make_shared<testing::ManualClock>();
  std::shared_ptr<testing::RecordingSleeper> sleeper = std::make_shared<testing::RecordingSleeper>(clock);
  std::shared_ptr<testing::MockHttpClient> http = std::make_shared<testing::MockHttpClient>();
  std::shared_ptr<testing::RecordingJobQueue> queue = std::make_shared<testing::RecordingJobQueue>();
  std::shared_ptr<testing::CapturingLogger> logger = std::make_shared<testing::CapturingLogger>();
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
  std::shared_ptr<testing::FakeControl> fake;
  std::shared_ptr<ConnectionPool> pool;
  std::shared_ptr<PgReplicaStore> replica;
  std::shared_ptr<PgJobStore> jobs;
};

TEST_F(PgBackfillTest, SerialBackfillWritesEveryPage) {
  fake->backfill_options.batch_size = 1500;  // the staging COPY path for full batches
  const auto si = integration("fake_v1");
  auto r = registry->make(si, context());
  r->create_table();
  // Page 3 repeats page 1's first items with older timestamps: they must not win.
  auto page1 = items("a", 0, 1000, 30);
  auto page2 = items("a", 1000, 1000, 30);
  auto page3 = items("a", 0, 200, 10);
  auto extra = items("b", 0, 5, 40);
  page3.insert(page3.end(), extra.begin(), extra.end());
  http->script().respond_json(fake_page(page1, "p2"));
  http->on("token=p2").respond_json(fake_page(page2, "p3"));
  http->on("token=p3").respond_json(fake_page(page3));

  auto job = jobs->create_recursive(si, false, json::object());
  r->backfill(job);

  const TableSpec& spec = r->table_spec();
  EXPECT_EQ(replica->count(spec), 2005U);
  EXPECT_EQ(replica->find(spec, "a0")->values[0], "2024-01-01T00:30:00Z");
  EXPECT_EQ(replica->find(spec, "a1999")->data["i"], 1999);
  EXPECT_EQ(replica->find(spec, "b4")->values[0], "2024-01-01T00:40:00Z");
  EXPECT_EQ(http->requests().size(), 3U);
  const auto stored = jobs->find_job(job.id);
  ASSERT_TRUE(stored);
  EXPECT_TRUE(stored->started_at.has_value());
  EXPECT_TRUE(stored->finished_at.has_value());
  EXPECT_EQ(status(*jobs, *stored), JobStatus::finished);
}

TEST_F(PgBackfillTest, ParallelBackfillOfPartitions) {
  fake->backfill_options.parallel = 3;
  const auto si = integration("fake_with_criteria_v1");
  auto r = registry->make(si, context());
  r->create_table();
  int total = 0;
  for (const std::string p : {"a", "b", "c"}) {
    // More specific routes first: "token=" is part of "token=<p>2".
    http->on("partition=" + p + "&token=" + p + "2").respond_json(fake_page(items(p, 600, 700, 20)));
    http->on("partition=" + p + "&token=").respond_json(fake_page(items(p, 0, 600, 20), p + "2"));
    total += 1300;
  }
  auto job = jobs->create_recursive(si, true, json{{"partitions", json::array({"a", "b", "c"})}});
  r->backfill(job);
  const TableSpec& spec = r->table_spec();
  EXPECT_EQ(replica->count(spec), static_cast<std::size_t>(total));
  for (const std::string p : {"a", "b", "c"}) {
    EXPECT_EQ(replica->find(spec, p + "1299")->data["i"], 1299) << p;
  }
  EXPECT_EQ(http->requests().size(), 6U);
  EXPECT_TRUE(jobs->find_job(job.id)->finished_at.has_value());
  // Incremental: the integration's last_backfilled_at moved to the run's start.
  EXPECT_TRUE(jobs->find_integration(si.id)->last_backfilled_at.has_value());
}

TEST_F(PgBackfillTest, AFailedRunResumesAtItsCheckpoint) {
  fake->backfill_options.batch_size = 100;  // one written batch per page, each with its checkpoint
  const auto si = integration("fake_v1");
  registry->make(si, context())->create_table();
  http->script().respond_json(fake_page(items("a", 0, 100, 1), "p2"));
  http->on("token=p2").respond_json(fake_page(items("a", 100, 100, 1), "p3"));
  auto& page3 = http->on("token=p3");
  page3.respond(404, "gone").times(3);  // every attempt of the first run fails
  page3.respond_json(fake_page(items("a", 200, 100, 1)));

  auto job = jobs->create_recursive(si, false, json::object());
  auto first = registry->make(si, context());
  EXPECT_ANY_THROW(first->backfill(job));
  const TableSpec& spec = first->table_spec();
  EXPECT_EQ(replica->count(spec), 200U);
  const auto saved = replica->load_checkpoints(job.id);
  ASSERT_EQ(saved.size(), 1U);
  EXPECT_TRUE(saved.begin()->second.next_token == "p2" || saved.begin()->second.next_token == "p3")
      << saved.begin()->second.next_token;

  auto again = *jobs->find_job(job.id);
  registry->make(si, context())->backfill(again);
  EXPECT_EQ(replica->count(spec), 300U);
  std::size_t first_pages = 0;
  for (const auto& request : http->requests()) {
    const auto& url = request.url;
    if (url.size() >= 6 && url.compare(url.size() - 6, 6, "token=") == 0) ++first_pages;
  }
  EXPECT_EQ(first_pages, 1U) << "the second run started over instead of resuming";
  EXPECT_TRUE(replica->load_checkpoints(job.id).empty());
  EXPECT_TRUE(jobs->find_job(job.id)->finished_at.has_value());
}

TEST_F(PgBackfillTest, JobRunnerRunsSkipsLockedAndFinishedJobs) {
  const auto si = integration("fake_v1");
  registry->make(si, context())->create_table();
  http->script().respond_json(fake_page(items("r", 0, 10, 5)));
  JobRunner runner(registry, context());

  const auto job = jobs->create_recursive(si, false, json::object());
  EXPECT_EQ(runner.run(job.id), JobRunOutcome::ran);
  EXPECT_EQ(runner.run(job.id), JobRunOutcome::already_finished);
  EXPECT_EQ(runner.run(job.id + 1000), JobRunOutcome::missing);

  const auto second = jobs->create_recursive(si, false, json::object());
  {
    auto held = jobs->try_lock_integration(si.id);  // another worker's run
    ASSERT_NE(held, nullptr);
    EXPECT_EQ(runner.run(second.id), JobRunOutcome::locked);
  }
  EXPECT_FALSE(jobs->find_job(second.id)->finished_at.has_value()) << "it waits its turn, not finished";
  http->script().respond_json(fake_page(items("r", 0, 10, 5)));
  EXPECT_EQ(runner.run(second.id), JobRunOutcome::ran);
  EXPECT_TRUE(jobs->find_job(second.id)->finished_at.has_value());
  auto r = registry->make(si, context());
  EXPECT_EQ(replica->count(r->table_spec()), 10U);
}

}  // namespace
}  // namespace webhookdb::pg
