// PgJobQueue against a real PostgreSQL: leases, SKIP LOCKED, run_at with an
// injected clock, RetryOrDie budgets, the failed state, NOTIFY wake-ups.

#include "webhookdb/pg/job_queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "support/pg_test_env.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/testing/manual_clock.hpp"

namespace webhookdb::pg {
namespace {

using namespace std::chrono_literals;
using testing::ManualClock;

class JobsQueueTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    clock_ = std::make_shared<ManualClock>();
  }

  std::shared_ptr<PgJobQueue> make_queue(std::chrono::milliseconds lease = 30s, int max_attempts = 20,
                                         double retry_jitter = 0.0) {
    PgJobQueueOptions o;
    o.clock = clock_;
    o.lease = lease;
    o.max_attempts = max_attempts;
    o.retry_jitter = retry_jitter;
    return std::make_shared<PgJobQueue>(config(), o);
  }

  // Moves the lease of a job into the past (as if its worker died long ago).
  void expire_lease(std::int64_t job_id) {
    admin_exec("UPDATE " + schema().quoted() +
                   ".webhookdb_job_queue SET lease_expires_at = clock_timestamp() - interval '1 second' "
                   "WHERE job_id = $1::bigint",
               {std::to_string(job_id)});
  }

  // A lease nobody took: what a stranger (or a forged call) holds.
  static Lease forged(std::int64_t job_id, const std::string& owner) {
    Lease l;
    l.job_id = job_id;
    l.owner = owner;
    l.token = "0123456789abcdef0123456789abcdef";
    return l;
  }

  std::shared_ptr<ManualClock> clock_;
};

TEST_F(JobsQueueTest, MigrationIsVersionedAndIdempotent) {
  auto q1 = make_queue();
  auto q2 = make_queue();  // a second process starting: nothing to do
  q2->migrate();
  EXPECT_EQ(pg::applied_migrations(q1->pool(), "job_queue"), (std::vector<int>{1, 2, 3, 4}));
  auto r = admin_exec("SELECT count(*) FROM " + schema().quoted() + ".webhookdb_job_queue");
  EXPECT_EQ(r.rows.at(0).at(0).value_or(""), "0");
}

TEST_F(JobsQueueTest, ConcurrentMigrationsFromManyQueuesAgree) {
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      try {
        auto q = make_queue();
      } catch (const std::exception&) {
        ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  auto q = make_queue();
  EXPECT_EQ(pg::applied_migrations(q->pool(), "job_queue"), (std::vector<int>{1, 2, 3, 4}));
}

TEST_F(JobsQueueTest, TakeLeasesTheJobOnce) {
  auto q = make_queue();
  q->enqueue(7);
  auto e = q->entry(7);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->state, QueueState::queued);
  EXPECT_FALSE(e->run_at);
  EXPECT_EQ(e->attempts, 0);

  auto lease = q->take("w1");
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->job_id, 7);
  EXPECT_EQ(lease->attempt, 1);
  EXPECT_FALSE(lease->recovered);
  EXPECT_FALSE(q->take("w2")) << "a leased job is not taken again while its lease lasts";

  e = q->entry(7);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->state, QueueState::running);
  EXPECT_EQ(e->lease_owner, "w1");
  ASSERT_TRUE(e->lease_expires_at);
  EXPECT_GT(*e->lease_expires_at, e->updated_at);

  EXPECT_EQ(lease->owner, "w1");
  EXPECT_EQ(lease->token.size(), 32U);
  EXPECT_FALSE(q->complete(forged(7, "w2"))) << "only the holder completes";
  EXPECT_FALSE(q->complete(forged(7, "w1")))
      << "the holder's name is not enough: its lease's token is needed";
  EXPECT_TRUE(q->complete(*lease));
  EXPECT_FALSE(q->complete(*lease)) << "once";
  e = q->entry(7);
  EXPECT_EQ(e->state, QueueState::done);
  EXPECT_TRUE(e->lease_owner.empty());
  EXPECT_FALSE(e->lease_expires_at);
  EXPECT_TRUE(e->finished_at);
  EXPECT_FALSE(q->take("w1"));
}

