// InProcessJobQueue: runs on a pool, honours run_at without holding a thread,
// re-runs RetryOrDie jobs after their backoff, records failures, shuts down
// promptly. With JobRunner it runs real backfill jobs end to end.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "webhookdb/errors.hpp"
#include "webhookdb/job_runner.hpp"
#include "webhookdb/memory/in_process_job_queue.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb::memory {
namespace {

using namespace std::chrono_literals;
using namespace webhookdb::testing;
using ::testing::HasSubstr;
using Steady = std::chrono::steady_clock;

struct Runs {
  std::mutex mutex;
  std::vector<std::int64_t> ids;
  void add(std::int64_t id) {
    std::lock_guard lock(mutex);
    ids.push_back(id);
  }
  std::vector<std::int64_t> get() {
    std::lock_guard lock(mutex);
    return ids;
  }
};

InProcessJobQueue::Options fast(std::size_t threads = 2) {
  InProcessJobQueue::Options o;
  o.threads = threads;
  // Backoffs of seconds become milliseconds.
  o.delay = [](std::chrono::milliseconds requested) { return requested / 1000; };
  return o;
}

TEST(InProcessJobQueue, RunsEveryEnqueuedJob) {
  Runs runs;
  InProcessJobQueue queue([&](std::int64_t id, const CancellationToken&) { runs.add(id); }, fast());
  for (std::int64_t id = 1; id <= 20; ++id) queue.enqueue(id);
  queue.wait_idle();
  auto ids = runs.get();
  std::sort(ids.begin(), ids.end());
  ASSERT_EQ(ids.size(), 20U);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 20);
  for (const auto& rec : queue.records()) {
    EXPECT_EQ(rec.state, QueuedJobState::succeeded) << rec.job_id;
    EXPECT_EQ(rec.runs, 1);
  }
}

TEST(InProcessJobQueue, UsesItsPoolThreadsOnly) {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  InProcessJobQueue queue(
      [&](std::int64_t, const CancellationToken&) {
        std::this_thread::sleep_for(1ms);
        std::lock_guard lock(mutex);
        threads.insert(std::this_thread::get_id());
      },
      fast(3));
  for (std::int64_t id = 1; id <= 30; ++id) queue.enqueue(id);
  queue.wait_idle();
  EXPECT_LE(threads.size(), 3U);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0U);
}

TEST(InProcessJobQueue, RunAtDelaysTheRun) {
  Runs runs;
  std::atomic<Steady::rep> ran_at{0};
  InProcessJobQueue::Options options;
  options.threads = 1;
  InProcessJobQueue queue(
      [&](std::int64_t id, const CancellationToken&) {
        ran_at = Steady::now().time_since_epoch().count();
        runs.add(id);
      },
      options);
  const auto start = Steady::now();
  queue.enqueue(1, system_clock()->now() + 80ms);
  EXPECT_EQ(queue.record(1)->state, QueuedJobState::waiting);
  queue.wait_idle();
  const auto elapsed = Steady::time_point(Steady::duration(ran_at.load())) - start;
  EXPECT_GE(elapsed, 75ms);
  EXPECT_LT(elapsed, 5s);
  EXPECT_GE(queue.record(1)->requested_delay, 70ms);
}

TEST(InProcessJobQueue, ARunAtInThePastRunsNow) {
  Runs runs;
  InProcessJobQueue queue([&](std::int64_t id, const CancellationToken&) { runs.add(id); }, fast());
  queue.enqueue(1, system_clock()->now() - 1h);
  EXPECT_TRUE(queue.wait_idle_for(5s));
  EXPECT_EQ(runs.get().size(), 1U);
  EXPECT_EQ(queue.record(1)->requested_delay, 0ms);
}

