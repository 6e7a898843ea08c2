// The fault matrix (issue 9): 20,000 objects backfilled from the local API
// server into PostgreSQL by two worker processes sharing a PostgreSQL job
// queue, twice over (integration A reads /v1/charges, where each object is
// listed once; integration B reads /cursor, where some objects come a second
// time as an older version), while:
//   - the API answers 5% 5xx, 2% 429 with Retry-After, 1% stalls past the
//     client's timeout, 1% dropped connections, 0.5% truncated JSON;
//   - a worker's PostgreSQL backend (the writer's when it can be found) is
//     terminated every few seconds;
//   - a writer runs into statement_timeout (its table is locked past it);
//   - one worker is killed with SIGKILL at a random moment and restarted.
// At the end each table equals the source exactly (row count, every id, a
// hash of every `data`), the older copies never won, and every job finished
// (or failed with a recorded reason, which fails the equality check). Prints
// the table of faults injected and survived.
//
// WEBHOOKDB_FAULT_MATRIX_OBJECTS overrides the 20,000 (e.g. for a quick look);
// WEBHOOKDB_FAULT_MATRIX_SEED the random seed (printed).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "api_server/api_server.hpp"
#include "reliability/fault_replicators.hpp"
#include "support/child_process.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/jobs/worker.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"

namespace webhookdb::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using tools::Fault;

constexpr std::chrono::milliseconds kHttpTimeout = 1000ms;
constexpr std::chrono::milliseconds kStall = 2500ms;
constexpr std::chrono::milliseconds kStatementTimeout = 1500ms;
// The longest the table stays locked (released as soon as a waiting writer has
// been cancelled by its statement_timeout).
constexpr std::chrono::milliseconds kLockHeld = 10'000ms;
constexpr double kLeaseSeconds = 2.0;
constexpr std::chrono::minutes kBudget{4};

std::size_t env_size(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  return v == nullptr || *v == '\0' ? fallback : static_cast<std::size_t>(std::stoull(v));
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

// 64-bit FNV-1a, over "<key>\n<data>\n" for every row in key order.
class Fnv {
 public:
  void add(std::string_view text) {
    for (const char ch : text) {
      hash_ ^= static_cast<unsigned char>(ch);
      hash_ *= 1099511628211ULL;
    }
  }
  [[nodiscard]] std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash_));
    return buf;
  }

 private:
  std::uint64_t hash_ = 14695981039346656037ULL;
};

// One webhookdb-fault-worker process.
class WorkerProcess : public ChildProcess {
 public:
  WorkerProcess(const std::vector<std::string>& args, std::string log_path)
      : ChildProcess(WEBHOOKDB_FAULT_WORKER_EXE, args, std::move(log_path)) {}
};

struct Verification {
  std::size_t rows = 0;
  std::size_t missing = 0;
  std::size_t unexpected = 0;
  std::size_t mismatched = 0;
  std::size_t stale_won = 0;
  std::string table_hash;
  std::string source_hash;
};