TEST_F(JobsQueueTest, JobsAreTakenInDueOrder) {
  auto q = make_queue();
  q->enqueue(3, clock_->now() - 10s);
  q->enqueue(1);
  q->enqueue(2);
  q->enqueue(4, clock_->now() + 10s);
  std::vector<std::int64_t> order;
  while (auto l = q->take("w")) order.push_back(l->job_id);
  EXPECT_EQ(order, (std::vector<std::int64_t>{1, 2, 3}));
}

TEST_F(JobsQueueTest, ConcurrentTakersNeverShareAJob) {
  auto q = make_queue();
  constexpr int kJobs = 60;
  for (int i = 1; i <= kJobs; ++i) q->enqueue(i);
  std::mutex mutex;
  std::vector<std::int64_t> taken;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto own = make_queue();  // its own pool, like another process
      const std::string owner = "w" + std::to_string(t);
      while (auto l = own->take(owner)) {
        std::lock_guard lock(mutex);
        taken.push_back(l->job_id);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::sort(taken.begin(), taken.end());
  ASSERT_EQ(taken.size(), static_cast<std::size_t>(kJobs)) << "each job taken exactly once";
  for (int i = 0; i < kJobs; ++i) EXPECT_EQ(taken[static_cast<std::size_t>(i)], i + 1);
}

TEST_F(JobsQueueTest, ExpiredLeaseIsTakenOverAndTheOldHolderLosesIt) {
  auto q = make_queue(300ms);
  q->enqueue(5);
  auto dead = q->take("dead");
  ASSERT_TRUE(dead);
  EXPECT_FALSE(q->take("alive"));
  std::this_thread::sleep_for(450ms);  // database time: the lease really expires
  auto lease = q->take("alive");
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->job_id, 5);
  EXPECT_EQ(lease->attempt, 2);
  EXPECT_TRUE(lease->recovered);
  EXPECT_EQ(lease->previous_owner, "dead");

  EXPECT_TRUE(q->renew({*dead}).empty()) << "the old holder learns it lost the job";
  EXPECT_FALSE(q->complete(*dead));
  EXPECT_FALSE(q->release(*dead));
  EXPECT_FALSE(q->fail(*dead, "x"));
  EXPECT_EQ(q->retry_or_fail(*dead, 2, 63s, "x"), RetryDecision::lease_lost);
  EXPECT_EQ(q->renew({*lease}), std::vector<std::int64_t>{5});
  EXPECT_TRUE(q->complete(*lease));
}

TEST_F(JobsQueueTest, HandBackReturnsATakenOverJobToItsLiveHolderWhoFinishesIt) {
  // A holder paused past its lease (SIGSTOP): another worker takes the job,
  // finds the holder alive (it still holds the integration's lock) and hands
  // the job back. When the holder resumes, its heartbeat renews and it
  // completes the job; the take-over is not counted as an attempt.
  auto q = make_queue(300ms);
  q->enqueue(9);
  auto paused = q->take("paused");
  ASSERT_TRUE(paused);
  std::this_thread::sleep_for(450ms);
  auto probe = q->take("other");
  ASSERT_TRUE(probe);
  ASSERT_TRUE(probe->recovered);
  EXPECT_EQ(probe->previous_token, paused->token);
  EXPECT_TRUE(q->hand_back(*probe));
  auto e = q->entry(9);
  EXPECT_EQ(e->state, QueueState::running);
  EXPECT_EQ(e->lease_owner, "paused");
  EXPECT_EQ(e->attempts, 1);
  EXPECT_FALSE(q->take("third")) << "the handed-back lease runs again";
  EXPECT_FALSE(q->complete(*probe)) << "the prober holds nothing now";
  EXPECT_EQ(q->renew({*paused}), std::vector<std::int64_t>{9}) << "the holder resumes";
  EXPECT_TRUE(q->complete(*paused));
  EXPECT_EQ(q->entry(9)->state, QueueState::done);

  Lease fresh = *paused;
  fresh.recovered = false;
  EXPECT_THROW((void)q->hand_back(fresh), InvalidPrecondition);
}

