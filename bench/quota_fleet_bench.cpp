// webhookdb-quota-fleet-bench: the quota governor with real worker processes
// (issue 19). The local API server enforces 200 requests a second on one API
// key; 4 webhookdb-worker processes (--rate-limiter pg) run the backfill jobs
// of 8 integrations that share that key (demo_charge_quota_v1: one declared
// quota key, pages of 20) through the PostgreSQL job queue, with more pages
// queued than the quota lets them fetch in the window. Per quota mode:
//   1. utilisation = served / (quota x seconds) and the share of requests
//      refused (429), over --seconds (60 in scripts/bench.sh), the quota
//      advertised (GitHub headers; targets >= 95% and <= 0.5%) and not (429 +
//      Retry-After only; targets >= 80% and <= 2%);
//   2. an incremental job (a 9th integration of the same key, some hundred
//      objects changed) run by the same workers: its time on the idle quota,
//      before the full backfills start, and while they saturate it, in the
//      middle of the window (target <= 2x).
//
//   webhookdb-quota-fleet-bench --database-url URL --worker-exe PATH [--seconds S] [--smoke] [--json FILE]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include <webhookdb/jobs/jobs.hpp>
#include <webhookdb/pg/job_queue.hpp>
#include <webhookdb/pg/job_store.hpp>
#include <webhookdb/pg/rate_limiter.hpp>
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

constexpr const char* kSchema = "webhookdb_quota_bench";
constexpr const char* kReplicaSchema = "webhookdb_quota_bench_rows";
constexpr std::int64_t kBaseTime = 1'600'000'000;

struct Settings {
  std::string database_url;
  std::string worker_exe;
  std::string json_path = "quota-fleet-bench-results.json";
  bool smoke = false;
  double seconds = 60;
  double warmup = 3;
  double quota = 200;
  int workers = 4;
  // Runners per worker: 8 full jobs on 4 x 2, and a free runner on each
  // worker for the incremental job (the queue's fairness is not measured here).
  int concurrency = 3;
  int integrations = 8;
  std::chrono::milliseconds latency{10};
  std::size_t changed_objects = 400;  // what the incremental job fetches: 20 pages
  std::vector<std::string> modes{"github", "retry-after"};
};

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