class FaultMatrix : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    seed_ = env_size("WEBHOOKDB_FAULT_MATRIX_SEED", static_cast<std::size_t>(std::random_device{}()));
    objects_ = env_size("WEBHOOKDB_FAULT_MATRIX_OBJECTS", 20'000);
    pool_ = std::make_shared<pg::ConnectionPool>(config(4));
    jobs_ = std::make_shared<pg::PgJobStore>(pool_);
    replica_ = std::make_shared<pg::PgReplicaStore>(pool_);
    jobs_->migrate();
    replica_->migrate();
    queue_ = std::make_shared<pg::PgJobQueue>(pool_);
    register_fault_replicators(*registry_);
    char dir[] = "/tmp/webhookdb-fault-matrix.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    log_dir_ = dir;
  }

  void TearDown() override {
    stop_terminator();
    const bool failed = HasFailure();
    for (auto& [name, w] : workers_) {
      if (w) logs_[name] = w->log();
    }
    workers_.clear();
    if (server_) server_->stop();
    if (failed) {
      for (const auto& [name, text] : logs_) {
        std::cerr << "---- " << name << " (last 6000 bytes) ----\n"
                  << (text.size() > 6000 ? text.substr(text.size() - 6000) : text) << "\n";
      }
    }
    std::error_code ignored;
    std::filesystem::remove_all(log_dir_, ignored);
    test::PgTest::TearDown();
  }

  ReplicatorContext context() const {
    ReplicatorContext ctx;
    ctx.replica = replica_;
    ctx.jobs = jobs_;
    ctx.registry = registry_;
    return ctx;
  }

  WorkerProcess& spawn(const std::string& name, double lease_seconds = kLeaseSeconds) {
    const std::vector<std::string> args = {"--database-url",
                                           schema().url(),
                                           "--schema",
                                           schema_name(),
                                           "--owner",
                                           name,
                                           "--concurrency",
                                           "1",
                                           "--lease-seconds",
                                           std::to_string(lease_seconds),
                                           "--http-timeout-ms",
                                           std::to_string(kHttpTimeout.count()),
                                           "--statement-timeout-ms",
                                           std::to_string(kStatementTimeout.count()),
                                           "--transient-backoff-s",
                                           "1"};
    if (auto it = workers_.find(name); it != workers_.end() && it->second) logs_[name] = it->second->log();
    workers_[name] = std::make_unique<WorkerProcess>(args, log_dir_ + "/" + name + ".log");
    auto& w = *workers_[name];
    EXPECT_TRUE(w.wait_for_log("ready on", 30s)) << name << " did not start:\n" << w.log();
    return w;
  }

  // What webhookdb-fault-worker calls its connections (see fault_worker.cpp).
  [[nodiscard]] std::string worker_application_name() const {
    return "webhookdb-fault-worker " + schema_name();
  }

  std::string all_logs() const {
    std::string out;
    for (const auto& [name, text] : logs_) out += text;
    for (const auto& [name, w] : workers_) {
      if (w && logs_.find(name) == logs_.end()) out += w->log();
    }
    return out;
  }

  // Every few seconds, terminates one backend of the workers: a writer
  // (INSERT/COPY) when one is busy, else any of their connections.
  void start_terminator() {
    terminator_ = std::thread([this] {
      pg::Config c = config(1);
      c.application_name = "fault_matrix_terminator";
      pg::ConnectionPool admin(c);
      std::mt19937_64 rng(seed_ ^ 0x5eedULL);
      std::uniform_int_distribution<int> pause_ms(1500, 3000);
      while (true) {
        {
          std::unique_lock lock(terminator_mutex_);
          if (terminator_cv_.wait_for(lock, std::chrono::milliseconds(pause_ms(rng)),
                                      [&] { return terminator_stop_; })) {
            return;
          }
        }
        if (terminator_paused_.load()) continue;
        try {
          const auto pick = [&] {
            // Only this test's workers: ctest runs other tests' on the same server.
            return admin.exec(
                "SELECT pid, (state <> 'idle' AND query ~* '^\\s*(insert|copy|with)') AS writer"
                " FROM pg_stat_activity WHERE application_name = $1"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                " ORDER BY writer DESC, random() LIMIT 1",
                {worker_application_name()});
          };
          auto r = pick();
          // A write is a short window between page fetches (shorter still,
          // relatively, under a sanitizer), so a single look often misses
          // it: watch closely for a while before settling for any backend
          // (until a few writers have been hit; then one look per round).
          const auto hunt_until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
          while (writers_terminated_.load() < 3 && !r.rows.empty() &&
                 r.rows[0][1] != std::optional<std::string>("t") &&
                 std::chrono::steady_clock::now() < hunt_until && !terminator_paused_.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            r = pick();
          }
          if (r.rows.empty() || terminator_paused_.load()) continue;
          const std::string pid = *r.rows[0][0];
          const bool writer = r.rows[0][1] == std::optional<std::string>("t");
          auto done = admin.exec("SELECT pg_terminate_backend($1::int)", {pid});
          if (done.rows.at(0).at(0) == std::optional<std::string>("t")) {
            (writer ? writers_terminated_ : others_terminated_).fetch_add(1);
          }
        } catch (const std::exception& e) {
          std::cerr << "terminator: " << e.what() << "\n";
        }
      }
    });
  }
  void stop_terminator() {
    {
      std::lock_guard lock(terminator_mutex_);
      terminator_stop_ = true;
    }
    terminator_cv_.notify_all();
    if (terminator_.joinable()) terminator_.join();
  }

  // Holds an ACCESS EXCLUSIVE lock on the table until a worker's statement
  // has waited on it and been cancelled by statement_timeout (at most
  // kLockHeld). The terminator pauses meanwhile: it prefers busy writers, and
  // terminating the waiting one would pre-empt the timeout.
  void hold_lock_past_statement_timeout(const ServiceIntegration& si) {
    pg::Config c = config(1);
    c.application_name = "fault_matrix_locker";
    c.statement_timeout = 0ms;
    pg::ConnectionPool locker(c);
    const std::string table = replica_->qualified_name(registry_->make(si, context())->table_spec());
    terminator_paused_ = true;
    locker.transaction([&](pg::Session& s) {
      s.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
      // Polled from another connection: pg_stat_activity is a snapshot per transaction.
      const auto waiting = [&] {
        return admin_exec(
                   "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
                   " AND wait_event_type = 'Lock'",
                   {worker_application_name()})
                   .rows.at(0)
                   .at(0) != std::optional<std::string>("0");
      };
      const auto deadline = std::chrono::steady_clock::now() + kLockHeld;
      bool blocked = false;
      while (std::chrono::steady_clock::now() < deadline) {
        const bool now_waiting = waiting();
        if (blocked && !now_waiting) break;  // its statement was cancelled
        blocked = blocked || now_waiting;
        std::this_thread::sleep_for(50ms);
      }
    });
    terminator_paused_ = false;
  }

  Verification verify(const ServiceIntegration& si) {
    Verification v;
    std::map<std::string, json> source;
    for (auto& object : server_->dataset().objects())
      source.emplace(object.at("id").get<std::string>(), object);
    std::set<std::string> stale_ids;
    for (auto index : server_->dataset().duplicated_indexes()) stale_ids.insert(server_->dataset().id(index));
    Fnv source_hash;
    for (const auto& [id, object] : source) {
      source_hash.add(id + "\n" + object.dump() + "\n");
    }
    std::map<std::string, json> table;
    replica_->for_each(registry_->make(si, context())->table_spec(),
                       [&](const Row& row) { table.emplace(row.key.get<std::string>(), row.data); });
    Fnv table_hash;
    for (const auto& [id, data] : table) {
      table_hash.add(id + "\n" + data.dump() + "\n");
      auto it = source.find(id);
      if (it == source.end()) {
        ++v.unexpected;
      } else if (it->second != data) {
        ++v.mismatched;
        if (stale_ids.count(id) > 0) ++v.stale_won;
      }
    }
    for (const auto& [id, object] : source) v.missing += table.count(id) == 0 ? 1U : 0U;
    v.rows = table.size();
    v.table_hash = table_hash.hex();
    v.source_hash = source_hash.hex();
    return v;
  }

  std::size_t seed_ = 0;
  std::size_t objects_ = 0;
  std::shared_ptr<pg::ConnectionPool> pool_;
  std::shared_ptr<pg::PgJobStore> jobs_;
  std::shared_ptr<pg::PgReplicaStore> replica_;
  std::shared_ptr<pg::PgJobQueue> queue_;
  std::shared_ptr<Registry> registry_ = std::make_shared<Registry>();
  std::unique_ptr<tools::ApiServer> server_;
  std::map<std::string, std::unique_ptr<WorkerProcess>> workers_;
  std::map<std::string, std::string> logs_;
  std::string log_dir_;

  std::thread terminator_;
  std::mutex terminator_mutex_;
  std::condition_variable terminator_cv_;
  bool terminator_stop_ = false;
  std::atomic<bool> terminator_paused_{false};
  std::atomic<int> writers_terminated_{0};
  std::atomic<int> others_terminated_{0};
};

