// Worker in this process against a real PostgreSQL, the local API server and
// the curl client: the job runner's semantics, RetryOrDie with an injected
// clock, one run per integration at a time, stop() and lost leases.

#include "webhookdb/jobs/worker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "api_server/api_server.hpp"
#include "jobs/demo_replicators.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/testing/capturing_logger.hpp"
#include "webhookdb/testing/manual_clock.hpp"

namespace webhookdb::jobs {
namespace {

using namespace std::chrono_literals;
using tools::ApiServer;
using tools::ApiServerOptions;
using tools::Fault;

constexpr const char* kSecretKey = "sk_live_TOPSECRET_4242";
constexpr const char* kSecretSecret = "whsec_ALSO_SECRET_77";

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

// Collects the workers' reports.
class Reports {
 public:
  std::function<void(const JobReport&)> callback() {
    return [this](const JobReport& r) {
      {
        std::lock_guard lock(mutex_);
        reports_.push_back(r);
      }
      cv_.notify_all();
    };
  }
  std::vector<JobReport> all() const {
    std::lock_guard lock(mutex_);
    return reports_;
  }
  std::vector<JobReport> of(std::int64_t job_id) const {
    std::vector<JobReport> out;
    for (const auto& r : all()) {
      if (r.job_id == job_id) out.push_back(r);
    }
    return out;
  }
  bool wait_for(std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return reports_.size() >= count; });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<JobReport> reports_;
};

// Runs of one integration at a time: a replicator exists (inside JobRunner)
// exactly while a run holds the integration's lock.
struct RunTracker {
  std::mutex mutex;
  std::map<std::int64_t, int> active;
  int max_per_integration = 0;
  int active_total = 0;
  int max_total = 0;
  int runs = 0;

  void enter(std::int64_t id) {
    std::lock_guard lock(mutex);
    max_per_integration = std::max(max_per_integration, ++active[id]);
    max_total = std::max(max_total, ++active_total);
    ++runs;
  }
  void leave(std::int64_t id) {
    std::lock_guard lock(mutex);
    --active[id];
    --active_total;
  }
};

RunTracker* g_tracker = nullptr;

// A replicator of the API server's charges that reports its lifetime to g_tracker.
class TrackedReplicator final : public Replicator {
 public:
  TrackedReplicator(const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& ctx)
      : Replicator(d, si, ctx) {
    if (g_tracker != nullptr) g_tracker->enter(si.id);
  }
  ~TrackedReplicator() override {
    if (g_tracker != nullptr) g_tracker->leave(integration().id);
  }
  [[nodiscard]] BackfillOptions backfill_options() const override { return {.batch_size = 100}; }
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& /*last*/,
                                   const CancellationToken& cancel) override {
    HttpRequest first{.url = integration().api_url + "/v1/charges"};
    return pages_.fetch(*context().http, first, token, cancel);
  }

 protected:
  [[nodiscard]] Column remote_key_column() const override {
    return Column("stripe_id", ColumnType::text).key("id");
  }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override { return {}; }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::always(); }

 private:
  pagination::StartingAfter pages_{{.limit = 100}};
};

// Fails with a message that holds the integration's secrets (which a real
// replicator must never do): the queue must not record them.
class LeakyReplicator final : public Replicator {
 public:
  using Replicator::Replicator;
  BackfillPage fetch_backfill_page(const std::string&, const std::optional<Timestamp>&,
                                   const CancellationToken&) override {
    const auto& si = integration();
    if (si.table_name.find("transient") != std::string::npos) {
      throw StoreError("lost the connection while using key " + si.backfill_key, true);
    }
    throw InvalidPrecondition("the API refused key " + si.backfill_key + " and secret " + si.backfill_secret);
  }

 protected:
  [[nodiscard]] Column remote_key_column() const override { return Column("id", ColumnType::text); }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override { return {}; }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::always(); }
};

class JobsWorkerTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    pool_ = std::make_shared<pg::ConnectionPool>(config(8));
    jobs_ = std::make_shared<pg::PgJobStore>(pool_);
    replica_ = std::make_shared<pg::PgReplicaStore>(pool_);
    http_ = curl::make_curl_client();
    registry_ = std::make_shared<Registry>();
    demo::register_demo_replicators(*registry_);
    registry_->add({.name = "tracked_v1",
                    .resource_name_singular = "Tracked",
                    .resource_name_plural = "Tracked",
                    .supports_backfill = true,
                    .factory = Descriptor::factory_for<TrackedReplicator>()});
    registry_->add({.name = "leaky_v1",
                    .resource_name_singular = "Leaky",
                    .resource_name_plural = "Leaky",
                    .supports_backfill = true,
                    .factory = Descriptor::factory_for<LeakyReplicator>()});
    logger_ = std::make_shared<testing::CapturingLogger>();
  }

  void TearDown() override {
    workers_.clear();
    queue_.reset();
    if (server_) server_->stop();
    g_tracker = nullptr;
    test::PgTest::TearDown();
  }

  void start_server(std::size_t objects, std::chrono::milliseconds latency = 0ms) {
    ApiServerOptions o;
    o.objects = objects;
    o.latency = latency;
    server_ = std::make_unique<ApiServer>(o);
    server_->start();
  }

  std::shared_ptr<pg::PgJobQueue> make_queue(std::chrono::milliseconds lease = 2s,
                                             std::shared_ptr<Clock> clock = nullptr) {
    pg::PgJobQueueOptions o;
    o.lease = lease;
    o.clock = std::move(clock);
    o.logger = logger_;
    return std::make_shared<pg::PgJobQueue>(pool_, o);
  }

  ReplicatorContext context() const {
    ReplicatorContext ctx;
    ctx.http = http_;
    ctx.replica = replica_;
    ctx.jobs = jobs_;
    ctx.registry = registry_;
    ctx.logger = logger_;
    return ctx;
  }

  Worker& start_worker(std::shared_ptr<pg::PgJobQueue> queue, int concurrency = 2,
                       std::function<void(WorkerOptions&)> customize = {}) {
    WorkerOptions o;
    o.concurrency = concurrency;
    o.poll_interval = 100ms;
    o.on_job_done = reports_.callback();
    if (customize) customize(o);
    workers_.push_back(std::make_unique<Worker>(registry_, context(), std::move(queue), o));
    workers_.back()->start();
    return *workers_.back();
  }

  ServiceIntegration integration(const std::string& service,
                                 std::optional<std::int64_t> depends_on = std::nullopt,
                                 bool credentials = true) {
    ServiceIntegration si;
    si.service_name = service;
    si.table_name = service + "_" + std::to_string(++tables_);
    si.api_url = server_ ? server_->base_url() : "http://127.0.0.1:9";
    if (credentials) {
      si.backfill_key = kSecretKey;
      si.backfill_secret = kSecretSecret;
    }
    si.depends_on = depends_on;
    si = jobs_->create_integration(si);
    registry_->make(si, context())->create_table();
    return si;
  }

  BackfillJob job_for(const ServiceIntegration& si) {
    return jobs_->create_recursive(si, false, nlohmann::json::object());
  }

  void expect_table_equals_source(const ServiceIntegration& si) {
    auto r = registry_->make(si, context());
    const auto& spec = r->table_spec();
    const auto& dataset = server_->dataset();
    EXPECT_EQ(replica_->count(spec), dataset.size()) << si.table_name;
    std::size_t mismatches = 0;
    replica_->for_each(spec, [&](const Row& row) {
      const auto index = dataset.index_of(row.key.get<std::string>());
      if (!index || row.data != dataset.object(*index)) ++mismatches;
    });
    EXPECT_EQ(mismatches, 0U) << si.table_name;
  }

  // Pages the checkpoint of a StartingAfter backfill says are written.
  std::size_t pages_checkpointed(std::int64_t job_id) {
    auto cps = replica_->load_checkpoints(job_id);
    if (cps.empty()) return 0;
    const auto& cp = cps.begin()->second;
    if (cp.next_token.empty()) return 0;
    const auto index = server_->dataset().index_of(cp.next_token);
    EXPECT_TRUE(index) << cp.next_token;
    return index ? (*index + 1) / 100 : 0;
  }

  std::shared_ptr<pg::ConnectionPool> pool_;
  std::shared_ptr<pg::PgJobStore> jobs_;
  std::shared_ptr<pg::PgReplicaStore> replica_;
  std::shared_ptr<HttpClient> http_;
  std::shared_ptr<Registry> registry_;
  std::shared_ptr<testing::CapturingLogger> logger_;
  std::unique_ptr<ApiServer> server_;
  std::shared_ptr<pg::PgJobQueue> queue_;
  std::vector<std::unique_ptr<Worker>> workers_;
  Reports reports_;
  int tables_ = 0;
};

