// Recurring syncs (issue 20 item 5): PgScheduler on real PostgreSQL.
#include "webhookdb/pg/scheduler.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "pg/pg_support.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"

namespace webhookdb::pg {
namespace {

using namespace std::chrono_literals;

class SchedulerTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    pool_ = std::make_shared<ConnectionPool>(config());
    store_ = std::make_shared<PgJobStore>(pool_);
    store_->migrate();
    queue_ = std::make_shared<PgJobQueue>(pool_);
  }

  std::int64_t integration(const std::string& name) {
    ServiceIntegration si;
    si.service_name = "fake_v1";
    si.table_name = name;
    return store_->create_integration(si).id;
  }

  std::shared_ptr<PgScheduler> scheduler(PgSchedulerOptions o = {}, int pool_size = 2) {
    return std::make_shared<PgScheduler>(std::make_shared<ConnectionPool>(config(pool_size)), std::move(o));
  }

  std::int64_t count(const std::string& sql, const std::vector<Param>& params = {}) {
    return std::stoll(admin_exec(sql, params).rows.at(0).at(0).value_or("0"));
  }
  std::string t(const std::string& table) const { return schema().quoted() + "." + table; }

  // Every queued or running job done, as a worker would leave them.
  void finish_all_jobs() {
    admin_exec("UPDATE " + t("webhookdb_job_queue") +
               " SET state = 'done' WHERE state IN ('queued', 'running')");
  }

  std::shared_ptr<ConnectionPool> pool_;
  std::shared_ptr<PgJobStore> store_;
  std::shared_ptr<PgJobQueue> queue_;
};

TEST_F(SchedulerTest, ShowsNextRunAndFiresOneJobQueuedForTheQueue) {
  const auto id = integration("a");
  auto s = scheduler();
  ScheduleSpec spec;
  spec.service_integration_id = id;
  spec.name = "incremental";
  spec.interval = 200ms;
  const auto created = s->upsert_schedule(spec);
  EXPECT_EQ(created.interval, 200ms);
  EXPECT_FALSE(created.last_run_at);
  EXPECT_EQ((created.next_run_at.time_since_epoch() - created.offset).count() % created.interval.count(), 0);
  // Upserting it again keeps its next run.
  EXPECT_EQ(s->upsert_schedule(spec).next_run_at, created.next_run_at);

  std::this_thread::sleep_until(created.next_run_at + 50ms);
  const auto r = s->fire_due();
  EXPECT_EQ(r.fired, 1U);
  const auto after = s->find(id, "incremental").value();
  EXPECT_EQ(after.last_run_at, created.next_run_at);
  EXPECT_EQ(after.next_run_at, created.next_run_at + std::chrono::microseconds(200ms));
  ASSERT_TRUE(after.last_job_id);
  const auto job = store_->find_job(*after.last_job_id).value();
  EXPECT_TRUE(job.incremental);
  EXPECT_EQ(job.service_integration_id, id);
  EXPECT_EQ(queue_->entry(job.id).value().state, QueueState::queued);
  EXPECT_EQ(after.fired_count, 1);
  EXPECT_TRUE(after.last_error.empty());
}

