// Recurring syncs across processes (issue 20 item 5): three forked firer
// processes (the PgScheduler thread webhookdb-worker runs) over 200
// integrations with 1-second schedules, one of them killed with SIGKILL while
// it holds a tick; every tick is accounted for once, counted from the jobs
// table. WEBHOOKDB_SCHEDULE_SECONDS sets the run time (20 by default).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include "support/pg_test_env.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/scheduler.hpp"

namespace webhookdb::pg {
namespace {

using namespace std::chrono_literals;

int run_seconds() {
  const char* v = std::getenv("WEBHOOKDB_SCHEDULE_SECONDS");
  const int n = v != nullptr ? std::atoi(v) : 0;
  return n > 0 ? n : 20;
}

// A firer process: its own pool and scheduler thread (poll 100 ms) for
// `seconds`; `slow` ticks hold their transaction 30 ms before COMMIT (so a
// kill almost always lands inside one). Never returns.
[[noreturn]] void firer(const Config& config, int seconds, bool slow) {
  int status = 0;
  try {
    PgSchedulerOptions o;
    o.poll = 100ms;
    if (slow) o.before_commit = [](std::int64_t) { std::this_thread::sleep_for(30ms); };
    PgScheduler s(std::make_shared<ConnectionPool>(config), o);
    s.start();
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    s.stop();
  } catch (const std::exception& e) {
    std::cerr << "firer " << ::getpid() << ": " << e.what() << "\n";
    status = 1;
  }
  ::_exit(status);
}

class SchedulerProcessTest : public test::PgTest {};

TEST_F(SchedulerProcessTest, ThreeProcessesFireEveryTickOnceAndAKilledOneLosesNone) {
  constexpr int kIntegrations = 200;
  const int seconds = run_seconds();
  auto pool = std::make_shared<ConnectionPool>(config(2));
  PgJobStore store(pool);
  store.migrate();
  PgJobQueue queue(pool);
  PgScheduler setup(pool);
  for (int i = 0; i < kIntegrations; ++i) {
    ServiceIntegration si;
    si.service_name = "fake_v1";
    si.table_name = "t" + std::to_string(i);
    ScheduleSpec spec;
    spec.service_integration_id = store.create_integration(si).id;
    spec.name = "incremental";
    spec.interval = 1s;
    setup.upsert_schedule(spec);
  }
  std::map<std::int64_t, Timestamp> first_next;
  for (const auto& sc : setup.list()) first_next[sc.id] = sc.next_run_at;
  const std::string q = schema().quoted() + ".webhookdb_job_queue";
  const std::string jobs = schema().quoted() + ".webhookdb_backfill_jobs";

  std::vector<pid_t> children;
  for (int p = 0; p < 3; ++p) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      Config c = config(2);
      if (p == 0) c.application_name = "webhookdb_slow_firer";
      firer(c, p == 0 ? seconds / 2 + 10 : seconds, p == 0);
    }
    children.push_back(pid);
  }
  // The fake worker: a job runs about 1.5 s (so some ticks find it still
  // queued or running and are coalesced), then is done.
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    while (!stop) {
      admin_exec("UPDATE " + q +
                 " SET state = 'done', finished_at = clock_timestamp() WHERE state = 'queued' AND "
                 "enqueued_at < clock_timestamp() - interval '1500 milliseconds'");
      std::this_thread::sleep_for(100ms);
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(seconds / 2));
  // Killed while its backend is inside a firing transaction (holding a tick).
  bool holding = false;
  for (int tries = 0; tries < 2000 && !holding; ++tries) {
    holding = admin_exec(
                  "SELECT 1 FROM pg_stat_activity WHERE application_name = 'webhookdb_slow_firer' "
                  "AND state = 'idle in transaction'")
                  .rows.size() == 1;
  }
  ASSERT_EQ(::kill(children[0], SIGKILL), 0);
  EXPECT_TRUE(holding) << "the slow firer was never seen inside a tick";
  int killed_status = 0;
  ::waitpid(children[0], &killed_status, 0);
  EXPECT_TRUE(WIFSIGNALED(killed_status));
  for (std::size_t i = 1; i < children.size(); ++i) {
    int st = 0;
    ::waitpid(children[i], &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "firer " << i;
  }
  stop = true;
  worker.join();

  std::int64_t ticks_total = 0, fired = 0, coalesced = 0, missed = 0;
  for (const auto& sc : setup.list()) {
    const auto ticks = (sc.next_run_at - first_next.at(sc.id)) / sc.interval;
    EXPECT_EQ(sc.fired_count + sc.coalesced_count + sc.missed_count, ticks) << "schedule " << sc.id;
    EXPECT_GE(ticks, seconds - 2) << "schedule " << sc.id;
    ticks_total += ticks;
    fired += sc.fired_count;
    coalesced += sc.coalesced_count;
    missed += sc.missed_count;
  }
  auto scalar = [&](const std::string& sql) {
    return std::stoll(admin_exec(sql).rows.at(0).at(0).value_or("0"));
  };
  // Counted from the jobs table: one job per fired tick, each queued once.
  EXPECT_EQ(scalar("SELECT count(*) FROM " + jobs), fired);
  EXPECT_EQ(scalar("SELECT count(*) FROM " + q), fired);
  EXPECT_EQ(scalar("SELECT count(*) + coalesce(sum(missed), 0) FROM " + schema().quoted() +
                   ".webhookdb_schedule_ticks"),
            ticks_total);
  // None fired while the previous run of the same integration was going: each
  // job of an integration was created after the one before it was done.
  EXPECT_EQ(
      scalar("SELECT count(*) FROM (SELECT j.created_at, lag(q.finished_at) OVER w AS prev_done, "
             "lag(j.id) OVER w AS prev FROM " +
             jobs + " j JOIN " + q +
             " q ON q.job_id = j.id WINDOW w AS (PARTITION BY j.service_integration_id ORDER BY j.id)) x "
             "WHERE prev IS NOT NULL AND (prev_done IS NULL OR prev_done > created_at)"),
      0);
  // A loaded box lags (ticks handled late, in turn); none is skipped.
  EXPECT_EQ(missed, 0);
  std::cout << "[ figures ] 3 processes (one killed at " << seconds / 2 << " s), " << kIntegrations
            << " schedules of 1 s for " << seconds << " s: " << ticks_total << " ticks, " << fired
            << " fired, " << coalesced << " coalesced, " << missed << " missed\n";
}

}  // namespace
}  // namespace webhookdb::pg