TEST_F(JobsWorkerTest, RunsAJobTreeChildrenAfterParents) {
  start_server(500);
  auto parent = integration(demo::kChargeService);
  auto child = integration(demo::kMirrorService, parent.id, false);
  auto root = job_for(parent);
  auto children = jobs_->child_jobs(root.id);
  ASSERT_EQ(children.size(), 1U);
  queue_ = make_queue();
  queue_->enqueue(root.id);
  auto& worker = start_worker(queue_);

  ASSERT_TRUE(wait_until(
      [&] {
        auto e = queue_->entry(children[0].id);
        return e && e->state == pg::QueueState::done;
      },
      30s));
  auto p = jobs_->find_job(root.id);
  auto c = jobs_->find_job(children[0].id);
  ASSERT_TRUE(p && c);
  ASSERT_TRUE(p->finished_at && c->started_at && c->finished_at);
  EXPECT_GE(*c->started_at, *p->finished_at) << "the child starts after its parent finished";
  EXPECT_EQ(status(*jobs_, *p), JobStatus::finished);
  for (auto id : {root.id, children[0].id}) {
    auto e = queue_->entry(id);
    EXPECT_EQ(e->state, pg::QueueState::done);
    EXPECT_EQ(e->attempts, 1);
    EXPECT_TRUE(replica_->load_checkpoints(id).empty()) << "checkpoints are cleared when the job finishes";
  }
  expect_table_equals_source(parent);
  expect_table_equals_source(child);
  EXPECT_EQ(server_->stats().data_requests, 10U) << "5 pages each, each fetched once";
  worker.stop();
  EXPECT_EQ(worker.stats().completed, 2U);
  EXPECT_EQ(worker.stats().running, 0);
}