TEST_F(SchedulerTest, CoalescesWhileABackfillOfTheSameKindIsQueuedOrRunning) {
  const auto id = integration("a");
  auto s = scheduler();
  ScheduleSpec spec;
  spec.service_integration_id = id;
  spec.name = "incremental";
  spec.interval = 100ms;
  s->upsert_schedule(spec);
  ASSERT_TRUE(test::eventually([&] { return s->fire_due().fired == 1; }));
  // Queued: the next tick is coalesced.
  ASSERT_TRUE(test::eventually([&] { return s->fire_due().coalesced == 1; }));
  // Running: still coalesced.
  admin_exec("UPDATE " + t("webhookdb_job_queue") + " SET state = 'running'");
  ASSERT_TRUE(test::eventually([&] { return s->fire_due().coalesced == 1; }));
  // A full backfill queued is another kind: it does not hold the incremental one.
  finish_all_jobs();
  BackfillJob full;
  full.service_integration_id = id;
  full.incremental = false;
  queue_->enqueue(store_->create_job(full).id);
  ASSERT_TRUE(test::eventually([&] { return s->fire_due().fired == 1; }));
  const auto after = s->find(id, "incremental").value();
  EXPECT_EQ(after.fired_count, 2);
  EXPECT_EQ(after.coalesced_count, 2);
  EXPECT_EQ(count("SELECT count(*) FROM " + t("webhookdb_backfill_jobs") + " WHERE incremental"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM " + t("webhookdb_schedule_ticks") + " WHERE outcome = 'coalesced'"),
            2);
}

TEST_F(SchedulerTest, JitterSpreadsAThousandIntegrationsOverTheInterval) {
  constexpr std::int64_t kInterval = 15LL * 60 * 1'000'000;  // 15 minutes in us
  std::map<std::int64_t, int> per_second;
  for (std::int64_t i = 1; i <= 1000; ++i) {
    const auto off = PgScheduler::jitter_offset(i, "incremental", std::chrono::microseconds(kInterval));
    ASSERT_GE(off.count(), 0);
    ASSERT_LT(off.count(), kInterval);
    EXPECT_EQ(off, PgScheduler::jitter_offset(i, "incremental", std::chrono::microseconds(kInterval)));
    ++per_second[off.count() / 1'000'000];
  }
  int busiest = 0;
  for (const auto& [second, n] : per_second) busiest = std::max(busiest, n);
  // 1000 over 900 seconds: uniform hashing puts a handful in the busiest second.
  EXPECT_LE(busiest, 8);
  EXPECT_GE(per_second.size(), 550U);
  // Without jitter every one would fire at the same instant.
  EXPECT_EQ(PgScheduler::jitter_offset(7, "incremental", std::chrono::microseconds(0)).count(), 0);

  // A nightly schedule at 02:00 with one hour of jitter stays in 02:00-03:00.
  const auto id = integration("a");
  auto s = scheduler();
  ScheduleSpec nightly;
  nightly.service_integration_id = id;
  nightly.name = "nightly-full";
  nightly.incremental = false;
  nightly.interval = 24h;
  nightly.phase = 2h;
  nightly.jitter = 1h;
  const auto n = s->upsert_schedule(nightly);
  EXPECT_GE(n.offset, 2h);
  EXPECT_LT(n.offset, 3h);
  const auto since_midnight = n.next_run_at.time_since_epoch() % std::chrono::microseconds(24h);
  EXPECT_EQ(since_midnight, n.offset);
}

TEST_F(SchedulerTest, AFirerThatDiesBeforeCommitLosesNoTick) {
  const auto id = integration("a");
  std::atomic<bool> die{true};
  std::atomic<bool> holding{false};
  PgSchedulerOptions o;
  o.before_commit = [&](std::int64_t) {
    if (!die.load()) return;
    holding = true;
    std::this_thread::sleep_for(300ms);
    throw std::runtime_error("firer killed before COMMIT");
  };
  auto dying = scheduler(o);
  auto other = scheduler();
  ScheduleSpec spec;
  spec.service_integration_id = id;
  spec.name = "incremental";
  spec.interval = 1h;
  spec.jitter = 0ms;
  const auto created = dying->upsert_schedule(spec);
  // Make its tick due now.
  admin_exec("UPDATE " + t("webhookdb_schedules") +
             " SET next_run_at = clock_timestamp() - interval '1 second'");
  const auto tick = dying->find(id, "incremental").value().next_run_at;

  FireResult dead;
  std::thread firer([&] { dead = dying->fire_due(); });
  ASSERT_TRUE(test::eventually([&] { return holding.load(); }));
  // While the dying firer holds the row, another skips it: never fired twice.
  EXPECT_EQ(other->fire_due().fired, 0U);
  firer.join();
  EXPECT_EQ(dead.failed, 1U);
  EXPECT_EQ(dead.fired, 0U);
  EXPECT_EQ(count("SELECT count(*) FROM " + t("webhookdb_backfill_jobs")), 0);
  EXPECT_EQ(count("SELECT count(*) FROM " + t("webhookdb_job_queue")), 0);
  const auto failed = other->find(id, "incremental").value();
  EXPECT_NE(failed.last_error.find("killed before COMMIT"), std::string::npos) << failed.last_error;
  EXPECT_EQ(failed.next_run_at, tick);

  // The tick is still due: the next firer fires it, once.
  die = false;
  EXPECT_EQ(other->fire_due().fired, 1U);
  EXPECT_EQ(other->fire_due().fired, 0U);
  const auto after = other->find(id, "incremental").value();
  EXPECT_EQ(after.last_run_at, tick);
  EXPECT_TRUE(after.last_error.empty());
  EXPECT_EQ(count("SELECT count(*) FROM " + t("webhookdb_backfill_jobs")), 1);
  EXPECT_EQ(count("SELECT count(*) FROM " + t("webhookdb_job_queue") + " WHERE state = 'queued'"), 1);
  (void)created;
}

TEST_F(SchedulerTest, LateTicksAreHandledInTurnAndAfterAnOutageOnlyTheLatestFires) {
  const auto id = integration("a");
  auto s = scheduler();
  ScheduleSpec spec;
  spec.service_integration_id = id;
  spec.name = "incremental";
  spec.interval = 1s;
  s->upsert_schedule(spec);
  // A firer three ticks late handles each: one fires, the others find its job queued.
  admin_exec("UPDATE " + t("webhookdb_schedules") + " SET next_run_at = next_run_at - interval '3 seconds'");
  auto r = s->fire_due();
  EXPECT_EQ(r.fired, 1U);
  EXPECT_GE(r.coalesced, 1U);
  EXPECT_EQ(r.missed, 0U);
  finish_all_jobs();
  // Another schedule whose fleet was down for thirty ticks: past max_catch_up
  // (10) only the latest fires.
  spec.name = "after-outage";
  s->upsert_schedule(spec);
  admin_exec("UPDATE " + t("webhookdb_schedules") +
             " SET next_run_at = next_run_at - interval '30 seconds' WHERE name = 'after-outage'");
  r = s->fire_due();
  EXPECT_EQ(r.fired, 1U);
  EXPECT_EQ(r.coalesced, 0U);
  EXPECT_GE(r.missed, 28U);
  EXPECT_LE(r.missed, 30U);
  EXPECT_EQ(r.failed, 0U);
  const auto after = s->find(id, "after-outage").value();
  EXPECT_GT(after.next_run_at, std::chrono::system_clock::now());
  EXPECT_EQ(after.missed_count, static_cast<std::int64_t>(r.missed));
  EXPECT_EQ(count("SELECT count(*) FROM " + t("webhookdb_backfill_jobs")), 2);
}

// Several firers, each on its own connection, racing over 30 schedules with
// 100 ms ticks for 3 s while a fake worker finishes the jobs: every tick is
// handled exactly once (fired, coalesced or counted missed), and each fired
// tick made exactly one job.
TEST_F(SchedulerTest, ConcurrentFirersFireEveryTickExactlyOnce) {
  constexpr int kIntegrations = 30;
  constexpr int kFirers = 4;
  auto setup = scheduler();
  std::vector<std::int64_t> ids;
  for (int i = 0; i < kIntegrations; ++i) {
    ids.push_back(integration("t" + std::to_string(i)));
    ScheduleSpec spec;
    spec.service_integration_id = ids.back();
    spec.name = "incremental";
    spec.interval = 100ms;
    setup->upsert_schedule(spec);
  }
  std::map<std::int64_t, Timestamp> first_next;
  for (const auto& sc : setup->list()) first_next[sc.service_integration_id] = sc.next_run_at;

  std::atomic<bool> stop{false};
  std::atomic<std::size_t> fired{0}, coalesced{0}, failed{0};
  std::vector<std::thread> threads;
  for (int f = 0; f < kFirers; ++f) {
    threads.emplace_back([&] {
      auto s = scheduler({}, 1);
      while (!stop) {
        const auto r = s->fire_due();
        fired += r.fired;
        coalesced += r.coalesced;
        failed += r.failed;
        std::this_thread::sleep_for(5ms);
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop) {
      finish_all_jobs();
      std::this_thread::sleep_for(30ms);
    }
  });
  std::this_thread::sleep_for(3s);
  stop = true;
  for (auto& th : threads) th.join();

  EXPECT_EQ(failed.load(), 0U);
  std::int64_t total_fired = 0;
  for (const auto& sc : setup->list()) {
    const auto ticks = (sc.next_run_at - first_next.at(sc.service_integration_id)) / sc.interval;
    EXPECT_EQ(sc.fired_count + sc.coalesced_count + sc.missed_count, ticks)
        << "integration " << sc.service_integration_id;
    EXPECT_EQ(
        count("SELECT count(*) FROM " + t("webhookdb_backfill_jobs") + " WHERE service_integration_id = $1",
              {std::to_string(sc.service_integration_id)}),
        sc.fired_count);
    EXPECT_EQ(count("SELECT count(*) + coalesce(sum(missed), 0) FROM " + t("webhookdb_schedule_ticks") +
                        " WHERE schedule_id = $1",
                    {std::to_string(sc.id)}),
              ticks);
    EXPECT_GE(ticks, 20);
    EXPECT_GE(sc.fired_count, 5);
    total_fired += sc.fired_count;
  }
  EXPECT_EQ(static_cast<std::int64_t>(fired.load()), total_fired);
  // No job id enqueued twice, none missing from the queue.
  EXPECT_EQ(count("SELECT count(*) FROM " + t("webhookdb_job_queue")), total_fired);
  std::cout << "[ figures ] " << kFirers << " firers, " << kIntegrations
            << " schedules of 100 ms for 3 s: " << total_fired << " fired, " << coalesced.load()
            << " coalesced\n";
}

}  // namespace
}  // namespace webhookdb::pg
