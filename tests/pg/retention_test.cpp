// Retention (issue 20): the tables the mirror keeps for itself do not grow
// forever. Hard deletes' tombstones past DeleteOptions::tombstone_retention
// are removed by the sweep (or PgReplicaStore::prune_tombstones); schedule
// ticks past PgSchedulerOptions::tick_retention by the scheduler's thread
// (or PgScheduler::prune_ticks).

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "../support/delete_scenarios.hpp"
#include "pg/pg_support.hpp"
#include "support/child_process.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/pg/scheduler.hpp"

namespace webhookdb::pg {
namespace {

using namespace std::chrono_literals;

class TombstoneRetention : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    store = std::make_shared<PgReplicaStore>(config(2));
    scenarios = std::make_unique<test::DeleteScenarios>(store, "items", DeleteMode::hard);
  }
  void TearDown() override {
    scenarios.reset();
    store.reset();
    test::PgTest::TearDown();
  }
  // A deleted object whose tombstone was buried `age` ago (by the server's clock).
  void bury(const std::string& id, const std::string& age) {
    ASSERT_TRUE(scenarios->send(id, "2024-05-01T10:00:00Z"));
    ASSERT_TRUE(scenarios->send(id, "2024-05-01T11:00:00Z", true));
    admin_exec("UPDATE " + store->tombstone_table(scenarios->spec()) + " SET deleted_at = now() - $2::interval" +
                   " WHERE my_id = $1",
               {id, age});
  }
  std::size_t tombstones(const std::string& id) {
    return admin_exec("SELECT 1 FROM " + store->tombstone_table(scenarios->spec()) + " WHERE my_id = $1", {id})
        .rows.size();
  }
  std::shared_ptr<PgReplicaStore> store;
  std::unique_ptr<test::DeleteScenarios> scenarios;
};

TEST_F(TombstoneRetention, TheSweepPrunesTombstonesPastTheRetentionAndKeepsTheRest) {
  bury("old", "31 days");
  bury("recent", "29 days");
  bury("new", "1 minute");
  const SweepRun run{.job_id = 41};  // the default retention: 30 days
  store->begin_sweep_run(scenarios->spec(), run);
  const auto result = store->sweep(scenarios->spec(), run);
  store->end_sweep_run(run.job_id);
  EXPECT_EQ(result.pruned, 1U);
  EXPECT_EQ(tombstones("old"), 0U);
  EXPECT_EQ(tombstones("recent"), 1U);
  EXPECT_EQ(tombstones("new"), 1U);
  // A kept tombstone still refuses an older version of its object.
  EXPECT_FALSE(scenarios->send("recent", "2024-05-01T10:30:00Z"));
}

TEST_F(TombstoneRetention, ZeroKeepsThemForeverAndPruneTombstonesServesTablesThatNeverSweep) {
  bury("a", "400 days");
  bury("b", "2 hours");
  const SweepRun forever{.job_id = 42, .tombstone_retention = 0h};
  store->begin_sweep_run(scenarios->spec(), forever);
  EXPECT_EQ(store->sweep(scenarios->spec(), forever).pruned, 0U);
  store->end_sweep_run(forever.job_id);
  EXPECT_EQ(tombstones("a"), 1U);
  // Batches of one row: every batch runs.
  EXPECT_EQ(store->prune_tombstones(scenarios->spec(), 1h, 1), 2U);
  EXPECT_EQ(tombstones("a") + tombstones("b"), 0U);
  EXPECT_THROW((void)store->prune_tombstones(scenarios->spec(), 0h), InvalidPrecondition);
  // Soft deletes keep no tombstones.
  test::DeleteScenarios soft(store, "soft_items", DeleteMode::soft);
  EXPECT_EQ(store->prune_tombstones(soft.spec(), 1h), 0U);
}

class TickRetention : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    pool = std::make_shared<ConnectionPool>(config(2));
    PgJobStore jobs(pool);
    jobs.migrate();
    PgJobQueue queue(pool);
    ServiceIntegration si;
    si.service_name = "fake_v1";
    si.table_name = "ticked";
    integration_id = jobs.create_integration(si).id;
  }
  std::int64_t scalar(const std::string& sql) { return std::stoll(admin_exec(sql).rows.at(0).at(0).value_or("0")); }
  std::string ticks() const { return schema().quoted() + ".webhookdb_schedule_ticks"; }
  // Fires a 20 ms schedule until it has handled `n` ticks.
  void record_ticks(PgScheduler& s, std::int64_t n) {
    s.upsert_schedule({.service_integration_id = integration_id, .name = "fast", .interval = 20ms});
    ASSERT_TRUE(test::wait_until(
        [&] {
          (void)s.fire_due();
          return scalar("SELECT count(*) FROM " + ticks()) >= n;
        },
        20s));
  }
  std::shared_ptr<ConnectionPool> pool;
  std::int64_t integration_id = 0;
};

TEST_F(TickRetention, PruneTicksRemovesTicksPastTheRetentionOnly) {
  PgScheduler s(pool);  // the default retention: 7 days
  record_ticks(s, 6);
  const auto total = scalar("SELECT count(*) FROM " + ticks());
  admin_exec("UPDATE " + ticks() + " SET handled_at = handled_at - interval '8 days' WHERE tick_at IN (SELECT tick_at FROM " +
             ticks() + " ORDER BY tick_at LIMIT 3)");
  EXPECT_EQ(s.prune_ticks(), 3U);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + ticks()), total - 3);
  // The schedule's own counts are its row's, not the ticks'.
  EXPECT_GE(s.find(integration_id, "fast")->fired_count + s.find(integration_id, "fast")->coalesced_count, total);
  PgScheduler forever(pool, {.tick_retention = 0h});
  admin_exec("UPDATE " + ticks() + " SET handled_at = handled_at - interval '800 days'");
  EXPECT_EQ(forever.prune_ticks(), 0U);
  EXPECT_THROW(PgScheduler(pool, {.tick_retention = -1h}), InvalidPrecondition);
}

TEST_F(TickRetention, TheFiringThreadPrunesOnItsOwn) {
  PgScheduler setup(pool);
  record_ticks(setup, 4);
  admin_exec("UPDATE " + ticks() + " SET handled_at = handled_at - interval '2 hours'");
  const auto old = scalar("SELECT count(*) FROM " + ticks());
  PgSchedulerOptions o;
  o.poll = 50ms;
  o.tick_retention = 1h;
  o.prune_every = 100ms;
  PgScheduler s(pool, o);
  s.start();
  // The old ticks go; the thread keeps firing (new ticks, kept).
  EXPECT_TRUE(test::wait_until(
      [&] {
        return scalar("SELECT count(*) FROM " + ticks() + " WHERE handled_at < clock_timestamp() - interval '1 hour'") ==
               0;
      },
      20s))
      << old << " old ticks";
  EXPECT_TRUE(test::wait_until([&] { return scalar("SELECT count(*) FROM " + ticks()) > 0; }, 20s));
  s.stop();
}

}  // namespace
}  // namespace webhookdb::pg