TEST_F(JobsWorkerTest, FollowsTheJobRunnersSemantics) {
  start_server(100);
  queue_ = make_queue();
  // Missing job.
  queue_->enqueue(987654);
  // No credentials and no parent: finished, not an error.
  auto bare = integration(demo::kChargeService, std::nullopt, false);
  auto bare_job = job_for(bare);
  queue_->enqueue(bare_job.id);
  // Already finished.
  auto done_si = integration(demo::kChargeService);
  auto done_job = job_for(done_si);
  done_job.finished_at =
      std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
  jobs_->update_job(done_job);
  queue_->enqueue(done_job.id);
  // Another run holds the integration's lock.
  auto locked_si = integration(demo::kChargeService);
  auto lock = jobs_->try_lock_integration(locked_si.id);
  ASSERT_TRUE(lock);
  auto locked_job = job_for(locked_si);
  queue_->enqueue(locked_job.id);

  start_worker(queue_, 2, [](WorkerOptions& o) { o.busy_retry_delay = 300ms; });
  ASSERT_TRUE(reports_.wait_for(4, 20s));
  std::map<std::int64_t, JobReport> by_job;
  for (const auto& r : reports_.all()) by_job.emplace(r.job_id, r);  // the first report of each
  auto outcome = [&](std::int64_t id) { return by_job.at(id).outcome.value_or(JobRunOutcome::ran); };
  EXPECT_EQ(outcome(987654), JobRunOutcome::missing);
  EXPECT_EQ(outcome(bare_job.id), JobRunOutcome::credentials_missing);
  EXPECT_EQ(outcome(done_job.id), JobRunOutcome::already_finished);
  EXPECT_EQ(outcome(locked_job.id), JobRunOutcome::locked);
  for (const auto& [id, r] : by_job) {
    if (id == locked_job.id) continue;
    EXPECT_EQ(r.result, RunResult::completed) << id;
    EXPECT_EQ(queue_->entry(id)->state, pg::QueueState::done) << id;
  }
  EXPECT_TRUE(jobs_->find_job(bare_job.id)->finished_at);
  // Another run holds the integration: the job waits its turn, never finished by the lock.
  EXPECT_EQ(by_job.at(locked_job.id).result, RunResult::released);
  EXPECT_FALSE(jobs_->find_job(locked_job.id)->finished_at) << "a locked-out job is not finished";
  EXPECT_NE(queue_->entry(locked_job.id)->state, pg::QueueState::done);
  EXPECT_EQ(server_->stats().data_requests, 0U) << "none of these fetched anything";
  lock.reset();  // the other run ended
  ASSERT_TRUE(wait_until([&] { return queue_->entry(locked_job.id)->state == pg::QueueState::done; }, 20s));
  EXPECT_TRUE(jobs_->find_job(locked_job.id)->finished_at);
  EXPECT_EQ(reports_.of(locked_job.id).back().outcome, std::optional<JobRunOutcome>(JobRunOutcome::ran));
  EXPECT_LE(queue_->entry(locked_job.id)->attempts, 1) << "waiting turns are not counted as attempts";
  EXPECT_GT(server_->stats().data_requests, 0U) << "it ran once its turn came";
  EXPECT_TRUE(queue_->failed().empty());
}

TEST_F(JobsWorkerTest, AFinishedJobWhoseChildrenWereNeverEnqueuedEnqueuesThem) {
  // A worker that died between finishing a job and enqueueing its children.
  start_server(100);
  auto parent = integration(demo::kChargeService);
  integration(demo::kMirrorService, parent.id, false);
  auto root = job_for(parent);
  root.started_at = root.finished_at =
      std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
  jobs_->update_job(root);
  const auto child = jobs_->child_jobs(root.id).at(0);
  queue_ = make_queue();
  queue_->enqueue(root.id);
  start_worker(queue_);
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = queue_->entry(child.id);
        return e && e->state == pg::QueueState::done;
      },
      20s));
  EXPECT_TRUE(jobs_->find_job(child.id)->finished_at);
}

TEST_F(JobsWorkerTest, RetryOrDieRunsAgainAfterItsBackoffThenFailsForGood) {
  start_server(300);
  auto clock = std::make_shared<testing::ManualClock>();
  queue_ = make_queue(2s, clock);
  auto si = integration(demo::kChargeService);
  auto job = job_for(si);
  server_->inject(Fault::http503, 3);  // every run's first request
  queue_->enqueue(job.id);
  start_worker(queue_, 1, [](WorkerOptions& o) { o.poll_interval = 50ms; });
  const auto start = clock->now();

  auto entry_is = [&](pg::QueueState state, int attempts) {
    return wait_until(
        [&] {
          auto e = queue_->entry(job.id);
          return e && e->state == state && e->attempts == attempts;
        },
        10s);
  };
  ASSERT_TRUE(entry_is(pg::QueueState::queued, 1));
  auto e = queue_->entry(job.id);
  ASSERT_TRUE(e->run_at);
  // WebhookDB's backoff on the injected clock, plus up to 25% jitter.
  EXPECT_GE(*e->run_at, start + 63s);
  EXPECT_LE(*e->run_at, start + 63s * 1.25 + 1ms);
  EXPECT_EQ(e->retries_left, std::optional<int>(1));
  EXPECT_NE(e->last_error.find("503"), std::string::npos) << e->last_error;
  EXPECT_EQ(e->last_error.find(kSecretKey), std::string::npos);

  std::this_thread::sleep_for(400ms);  // many polls: still waiting for its backoff
  EXPECT_EQ(queue_->entry(job.id)->attempts, 1);
  EXPECT_EQ(server_->stats().data_requests, 1U) << "a 503 costs one request and a re-run";

  clock->advance(79s);
  ASSERT_TRUE(entry_is(pg::QueueState::queued, 2));
  EXPECT_EQ(queue_->entry(job.id)->retries_left, std::optional<int>(0));
  EXPECT_EQ(server_->stats().data_requests, 2U);

  clock->advance(79s);
  ASSERT_TRUE(entry_is(pg::QueueState::failed, 3));
  EXPECT_EQ(server_->stats().data_requests, 3U);
  clock->advance(1h);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(server_->stats().data_requests, 3U) << "failed for good";
  ASSERT_EQ(queue_->failed().size(), 1U);
  // Failed for good in the queue: finished, with its error, in the jobs table too.
  EXPECT_TRUE(jobs_->find_job(job.id)->finished_at);
  const auto error =
      admin_exec("SELECT error FROM " + schema().quoted() + ".webhookdb_backfill_jobs WHERE id = $1::bigint",
                 {std::to_string(job.id)})
          .rows.at(0)
          .at(0);
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("503"), std::string::npos) << *error;
  EXPECT_EQ(error->find(kSecretKey), std::string::npos);

  // The operator re-enqueues it; the API is healthy by now.
  ASSERT_TRUE(queue_->requeue_failed(job.id));
  ASSERT_TRUE(entry_is(pg::QueueState::done, 1));
  expect_table_equals_source(si);
}