TEST_F(JobsQueueTest, PostponeRequeuesWithoutCountingTheAttempt) {
  auto q = make_queue();
  q->enqueue(10);
  auto l = q->take("w1");
  ASSERT_TRUE(l);
  EXPECT_TRUE(q->postpone(*l, clock_->now() + 5s));
  auto e = q->entry(10);
  EXPECT_EQ(e->state, QueueState::queued);
  EXPECT_EQ(e->attempts, 0);
  EXPECT_EQ(e->run_at, std::optional<Timestamp>(clock_->now() + 5s));
  EXPECT_FALSE(q->take("w2")) << "not due yet";
  EXPECT_FALSE(q->postpone(*l, clock_->now())) << "a lease is postponed once";
}

TEST_F(JobsQueueTest, RenewalKeepsTheLease) {
  auto q = make_queue(1s);
  q->enqueue(9);
  auto lease = q->take("w1");
  ASSERT_TRUE(lease);
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(q->renew({*lease}), std::vector<std::int64_t>{9});
  }
  EXPECT_FALSE(q->take("w2")) << "1.5 s later, a renewed 1 s lease still holds";
  EXPECT_TRUE(q->renew({}).empty());
}

// A worker restarted under its predecessor's name (a stable pod or host name)
// renews only the leases it took itself: the dead one's expire and are taken over.
TEST_F(JobsQueueTest, RenewExtendsOnlyTheGivenLeasesNotEveryLeaseOfTheOwnersName) {
  auto q = make_queue(300ms);
  q->enqueue(1);
  q->enqueue(2);
  auto orphan = q->take("w1");  // the process that died
  ASSERT_TRUE(orphan);
  auto mine = q->take("w1");  // its successor, same name
  ASSERT_TRUE(mine);
  ASSERT_NE(orphan->token, mine->token);
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(120ms);
    EXPECT_EQ(q->renew({*mine}), std::vector<std::int64_t>{mine->job_id});
  }
  auto taken = q->take("w2");
  ASSERT_TRUE(taken) << "the orphan's lease was not kept alive by the successor's heartbeat";
  EXPECT_EQ(taken->job_id, orphan->job_id);
  EXPECT_TRUE(taken->recovered);
  EXPECT_EQ(taken->previous_owner, "w1");
  EXPECT_TRUE(q->renew({*orphan}).empty());
  EXPECT_EQ(q->entry(mine->job_id)->state, QueueState::running);
  EXPECT_THROW((void)q->complete(Lease{}), InvalidPrecondition) << "a lease not from take()";
}

TEST_F(JobsQueueTest, RunAtFollowsTheInjectedClock) {
  auto q = make_queue();
  q->enqueue(11, clock_->now() + 10s);
  EXPECT_FALSE(q->take("w"));
  auto due = q->time_until_due();
  ASSERT_TRUE(due);
  EXPECT_EQ(*due, 10s);
  clock_->advance(9s);
  EXPECT_FALSE(q->take("w"));
  clock_->advance(1s);
  auto lease = q->take("w");
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->job_id, 11);
}

TEST_F(JobsQueueTest, TimeUntilDue) {
  auto q = make_queue(5s);
  EXPECT_FALSE(q->time_until_due()) << "empty queue: nothing to wait for";
  q->enqueue(1, clock_->now() + 30s);
  EXPECT_EQ(q->time_until_due(), std::optional<std::chrono::milliseconds>(30s));
  q->enqueue(2);
  EXPECT_EQ(q->time_until_due(), std::optional<std::chrono::milliseconds>(0ms));
  ASSERT_TRUE(q->take("w"));  // job 2 now running with a 5 s lease
  auto due = q->time_until_due();
  ASSERT_TRUE(due);
  EXPECT_GT(*due, 4s);
  EXPECT_LE(*due, 5s) << "the lease expiry is the next thing to wake for";
}