TEST(InProcessJobQueue, ADelayedJobDoesNotHoldAPoolThread) {
  Runs runs;
  InProcessJobQueue::Options options;
  options.threads = 1;
  InProcessJobQueue queue([&](std::int64_t id, const CancellationToken&) { runs.add(id); }, options);
  queue.enqueue(1, system_clock()->now() + 300ms);
  queue.enqueue(2);
  // Job 2 runs on the only thread while job 1 waits for its time.
  const auto deadline = Steady::now() + 5s;
  while (runs.get().empty() && Steady::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_FALSE(runs.get().empty());
  EXPECT_EQ(runs.get()[0], 2);
  queue.wait_idle();
  EXPECT_EQ(runs.get(), (std::vector<std::int64_t>{2, 1}));
}

TEST(InProcessJobQueue, RetryOrDieRunsAgainUpToItsRetriesThenFails) {
  std::atomic<int> runs{0};
  std::mutex mutex;
  std::vector<std::chrono::milliseconds> requested;
  auto options = fast();
  options.delay = [&](std::chrono::milliseconds r) {
    std::lock_guard lock(mutex);
    requested.push_back(r);
    return 1ms;
  };
  InProcessJobQueue queue(
      [&](std::int64_t, const CancellationToken&) {
        ++runs;
        throw RetryOrDie(2, 63s, nullptr, "server error during backfill: HTTP 503");
      },
      options);
  queue.enqueue(7);
  queue.wait_idle();
  EXPECT_EQ(runs.load(), 3) << "the first run and two retries";
  const auto rec = queue.record(7);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->state, QueuedJobState::failed);
  EXPECT_EQ(rec->retries, 2);
  EXPECT_EQ(rec->runs, 3);
  EXPECT_THAT(rec->error, HasSubstr("HTTP 503"));
  EXPECT_THAT(rec->error, HasSubstr("gave up after 2 retries"));
  {
    // Not held across queue calls: the queue calls `delay` under its own lock.
    std::lock_guard lock(mutex);
    EXPECT_EQ(requested, (std::vector<std::chrono::milliseconds>{63s, 63s}));
  }
  ASSERT_EQ(queue.failed().size(), 1U);
}

TEST(InProcessJobQueue, RetryOrDieThenSuccess) {
  std::atomic<int> runs{0};
  InProcessJobQueue queue(
      [&](std::int64_t, const CancellationToken&) {
        if (++runs == 1) throw RetryOrDie(2, 2s, nullptr, "timeout");
      },
      fast());
  queue.enqueue(1);
  queue.wait_idle();
  EXPECT_EQ(runs.load(), 2);
  EXPECT_EQ(queue.record(1)->state, QueuedJobState::succeeded);
  EXPECT_EQ(queue.record(1)->retries, 1);
  EXPECT_TRUE(queue.failed().empty());
}

TEST(InProcessJobQueue, OtherErrorsAreRecordedAsFailures) {
  auto logger = std::make_shared<CapturingLogger>();
  auto options = fast();
  options.logger = logger;
  InProcessJobQueue queue(
      [](std::int64_t id, const CancellationToken&) {
        if (id == 1) throw InvalidInput("bad payload", "column 'at'");
        if (id == 2) throw 42;
      },
      options);
  queue.enqueue(1);
  queue.enqueue(2);
  queue.enqueue(3);
  queue.wait_idle();
  EXPECT_EQ(queue.record(1)->state, QueuedJobState::failed);
  EXPECT_EQ(queue.record(1)->error, "bad payload (at column 'at')");
  EXPECT_EQ(queue.record(2)->state, QueuedJobState::failed);
  EXPECT_EQ(queue.record(2)->error, "unknown error");
  EXPECT_EQ(queue.record(3)->state, QueuedJobState::succeeded);
  EXPECT_EQ(queue.failed().size(), 2U);
  EXPECT_TRUE(logger->contains("backfill job 1 failed: bad payload"));
  EXPECT_FALSE(queue.record(99));
}

