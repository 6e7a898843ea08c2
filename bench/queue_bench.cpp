// webhookdb-queue-bench: the PostgreSQL job queue (issue 18), in ONE run
// against a bare `FOR UPDATE SKIP LOCKED` claim-and-delete baseline on the
// same server:
//   1. the baseline: claim-and-delete jobs/s (2 threads) and PostgreSQL CPU per claim;
//   2. take-and-complete/s at a small and at a large backlog (2,000 and
//      100,000 queued), and their ratio;
//   3. tiny jobs (one page of 10 objects from the local API server) run by 2
//      webhookdb-worker processes: jobs/s, PostgreSQL CPU ms/job, commits/job,
//      new PostgreSQL sessions per job;
//   4. fairness: small jobs queued behind four long backfills that hold every
//      runner, against the same jobs alone;
//   5. enqueue-to-start median with 32 idle runners, and take transactions
//      per enqueue.
// PostgreSQL CPU is read from /proc for the server that answers the bench's
// own connection (its postmaster and that postmaster's children only: other
// servers on the machine are not counted).
//
//   webhookdb-queue-bench --database-url URL --worker-exe PATH [--smoke] [--json FILE]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <pqxx/pqxx>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <webhookdb/jobs/jobs.hpp>
#include <webhookdb/pg/job_queue.hpp>
#include <webhookdb/pg/job_store.hpp>
#include <webhookdb/pg/replica_store.hpp>
#include <webhookdb/webhookdb.hpp>

#include <CLI/CLI.hpp>

#include "api_server/api_server.hpp"
#include "jobs/demo_replicators.hpp"
#include "worker_fleet.hpp"

namespace {

using namespace webhookdb;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kSchema = "webhookdb_queue_bench";
constexpr const char* kReplicaSchema = "webhookdb_queue_bench_rows";

struct Settings {
  std::string database_url;
  std::string worker_exe;
  std::string json_path = "queue-bench-results.json";
  bool smoke = false;
  std::size_t claim_n = 20'000;
  std::size_t backlog_small = 2'000;
  std::size_t backlog_large = 100'000;
  std::size_t take_ops = 1'000;
  std::size_t tiny_n = 2'000;
  std::size_t fair_small_n = 200;
  std::size_t fair_big_objects = 100'000;
  std::chrono::milliseconds fair_big_latency{20};
  std::chrono::milliseconds time_slice{5'000};
  std::size_t wake_n = 50;
  std::string only;  // comma-separated: take,tiny,fair,wake (the baseline always runs)
};

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

// --- PostgreSQL CPU of one server ---

double proc_cpu_seconds(const std::string& pid, bool with_children) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int n = 3; n <= 17 && rest >> field; ++n) {
    if (n == 14 || n == 15 || (with_children && (n == 16 || n == 17))) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string parent_of(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PPid:", 0) == 0) {
      std::string v = line.substr(5);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return {};
}

// CPU seconds of the postmaster (with its exited children) and its live children.
double server_cpu(const std::string& postmaster) {
  double total = proc_cpu_seconds(postmaster, true);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = entry.path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (parent_of(pid) == postmaster) total += proc_cpu_seconds(pid, false);
  }
  return total;
}

struct ServerSample {
  double cpu = 0;
  double commits = 0;
  double sessions = 0;
};

class Bench {
 public:
  explicit Bench(Settings s)
      : s_(std::move(s)),
        workers_(s_.worker_exe, s_.database_url,
                 {"--schema", kSchema, "--replica-schema", kReplicaSchema, "--poll-seconds", "1",
                  "--time-slice-seconds", num(static_cast<double>(s_.time_slice.count()) / 1000.0, "%.3f")}) {}
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  void run() {
    const auto t0 = SteadyClock::now();
    admin_ = std::make_unique<pqxx::connection>(s_.database_url);
    {
      pqxx::nontransaction nt(*admin_);
      const auto r = nt.exec(
          "SELECT pg_backend_pid(), current_setting('server_version'), current_setting('fsync'), "
          "current_setting('synchronous_commit')");
      postmaster_ = parent_of(r[0][0].c_str());
      std::printf("webhookdb-queue-bench%s: %u cores; PostgreSQL %s fsync=%s synchronous_commit=%s\n",
                  s_.smoke ? " (smoke)" : "", std::thread::hardware_concurrency(), r[0][1].c_str(),
                  r[0][2].c_str(), r[0][3].c_str());
      results_["postgres"] = {{"version", r[0][1].c_str()}, {"fsync", r[0][2].c_str()}};
      nt.exec(std::string("DROP SCHEMA IF EXISTS ") + kSchema + " CASCADE");
      nt.exec(std::string("DROP SCHEMA IF EXISTS ") + kReplicaSchema + " CASCADE");
    }
    config_.url = s_.database_url;
    config_.schema = kSchema;
    config_.replica_schema = kReplicaSchema;
    config_.pool_size = 6;
    pool_ = std::make_shared<pg::ConnectionPool>(config_);
    store_ = std::make_shared<pg::PgJobStore>(pool_);
    store_->migrate();
    replica_ = std::make_shared<pg::PgReplicaStore>(pool_);
    replica_->migrate();
    pg::PgJobQueueOptions qo;
    queue_ = std::make_shared<pg::PgJobQueue>(pool_, qo);
    registry_ = std::make_shared<Registry>();
    jobs::demo::register_demo_replicators(*registry_);

    std::printf("\n  %-64s %12s %10s\n", "measure", "value", "vs baseline");
    const auto wanted = [&](const std::string& section) {
      return s_.only.empty() || ("," + s_.only + ",").find("," + section + ",") != std::string::npos;
    };
    baseline();
    if (wanted("take")) take_and_complete();
    // The later sections reuse the tiny jobs' integrations.
    if (wanted("tiny") || wanted("fair") || wanted("wake")) tiny_jobs();
    if (wanted("fair")) fairness();
    if (wanted("wake")) enqueue_to_start();
    results_["smoke"] = s_.smoke;
    results_["seconds"] = seconds_since(t0);
    std::ofstream(s_.json_path) << results_.dump(2) << "\n";
    std::printf("\nresults written to %s\nqueue benchmark complete in %.0f s\n", s_.json_path.c_str(),
                seconds_since(t0));
  }