TEST_F(JobsQueueTest, RetryOrDieHonoursBackoffThenFailsForGood) {
  auto q = make_queue();
  q->enqueue(21);
  const auto start = clock_->now();

  auto l1 = q->take("w");
  ASSERT_TRUE(l1);
  EXPECT_EQ(q->retry_or_fail(*l1, 2, 63s, "HTTP 503 (first)"), RetryDecision::retried);
  auto e = q->entry(21);
  EXPECT_EQ(e->state, QueueState::queued);
  EXPECT_EQ(e->run_at, std::optional<Timestamp>(start + 63s));
  EXPECT_EQ(e->retries_left, std::optional<int>(1));
  EXPECT_EQ(e->last_error, "HTTP 503 (first)");
  EXPECT_TRUE(e->lease_owner.empty());
  EXPECT_FALSE(q->take("w")) << "not before its backoff";
  clock_->advance(62s);
  EXPECT_FALSE(q->take("w"));
  clock_->advance(1s);

  auto l2 = q->take("w");
  ASSERT_TRUE(l2);
  EXPECT_EQ(l2->attempt, 2);
  EXPECT_EQ(l2->retries_left, std::optional<int>(1));
  EXPECT_EQ(q->retry_or_fail(*l2, 2, 63s, "HTTP 503 (second)"), RetryDecision::retried);
  EXPECT_EQ(q->entry(21)->retries_left, std::optional<int>(0));
  clock_->advance(63s);

  auto l3 = q->take("w");
  ASSERT_TRUE(l3);
  EXPECT_EQ(q->retry_or_fail(*l3, 2, 63s, "HTTP 503 (third)"), RetryDecision::failed);
  e = q->entry(21);
  EXPECT_EQ(e->state, QueueState::failed);
  EXPECT_EQ(e->attempts, 3);
  EXPECT_EQ(e->last_error, "HTTP 503 (third)");
  EXPECT_TRUE(e->finished_at);
  clock_->advance(1h);
  EXPECT_FALSE(q->take("w")) << "failed for good";

  auto failed = q->failed();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].job_id, 21);

  // The operator queues it again: a fresh budget.
  EXPECT_FALSE(q->requeue_failed(999));
  EXPECT_TRUE(q->requeue_failed(21));
  EXPECT_FALSE(q->requeue_failed(21)) << "only a failed job is re-queued";
  e = q->entry(21);
  EXPECT_EQ(e->state, QueueState::queued);
  EXPECT_EQ(e->attempts, 0);
  EXPECT_FALSE(e->retries_left);
  auto l4 = q->take("w");
  ASSERT_TRUE(l4);
  EXPECT_EQ(l4->attempt, 1);
  EXPECT_TRUE(q->complete(*l4));
  EXPECT_TRUE(q->failed().empty());
}

TEST_F(JobsQueueTest, ZeroRetriesFailsAtOnce) {
  auto q = make_queue();
  q->enqueue(3);
  auto l = q->take("w");
  ASSERT_TRUE(l);
  EXPECT_EQ(q->retry_or_fail(*l, 0, 10s, "boom"), RetryDecision::failed);
  EXPECT_EQ(q->entry(3)->state, QueueState::failed);
}

TEST_F(JobsQueueTest, FailRecordsACleanBoundedError) {
  PgJobQueueOptions o;
  o.clock = clock_;
  o.max_error_bytes = 50;
  PgJobQueue q(config(), o);
  q.enqueue(4);
  auto l = q.take("w");
  ASSERT_TRUE(l);
  std::string error("bad\0thing", 9);
  error += std::string(100, 'x');
  EXPECT_FALSE(q.fail(forged(4, "other"), error));
  EXPECT_TRUE(q.fail(*l, error));
  auto e = q.entry(4);
  EXPECT_EQ(e->state, QueueState::failed);
  EXPECT_EQ(e->last_error.find('\0'), std::string::npos);
  EXPECT_EQ(e->last_error.rfind("badthing", 0), 0U);
  EXPECT_LE(e->last_error.size(), 53U);
}

TEST_F(JobsQueueTest, ReleaseGivesTheJobBack) {
  auto q = make_queue();
  q->enqueue(8, clock_->now());
  auto l1 = q->take("w1");
  ASSERT_TRUE(l1);
  EXPECT_TRUE(q->release(*l1));
  auto e = q->entry(8);
  EXPECT_EQ(e->state, QueueState::queued);
  EXPECT_TRUE(e->lease_owner.empty());
  auto l = q->take("w2");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->attempt, 2);
  EXPECT_FALSE(l->recovered) << "a released job was not lost";
}