TEST(InProcessJobQueue, ShutdownCancelsRunningJobsPromptly) {
  std::atomic<bool> started{false};
  std::atomic<bool> saw_cancel{false};
  InProcessJobQueue queue(
      [&](std::int64_t, const CancellationToken& cancel) {
        started = true;
        if (cancel.wait_for(30s)) {
          saw_cancel = true;
          throw Cancelled();
        }
      },
      fast());
  queue.enqueue(1);
  queue.enqueue(2, system_clock()->now() + 1h);
  const auto deadline = Steady::now() + 5s;
  while (!started && Steady::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(started);
  const auto start = Steady::now();
  queue.shutdown();
  EXPECT_LT(Steady::now() - start, 2s);
  EXPECT_TRUE(saw_cancel);
  EXPECT_EQ(queue.record(1)->state, QueuedJobState::cancelled);
  EXPECT_EQ(queue.record(2)->state, QueuedJobState::cancelled) << "the delayed job is dropped";
  EXPECT_THROW(queue.enqueue(3), InvalidPrecondition);
  EXPECT_TRUE(queue.wait_idle_for(1s));
  queue.shutdown();  // idempotent
}

TEST(InProcessJobQueue, NeedsAHandler) {
  InProcessJobQueue queue(fast());
  EXPECT_THROW(queue.enqueue(1), InvalidPrecondition);
  Runs runs;
  queue.set_handler([&](std::int64_t id, const CancellationToken&) { runs.add(id); });
  queue.enqueue(1);
  queue.wait_idle();
  EXPECT_EQ(runs.get().size(), 1U);
  EXPECT_EQ(to_string(QueuedJobState::failed), "failed");
}

// --- with JobRunner: real backfill jobs ---

class QueueWithRunner : public ::testing::Test {
 protected:
  TestHarness h;
  std::shared_ptr<InProcessJobQueue> queue = std::make_shared<InProcessJobQueue>(fast());

  ReplicatorContext context() {
    auto ctx = h.context();
    ctx.queue = queue;
    return ctx;
  }
  void SetUp() override {
    queue->set_handler(job_runner_handler(std::make_shared<JobRunner>(h.registry, context())));
  }
  void TearDown() override { queue->shutdown(); }
};

TEST_F(QueueWithRunner, RunsAJobTreeToTheEnd) {
  auto parent = h.integration("fake_v1");
  auto child = h.integration("fake_dependent_v1", [&](ServiceIntegration& s) { s.depends_on = parent.id; });
  h.replicator(parent);
  h.replicator(child);
  h.http->on("fake_dependent_v1?token=").respond_json(fake_page({fake_item("d", "2024-01-01T00:00:00Z")}));
  h.http->on("fake_v1?token=").respond_json(fake_page({fake_item("p", "2024-01-01T00:00:00Z")}));
  auto root = h.job(parent);
  queue->enqueue(root.id);
  queue->wait_idle();
  root = *h.jobs->find_job(root.id);
  EXPECT_EQ(status(*h.jobs, root), JobStatus::finished);
  EXPECT_EQ(h.jobs->jobs().size(), 2U);
  for (const auto& rec : queue->records()) EXPECT_EQ(rec.state, QueuedJobState::succeeded);
  EXPECT_EQ(queue->records().size(), 2U) << "the child was enqueued by the parent's success";
  EXPECT_EQ(h.rows(*h.replicator(child)).size(), 1U);
}

TEST_F(QueueWithRunner, AServerErrorIsRetriedByTheQueue) {
  auto si = h.integration("fake_v1");
  h.replicator(si);
  h.http->respond(503, "busy");
  h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z")}));
  auto job = h.job(si);
  queue->enqueue(job.id);
  queue->wait_idle();
  const auto rec = queue->record(job.id);
  EXPECT_EQ(rec->state, QueuedJobState::succeeded);
  EXPECT_EQ(rec->retries, 1);
  EXPECT_THAT(rec->error, HasSubstr("503"));
  EXPECT_TRUE(h.jobs->find_job(job.id)->finished_at);
  EXPECT_EQ(h.http->request_count(), 2U);
}

TEST_F(QueueWithRunner, ASecondJobOfABusyIntegrationWaitsItsTurnAndRuns) {
  auto si = h.integration("fake_v1");
  h.replicator(si);
  auto first = h.job(si);
  auto second = h.job(si, true);  // another kind of job: never dropped
  // The first run's request waits until the second job has found the
  // integration busy at least once.
  h.http->call([&](const HttpRequest&, const CancellationToken&) {
    const auto deadline = Steady::now() + 5s;
    while (queue->record(second.id).value_or(QueuedJobRecord{}).runs < 1 && Steady::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    std::this_thread::sleep_for(20ms);
    return HttpResponse{200, {}, fake_page({}).dump(), {}};
  });
  h.http->respond_json(fake_page({fake_item("b", "2024-01-01T00:00:00Z")}));
  queue->enqueue(first.id);
  ASSERT_TRUE(h.http->wait_for_requests(1, 5s));
  queue->enqueue(second.id);
  queue->wait_idle();
  EXPECT_TRUE(h.jobs->find_job(first.id)->finished_at);
  EXPECT_TRUE(h.jobs->find_job(second.id)->started_at) << "it ran once the first was done";
  EXPECT_TRUE(h.jobs->find_job(second.id)->finished_at);
  EXPECT_GE(queue->record(second.id)->runs, 2) << "it found the integration busy first";
  EXPECT_EQ(queue->record(second.id)->state, QueuedJobState::succeeded);
  EXPECT_EQ(queue->record(second.id)->retries, 0) << "waiting is not a retry";
  EXPECT_EQ(h.http->request_count(), 2U);
  EXPECT_EQ(h.rows(*h.replicator(si)).size(), 1U);
}

}  // namespace
}  // namespace webhookdb::memory