TEST_F(JobsWorkerTest, ErrorsAreRecordedWithoutSecrets) {
  queue_ = make_queue();
  auto fatal = integration("leaky_v1");
  ServiceIntegration transient_si;
  {
    ServiceIntegration si;
    si.service_name = "leaky_v1";
    si.table_name = "leaky_transient";
    si.backfill_key = kSecretKey;
    si.backfill_secret = kSecretSecret;
    transient_si = jobs_->create_integration(si);
    registry_->make(transient_si, context())->create_table();
  }
  auto fatal_job = job_for(fatal);
  auto transient_job = job_for(transient_si);
  queue_->enqueue(fatal_job.id);
  queue_->enqueue(transient_job.id);
  start_worker(queue_);
  ASSERT_TRUE(reports_.wait_for(2, 20s));

  auto f = queue_->entry(fatal_job.id);
  EXPECT_EQ(f->state, pg::QueueState::failed) << "a non-retryable error fails the job at once";
  EXPECT_NE(f->last_error.find("the API refused key REDACTED and secret REDACTED"), std::string::npos)
      << f->last_error;
  auto t = queue_->entry(transient_job.id);
  EXPECT_EQ(t->state, pg::QueueState::queued) << "a retryable error is re-run later";
  EXPECT_EQ(t->retries_left, std::optional<int>(2));
  ASSERT_TRUE(t->run_at);
  EXPECT_NE(t->last_error.find("REDACTED"), std::string::npos);
  for (const auto& e : queue_->entries()) {
    EXPECT_EQ(e.last_error.find(kSecretKey), std::string::npos);
    EXPECT_EQ(e.last_error.find(kSecretSecret), std::string::npos);
  }
  for (const auto& r : reports_.all()) EXPECT_EQ(r.error.find(kSecretKey), std::string::npos);
  EXPECT_EQ(logger_->text().find(kSecretKey), std::string::npos);
  EXPECT_EQ(logger_->text().find(kSecretSecret), std::string::npos);
}