TEST_F(JobsQueueTest, EnqueueSemantics) {
  auto q = make_queue();
  // A queued job keeps the earlier due time.
  q->enqueue(1, clock_->now() + 50s);
  q->enqueue(1, clock_->now() + 10s);
  EXPECT_EQ(q->entry(1)->run_at, std::optional<Timestamp>(clock_->now() + 10s));
  q->enqueue(1, clock_->now() + 90s);
  EXPECT_EQ(q->entry(1)->run_at, std::optional<Timestamp>(clock_->now() + 10s));
  q->enqueue(1);
  EXPECT_FALSE(q->entry(1)->run_at) << "now is the earliest";
  q->enqueue(1, clock_->now() + 90s);
  EXPECT_FALSE(q->entry(1)->run_at);

  // A running job is left to its runner.
  auto l = q->take("w");
  ASSERT_TRUE(l);
  q->enqueue(1);
  EXPECT_EQ(q->entry(1)->state, QueueState::running);
  EXPECT_EQ(q->entry(1)->lease_owner, "w");

  // A done job runs again, with a fresh attempt count.
  EXPECT_TRUE(q->complete(*l));
  q->enqueue(1);
  auto e = q->entry(1);
  EXPECT_EQ(e->state, QueueState::queued);
  EXPECT_EQ(e->attempts, 0);
  EXPECT_FALSE(e->finished_at);

  EXPECT_FALSE(q->enqueue_if_absent(1));
  EXPECT_TRUE(q->enqueue_if_absent(2));
  EXPECT_EQ(q->entries().size(), 2U);
  EXPECT_EQ(q->entries(QueueState::queued).size(), 2U);
}

TEST_F(JobsQueueTest, AJobThatKeepsLosingItsWorkerFailsAfterMaxAttempts) {
  auto q = make_queue(30s, 2);
  q->enqueue(6);
  ASSERT_TRUE(q->take("a"));
  expire_lease(6);
  auto l = q->take("b");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->attempt, 2);
  expire_lease(6);
  EXPECT_FALSE(q->take("c"));
  auto e = q->entry(6);
  EXPECT_EQ(e->state, QueueState::failed);
  EXPECT_NE(e->last_error.find("lease expired"), std::string::npos) << e->last_error;
}

TEST_F(JobsQueueTest, PurgeDone) {
  auto q = make_queue();
  q->enqueue(1);
  q->enqueue(2);
  auto l = q->take("w");
  ASSERT_TRUE(l);
  ASSERT_TRUE(q->complete(*l));
  EXPECT_EQ(q->purge_done(Timestamp(std::chrono::microseconds(0))), 0U);
  EXPECT_EQ(
      q->purge_done(
          std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()) + 1h),
      1U);
  EXPECT_FALSE(q->entry(1));
  EXPECT_TRUE(q->entry(2));
}