 private:
  static void row(const std::string& name, const std::string& value, const std::string& ratio = "") {
    std::printf("  %-64s %12s %10s\n", name.c_str(), value.c_str(), ratio.c_str());
    std::fflush(stdout);
  }
  static std::string num(double v, const char* fmt = "%.0f") {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
  }

  ServerSample sample() {
    ServerSample out;
    out.cpu = server_cpu(postmaster_);
    pqxx::nontransaction nt(*admin_);
    nt.exec("SELECT pg_stat_clear_snapshot()");
    const auto r =
        nt.exec("SELECT xact_commit, sessions FROM pg_stat_database WHERE datname = current_database()");
    out.commits = r[0][0].as<double>();
    out.sessions = r[0][1].as<double>();
    return out;
  }

  void exec(const std::string& sql) {
    pqxx::nontransaction nt(*admin_);
    nt.exec(sql);
  }

  std::size_t count(const std::string& sql) {
    ++bench_statements_;
    pqxx::nontransaction nt(*admin_);
    return nt.exec(sql)[0][0].as<std::size_t>();
  }

  // --- 1. baseline ---

  void baseline() {
    exec(std::string("CREATE TABLE ") + kSchema + ".bare_queue (job_id bigint PRIMARY KEY)");
    exec(std::string("INSERT INTO ") + kSchema + ".bare_queue SELECT generate_series(1, " +
         std::to_string(s_.claim_n) + ")");
    exec(std::string("VACUUM ANALYZE ") + kSchema + ".bare_queue");
    const std::string sql = std::string("DELETE FROM ") + kSchema +
                            ".bare_queue WHERE job_id = (SELECT job_id FROM " + kSchema +
                            ".bare_queue ORDER BY job_id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING job_id";
    const auto before = sample();
    const auto t0 = SteadyClock::now();
    std::atomic<std::size_t> done{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&] {
        pqxx::connection c(s_.database_url);
        while (true) {
          pqxx::nontransaction nt(c);
          if (nt.exec(sql).empty()) break;
          ++done;
        }
      });
    }
    for (auto& t : threads) t.join();
    const double secs = seconds_since(t0);
    const auto after = sample();
    baseline_rate_ = static_cast<double>(done.load()) / secs;
    const double cpu_ms = (after.cpu - before.cpu) * 1000.0 / static_cast<double>(done.load());
    row("baseline: bare SKIP LOCKED claim-and-delete, jobs/s (2 threads)", num(baseline_rate_), "1.00x");
    row("baseline: PostgreSQL CPU ms per claim", num(cpu_ms, "%.2f"));
    results_["baseline_claim_per_s"] = baseline_rate_;
    results_["baseline_pg_cpu_ms_per_claim"] = cpu_ms;
  }

  // --- 2. take-and-complete at two backlogs ---

  double take_rate(std::size_t backlog) {
    const std::string q = std::string(kSchema) + ".webhookdb_job_queue";
    exec("TRUNCATE " + q);
    // Job ids far from the real jobs' ids; the rows are what enqueue() writes.
    exec("INSERT INTO " + q + " (job_id, state) SELECT 1000000000 + g, 'queued' FROM generate_series(1, " +
         std::to_string(backlog) + ") AS g");
    exec("VACUUM ANALYZE " + q);
    const std::size_t ops = std::min(s_.take_ops, backlog / 2);
    std::atomic<std::size_t> done{0};
    const auto t0 = SteadyClock::now();
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&, i] {
        const std::string owner = "bench-" + std::to_string(i);
        while (done.fetch_add(1) < ops) {
          auto lease = queue_->take(owner);
          if (!lease || !queue_->complete(*lease)) throw InvariantViolation("take-and-complete failed");
        }
      });
    }
    for (auto& t : threads) t.join();
    const double rate = static_cast<double>(ops) / seconds_since(t0);
    exec("TRUNCATE " + q);
    return rate;
  }

  void take_and_complete() {
    const double small = take_rate(s_.backlog_small);
    const double large = take_rate(s_.backlog_large);
    row("take-and-complete/s, " + std::to_string(s_.backlog_small) + " queued (2 threads)", num(small),
        num(small / baseline_rate_, "%.2fx"));
    row("take-and-complete/s, " + std::to_string(s_.backlog_large) + " queued (2 threads)", num(large),
        num(large / baseline_rate_, "%.2fx"));
    row("  ratio large / small backlog (target >= 0.8)", num(large / small, "%.2f"));
    results_["take_complete_per_s"] = {{std::to_string(s_.backlog_small), small},
                                       {std::to_string(s_.backlog_large), large},
                                       {"ratio", large / small}};
  }

  pid_t spawn_worker(int concurrency, const std::string& owner) {
    return workers_.spawn(owner, {"--concurrency", std::to_string(concurrency)});
  }

  std::vector<ServiceIntegration> make_integrations(const std::string& prefix, std::size_t n,
                                                    const std::string& api_url) {
    std::vector<ServiceIntegration> out;
    ReplicatorContext ctx;
    ctx.replica = replica_;
    ctx.jobs = store_;
    ctx.registry = registry_;
    for (std::size_t i = 0; i < n; ++i) {
      ServiceIntegration si{.service_name = jobs::demo::kChargeService,
                            .table_name = prefix + std::to_string(i),
                            .api_url = api_url,
                            .backfill_key = "sk_bench"};
      si = store_->create_integration(si);
      registry_->make(si, ctx)->create_table();
      out.push_back(si);
    }
    return out;
  }

  std::vector<std::int64_t> make_jobs(const std::vector<ServiceIntegration>& sis) {
    std::vector<std::int64_t> ids;
    for (const auto& si : sis) ids.push_back(store_->create_recursive(si, false, json::object()).id);
    return ids;
  }

  std::size_t finished(const std::vector<std::int64_t>& ids) {
    if (ids.empty()) return 0;
    return count(std::string("SELECT count(*) FROM ") + kSchema +
                 ".webhookdb_job_queue WHERE state IN ('done', 'failed') AND job_id BETWEEN " +
                 std::to_string(*std::min_element(ids.begin(), ids.end())) + " AND " +
                 std::to_string(*std::max_element(ids.begin(), ids.end())));
  }

  // --- 3. tiny jobs ---

  void tiny_jobs() {
    tools::ApiServerOptions options;
    options.objects = 10;
    small_server_ = std::make_unique<tools::ApiServer>(options);
    small_server_->start();
    small_sis_ = make_integrations("tiny_", s_.tiny_n, small_server_->base_url());
    const auto ids = make_jobs(small_sis_);
    for (auto id : ids) queue_->enqueue(id);
    const auto before = sample();
    std::vector<pid_t> workers{spawn_worker(4, "bench-a"), spawn_worker(4, "bench-b")};
    const std::size_t n = ids.size();
    const std::size_t lo = n / 10;
    const std::size_t hi = n - n / 10;
    std::optional<std::pair<SteadyClock::time_point, ServerSample>> at_lo;
    std::optional<std::pair<SteadyClock::time_point, ServerSample>> at_hi;
    std::size_t done_lo = 0;
    std::size_t done_hi = 0;
    const auto deadline = SteadyClock::now() + 600s;
    std::size_t done = 0;
    while (done < n) {
      if (SteadyClock::now() > deadline) throw InvariantViolation("tiny jobs did not finish in 10 minutes");
      std::this_thread::sleep_for(50ms);
      done = finished(ids);
      if (!at_lo && done >= lo) {
        at_lo.emplace(SteadyClock::now(), sample());
        done_lo = done;
      }
      if (!at_hi && done >= hi) {
        at_hi.emplace(SteadyClock::now(), sample());
        done_hi = done;
      }
    }
    for (const pid_t w : workers) workers_.stop(w);
    std::this_thread::sleep_for(1100ms);  // the exited backends' statistics are flushed
    const auto after = sample();
    const double jobs = static_cast<double>(done_hi - done_lo);
    const double rate = jobs / std::chrono::duration<double>(at_hi->first - at_lo->first).count();
    const double cpu_ms = (at_hi->second.cpu - at_lo->second.cpu) * 1000.0 / jobs;
    const double commits = (after.commits - before.commits) / static_cast<double>(n);
    const double sessions = after.sessions - before.sessions;
    const std::size_t failed =
        count(std::string("SELECT count(*) FROM ") + kSchema + ".webhookdb_job_queue WHERE state = 'failed'");
    row("tiny jobs/s, 2 worker processes x 4 runners (" + std::to_string(n) + " jobs)", num(rate),
        num(rate / baseline_rate_, "%.2fx"));
    row("  PostgreSQL CPU ms per tiny job (target <= 3)", num(cpu_ms, "%.2f"));
    row("  commits per tiny job (whole run, worker start-up included)", num(commits, "%.1f"));
    row("  PostgreSQL sessions opened by the run (" + std::to_string(n) + " jobs)", num(sessions));
    if (failed > 0) row("  FAILED jobs", std::to_string(failed));
    results_["tiny_jobs"] = {{"jobs", n},
                             {"jobs_per_s", rate},
                             {"ratio_to_baseline", rate / baseline_rate_},
                             {"pg_cpu_ms_per_job", cpu_ms},
                             {"commits_per_job", commits},
                             {"sessions_opened", sessions},
                             {"failed", failed}};
  }

  // --- 4. fairness ---

  double run_smalls(const std::vector<std::int64_t>& ids) {
    const auto t0 = SteadyClock::now();
    for (auto id : ids) queue_->enqueue(id);
    const auto deadline = t0 + 600s;
    while (finished(ids) < ids.size()) {
      if (SteadyClock::now() > deadline) throw InvariantViolation("small jobs did not finish in 10 minutes");
      std::this_thread::sleep_for(10ms);
    }
    return seconds_since(t0);
  }

  void fairness() {
    const std::vector<ServiceIntegration> smalls(
        small_sis_.begin(),
        small_sis_.begin() + static_cast<std::ptrdiff_t>(std::min(s_.fair_small_n, small_sis_.size())));
    tools::ApiServerOptions options;
    options.objects = s_.fair_big_objects;
    options.latency = s_.fair_big_latency;  // a long backfill without flooding the 2 cores with writes
    options.threads = 2;
    tools::ApiServer big_server(options);
    big_server.start();
    const auto bigs = make_integrations("big_", 4, big_server.base_url());
    // 4 runners in all: the four long backfills hold every one.
    std::vector<pid_t> workers{spawn_worker(2, "bench-c"), spawn_worker(2, "bench-d")};
    bench::WorkerFleet::wait_until_up(*admin_, {"bench-c", "bench-d"});
    const double alone = run_smalls(make_jobs(smalls));

    const auto big_ids = make_jobs(bigs);
    for (auto id : big_ids) queue_->enqueue(id);
    // Every long job has run longer than a slice before the small ones come.
    std::this_thread::sleep_for(s_.time_slice + 500ms);
    if (count(std::string("SELECT count(*) FROM ") + kSchema +
              ".webhookdb_job_queue WHERE state = 'running'") < 4)
      throw InvariantViolation("the long backfills are not all running");
    const double behind = run_smalls(make_jobs(smalls));
    const std::size_t bigs_done_then = finished(big_ids);
    const auto t_big = SteadyClock::now();
    while (finished(big_ids) < big_ids.size()) {
      if (seconds_since(t_big) > 900) throw InvariantViolation("the long backfills did not finish");
      std::this_thread::sleep_for(50ms);
    }
    const double bigs_after = seconds_since(t_big);
    for (const pid_t w : workers) workers_.stop(w);
    big_server.stop();
    const std::string name = std::to_string(smalls.size()) + " small jobs";
    row("fairness: " + name + " alone, s (4 runners)", num(alone, "%.2f"));
    row("fairness: " + name + " behind 4 long backfills (" + std::to_string(s_.fair_big_objects) +
            " objects, " + std::to_string(s_.fair_big_latency.count()) + " ms/page), s",
        num(behind, "%.2f"));
    row("  ratio behind / alone (target <= 2)", num(behind / alone, "%.2f"));
    row("  long backfills done when the small jobs were / then finished in s",
        std::to_string(bigs_done_then) + " / " + num(bigs_after, "%.1f"));
    results_["fairness"] = {{"small_jobs", smalls.size()},
                            {"alone_s", alone},
                            {"behind_s", behind},
                            {"ratio", behind / alone},
                            {"bigs_done_then", bigs_done_then},
                            {"bigs_finished_after_s", bigs_after}};
  }

  // --- 5. enqueue-to-start with 32 idle runners ---

  void enqueue_to_start() {
    std::vector<pid_t> workers{spawn_worker(32, "bench-e")};
    bench::WorkerFleet::wait_until_up(*admin_, {"bench-e"});  // and every runner is idle
    const std::vector<ServiceIntegration> sis(
        small_sis_.begin(),
        small_sis_.begin() + static_cast<std::ptrdiff_t>(std::min(s_.wake_n, small_sis_.size())));
    const auto ids = make_jobs(sis);
    std::vector<double> latencies;
    const auto before = sample();
    const std::size_t bench_before = bench_statements_;
    for (auto id : ids) {
      const auto enqueued = std::chrono::system_clock::now();
      queue_->enqueue(id);
      const auto deadline = SteadyClock::now() + 30s;
      std::optional<BackfillJob> job;
      while ((++bench_statements_, !(job = store_->find_job(id))) || !job->started_at) {
        if (SteadyClock::now() > deadline) throw InvariantViolation("a job did not start in 30 s");
        std::this_thread::sleep_for(1ms);
      }
      latencies.push_back(std::chrono::duration<double, std::milli>(*job->started_at - enqueued).count());
      while (finished({id}) < 1) std::this_thread::sleep_for(2ms);
      std::this_thread::sleep_for(20ms);  // idle again
    }
    workers_.stop(workers[0]);
    std::this_thread::sleep_for(1100ms);  // the exited backends' statistics are flushed
    const auto after_jobs = sample();
    std::sort(latencies.begin(), latencies.end());
    const double median = latencies[latencies.size() / 2];
    // Commits per enqueue while 32 runners wait: the job's own work (about
    // what a tiny job costs in section 3) plus the takes of the runners the
    // enqueue woke; the bench's own polling statements are subtracted.
    const double commits =
        (after_jobs.commits - before.commits - static_cast<double>(bench_statements_ - bench_before) - 2.0) /
        static_cast<double>(ids.size());
    row("enqueue-to-start median, ms, 32 idle runners (target <= 10)", num(median, "%.1f"));
    row("  worst, ms", num(latencies.back(), "%.1f"));
    row("  commits per enqueued tiny job, 32 idle runners (vs section 3: wake-ups)", num(commits, "%.1f"));
    results_["enqueue_to_start_ms"] = {{"median", median},
                                       {"max", latencies.back()},
                                       {"runs", latencies.size()},
                                       {"commits_per_job", commits}};
  }

  Settings s_;
  std::unique_ptr<pqxx::connection> admin_;
  std::string postmaster_;
  pg::Config config_;
  std::shared_ptr<pg::ConnectionPool> pool_;
  std::shared_ptr<pg::PgJobStore> store_;
  std::shared_ptr<pg::PgReplicaStore> replica_;
  std::shared_ptr<pg::PgJobQueue> queue_;
  std::shared_ptr<Registry> registry_;
  std::unique_ptr<tools::ApiServer> small_server_;
  std::vector<ServiceIntegration> small_sis_;
  double baseline_rate_ = 0;
  bench::WorkerFleet workers_;
  std::size_t bench_statements_ = 0;  // the bench's own polling statements
  json results_;
};

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  if (const char* env = std::getenv("WEBHOOKDB_TEST_DATABASE_URL")) s.database_url = env;
  CLI::App app{"webhookdb-queue-bench"};
  app.add_option("--database-url", s.database_url);
  app.add_option("--worker-exe", s.worker_exe)->required();
  app.add_option("--json", s.json_path);
  app.add_flag("--smoke", s.smoke);
  app.add_option("--only", s.only, "sections: take,tiny,fair,wake (the baseline always runs)");
  app.add_option("--tiny-jobs", s.tiny_n);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // The integrations' secrets are sealed (PgJobStore): without a key of the
  // host's, a throwaway one, which the worker processes inherit.
  if (std::getenv("WEBHOOKDB_SECRET_KEY") == nullptr && std::getenv("WEBHOOKDB_SECRET_KEY_FILE") == nullptr) {
    setenv("WEBHOOKDB_SECRET_KEY", "71756575652d62656e63682d6f6e6c792d6e6f742d612d7365637265742d2d21", 1);
  }
  if (s.database_url.empty()) {
    std::fprintf(stderr,
                 "webhookdb-queue-bench: --database-url or WEBHOOKDB_TEST_DATABASE_URL is required\n");
    return 2;
  }
  if (s.smoke) {
    s.tiny_n = std::min<std::size_t>(s.tiny_n, 60);
    s.claim_n = 2'000;
    s.backlog_small = 500;
    s.backlog_large = 5'000;
    s.take_ops = 200;
    s.fair_small_n = 40;
    s.fair_big_objects = 10'000;
    s.fair_big_latency = 25ms;
    s.time_slice = 500ms;
    s.wake_n = 10;
  }
  try {
    Bench bench(s);
    bench.run();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "webhookdb-queue-bench: failed: %s\n", e.what());
    return 1;
  }
}
