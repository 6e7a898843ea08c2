// Recurring syncs through real webhookdb-worker processes (issue 20 item 5):
// three workers started with --schedule-poll-seconds fire the schedules AND
// run the jobs they enqueue against the local API server (in this test
// process). Each integration has two schedules, an incremental backfill every
// second and a full one every 3 s. While they run, one worker is killed with
// SIGKILL holding a running job (taken over when its lease runs out), and
// another is stopped (SIGSTOP) past its lease while it holds one, then
// continued (a paused holder keeps its job: PgJobQueue::hand_back). Afterwards every tick is
// accounted for once (fired or coalesced, none missed), each fired tick has
// exactly one job, every job ran to its end, and no job of a schedule was
// created while the previous one of the same kind was still queued or running.
//
// WEBHOOKDB_WORKER_SCHEDULE_SECONDS sets how long the schedules run (9 by
// default, for CI under ASan; 60 for the minute) and
// WEBHOOKDB_WORKER_SCHEDULE_INTEGRATIONS how many integrations (20).

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api_server/api_server.hpp"
#include "jobs/demo_replicators.hpp"
#include "support/child_process.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/pg/scheduler.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::jobs {
namespace {

using namespace std::chrono_literals;
using test::wait_until;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  const int n = v != nullptr ? std::atoi(v) : 0;
  return n > 0 ? n : fallback;
}

constexpr double kLeaseSeconds = 2;

class ScheduleWorkerProcessTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    pool_ = std::make_shared<pg::ConnectionPool>(config(4));
    jobs_ = std::make_shared<pg::PgJobStore>(pool_);
    replica_ = std::make_shared<pg::PgReplicaStore>(pool_);
    jobs_->migrate();
    queue_ = std::make_shared<pg::PgJobQueue>(pool_);
    scheduler_ = std::make_unique<pg::PgScheduler>(pool_);
    registry_ = std::make_shared<Registry>();
    demo::register_demo_replicators(*registry_);
    char dir[] = "/tmp/webhookdb-schedule-worker-test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    log_dir_ = dir;
    tools::ApiServerOptions o;
    o.objects = 250;  // three pages of 100
    o.latency = 40ms;
    o.threads = 4;
    server_ = std::make_unique<tools::ApiServer>(o);
    server_->start();
  }

  void TearDown() override {
    // A stopped worker still running is continued, so it can be killed.
    if (auto it = workers_.find("w2"); it != workers_.end() && !it->second->wait_exit(0ms)) it->second->signal(SIGCONT);
    if (HasFailure()) {
      for (auto& [name, w] : workers_) std::cerr << "---- " << name << " ----\n" << w->log().substr(0, 20000) << "\n";
    }
    workers_.clear();
    if (server_) server_->stop();
    std::error_code ignored;
    if (!log_dir_.empty()) std::filesystem::remove_all(log_dir_, ignored);
    test::PgTest::TearDown();
  }

  test::ChildProcess& spawn(const std::string& name) {
    const std::vector<std::string> args = {"--database-url", schema().url(),
                                           "--schema", schema_name(),
                                           "--replica-schema", schema_name(),
                                           "--concurrency", "2",
                                           "--lease-seconds", std::to_string(kLeaseSeconds),
                                           "--poll-seconds", "0.5",
                                           "--schedule-poll-seconds", "0.1",
                                           "--owner", name};
    workers_[name] = std::make_unique<test::ChildProcess>(WEBHOOKDB_WORKER_EXE, args, log_dir_ + "/" + name + ".log");
    auto& w = *workers_[name];
    EXPECT_TRUE(w.wait_for_log("ready on", 20s)) << name << " did not start:\n" << w.log();
    return w;
  }

  ServiceIntegration integration() {
    ServiceIntegration si;
    si.service_name = demo::kChargeService;
    si.table_name = "t" + std::to_string(++tables_);
    si.api_url = server_->base_url();
    si.backfill_key = "sk_test_" + std::to_string(tables_);
    si = jobs_->create_integration(si);
    ReplicatorContext ctx;
    ctx.replica = replica_;
    ctx.jobs = jobs_;
    ctx.registry = registry_;
    registry_->make(si, ctx)->create_table();
    return si;
  }

  // The jobs `owner` holds a lease on (running).
  std::vector<std::int64_t> running_jobs_of(const std::string& owner) {
    std::vector<std::int64_t> ids;
    for (const auto& e : queue_->entries(pg::QueueState::running)) {
      if (e.lease_owner == owner) ids.push_back(e.job_id);
    }
    return ids;
  }

  // Stops `owner` (SIGSTOP) at a moment it holds a running job, and returns
  // those jobs: a job is short, so a worker seen holding one may have
  // finished it before the signal lands; then it is continued and tried again.
  std::vector<std::int64_t> stop_holding_a_job(const std::string& owner) {
    auto& w = *workers_.at(owner);
    for (int attempt = 0; attempt < 200; ++attempt) {
      if (!wait_until([&] { return !running_jobs_of(owner).empty(); }, 20s)) break;
      w.signal(SIGSTOP);
      std::this_thread::sleep_for(50ms);
      if (auto held = running_jobs_of(owner); !held.empty()) return held;
      w.signal(SIGCONT);
    }
    ADD_FAILURE() << owner << " was never stopped holding a job";
    return {};
  }

  std::int64_t scalar(const std::string& sql) {
    return std::stoll(admin_exec(sql).rows.at(0).at(0).value_or("0"));
  }

  std::shared_ptr<pg::ConnectionPool> pool_;
  std::shared_ptr<pg::PgJobStore> jobs_;
  std::shared_ptr<pg::PgReplicaStore> replica_;
  std::shared_ptr<pg::PgJobQueue> queue_;
  std::unique_ptr<pg::PgScheduler> scheduler_;
  std::shared_ptr<Registry> registry_;
  std::unique_ptr<tools::ApiServer> server_;
  std::map<std::string, std::unique_ptr<test::ChildProcess>> workers_;
  std::string log_dir_;
  int tables_ = 0;
};

