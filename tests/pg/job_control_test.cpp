// PgJobControl against a real PostgreSQL: cancel requests (queued, running,
// neither), the NOTIFY a holder listens for, a request that names one run,
// and PgProgressSink's throttle.
#include "webhookdb/pg/job_control.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "support/child_process.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/pg/job_queue.hpp"

namespace webhookdb::pg {
namespace {

using namespace std::chrono_literals;

class JobControlTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    queue_ = std::make_shared<PgJobQueue>(config());
    control_ = std::make_shared<PgJobControl>(queue_);
  }

  std::shared_ptr<PgJobQueue> queue_;
  std::shared_ptr<PgJobControl> control_;
};

TEST_F(JobControlTest, AQueuedJobIsCancelledAtOnceAndQueuedAgainByEnqueue) {
  queue_->enqueue(1);
  EXPECT_EQ(control_->request_cancel(1, "test"), CancelResult::cancelled);
  EXPECT_EQ(queue_->entry(1)->state, QueueState::cancelled);
  EXPECT_FALSE(queue_->take("w")) << "a cancelled job is not taken";
  EXPECT_EQ(control_->request_cancel(1, "test"), CancelResult::not_running);
  EXPECT_EQ(control_->request_cancel(99, "test"), CancelResult::not_found);
  queue_->enqueue(1);
  auto lease = queue_->take("w");
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->job_id, 1);
  EXPECT_EQ(lease->attempt, 1) << "queued again with a fresh attempt count";
}

TEST_F(JobControlTest, ARunningJobsHolderIsNotifiedAndTheRequestNamesOneRun) {
  std::atomic<int> notified{0};
  control_->watch_cancels([&] { ++notified; });
  ASSERT_TRUE(test::wait_until([&] { return notified.load() >= 1; }, 10s)) << "called once connected";
  const int before = notified.load();
  queue_->enqueue(2);
  auto lease = queue_->take("w");
  ASSERT_TRUE(lease);
  EXPECT_TRUE(control_->cancel_requested({*lease}).empty());
  EXPECT_EQ(control_->request_cancel(2, "test"), CancelResult::requested);
  EXPECT_TRUE(test::wait_until([&] { return notified.load() > before; }, 5s))
      << "no NOTIFY reached the holder";
  EXPECT_EQ(control_->cancel_requested({*lease}), std::vector<std::int64_t>{2});
  EXPECT_TRUE(control_->finish_cancelled(*lease));
  EXPECT_EQ(queue_->entry(2)->state, QueueState::cancelled);
  EXPECT_FALSE(control_->finish_cancelled(*lease)) << "the lease is gone";

  queue_->enqueue(2);
  auto again = queue_->take("w");
  ASSERT_TRUE(again);
  EXPECT_TRUE(control_->cancel_requested({*again}).empty()) << "the old request does not stop the new run";
  control_->stop_watching();
}

TEST_F(JobControlTest, AJobWhoseHolderDiedIsCancelledAtOnce) {
  queue_->enqueue(5);
  auto lease = queue_->take("dead");
  ASSERT_TRUE(lease);
  admin_exec("UPDATE " + schema().quoted() +
             ".webhookdb_job_queue SET lease_expires_at = clock_timestamp() - interval '1 second' "
             "WHERE job_id = 5");
  EXPECT_EQ(control_->request_cancel(5, "test"), CancelResult::cancelled);
  EXPECT_EQ(queue_->entry(5)->state, QueueState::cancelled);
  EXPECT_FALSE(queue_->take("heir")) << "not taken over";
  EXPECT_FALSE(queue_->complete(*lease)) << "the dead holder's lease is gone";
}

TEST_F(JobControlTest, ProgressIsWrittenAtMostOncePerIntervalAndAtTheEnd) {
  PgProgressSink sink(control_, "w", nullptr, 1h);
  BackfillProgress p;
  p.job_id = 3;
  p.backfiller = "b";
  for (int i = 1; i <= 5; ++i) {
    p.pages = static_cast<std::uint64_t>(i);
    sink.on_progress(p);
  }
  EXPECT_TRUE(control_->progress(3).empty()) << "nothing before an interval has passed";
  p.done = true;
  p.rows_written = 500;
  sink.on_progress(p);
  auto rows = control_->progress(3);
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].pages, 5U);
  EXPECT_EQ(rows[0].rows_written, 500U);
  EXPECT_TRUE(rows[0].done);
  EXPECT_EQ(rows[0].owner, "w");

  PgProgressSink often(control_, "w", nullptr, 1ms);
  p = {};
  p.job_id = 4;
  p.backfiller = "b";
  p.pages = 1;
  often.on_progress(p);  // first seen: the clock starts
  std::this_thread::sleep_for(5ms);
  p.pages = 2;
  often.on_progress(p);
  rows = control_->progress(4);
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].pages, 2U);
  EXPECT_FALSE(rows[0].done);
}

// webhookdb-worker holds a job's final reports and writes them with the
// queue's 'done' in one statement (issue 18: no commit of their own).
TEST_F(JobControlTest, HeldFinalReportsAreWrittenWithTheJobsEnd) {
  PgProgressSink sink(control_, "w", nullptr, 1h);
  sink.hold_short_final_reports(true);
  queue_->enqueue(6);
  auto lease = queue_->take("w");
  ASSERT_TRUE(lease);
  BackfillProgress p;
  p.job_id = 6;
  p.backfiller = "b";
  p.pages = 1;
  p.rows_written = 10;
  p.done = true;
  sink.on_progress(p);
  EXPECT_TRUE(control_->progress(6).empty()) << "held";
  EXPECT_TRUE(control_->complete(*lease, sink.take_held(6), "w"));
  EXPECT_EQ(queue_->entry(6)->state, QueueState::done);
  auto rows = control_->progress(6);
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_TRUE(rows[0].done);
  EXPECT_EQ(rows[0].rows_written, 10U);
  EXPECT_EQ(rows[0].owner, "w");
  EXPECT_TRUE(sink.take_held(6).empty());

  queue_->enqueue(7);
  auto lost = queue_->take("w");
  ASSERT_TRUE(lost);
  p.job_id = 7;
  sink.on_progress(p);
  auto stale = *lost;
  stale.token = "00";
  EXPECT_FALSE(control_->complete(stale, sink.take_held(7), "w")) << "not its lease";
  EXPECT_TRUE(control_->progress(7).empty()) << "nor its progress";
  EXPECT_EQ(queue_->entry(7)->state, QueueState::running);

  p.job_id = 8;  // a run that ends otherwise: flushed
  sink.on_progress(p);
  sink.flush_held(8);
  EXPECT_EQ(control_->progress(8).size(), 1U);
}

}  // namespace
}  // namespace webhookdb::pg
