// Parallel backfills: a fixed pool, early abort (first error wins, nothing new
// starts, running backfillers are cancelled) and the abort latency.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include "support.hpp"
#include "webhookdb/parallel_executor.hpp"
#include "webhookdb/testing/scripted_backfiller.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb {
namespace {

using namespace webhookdb::testing;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAreArray;

using Clock = std::chrono::steady_clock;

// Thread-safe notes the scripted backfillers leave for the test.
struct Notes {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> fetched;  // "<backfiller>:<token>"
  std::vector<nlohmann::json> handled;
  std::set<int> started;
  int in_flight = 0;
  int max_in_flight = 0;

  void fetch(int backfiller, const std::string& token) {
    std::lock_guard lock(mutex);
    fetched.push_back(std::to_string(backfiller) + ":" + token);
    started.insert(backfiller);
    cv.notify_all();
  }
  bool wait_started(int backfiller, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return started.count(backfiller) != 0; });
  }
  bool has_started(int backfiller) {
    std::lock_guard lock(mutex);
    return started.count(backfiller) != 0;
  }
};

// A backfiller `index` with `pages` pages of two items each, noting fetches and items.
std::unique_ptr<ScriptedBackfiller> noted(Notes& notes, int index, int pages) {
  std::vector<std::vector<nlohmann::json>> items;
  for (int p = 0; p < pages; ++p) {
    items.push_back({index * 100 + p * 2, index * 100 + p * 2 + 1});
  }
  auto b = std::make_unique<ScriptedBackfiller>(ScriptedBackfiller::pages(items));
  b->on_fetch([&notes, index](const std::string& token, const CancellationToken&) { notes.fetch(index, token); });
  b->on_item([&notes](const nlohmann::json& item) {
    std::lock_guard lock(notes.mutex);
    notes.handled.push_back(item);
  });
  return b;
}

class ParallelBackfill : public ::testing::Test {
 protected:
  TestHarness h;
  ServiceIntegration si = h.integration();
  std::unique_ptr<Replicator> r = h.replicator(si);
  Notes notes;

  void backfillers(std::function<std::vector<std::unique_ptr<Backfiller>>()> make) {
    h.fake->make_backfillers = [make = std::move(make)](Replicator&, const nlohmann::json&) { return make(); };
  }
};

TEST_F(ParallelBackfill, PoolOfTwoAndThreeBackfillersFetchesEveryPageAndHandlesEveryItem) {
  h.fake->backfill_options.parallel = 2;
  bool released = false;
  backfillers([&] {
    std::vector<std::unique_ptr<Backfiller>> out;
    for (int i = 0; i < 3; ++i) {
      auto b = noted(notes, i, 3);
      // The first fetches wait for a partner: proof that two run at once.
      b->on_fetch([this, &released, i](const std::string& token, const CancellationToken&) {
        notes.fetch(i, token);
        std::unique_lock lock(notes.mutex);
        ++notes.in_flight;
        notes.max_in_flight = std::max(notes.max_in_flight, notes.in_flight);
        notes.cv.notify_all();
        notes.cv.wait_for(lock, 2s, [&] { return released || notes.in_flight >= 2; });
        released = true;
        --notes.in_flight;
        notes.cv.notify_all();
      });
      out.push_back(std::move(b));
    }
    return out;
  });
  auto job = h.job(si);
  r->backfill(job);

  std::vector<std::string> expected_fetches;
  std::vector<nlohmann::json> expected_items;
  for (int i = 0; i < 3; ++i) {
    expected_fetches.push_back(std::to_string(i) + ":");
    expected_fetches.push_back(std::to_string(i) + ":page1");
    expected_fetches.push_back(std::to_string(i) + ":page2");
    for (int k = 0; k < 6; ++k) expected_items.push_back(i * 100 + k);
  }
  EXPECT_THAT(notes.fetched, UnorderedElementsAreArray(expected_fetches));
  EXPECT_THAT(notes.handled, UnorderedElementsAreArray(expected_items));
  EXPECT_EQ(notes.max_in_flight, 2) << "two backfillers at once, never three";
  EXPECT_TRUE(job.finished_at);
}