TEST_F(JobsQueueTest, NotifyWakesAWaiterInAnotherProcessPromptly) {
  auto waiter = make_queue();
  auto producer = make_queue();  // its own pool: another process as far as PostgreSQL can tell
  // Start the listener and let it connect.
  const auto g0 = waiter->wake_generation();
  waiter->wait_for_work(g0, 2s, CancellationToken{});
  for (int i = 0; i < 500 && !waiter->listening(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(waiter->listening());

  const auto seen = waiter->wake_generation();
  std::atomic<bool> woken{false};
  std::chrono::steady_clock::time_point woke_at;
  std::thread t([&] {
    woken = waiter->wait_for_work(seen, 20s, CancellationToken{});
    woke_at = std::chrono::steady_clock::now();
  });
  std::this_thread::sleep_for(100ms);
  const auto enqueued_at = std::chrono::steady_clock::now();
  producer->enqueue(42);
  t.join();
  EXPECT_TRUE(woken);
  EXPECT_GE(woke_at, enqueued_at) << "woken by the enqueue, not before it";
  EXPECT_LT(woke_at - enqueued_at, 5s) << "woken by NOTIFY, not by the 20 s timeout";
  auto l = waiter->take("w");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->job_id, 42);
}

TEST_F(JobsQueueTest, WaitForWorkTimesOutOrStopsOnCancel) {
  auto q = make_queue();
  // The first call starts the listener, whose connecting wakes waiters once.
  q->wait_for_work(q->wake_generation(), 2s, CancellationToken{});
  for (int i = 0; i < 500 && !q->listening(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(q->listening());
  auto started = std::chrono::steady_clock::now();
  const bool woken = q->wait_for_work(q->wake_generation(), 200ms, CancellationToken{});
  EXPECT_FALSE(woken);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 190ms);

  CancellationSource source;
  std::thread t([&] {
    std::this_thread::sleep_for(100ms);
    source.cancel();
  });
  started = std::chrono::steady_clock::now();
  q->wait_for_work(q->wake_generation(), 20s, source.token());
  t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

// Without jitter, a fleet's failures retried in lockstep (63.0 s apart, every one).
TEST_F(JobsQueueTest, RetriesBackOffWithJitterNeverSoonerThanAsked) {
  auto q = make_queue(30s, 20, 0.25);
  const auto start = clock_->now();
  std::set<Timestamp> due_times;
  for (std::int64_t id = 1; id <= 20; ++id) {
    q->enqueue(id);
    auto l = q->take("w");
    ASSERT_TRUE(l);
    ASSERT_EQ(q->retry_or_fail(*l, 2, 63s, "HTTP 503"), RetryDecision::retried);
    const auto e = q->entry(l->job_id);
    ASSERT_TRUE(e->run_at);
    EXPECT_GE(*e->run_at, start + 63s) << "never sooner than the backoff";
    EXPECT_LE(*e->run_at, start + 63s * 1.25 + 1ms);
    due_times.insert(*e->run_at);
  }
  EXPECT_GE(due_times.size(), 15U) << "20 failures at the same moment must not retry in lockstep";
}

// The queue said failed while the jobs table said "not finished": a failed
// job must be finished with its error in both, and requeue_failed undoes it.
TEST_F(JobsQueueTest, AJobFailedForGoodIsFinishedWithItsErrorInTheJobsTable) {
  auto pool = std::make_shared<pg::ConnectionPool>(config());
  pg::PgJobStore store(pool, clock_);
  store.migrate();
  auto si = store.create_integration(ServiceIntegration{.service_name = "svc", .table_name = "t_fail"});
  auto q = make_queue(30s, 2);
  const auto job_error = [&](std::int64_t id) {
    return admin_exec(
               "SELECT error FROM " + schema().quoted() + ".webhookdb_backfill_jobs WHERE id = $1::bigint",
               {std::to_string(id)})
        .rows.at(0)
        .at(0);
  };

  // fail()
  auto j1 = store.create_job(BackfillJob{.service_integration_id = si.id});
  q->enqueue(j1.id);
  auto l1 = q->take("w");
  ASSERT_TRUE(l1);
  EXPECT_FALSE(store.find_job(j1.id)->finished_at);
  ASSERT_TRUE(q->fail(*l1, "HTTP 401 (bad key)"));
  EXPECT_TRUE(store.find_job(j1.id)->finished_at);
  EXPECT_EQ(job_error(j1.id), std::optional<std::string>("HTTP 401 (bad key)"));

  // retry_or_fail with its retries used up
  auto j2 = store.create_job(BackfillJob{.service_integration_id = si.id});
  q->enqueue(j2.id);
  auto l2 = q->take("w");
  ASSERT_TRUE(l2);
  ASSERT_EQ(q->retry_or_fail(*l2, 0, 63s, "HTTP 503"), RetryDecision::failed);
  EXPECT_TRUE(store.find_job(j2.id)->finished_at);
  EXPECT_EQ(job_error(j2.id), std::optional<std::string>("HTTP 503"));

  // a lease lost max_attempts times
  auto j3 = store.create_job(BackfillJob{.service_integration_id = si.id});
  q->enqueue(j3.id);
  ASSERT_TRUE(q->take("a"));
  expire_lease(j3.id);
  ASSERT_TRUE(q->take("b"));
  expire_lease(j3.id);
  EXPECT_FALSE(q->take("c"));
  EXPECT_EQ(q->entry(j3.id)->state, QueueState::failed);
  EXPECT_TRUE(store.find_job(j3.id)->finished_at);
  ASSERT_TRUE(job_error(j3.id));
  EXPECT_NE(job_error(j3.id)->find("lease expired"), std::string::npos);

  // The operator queues it again: unfinished in both.
  ASSERT_TRUE(q->requeue_failed(j1.id));
  EXPECT_FALSE(store.find_job(j1.id)->finished_at);
  EXPECT_FALSE(job_error(j1.id));
  auto l4 = q->take("w");
  ASSERT_TRUE(l4);
  EXPECT_EQ(l4->job_id, j1.id);
}

// One enqueue woke every idle runner (694 take transactions for 20 enqueues
// with 32 runners): now it wakes one waiter of a listening process.
TEST_F(JobsQueueTest, OneEnqueueWakesOneIdleWaiter) {
  auto waiter = make_queue();
  auto producer = make_queue();
  waiter->wait_for_work(waiter->wake_generation(), 2s, CancellationToken{});
  for (int i = 0; i < 500 && !waiter->listening(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(waiter->listening());
  constexpr int kWaiters = 8;
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  const auto seen = waiter->wake_generation();
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&] {
      if (waiter->wait_for_work(seen, 1500ms, CancellationToken{})) ++woken;
    });
  }
  std::this_thread::sleep_for(200ms);  // every waiter is waiting
  producer->enqueue(7);
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(), 1) << "one job, one runner woken";

  // Three enqueues wake three waiters, one each.
  woken = 0;
  threads.clear();
  const auto seen2 = waiter->wake_generation();
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&] {
      if (waiter->wait_for_work(seen2, 1500ms, CancellationToken{})) ++woken;
    });
  }
  std::this_thread::sleep_for(200ms);
  for (std::int64_t id : {8, 9, 10}) producer->enqueue(id);
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(), 3);
}