TEST_F(JobsWorkerTest, NeverTwoRunsOfOneIntegrationAtOnce) {
  start_server(300, 15ms);
  RunTracker tracker;
  auto a = integration("tracked_v1");
  auto b = integration("tracked_v1");
  g_tracker = &tracker;
  queue_ = make_queue();
  std::vector<std::int64_t> ids;
  for (int round = 0; round < 4; ++round) {
    for (const auto* si : {&a, &b}) {
      auto job = job_for(*si);
      ids.push_back(job.id);
      queue_->enqueue(job.id);
    }
  }
  // Three workers, two jobs at once each.
  for (int i = 0; i < 3; ++i) start_worker(make_queue(), 2);
  ASSERT_TRUE(wait_until(
      [&] {
        for (auto id : ids) {
          auto e = queue_->entry(id);
          if (!e || e->state != pg::QueueState::done) return false;
        }
        return true;
      },
      30s));
  // A job is marked done in the queue just before its run is reported.
  ASSERT_TRUE(wait_until(
      [&] {
        int ran = 0;
        for (const auto& r : reports_.all())
          ran += r.outcome == std::optional<JobRunOutcome>(JobRunOutcome::ran);
        return ran >= 8;
      },
      10s));
  std::map<JobRunOutcome, int> outcomes;
  for (const auto& r : reports_.all()) ++outcomes[r.outcome.value_or(JobRunOutcome::missing)];
  EXPECT_EQ(tracker.max_per_integration, 1) << "two runs of one integration overlapped";
  EXPECT_GE(tracker.max_total, 2) << "the two integrations did run in parallel (the check can fail)";
  EXPECT_EQ(outcomes[JobRunOutcome::ran], 8)
      << "every job ran: a busy integration makes a job wait, not vanish";
  EXPECT_EQ(tracker.runs, 8);
  for (auto id : ids) EXPECT_TRUE(jobs_->find_job(id)->finished_at) << id;
}

TEST_F(JobsWorkerTest, StopCancelsAtAPageBoundaryAndAnotherWorkerResumes) {
  start_server(2000, 25ms);
  auto si = integration(demo::kChargeService);
  auto job = job_for(si);
  queue_ = make_queue();
  queue_->enqueue(job.id);
  auto& first = start_worker(queue_, 1);
  ASSERT_TRUE(wait_until([&] { return server_->stats().pages >= 6; }, 20s));
  const auto stop_started = std::chrono::steady_clock::now();
  first.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, 3s) << "stop is prompt";
  ASSERT_EQ(reports_.of(job.id).size(), 1U);
  EXPECT_EQ(reports_.of(job.id)[0].result, RunResult::released);

  auto e = queue_->entry(job.id);
  EXPECT_EQ(e->state, pg::QueueState::queued) << "given back, for another worker";
  EXPECT_TRUE(e->lease_owner.empty());
  EXPECT_FALSE(e->lease_expires_at);
  auto stored = jobs_->find_job(job.id);
  EXPECT_TRUE(stored->started_at);
  EXPECT_FALSE(stored->finished_at);

  const std::size_t pages_done = pages_checkpointed(job.id);
  EXPECT_GE(pages_done, 3U);
  EXPECT_LT(pages_done, 20U);
  auto spec = registry_->make(si, context())->table_spec();
  const std::size_t rows = replica_->count(spec);
  EXPECT_EQ(rows, pages_done * 100) << "whole pages only, exactly those the checkpoint covers";
  std::size_t outside = 0;
  replica_->for_each(spec, [&](const Row& row) {
    auto i = server_->dataset().index_of(row.key.get<std::string>());
    if (!i || *i >= rows) ++outside;
  });
  EXPECT_EQ(outside, 0U);

  const auto requests_before = server_->stats().data_requests;
  start_worker(queue_, 1);
  ASSERT_TRUE(wait_until([&] { return queue_->entry(job.id)->state == pg::QueueState::done; }, 30s));
  expect_table_equals_source(si);
  EXPECT_EQ(server_->stats().data_requests - requests_before, 20 - pages_done)
      << "the second worker resumed at the checkpoint";
  EXPECT_EQ(queue_->entry(job.id)->attempts, 2);
}