TEST_F(ParallelBackfill, PartitionsRunInParallelAndWriteEveryRow) {
  auto csi = h.integration("fake_with_criteria_v1");
  auto cr = h.replicator(csi);
  h.fake->backfill_options.parallel = 2;
  for (std::string p : {"a", "b", "c"}) {
    h.http->on("partition=" + p + "&token=p3").respond_json(fake_page({fake_item(p + "5", "2024-01-01T00:00:00Z")}));
    h.http->on("partition=" + p + "&token=p2")
        .respond_json(fake_page({fake_item(p + "3", "2024-01-01T00:00:00Z"), fake_item(p + "4", "2024-01-01T00:00:00Z")}, "p3"));
    h.http->on("partition=" + p + "&token=")
        .respond_json(fake_page({fake_item(p + "1", "2024-01-01T00:00:00Z"), fake_item(p + "2", "2024-01-01T00:00:00Z")}, "p2"));
  }
  auto job = h.job(csi, false, {{"partitions", {"a", "b", "c"}}});
  cr->backfill(job);
  EXPECT_EQ(h.http->request_count(), 9U);
  EXPECT_EQ(h.http->pending_steps(), 0U);
  const auto rows = h.rows(*cr);
  ASSERT_EQ(rows.size(), 15U);
  EXPECT_EQ(rows.front().key, "a1");
  EXPECT_EQ(rows.back().key, "c5");
}

TEST_F(ParallelBackfill, TheErrorIsRethrown) {
  h.fake->backfill_options.parallel = 2;
  backfillers([&] {
    std::vector<std::unique_ptr<Backfiller>> out;
    for (int i = 0; i < 3; ++i) out.push_back(noted(notes, i, 2));
    static_cast<ScriptedBackfiller&>(*out[1]).fail_token("page1", 1, std::make_exception_ptr(test::CustomError("b1", 1)));
    return out;
  });
  auto job = h.job(si);
  try {
    r->backfill(job);
    FAIL() << "expected the backfiller's error";
  } catch (const test::CustomError& e) {
    EXPECT_EQ(e.code, 1);
  }
  EXPECT_FALSE(job.finished_at);
  EXPECT_TRUE(h.queue->job_ids().empty());
}

TEST_F(ParallelBackfill, AfterTheFirstErrorNothingStartsAndRunningOnesAreCancelled) {
  h.fake->backfill_options.parallel = 2;
  std::atomic<bool> observed_cancel{false};
  backfillers([&] {
    std::vector<std::unique_ptr<Backfiller>> out;
    // 0 fails once 1 is running; 1 blocks until cancelled; 2 and 3 must never start.
    out.push_back(std::make_unique<ScriptedBackfiller>(
        [&](const std::string&, const std::optional<Timestamp>&, const CancellationToken&) -> BackfillPage {
          notes.fetch(0, "");
          EXPECT_TRUE(notes.wait_started(1));
          throw test::CustomError("first", 0);
        }));
    out.push_back(std::make_unique<ScriptedBackfiller>(
        [&](const std::string&, const std::optional<Timestamp>&, const CancellationToken& cancel) -> BackfillPage {
          notes.fetch(1, "");
          if (cancel.wait_for(10s)) {
            observed_cancel = true;
            throw Cancelled();
          }
          return BackfillPage{nlohmann::json::array(), "", 0};
        }));
    out.push_back(noted(notes, 2, 1));
    out.push_back(noted(notes, 3, 1));
    return out;
  });
  auto job = h.job(si);
  const auto start = Clock::now();
  EXPECT_THROW(r->backfill(job), test::CustomError);
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_TRUE(observed_cancel) << "the running backfiller saw the cancellation";
  EXPECT_FALSE(notes.has_started(2));
  EXPECT_FALSE(notes.has_started(3));
}

TEST_F(ParallelBackfill, AbortLatencyWithAnInFlightRequestIsUnderOneSecond) {
  auto csi = h.integration("fake_with_criteria_v1");
  auto cr = h.replicator(csi);
  h.fake->backfill_options.parallel = 2;
  std::mutex mutex;
  Clock::time_point failed_at{};
  h.http->on("partition=slow").hang_until_cancelled(30s);
  h.http->on("partition=bad").call([&](const HttpRequest&, const CancellationToken&) {
    // Fail only once the slow partition's request is in flight.
    EXPECT_TRUE(h.http->wait_for_requests(2, 5s));
    std::this_thread::sleep_for(20ms);
    std::lock_guard lock(mutex);
    failed_at = Clock::now();
    return HttpResponse{401, {}, "revoked", {}};
  });
  auto job = h.job(csi, false, {{"partitions", {"slow", "bad"}}});
  try {
    cr->backfill(job);
    FAIL() << "expected the 401";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 401);
  }
  const auto returned = Clock::now();
  std::lock_guard lock(mutex);
  const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(returned - failed_at);
  std::cout << "[ MEASURE  ] abort latency (error to backfill() return, one request in flight): "
            << static_cast<double>(latency.count()) / 1000.0 << " ms" << std::endl;
  RecordProperty("abort_latency_us", std::to_string(latency.count()));
  EXPECT_LT(latency, 1s);
}

