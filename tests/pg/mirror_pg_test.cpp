// Issue 20 on PostgreSQL: backfill windows stored with the job in PgJobStore,
// and the sweep after a full backfill on PgReplicaStore (soft and hard
// deletes), the scenarios tests/core/mirror_test.cpp runs on memory; plus
// what only a server shows: locks, marks by the server's clock, and a sweep
// of a large table against the backfill that fills it.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "../support/mirror_scenarios.hpp"
#include "pg/pg_support.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/pg/secret_key.hpp"

namespace webhookdb::pg {
namespace {

class PgMirror : public test::PgTest, public ::testing::WithParamInterface<DeleteMode> {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    auto pool = std::make_shared<ConnectionPool>(config(4));
    store = std::make_shared<PgReplicaStore>(pool);
    jobs = std::make_shared<PgJobStore>(pool, nullptr, SecretKeys::plain_text_for_tests());
    ReplicatorContext ctx;
    ctx.replica = store;
    ctx.jobs = jobs;
    s = std::make_unique<test::MirrorScenarios>(ctx, "items", GetParam());
  }
  void TearDown() override {
    s.reset();
    jobs.reset();
    store.reset();
    test::PgTest::TearDown();
  }
  std::shared_ptr<PgReplicaStore> store;
  std::shared_ptr<PgJobStore> jobs;
  std::unique_ptr<test::MirrorScenarios> s;
};

TEST_P(PgMirror, WindowFetchesOnlyItsRangeAndKeepsTheMark) { s->window_fetches_only_its_range_and_keeps_the_mark(); }
TEST_P(PgMirror, WindowNeverSweeps) { s->window_never_sweeps(); }
TEST_P(PgMirror, MalformedWindowIsRefused) { s->malformed_window_is_refused(); }
TEST_P(PgMirror, SweepMarksWhatTheSourceLost) { s->sweep_marks_what_the_source_lost(); }
TEST_P(PgMirror, UnchangedRowsAreSeen) { s->unchanged_rows_are_seen(); }
TEST_P(PgMirror, FailurePreventsTheSweep) { s->failure_prevents_the_sweep(); }
TEST_P(PgMirror, ResumeCountsRowsSeenBeforeTheCrash) { s->resume_counts_rows_seen_before_the_crash(); }
TEST_P(PgMirror, WebhooksDuringTheRunWin) { s->webhooks_during_the_run_win(); }

// The run's mark is in the database, so another process resuming the job
// (another store, another pool) finds it; ending the run forgets it.
TEST_P(PgMirror, TheMarkOutlivesTheProcessThatBeganTheRun) {
  s->fill(4);
  s->full_backfill();
  auto j = s->job(false);
  store->begin_sweep_run(s->spec(), SweepRun{.job_id = j.id, .margin = std::chrono::seconds(0)});
  const auto first = admin_exec("SELECT mark FROM " + schema_name() + ".webhookdb_sweep_runs WHERE job_id = $1",
                                {std::to_string(j.id)});
  ASSERT_EQ(first.rows.size(), 1U);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  PgReplicaStore other(config(1));
  other.begin_sweep_run(s->spec(), SweepRun{.job_id = j.id, .margin = std::chrono::seconds(0)});
  const auto again = admin_exec("SELECT mark FROM " + schema_name() + ".webhookdb_sweep_runs WHERE job_id = $1",
                                {std::to_string(j.id)});
  EXPECT_EQ(again.rows[0][0], first.rows[0][0]);
  other.end_sweep_run(j.id);
  EXPECT_TRUE(admin_exec("SELECT 1 FROM " + schema_name() + ".webhookdb_sweep_runs").rows.empty());
  EXPECT_THROW((void)other.sweep(s->spec(), SweepRun{.job_id = j.id}), InvalidPrecondition);
}

std::string mode_name(const ::testing::TestParamInfo<DeleteMode>& param) {
  return param.param == DeleteMode::soft ? "soft" : "hard";
}

INSTANTIATE_TEST_SUITE_P(Modes, PgMirror, ::testing::Values(DeleteMode::soft, DeleteMode::hard), mode_name);

}  // namespace
}  // namespace webhookdb::pg