TEST_F(ScheduleWorkerProcessTest, ThreeWorkersFireEveryTickOnceAndRunItsJobThroughAKillAndAStop) {
  const int seconds = env_int("WEBHOOKDB_WORKER_SCHEDULE_SECONDS", 9);
  const int integrations = env_int("WEBHOOKDB_WORKER_SCHEDULE_INTEGRATIONS", 20);
  for (int i = 0; i < integrations; ++i) {
    const auto si = integration();
    scheduler_->upsert_schedule({.service_integration_id = si.id, .name = "incremental", .incremental = true,
                                 .interval = 1s});
    scheduler_->upsert_schedule({.service_integration_id = si.id, .name = "full", .incremental = false,
                                 .interval = 3s});
  }
  std::map<std::int64_t, Timestamp> first_next;
  for (const auto& sc : scheduler_->list()) first_next[sc.id] = sc.next_run_at;
  for (const auto* name : {"w1", "w2", "w3"}) spawn(name);
  const auto started = std::chrono::steady_clock::now();

  // w1 is killed holding a running job; its lease runs out and another
  // worker takes the job over.
  std::this_thread::sleep_for(std::chrono::milliseconds(seconds * 1000 / 4));
  const auto killed_jobs = stop_holding_a_job("w1");
  workers_.at("w1")->signal(SIGKILL);
  ASSERT_EQ(workers_.at("w1")->wait_exit(5s), std::optional<int>(128 + SIGKILL));
  // w2 is stopped holding a running job past its lease, then continued.
  const auto stopped_jobs = stop_holding_a_job("w2");
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(kLeaseSeconds * 1000) + 1500));
  workers_.at("w2")->signal(SIGCONT);
  const auto left = std::chrono::seconds(seconds) - (std::chrono::steady_clock::now() - started);
  if (left > 0s) std::this_thread::sleep_for(left);

  // The schedules stop; every job they enqueued runs to its end.
  admin_exec("UPDATE " + schema().quoted() + ".webhookdb_schedules SET enabled = false");
  ASSERT_TRUE(wait_until(
      [&] {
        return scalar("SELECT count(*) FROM " + schema().quoted() + ".webhookdb_job_queue WHERE state IN ('queued', 'running')") ==
               0;
      },
      120s))
      << "jobs left unfinished";
  for (const auto* name : {"w2", "w3"}) {
    workers_.at(name)->signal(SIGTERM);
    EXPECT_EQ(workers_.at(name)->wait_exit(30s), std::optional<int>(0)) << name << " did not drain and exit 0";
  }

  const std::string jobs = schema().quoted() + ".webhookdb_backfill_jobs";
  const std::string q = schema().quoted() + ".webhookdb_job_queue";
  const std::string ticks_table = schema().quoted() + ".webhookdb_schedule_ticks";
  std::int64_t ticks_total = 0, fired = 0, coalesced = 0, missed = 0;
  for (const auto& sc : scheduler_->list()) {
    const auto ticks = (sc.next_run_at - first_next.at(sc.id)) / sc.interval;
    const std::string id = std::to_string(sc.id);
    const std::string si = std::to_string(sc.service_integration_id);
    // Each tick handled once: fired or coalesced (a tick is recorded once: the
    // ticks table's primary key), none missed.
    EXPECT_EQ(sc.fired_count + sc.coalesced_count, ticks) << "schedule " << id;
    EXPECT_EQ(sc.missed_count, 0) << "schedule " << id;
    EXPECT_EQ(scalar("SELECT count(*) FROM " + ticks_table + " WHERE schedule_id = " + id), ticks) << id;
    // Each fired tick has exactly one job (jobs of this integration and kind).
    EXPECT_EQ(scalar("SELECT count(*) FROM " + jobs + " WHERE service_integration_id = " + si +
                     " AND incremental = " + (sc.incremental ? "true" : "false")),
              sc.fired_count)
        << "schedule " << id;
    EXPECT_EQ(scalar("SELECT count(DISTINCT job_id) FROM " + ticks_table + " WHERE schedule_id = " + id +
                     " AND outcome = 'fired'"),
              sc.fired_count)
        << "schedule " << id;
    EXPECT_GE(ticks, std::chrono::seconds(seconds) / sc.interval / 2) << "schedule " << id << " hardly fired";
    ticks_total += ticks;
    fired += sc.fired_count;
    coalesced += sc.coalesced_count;
    missed += sc.missed_count;
  }
  // Every job ran to its end, and each is queued once.
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q + " WHERE state <> 'done'"), 0) << "jobs failed";
  EXPECT_EQ(scalar("SELECT count(*) FROM " + jobs), fired);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q), fired);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + jobs + " WHERE started_at IS NULL OR finished_at IS NULL"), 0);
  // None created while the previous job of its integration and kind was
  // still queued or running.
  EXPECT_EQ(scalar("SELECT count(*) FROM (SELECT j.created_at, lag(q.finished_at) OVER w AS prev_done, "
                   "lag(j.id) OVER w AS prev FROM " +
                   jobs + " j JOIN " + q +
                   " q ON q.job_id = j.id WINDOW w AS (PARTITION BY j.service_integration_id, j.incremental "
                   "ORDER BY j.id)) x WHERE prev IS NOT NULL AND (prev_done IS NULL OR prev_done > created_at)"),
            0);
  const auto taken_over = scalar("SELECT count(*) FROM " + q + " WHERE attempts > 1");
  // The killed worker's jobs were taken over once its leases ran out; the
  // stopped one's were handed back to it (a paused holder still holds the
  // integration's lock: PgJobQueue::hand_back) and finished by it, once.
  for (const auto id : killed_jobs) {
    EXPECT_GE(scalar("SELECT attempts FROM " + q + " WHERE job_id = " + std::to_string(id)), 2) << "killed: " << id;
  }
  for (const auto id : stopped_jobs) {
    EXPECT_EQ(scalar("SELECT attempts FROM " + q + " WHERE job_id = " + std::to_string(id)), 1) << "stopped: " << id;
  }
  std::cout << "[ figures ] 3 webhookdb-worker processes (one killed, one stopped past its lease), " << integrations
            << " integrations x (1 s incremental + 3 s full) for " << seconds << " s: " << ticks_total << " ticks, "
            << fired << " fired (each job run to its end), " << coalesced << " coalesced, " << missed << " missed, "
            << taken_over << " jobs taken over (" << killed_jobs.size() << " held by the killed worker), "
            << stopped_jobs.size() << " held through the stop and finished by their holder\n";
}

}  // namespace
}  // namespace webhookdb::jobs