TEST_F(JobsWorkerTest, ALostLeaseCancelsTheRunAndLeavesTheRowToItsNewHolder) {
  start_server(2000, 40ms);
  auto si = integration(demo::kChargeService);
  auto job = job_for(si);
  queue_ = make_queue(600ms);
  queue_->enqueue(job.id);
  start_worker(queue_, 1);
  ASSERT_TRUE(wait_until([&] { return server_->stats().pages >= 3; }, 20s));
  admin_exec(
      "UPDATE " + schema().quoted() +
          ".webhookdb_job_queue SET lease_owner = 'thief', lease_token = 'feedfacefeedfacefeedfacefeedface', "
          "lease_expires_at = clock_timestamp() + interval '1 hour' WHERE job_id = $1::bigint",
      {std::to_string(job.id)});
  ASSERT_TRUE(reports_.wait_for(1, 5s));
  EXPECT_EQ(reports_.all()[0].result, RunResult::lease_lost);
  auto e = queue_->entry(job.id);
  EXPECT_EQ(e->state, pg::QueueState::running);
  EXPECT_EQ(e->lease_owner, "thief");
  EXPECT_LT(server_->stats().pages, 20U) << "the run stopped early";
}

TEST_F(JobsWorkerTest, ATakeOverWaitsWhileThePreviousHolderStillHoldsTheIntegrationLock) {
  // The previous holder is alive but missed its heartbeats: its lease expired,
  // yet it still runs the backfill (it holds the integration's lock). Running
  // the job now would make JobRunner mark it finished as "locked", half done.
  start_server(200);
  auto clock = std::make_shared<testing::ManualClock>();
  queue_ = make_queue(2s, clock);
  auto si = integration(demo::kChargeService);
  auto job = job_for(si);
  queue_->enqueue(job.id);
  ASSERT_TRUE(queue_->take("slowpoke"));
  admin_exec("UPDATE " + schema().quoted() +
                 ".webhookdb_job_queue SET lease_expires_at = clock_timestamp() - interval '1 second' "
                 "WHERE job_id = $1::bigint",
             {std::to_string(job.id)});
  auto lock = jobs_->try_lock_integration(si.id);  // what slowpoke's run holds
  ASSERT_TRUE(lock);
  start_worker(queue_, 1, [](WorkerOptions& o) { o.poll_interval = 50ms; });
  ASSERT_TRUE(reports_.wait_for(1, 10s));
  auto r = reports_.all()[0];
  EXPECT_EQ(r.result, RunResult::released);
  EXPECT_FALSE(r.outcome) << "the job runner was not called";
  EXPECT_NE(r.error.find("slowpoke"), std::string::npos) << r.error;
  EXPECT_FALSE(jobs_->find_job(job.id)->finished_at) << "not marked finished while half done";
  auto e = queue_->entry(job.id);
  EXPECT_EQ(e->state, pg::QueueState::running) << "handed back to its live holder";
  EXPECT_EQ(e->lease_owner, "slowpoke");
  EXPECT_EQ(e->attempts, 1) << "the take-over that gave it back is not counted";
  ASSERT_TRUE(e->lease_expires_at);

  lock.reset();  // slowpoke died: its lease runs out, the next take resumes the job
  ASSERT_TRUE(wait_until([&] { return queue_->entry(job.id)->state == pg::QueueState::done; }, 20s));
  expect_table_equals_source(si);
}