// A job queued again (released, yielded) goes to the back of the line.
TEST_F(JobsQueueTest, AReleasedJobGoesBehindTheJobsThatWaited) {
  auto q = make_queue();
  q->enqueue(1);
  auto l = q->take("w");
  ASSERT_TRUE(l);
  q->enqueue(2);
  q->enqueue(3);
  ASSERT_TRUE(q->release(*l));
  std::vector<std::int64_t> order;
  while (auto next = q->take("w")) order.push_back(next->job_id);
  EXPECT_EQ(order, (std::vector<std::int64_t>{2, 3, 1}));
  EXPECT_EQ(q->due_count(10), 0U);
  q->enqueue(4);
  q->enqueue(5, clock_->now() - 1s);
  q->enqueue(6, clock_->now() + 1h);
  EXPECT_EQ(q->due_count(10), 2U);
  EXPECT_EQ(q->due_count(1), 1U);
}

// A job that yielded its runner (time slicing) goes behind the jobs queued
// within the next slice too: a stream of small jobs is not stuck behind it again.
TEST_F(JobsQueueTest, AYieldedJobGoesBehindTheJobsQueuedWithinItsSlice) {
  auto q = make_queue();
  q->enqueue(1);
  auto l = q->take("w");
  ASSERT_TRUE(l);
  q->enqueue(2);
  ASSERT_TRUE(q->yield_to_waiting(*l, 10s));
  EXPECT_FALSE(q->yield_to_waiting(*l, 10s)) << "the lease is gone";
  q->enqueue(3);  // after the yield, within its slice
  std::vector<std::int64_t> order;
  while (auto next = q->take("w")) order.push_back(next->job_id);
  EXPECT_EQ(order, (std::vector<std::int64_t>{2, 3, 1}));
}