TEST_F(FaultMatrix, TwoWorkersSurviveEveryFaultAndTheTablesEqualTheSource) {
  const auto started = std::chrono::steady_clock::now();
  std::mt19937_64 rng(seed_);
  std::cerr << "fault matrix: seed " << seed_ << ", " << objects_ << " objects\n";

  tools::ApiServerOptions o;
  o.objects = objects_;
  o.duplicates = std::max<std::size_t>(objects_ / 40, 1);  // 2.5% listed twice on /cursor
  o.seed = seed_;
  o.threads = 4;
  o.slow_stall = kStall;
  o.retry_after_seconds = 1;
  o.faults[Fault::http500] = 0.02;
  o.faults[Fault::http502] = 0.015;
  o.faults[Fault::http503] = 0.015;
  o.faults[Fault::http429] = 0.02;
  o.faults[Fault::slow] = 0.01;
  o.faults[Fault::drop] = 0.01;
  o.faults[Fault::truncated] = 0.005;
  server_ = std::make_unique<tools::ApiServer>(o);
  server_->start();
  // At least one of each, whatever the draws.
  for (auto f : {Fault::http500, Fault::http502, Fault::http503, Fault::http429, Fault::slow, Fault::drop,
                 Fault::truncated}) {
    server_->inject(f, 1);
  }

  auto make_integration = [&](const char* service, const std::string& path) {
    ServiceIntegration si;
    si.service_name = service;
    si.table_name = std::string(service) + "_table";
    si.api_url = server_->url(path);
    si.backfill_key = "sk_test_fault_matrix";
    si = jobs_->create_integration(si);
    registry_->make(si, context())->create_table();
    return si;
  };
  const auto charges = make_integration(kFaultChargeService, "/v1/charges");
  const auto cursor = make_integration(kFaultCursorService, "/cursor");

  spawn("w1");
  spawn("w2");
  ASSERT_FALSE(HasFailure());
  const auto job_a = jobs_->create_recursive(charges, false, json::object());
  const auto job_b = jobs_->create_recursive(cursor, false, json::object());
  queue_->enqueue(job_a.id);
  queue_->enqueue(job_b.id);
  start_terminator();

  // Pages in all: each object once on /v1/charges, plus the stale copies on /cursor.
  const std::size_t total_pages = (2 * objects_ + o.duplicates) / kFaultPageSize;
  std::uniform_int_distribution<std::size_t> kill_at(total_pages / 8, total_pages / 3);
  const std::size_t kill_threshold = kill_at(rng);
  const std::size_t lock_threshold = total_pages / 2;
  bool killed = false;
  bool locked = false;
  std::string killed_owner;
  std::int64_t killed_job = 0;
  const auto all_done = [&] {
    auto a = queue_->entry(job_a.id);
    auto b = queue_->entry(job_b.id);
    auto finished = [](const std::optional<pg::QueueEntry>& e) {
      return e && (e->state == pg::QueueState::done || e->state == pg::QueueState::failed);
    };
    return finished(a) && finished(b);
  };
  while (!all_done() && std::chrono::steady_clock::now() - started < kBudget) {
    const auto pages = server_->stats().pages;
    if (!killed && pages >= kill_threshold) {
      // SIGKILL a worker in the middle of its job, then start it again.
      for (const auto& e : queue_->entries(pg::QueueState::running)) {
        if (!e.lease_owner.empty()) {
          killed_owner = e.lease_owner;
          killed_job = e.job_id;
          break;
        }
      }
      if (!killed_owner.empty()) {
        auto& victim = *workers_.at(killed_owner);
        victim.signal(SIGKILL);
        EXPECT_EQ(victim.wait_exit(10s), std::optional<int>(128 + SIGKILL));
        std::cerr << "fault matrix: killed " << killed_owner << " (holding job " << killed_job << ") after "
                  << pages << " pages\n";
        // Restarted under a new name, as a process with the default owner
        // (host:pid:random) would be; see RestartedWorkerUnderTheSameOwner...
        spawn(killed_owner + "-restarted");
        killed = true;
      }
    }
    if (!locked && pages >= lock_threshold) {
      // The table of a running job, so that its writer hits the timeout.
      for (const auto& e : queue_->entries(pg::QueueState::running)) {
        const auto& si = e.job_id == job_a.id ? charges : cursor;
        std::cerr << "fault matrix: locking " << si.table_name << " until a writer times out\n";
        hold_lock_past_statement_timeout(si);
        locked = true;
        break;
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  stop_terminator();
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(all_done()) << "the jobs did not end within " << kBudget.count() << " minutes";
  EXPECT_TRUE(killed) << "no worker was killed";
  EXPECT_TRUE(locked) << "no table was locked";

  for (auto& [name, w] : workers_) {
    if (name == killed_owner) {  // SIGKILLed above (exit 137); its successor runs under another name
      logs_[name] = w->log();
      continue;
    }
    w->signal(SIGTERM);
    EXPECT_EQ(w->wait_exit(20s), std::optional<int>(0)) << name << " did not drain and exit 0";
    logs_[name] = w->log();
  }
  const std::string logs = all_logs();

  // Every job finished, or failed with a recorded reason.
  bool all_finished = true;
  for (const auto& e : queue_->entries()) {
    const auto job = jobs_->find_job(e.job_id);
    ASSERT_TRUE(job);
    if (e.state == pg::QueueState::done) {
      EXPECT_TRUE(job->finished_at) << "job " << e.job_id << " done in the queue but not finished";
    } else {
      all_finished = false;
      EXPECT_EQ(e.state, pg::QueueState::failed);
      EXPECT_FALSE(e.last_error.empty()) << "job " << e.job_id << " failed without a reason";
      ADD_FAILURE() << "job " << e.job_id << " failed: " << e.last_error;
    }
  }

  const Verification va = verify(charges);
  const Verification vb = verify(cursor);
  for (const auto* v : {&va, &vb}) {
    EXPECT_EQ(v->rows, objects_);
    EXPECT_EQ(v->missing, 0U);
    EXPECT_EQ(v->unexpected, 0U);
    EXPECT_EQ(v->mismatched, 0U);
    EXPECT_EQ(v->stale_won, 0U) << "an older copy overwrote a newer one";
    EXPECT_EQ(v->table_hash, v->source_hash);
  }
  const bool tables_ok = va.rows == objects_ && vb.rows == objects_ && va.table_hash == va.source_hash &&
                         vb.table_hash == vb.source_hash && va.mismatched + vb.mismatched == 0;
  const bool survived = tables_ok && all_finished;

  const auto stats = server_->stats();
  const auto count = [&](Fault f) { return stats.fault_count(f); };
  const std::size_t statement_timeouts = occurrences(logs, "canceling statement due to statement timeout");
  const std::size_t recovered = occurrences(logs, "recovered from " + killed_owner);
  const int writers = writers_terminated_.load();
  const int others = others_terminated_.load();

  struct Line {
    std::string fault;
    std::uint64_t injected;
    std::string how;
    bool required = true;
  };
  const std::vector<Line> lines = {
      {"HTTP 500/502/503", count(Fault::http500) + count(Fault::http502) + count(Fault::http503),
       "polite retry in the page loop"},
      {"HTTP 429 + Retry-After", count(Fault::http429), "waited as asked, retried"},
      {"timeout (stall > client timeout)", count(Fault::slow), "HttpTimeout, retried"},
      {"dropped connection", count(Fault::drop), "HttpConnectionError, retried"},
      {"truncated JSON", count(Fault::truncated), "not JSON: retryable, retried"},
      {"pg backend terminated (writer)", static_cast<std::uint64_t>(writers),
       "batch re-run on a fresh connection"},
      {"pg backend terminated (other)", static_cast<std::uint64_t>(others), "reconnected", false},
      {"statement_timeout hit", statement_timeouts, "job re-run from its checkpoint"},
      {"worker kill -9 + restart", killed ? 1U : 0U,
       "lease expired, job recovered (" + std::to_string(recovered) + "x)"},
      {"stale duplicate served", stats.items > 0 ? server_->dataset().duplicates() : 0U,
       "older copy refused"},
  };
  std::ostringstream table;
  table << "\n+-----------------------------------+----------+----------+------------------------------------"
           "--+\n"
        << "| fault                             | injected | survived | how                                  "
           "|\n"
        << "+-----------------------------------+----------+----------+--------------------------------------"
           "+\n";
  for (const auto& l : lines) {
    char row[256];
    std::snprintf(row, sizeof row, "| %-33s | %8llu | %-8s | %-36s |\n", l.fault.c_str(),
                  static_cast<unsigned long long>(l.injected),
                  l.injected == 0 ? "-" : (survived ? "yes" : "NO"), l.how.substr(0, 36).c_str());
    table << row;
  }
  table << "+-----------------------------------+----------+----------+--------------------------------------"
           "+\n";
  char summary[512];
  std::snprintf(summary, sizeof summary,
                "%zu objects x 2 integrations, 2 workers, %llu data requests, %.1f s; "
                "A: %zu rows hash %s (source %s); B: %zu rows hash %s (source %s)\n",
                objects_, static_cast<unsigned long long>(stats.data_requests),
                std::chrono::duration<double>(elapsed).count(), va.rows, va.table_hash.c_str(),
                va.source_hash.c_str(), vb.rows, vb.table_hash.c_str(), vb.source_hash.c_str());
  table << summary;
  std::cout << table.str() << std::flush;

  // Each kind of fault really happened.
  for (const auto& l : lines) {
    if (l.required) {
      EXPECT_GT(l.injected, 0U) << l.fault << " was never injected";
    }
  }
  EXPECT_GE(recovered, 1U) << "the killed worker's job was not recovered by another";
  EXPECT_LT(elapsed, 5min);
}

// Issue 16: a worker paused (SIGSTOP) past its lease lost its job. The other
// worker took it over, gave it back because the paused holder still held the
// integration's lock, took it again as a fresh lease, and JobRunner, finding
// the lock held, marked the job finished: 3,500 of 20,000 rows, and the child
// job never ran. Now a job is finished only by a run that completed it: the
// take-over hands the job back to its live holder, which finishes it when it
// resumes (or, had it died, the next take would resume it at its checkpoint).
TEST_F(FaultMatrix, AWorkerPausedForLongerThanTwoLeasesKeepsItsJobAndEveryJobFinishesOnce) {
  constexpr double kLease = 3.0;
  constexpr auto kPause = 12s;
  tools::ApiServerOptions o;
  o.objects = objects_;
  o.seed = seed_;
  o.threads = 4;
  o.latency = 15ms;  // 200 pages: the parent's run outlasts the pause's start
  server_ = std::make_unique<tools::ApiServer>(o);
  server_->start();
  auto make_integration = [&](const std::string& table, std::optional<std::int64_t> parent) {
    ServiceIntegration si;
    si.service_name = kFaultChargeService;
    si.table_name = table;
    si.api_url = server_->url("/v1/charges");
    si.backfill_key = "sk_test_pause";
    si.depends_on = parent;
    si = jobs_->create_integration(si);
    registry_->make(si, context())->create_table();
    return si;
  };
  const auto parent_si = make_integration("paused_parent", std::nullopt);
  const auto child_si = make_integration("paused_child", parent_si.id);
  spawn("p1", kLease);
  spawn("p2", kLease);
  ASSERT_FALSE(HasFailure());
  const auto root = jobs_->create_recursive(parent_si, false, json::object());
  const auto children = jobs_->child_jobs(root.id);
  ASSERT_EQ(children.size(), 1U);
  queue_->enqueue(root.id);

  const auto started = std::chrono::steady_clock::now();
  std::string holder;
  while (holder.empty() && std::chrono::steady_clock::now() - started < 60s) {
    const auto e = queue_->entry(root.id);
    if (e && e->state == pg::QueueState::running && server_->stats().pages >= 30) holder = e->lease_owner;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_FALSE(holder.empty()) << "the parent job never got going";
  auto& paused = *workers_.at(holder);
  paused.signal(SIGSTOP);
  const auto pages_at_pause = server_->stats().pages;
  std::cerr << "pause test: SIGSTOP " << holder << " after " << pages_at_pause << " pages, for "
            << std::chrono::duration_cast<std::chrono::seconds>(kPause).count() << " s (lease " << kLease
            << " s)\n";
  std::this_thread::sleep_for(kPause);
  const bool finished_while_paused = jobs_->find_job(root.id)->finished_at.has_value();
  const auto pages_while_paused = server_->stats().pages - pages_at_pause;
  paused.signal(SIGCONT);
  EXPECT_FALSE(finished_while_paused) << "the job was marked finished while its holder was paused, half done";
  EXPECT_LE(pages_while_paused, 2U) << "nobody else ran the job while its holder was alive";

  const auto done = [&](std::int64_t id) {
    const auto e = queue_->entry(id);
    return e && (e->state == pg::QueueState::done || e->state == pg::QueueState::failed);
  };
  while (!(done(root.id) && done(children[0].id)) && std::chrono::steady_clock::now() - started < 3min) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(done(root.id) && done(children[0].id)) << "the jobs did not end";
  for (auto& [name, w] : workers_) {
    w->signal(SIGTERM);
    EXPECT_EQ(w->wait_exit(20s), std::optional<int>(0)) << name;
    logs_[name] = w->log();
  }
  const std::string logs = all_logs();
  for (const auto id : {root.id, children[0].id}) {
    EXPECT_EQ(queue_->entry(id)->state, pg::QueueState::done)
        << "job " << id << ": " << queue_->entry(id)->last_error;
    EXPECT_TRUE(jobs_->find_job(id)->finished_at) << "job " << id;
    EXPECT_EQ(occurrences(logs, "job " + std::to_string(id) + " completed (ran)"), 1U)
        << "job " << id << " must be finished exactly once, by a run that completed it";
    EXPECT_EQ(occurrences(logs, "job " + std::to_string(id) + " completed (locked)"), 0U);
  }
  for (const auto& si : {parent_si, child_si}) {
    const Verification v = verify(si);
    EXPECT_EQ(v.rows, objects_) << si.table_name;
    EXPECT_EQ(v.missing, 0U) << si.table_name;
    EXPECT_EQ(v.mismatched, 0U) << si.table_name;
    EXPECT_EQ(v.table_hash, v.source_hash) << si.table_name;
  }
  EXPECT_GE(occurrences(logs, "still holds the integration's lock"), 1U)
      << "the take-over found the holder alive";
}

// Found while writing the fault matrix: renew(owner) extends every lease
// recorded under the owner's name, so a worker restarted under the same
// --owner (a stable pod or host name) keeps its dead predecessor's leases
// alive for as long as it is busy, and the orphaned job is not recovered.
TEST_F(FaultMatrix, RestartedWorkerUnderTheSameOwnerDoesNotKeepItsPredecessorsLeasesAlive) {
  tools::ApiServerOptions o;
  o.objects = 2000;
  o.latency = 300ms;  // 20 pages: the busy job runs for 6 s or more
  server_ = std::make_unique<tools::ApiServer>(o);
  server_->start();
  auto make_integration = [&](const std::string& table) {
    ServiceIntegration si;
    si.service_name = kFaultChargeService;
    si.table_name = table;
    si.api_url = server_->url("/v1/charges");
    si.backfill_key = "k";
    si = jobs_->create_integration(si);
    registry_->make(si, context())->create_table();
    return si;
  };
  const auto orphan_si = make_integration("orphan");
  const auto busy_si = make_integration("busy");
  pg::PgJobQueueOptions qo;
  qo.lease = 1s;
  auto queue = std::make_shared<pg::PgJobQueue>(pool_, qo);
  const auto orphan = jobs_->create_recursive(orphan_si, false, json::object());
  const auto busy = jobs_->create_recursive(busy_si, false, json::object());

  // "w1" took the orphan and died (nothing runs it; its lease runs out in 1 s).
  queue->enqueue(orphan.id);
  ASSERT_TRUE(queue->take("w1"));
  queue->enqueue(busy.id);

  ReplicatorContext ctx = context();
  ctx.http = curl::make_curl_client();
  jobs::WorkerOptions wo;
  wo.concurrency = 1;
  wo.poll_interval = 100ms;
  wo.owner = "w1";  // restarted under the same name
  jobs::Worker restarted(registry_, ctx, queue, wo);
  restarted.start();
  ASSERT_TRUE(queue->entry(busy.id));
  const auto started = std::chrono::steady_clock::now();
  while (queue->entry(busy.id)->state != pg::QueueState::running &&
         std::chrono::steady_clock::now() - started < 10s) {
    std::this_thread::sleep_for(20ms);
  }
  wo.owner = "w2";
  jobs::Worker other(registry_, ctx, queue, wo);
  other.start();

  // Within a few leases the orphan must be taken over, while "w1" is still busy.
  bool recovered = false;
  while (std::chrono::steady_clock::now() - started < 4s) {
    const auto e = queue->entry(orphan.id);
    if (e->attempts >= 2 || e->lease_owner == "w2") {
      recovered = true;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  const bool busy_still_running = queue->entry(busy.id)->state == pg::QueueState::running;
  other.stop();
  restarted.stop();
  EXPECT_TRUE(busy_still_running) << "the busy job ended too early for this test to mean anything";
  EXPECT_TRUE(recovered)
      << "the orphaned job's lease was kept alive by a new worker that shares the dead one's "
         "owner name (pg::PgJobQueue::renew renews every lease of the name, not the jobs this "
         "worker runs)";
}

}  // namespace
}  // namespace webhookdb::test