// Fairness: two long backfills hold every runner; small jobs queued behind
// them used to wait until one finished. A long job yields at a page boundary
// once it ran a time slice while jobs wait, goes behind them, and resumes at
// its checkpoint: each job still runs to its end exactly once.
TEST_F(JobsWorkerTest, LongJobsYieldToWaitingSmallJobsAndResumeAtTheirCheckpoints) {
  start_server(3000, 20ms);  // 30 pages of 100, ~20 ms each: a long job
  ApiServerOptions small_options;
  small_options.objects = 10;
  ApiServer small_server(small_options);
  small_server.start();
  queue_ = make_queue(5s);
  std::vector<BackfillJob> bigs;
  std::vector<ServiceIntegration> big_sis;
  for (int i = 0; i < 2; ++i) {
    big_sis.push_back(integration(demo::kChargeService));
    bigs.push_back(job_for(big_sis.back()));
    queue_->enqueue(bigs.back().id);
  }
  auto& worker = start_worker(queue_, 2, [](WorkerOptions& o) { o.time_slice = 200ms; });
  ASSERT_TRUE(wait_until([&] { return server_->stats().pages >= 6; }, 20s));
  std::this_thread::sleep_for(250ms);  // both ran longer than a slice

  std::vector<BackfillJob> smalls;
  std::vector<ServiceIntegration> small_sis;
  for (int i = 0; i < 6; ++i) {
    ServiceIntegration si = integration(demo::kChargeService);
    si.api_url = small_server.base_url();
    jobs_->update_integration(si);
    small_sis.push_back(si);
    smalls.push_back(job_for(si));
  }
  const auto enqueued = std::chrono::steady_clock::now();
  for (const auto& j : smalls) queue_->enqueue(j.id);
  const auto all_done = [&](const std::vector<BackfillJob>& js) {
    return std::all_of(js.begin(), js.end(), [&](const BackfillJob& j) {
      auto e = queue_->entry(j.id);
      return e && e->state == pg::QueueState::done;
    });
  };
  ASSERT_TRUE(wait_until([&] { return all_done(smalls); }, 20s));
  const auto smalls_took = std::chrono::steady_clock::now() - enqueued;
  const bool bigs_done_when_smalls_were = all_done(bigs);
  EXPECT_FALSE(bigs_done_when_smalls_were) << "the small jobs did not wait for the long ones to end";
  EXPECT_LT(smalls_took, 3s);
  ASSERT_TRUE(wait_until([&] { return all_done(bigs); }, 60s)) << "the long jobs still finish";
  EXPECT_GE(worker.stats().yielded, 1U);

  // Exactly once: one completed run per job; every yield was a release.
  for (const auto& j : bigs) {
    int completed = 0;
    for (const auto& r : reports_.of(j.id)) {
      if (r.result == RunResult::completed)
        ++completed;
      else
        EXPECT_EQ(r.result, RunResult::released) << r.error;
    }
    EXPECT_EQ(completed, 1) << "job " << j.id;
  }
  for (const auto& si : big_sis) expect_table_equals_source(si);
  // Resumed at the checkpoints: 30 pages each, plus at most the page in
  // flight when a run yielded (aborted and fetched again).
  const auto yields = worker.stats().yielded;
  EXPECT_LE(server_->stats().data_requests, 2 * 30 + yields);
  small_server.stop();
}

// No new PostgreSQL session per job: the integration locks' sessions are
// pooled (each job used to open one, 30-38 ms of server CPU each).
TEST_F(JobsWorkerTest, JobsReuseTheirLockSessions) {
  start_server(10);
  queue_ = make_queue();
  std::vector<BackfillJob> js;
  for (int i = 0; i < 20; ++i) js.push_back(job_for(integration(demo::kChargeService)));
  start_worker(queue_, 2);
  // Warm up: the pool's connections and lock sessions open once.
  queue_->enqueue(js[0].id);
  ASSERT_TRUE(reports_.wait_for(1, 20s));
  const auto opened = pool_->connections_opened();
  for (std::size_t i = 1; i < js.size(); ++i) queue_->enqueue(js[i].id);
  ASSERT_TRUE(reports_.wait_for(js.size(), 30s));
  for (const auto& r : reports_.all()) EXPECT_EQ(r.result, RunResult::completed) << r.error;
  EXPECT_LE(pool_->connections_opened() - opened, 4U) << "19 jobs, not 19 new sessions";
}

TEST_F(JobsWorkerTest, RejectsAnIncompleteSetup) {
  queue_ = make_queue();
  ReplicatorContext no_jobs = context();
  no_jobs.jobs = nullptr;
  EXPECT_THROW((void)Worker(registry_, no_jobs, queue_), InvalidPrecondition);
  EXPECT_THROW((void)Worker(registry_, context(), nullptr), InvalidPrecondition);
  WorkerOptions zero;
  zero.concurrency = 0;
  EXPECT_THROW((void)Worker(registry_, context(), queue_, zero), InvalidPrecondition);
  Worker w(registry_, context(), queue_);
  w.start();
  EXPECT_THROW(w.start(), InvalidPrecondition);
  w.stop();
  w.stop();
  EXPECT_FALSE(w.running());
}

}  // namespace
}  // namespace webhookdb::jobs