// Integration locks live on pooled sessions: no new PostgreSQL session per
// lock (a new session cost the server 30-38 ms of CPU per job).
TEST_F(JobsQueueTest, IntegrationLocksReuseTheirSessions) {
  auto pool = std::make_shared<pg::ConnectionPool>(config());
  pg::PgJobStore store(pool);
  store.migrate();
  auto si = store.create_integration(ServiceIntegration{.service_name = "svc", .table_name = "t_lock"});
  const auto holder_pid = [&]() -> std::optional<std::string> {
    auto r = admin_exec(
        "SELECT pid::text FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = $1::oid "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        {std::to_string(si.id)});
    if (r.rows.empty()) return std::nullopt;
    return r.rows.at(0).at(0);
  };
  std::set<std::string> pids;
  auto first = store.try_lock_integration(si.id);
  ASSERT_TRUE(first);
  pids.insert(holder_pid().value_or("none"));
  EXPECT_FALSE(store.try_lock_integration(si.id)) << "held";
  first.reset();
  EXPECT_FALSE(holder_pid()) << "released before its session went back to the pool";
  const auto opened = pool->connections_opened();
  for (int i = 0; i < 20; ++i) {
    auto lock = store.try_lock_integration(si.id);
    ASSERT_TRUE(lock);
    pids.insert(holder_pid().value_or("none"));
  }
  EXPECT_EQ(pool->connections_opened(), opened) << "20 locks, no new session";
  EXPECT_LE(pids.size(), 2U) << "the lock sessions are reused";
  EXPECT_FALSE(pool->idle_lock_backend_pids().empty());
}

// A session whose lock state is unknown after an error is closed, never
// handed to the next lock holder still holding a lock.
TEST_F(JobsQueueTest, ALockSessionThatFailedIsNotReused) {
  auto pool = std::make_shared<pg::ConnectionPool>(config());
  pg::PgJobStore store(pool);
  store.migrate();
  auto a = store.create_integration(ServiceIntegration{.service_name = "svc", .table_name = "t_a"});
  auto b = store.create_integration(ServiceIntegration{.service_name = "svc", .table_name = "t_b"});
  auto lock = store.try_lock_integration(a.id);
  ASSERT_TRUE(lock);
  ASSERT_EQ(pool->idle_lock_backend_pids().size(), 0U);
  // The unlock will fail: its session is ended under it.
  const auto pid =
      admin_exec("SELECT pid::text FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::oid",
                 {std::to_string(a.id)})
          .rows.at(0)
          .at(0)
          .value();
  admin_exec("SELECT pg_terminate_backend($1::int)", {pid});
  for (int i = 0; i < 200; ++i) {
    if (admin_exec("SELECT 1 FROM pg_stat_activity WHERE pid = $1::int", {pid}).rows.empty()) break;
    std::this_thread::sleep_for(10ms);
  }
  lock.reset();
  EXPECT_TRUE(pool->idle_lock_backend_pids().empty()) << "a failed lock session goes, it does not come back";

  // The next lock runs on a fresh session, which goes back after a clean unlock.
  auto second = store.try_lock_integration(b.id);
  ASSERT_TRUE(second);
  const auto pid_b =
      admin_exec("SELECT pid::text FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::oid",
                 {std::to_string(b.id)})
          .rows.at(0)
          .at(0)
          .value();
  EXPECT_NE(pid_b, pid);
  second.reset();
  const auto idle = pool->idle_lock_backend_pids();
  ASSERT_EQ(idle.size(), 1U);
  EXPECT_EQ(std::to_string(idle[0]), pid_b) << "a clean unlock returns its session";
  // Both integrations can be locked again, each on a session holding nothing else.
  auto again_a = store.try_lock_integration(a.id);
  auto again_b = store.try_lock_integration(b.id);
  EXPECT_TRUE(again_a);
  EXPECT_TRUE(again_b);
}

// The schema is user-supplied and spliced into SQL: it goes through
// pg::sql::ident, which refuses what PostgreSQL would truncate or misread.
TEST_F(JobsQueueTest, RefusesASchemaNameSqlCannotHold) {
  PgJobQueueOptions o;
  o.migrate = false;
  for (const std::string& bad : {std::string(64, 's'), std::string("a\0b", 3), std::string("\xff")}) {
    auto c = config();
    c.schema = bad;
    EXPECT_THROW(PgJobQueue(c, o), BrokenSpecification) << bad.size();
  }
}

TEST_F(JobsQueueTest, RejectsBadOptions) {
  PgJobQueueOptions o;
  o.lease = 10ms;
  EXPECT_THROW(PgJobQueue(config(), o), InvalidPrecondition);
  auto q = make_queue();
  EXPECT_THROW((void)q->take(""), InvalidPrecondition);
}

}  // namespace
}  // namespace webhookdb::pg