std::string num(double v, const char* fmt = "%.0f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

void row(const std::string& name, const std::string& value, const std::string& target = "") {
  std::printf("  %-70s %12s %14s\n", name.c_str(), value.c_str(), target.c_str());
  std::fflush(stdout);
}

struct Targets {
  double utilisation;
  double refused;
};

Targets targets_of(tools::QuotaMode mode) {
  return mode == tools::QuotaMode::github ? Targets{0.95, 0.005} : Targets{0.80, 0.02};
}

class Bench {
 public:
  explicit Bench(Settings s)
      : s_(std::move(s)),
        workers_(s_.worker_exe, s_.database_url,
                 {"--schema", kSchema, "--replica-schema", kReplicaSchema, "--poll-seconds", "1"}) {}
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  void run() {
    const auto t0 = SteadyClock::now();
    admin_ = std::make_unique<pqxx::connection>(s_.database_url);
    {
      pqxx::nontransaction nt(*admin_);
      const auto r = nt.exec("SELECT current_setting('server_version'), current_setting('fsync')");
      std::printf("webhookdb-quota-fleet-bench%s: %u cores; PostgreSQL %s fsync=%s; %d workers x %d runners, %d "
                  "integrations on one key, quota %.0f/s, %.0f s window\n",
                  s_.smoke ? " (smoke)" : "", std::thread::hardware_concurrency(), r[0][0].c_str(), r[0][1].c_str(),
                  s_.workers, s_.concurrency, s_.integrations, s_.quota, s_.seconds);
    }
    std::printf("\n  %-70s %12s %14s\n", "measure", "value", "target");
    for (const auto& name : s_.modes) {
      const auto mode = tools::parse_quota_mode(name);
      if (!mode) throw InvalidPrecondition("unknown quota mode " + name);
      run_mode(*mode, name);
    }
    results_["smoke"] = s_.smoke;
    results_["seconds"] = s_.seconds;
    results_["total_seconds"] = seconds_since(t0);
    std::ofstream(s_.json_path) << results_.dump(2) << "\n";
    std::printf("\nresults written to %s\nquota fleet benchmark complete in %.0f s\n", s_.json_path.c_str(),
                seconds_since(t0));
  }

 private:
  void exec(const std::string& sql) {
    pqxx::nontransaction nt(*admin_);
    nt.exec(sql);
  }

  std::size_t count(const std::string& sql) {
    pqxx::nontransaction nt(*admin_);
    return nt.exec(sql)[0][0].as<std::size_t>();
  }

  // A fresh schema for each mode: no queued job, rate-limit row or table left over.
  void reset_schema() {
    pool_.reset();
    exec(std::string("DROP SCHEMA IF EXISTS ") + kSchema + " CASCADE");
    exec(std::string("DROP SCHEMA IF EXISTS ") + kReplicaSchema + " CASCADE");
    pg::Config config;
    config.url = s_.database_url;
    config.schema = kSchema;
    config.replica_schema = kReplicaSchema;
    config.pool_size = 4;
    pool_ = std::make_shared<pg::ConnectionPool>(config);
    store_ = std::make_shared<pg::PgJobStore>(pool_);
    store_->migrate();
    replica_ = std::make_shared<pg::PgReplicaStore>(pool_);
    replica_->migrate();
    queue_ = std::make_shared<pg::PgJobQueue>(pool_, pg::PgJobQueueOptions{});
    // The limiter's table exists before the workers race to use it.
    limiter_ = std::make_shared<pg::PgRateLimiter>(pool_);
    registry_ = std::make_shared<Registry>();
    jobs::demo::register_demo_replicators(*registry_);
  }

  ServiceIntegration make_integration(const std::string& table, const std::string& api_url,
                                      std::optional<Timestamp> last_backfilled) {
    ServiceIntegration si{.service_name = jobs::demo::kQuotaService,
                          .table_name = table,
                          .api_url = api_url,
                          .backfill_key = "sk_quota_fleet"};  // one API key for the server's quota
    si.last_backfilled_at = last_backfilled;
    si = store_->create_integration(si);
    ReplicatorContext ctx;
    ctx.replica = replica_;
    ctx.jobs = store_;
    ctx.registry = registry_;
    registry_->make(si, ctx)->create_table();
    return si;
  }

  std::string queue_state(std::int64_t id) {
    pqxx::nontransaction nt(*admin_);
    const auto r = nt.exec_params(std::string("SELECT state FROM ") + kSchema +
                                      ".webhookdb_job_queue WHERE job_id = $1",
                                  id);
    return r.empty() ? std::string() : r[0][0].c_str();
  }

  // Enqueues an incremental job of `si` and waits for its end: the seconds
  // from its start to its finish on a runner (what the quota decides; the
  // wait for a free runner is not counted).
  double incremental_job(const ServiceIntegration& si) {
    const auto id = store_->create_recursive(si, true, json::object()).id;
    queue_->enqueue(id);
    const auto deadline = SteadyClock::now() + 300s;
    for (;;) {
      const std::string state = queue_state(id);
      if (state == "failed" || state == "cancelled") throw InvariantViolation("the incremental job " + state);
      if (state == "done") break;
      if (SteadyClock::now() > deadline) throw InvariantViolation("the incremental job did not finish in 300 s");
      std::this_thread::sleep_for(20ms);
    }
    const auto job = store_->find_job(id);
    if (!job || !job->started_at || !job->finished_at) throw InvariantViolation("the incremental job has no times");
    return std::chrono::duration<double>(*job->finished_at - *job->started_at).count();
  }

  void run_mode(tools::QuotaMode mode, const std::string& name) {
    reset_schema();
    // More pages than the quota lets the fleet fetch in warm-up + window (+ 20%).
    const double pages = s_.quota * (s_.warmup + s_.seconds + 10) * 1.2;
    const auto objects = static_cast<std::size_t>(pages * jobs::demo::kQuotaPageSize / s_.integrations);
    tools::ApiServerOptions options;
    options.objects = objects;
    options.base_time = kBaseTime;
    options.threads = 4;
    options.latency = s_.latency;
    options.quota = {.limit = s_.quota, .window = 1000ms, .mode = mode};
    tools::ApiServer server(options);
    server.start();
    // The incremental jobs' mark is after every object's `updated`; the
    // changed objects are touched after it.
    const std::int64_t mark = kBaseTime + static_cast<std::int64_t>(objects) * 60 + 7200;
    std::vector<std::size_t> changed;
    for (std::size_t i = 0; i < s_.changed_objects; ++i) changed.push_back(i * (objects / s_.changed_objects));
    server.touch(changed, mark + 100);
    const Timestamp mark_at{std::chrono::seconds(mark)};
    std::vector<ServiceIntegration> fulls;
    for (int i = 0; i < s_.integrations; ++i) {
      fulls.push_back(make_integration("full_" + std::to_string(i), server.base_url(), {}));
    }
    const auto inc_idle = make_integration("incremental_idle", server.base_url(), mark_at);
    const auto inc_busy = make_integration("incremental_busy", server.base_url(), mark_at);

    std::vector<std::string> owners;
    for (int w = 0; w < s_.workers; ++w) {
      owners.push_back("quota-bench-" + std::to_string(w));
      workers_.spawn(owners.back(),
                     {"--concurrency", std::to_string(s_.concurrency), "--rate-limiter", "pg"});
    }
    bench::WorkerFleet::wait_until_up(*admin_, owners);

    const double idle = incremental_job(inc_idle);
    std::vector<std::int64_t> full_ids;
    for (const auto& si : fulls) {
      full_ids.push_back(store_->create_recursive(si, false, json::object()).id);
      queue_->enqueue(full_ids.back());
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(s_.warmup));
    const auto before = server.quota_counts();
    const auto row_before = limiter_->row(jobs::demo::kQuotaKey);
    const auto window_start = SteadyClock::now();
    // The incremental job in the middle of the window.
    std::this_thread::sleep_for(std::chrono::duration<double>(s_.seconds / 2));
    const auto before_busy = server.quota_counts();
    const double busy = incremental_job(inc_busy);
    const auto refused_in_busy = server.quota_counts().refused - before_busy.refused;
    const double left = s_.seconds - seconds_since(window_start);
    if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double>(left));
    const auto after = server.quota_counts();
    const double window = seconds_since(window_start);
    const auto row_after = limiter_->row(jobs::demo::kQuotaKey);
    std::string ids;
    for (const auto id : full_ids) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    const std::size_t fulls_done =
        count(std::string("SELECT count(*) FROM ") + kSchema +
              ".webhookdb_job_queue WHERE state IN ('done', 'failed', 'cancelled') AND job_id IN (" + ids + ")");
    const std::size_t failed =
        count(std::string("SELECT count(*) FROM ") + kSchema + ".webhookdb_job_queue WHERE state = 'failed'");
    workers_.stop_all();
    server.stop();

    const auto served = static_cast<double>(after.served - before.served);
    const auto refused = static_cast<double>(after.refused - before.refused);
    const double utilisation = served / (s_.quota * window);
    const double refused_share = refused / std::max(1.0, served + refused);
    const Targets t = targets_of(mode);
    const std::string label = mode == tools::QuotaMode::github ? "advertised (GitHub headers)"
                                                                : "unadvertised (" + name + ": 429 only)";
    row(label + ": utilisation, %", num(100 * utilisation, "%.1f"), ">= " + num(100 * t.utilisation));
    row("  refused (429), % of requests", num(100 * refused_share, "%.2f"), "<= " + num(100 * t.refused, "%.1f"));
    row("  served / refused in " + num(window, "%.1f") + " s", num(served) + " / " + num(refused));
    double leases_per_s = 0;
    double permits_per_lease = 0;
    if (row_before && row_after && row_after->leases > row_before->leases) {
      const auto leases = static_cast<double>(row_after->leases - row_before->leases);
      leases_per_s = leases / window;
      permits_per_lease = static_cast<double>(row_after->granted - row_before->granted) / leases;
      row("  leases of the quota row per second / permits per lease",
          num(leases_per_s, "%.1f") + " / " + num(permits_per_lease, "%.1f"));
    }
    row("  incremental job (" + std::to_string(s_.changed_objects) + " objects), idle quota, s", num(idle, "%.2f"));
    row("  incremental job while the full backfills saturate the quota, s", num(busy, "%.2f"));
    row("  ratio saturated / idle", num(busy / idle, "%.2f"), "<= 2");
    // Each refusal pauses the whole key (until the reset when nothing remains).
    row("  requests refused (whole fleet) while that job ran", std::to_string(refused_in_busy));
    if (fulls_done > 0) {
      row("  WARNING: full jobs that ended inside the window (not saturating)", std::to_string(fulls_done));
    }
    if (failed > 0) row("  FAILED jobs", std::to_string(failed));
    results_[name] = {{"utilisation", utilisation},
                      {"refused_share", refused_share},
                      {"served", served},
                      {"refused", refused},
                      {"window_s", window},
                      {"leases_per_s", leases_per_s},
                      {"permits_per_lease", permits_per_lease},
                      {"incremental_idle_s", idle},
                      {"incremental_saturated_s", busy},
                      {"incremental_ratio", busy / idle},
                      {"refused_during_incremental", refused_in_busy},
                      {"full_jobs_ended_in_window", fulls_done},
                      {"failed_jobs", failed},
                      {"target_utilisation", t.utilisation},
                      {"target_refused_share", t.refused}};
  }

  Settings s_;
  std::unique_ptr<pqxx::connection> admin_;
  std::shared_ptr<pg::ConnectionPool> pool_;
  std::shared_ptr<pg::PgJobStore> store_;
  std::shared_ptr<pg::PgReplicaStore> replica_;
  std::shared_ptr<pg::PgJobQueue> queue_;
  std::shared_ptr<pg::PgRateLimiter> limiter_;
  std::shared_ptr<Registry> registry_;
  bench::WorkerFleet workers_;
  json results_;
};

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  if (const char* env = std::getenv("WEBHOOKDB_TEST_DATABASE_URL")) s.database_url = env;
  CLI::App app{"webhookdb-quota-fleet-bench"};
  app.add_option("--database-url", s.database_url);
  app.add_option("--worker-exe", s.worker_exe)->required();
  app.add_option("--json", s.json_path);
  app.add_option("--seconds", s.seconds, "the measured window per mode (default 60)")->check(CLI::Range(2.0, 3600.0));
  app.add_option("--quota", s.quota, "requests a second the API server allows the key (default 200)")
      ->check(CLI::Range(1.0, 100'000.0));
  app.add_option("--modes", s.modes, "quota modes of the API server (default github retry-after)");
  app.add_flag("--smoke", s.smoke, "a short run: 8 s windows");
  app.add_option("--incremental-objects", s.changed_objects, "objects the incremental job fetches (default 400)")
      ->check(CLI::Range(20, 100'000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // The integrations' secrets are sealed (PgJobStore): without a key of the
  // host's, a throwaway one, which the worker processes inherit.
  if (std::getenv("WEBHOOKDB_SECRET_KEY") == nullptr && std::getenv("WEBHOOKDB_SECRET_KEY_FILE") == nullptr) {
    setenv("WEBHOOKDB_SECRET_KEY", "71756f74612d62656e63682d6f6e6c792d6e6f742d612d7365637265742d2d21", 1);
  }
  if (s.database_url.empty()) {
    std::fprintf(stderr, "webhookdb-quota-fleet-bench: --database-url or WEBHOOKDB_TEST_DATABASE_URL is required\n");
    return 2;
  }
  if (s.smoke && app.count("--seconds") == 0) {
    s.seconds = 8;
    s.warmup = 2;
  }
  if (s.smoke && app.count("--incremental-objects") == 0) s.changed_objects = 200;
  try {
    Bench bench(s);
    bench.run();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "webhookdb-quota-fleet-bench: failed: %s\n", e.what());
    return 1;
  }
}