TEST_F(ParallelBackfill, CancellingTheJobStopsEveryBackfiller) {
  h.fake->backfill_options.parallel = 3;
  std::atomic<int> cancelled{0};
  backfillers([&] {
    std::vector<std::unique_ptr<Backfiller>> out;
    for (int i = 0; i < 3; ++i) {
      out.push_back(std::make_unique<ScriptedBackfiller>(
          [&, i](const std::string&, const std::optional<Timestamp>&, const CancellationToken& cancel) -> BackfillPage {
            notes.fetch(i, "");
            if (cancel.wait_for(10s)) ++cancelled;
            cancel.throw_if_cancelled();
            return BackfillPage{nlohmann::json::array(), "", 0};
          }));
    }
    return out;
  });
  CancellationSource source;
  std::thread canceller([&] {
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(notes.wait_started(i));
    source.cancel();
  });
  auto job = h.job(si);
  const auto start = Clock::now();
  EXPECT_THROW(r->backfill(job, source.token()), Cancelled);
  canceller.join();
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_EQ(cancelled.load(), 3);
  EXPECT_FALSE(job.finished_at);
}

TEST_F(ParallelBackfill, SerialModeRunsBackfillersInOrderAndStopsAtTheFirstError) {
  h.fake->backfill_options.parallel = 1;
  backfillers([&] {
    std::vector<std::unique_ptr<Backfiller>> out;
    for (int i = 0; i < 4; ++i) out.push_back(noted(notes, i, 2));
    static_cast<ScriptedBackfiller&>(*out[2]).fail_token("", 1, test::http_error(401));
    return out;
  });
  auto job = h.job(si);
  EXPECT_THROW(r->backfill(job), HttpError);
  EXPECT_THAT(notes.fetched, ElementsAre("0:", "0:page1", "1:", "1:page1", "2:"));
}

TEST_F(ParallelBackfill, ManyBackfillersOnAPoolOfFourRepeatedly) {
  h.fake->backfill_options.parallel = 4;
  for (int round = 0; round < 10; ++round) {
    Notes round_notes;
    backfillers([&] {
      std::vector<std::unique_ptr<Backfiller>> out;
      for (int i = 0; i < 12; ++i) {
        auto b = noted(round_notes, i, 4);
        b->pipeline(i % 2 == 0);
        out.push_back(std::move(b));
      }
      return out;
    });
    auto job = h.job(si);
    r->backfill(job);
    EXPECT_EQ(round_notes.handled.size(), 12U * 8U) << "round " << round;
    EXPECT_EQ(round_notes.fetched.size(), 12U * 4U);
  }
}

// --- run_tasks directly ---

TEST(RunTasks, EmptyListAndSingleThreadInOrder) {
  EXPECT_NO_THROW(run_tasks({}, 4));
  std::vector<int> order;
  std::vector<CancellableTask> tasks;
  for (int i = 0; i < 4; ++i) tasks.push_back([&order, i](const CancellationToken&) { order.push_back(i); });
  run_tasks(std::move(tasks), 1);
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3));
}

TEST(RunTasks, ACancelledParentRunsNothing) {
  CancellationSource parent;
  parent.cancel();
  std::atomic<int> ran{0};
  std::vector<CancellableTask> tasks;
  for (int i = 0; i < 4; ++i) tasks.push_back([&](const CancellationToken&) { ++ran; });
  EXPECT_THROW(run_tasks(std::move(tasks), 2, parent.token()), Cancelled);
  EXPECT_EQ(ran.load(), 0);
}

TEST(RunTasks, EveryTaskRunsOnThePool) {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::atomic<int> ran{0};
  std::vector<CancellableTask> tasks;
  for (int i = 0; i < 16; ++i) {
    tasks.push_back([&](const CancellationToken&) {
      std::this_thread::sleep_for(1ms);
      std::lock_guard lock(mutex);
      threads.insert(std::this_thread::get_id());
      ++ran;
    });
  }
  run_tasks(std::move(tasks), 3);
  EXPECT_EQ(ran.load(), 16);
  EXPECT_LE(threads.size(), 3U);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0U) << "not on the caller's thread";
}

}  // namespace
}  // namespace webhookdb
