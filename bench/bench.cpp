// webhookdb-bench: in ONE run, prints a table and writes JSON of
//   1. write paths (per-row, multi-row, staging COPY upserts: into an empty
//      table, every row newer, identical rows) against raw COPY into a plain
//      table of the same shape, measured in the same run;
//   2. end-to-end backfills from the local API server (serial, partitioned,
//      pipelining on/off, 0 and 20 ms per page) against the same baseline and
//      against fetch-and-parse alone;
//   3. peak RSS of backfills of two sizes (a child process each, the API server
//      in its own process so its dataset is not counted);
//   4. abort latency of a parallel backfill.
//
//   webhookdb-bench --database-url URL --server-exe PATH [--smoke] [--json FILE]
//                   [--only write,e2e,rss,abort] [--write-rows N] [--e2e-objects N]
//                   [--e2e-filter TEXT]  (only the end-to-end configurations whose name contains TEXT)
//                   [--pool-size N] [--max-concurrent-copies N]  (pg::Config of the library's store)
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <webhookdb/curl/curl_http_client.hpp>
#include <webhookdb/pg/connection_pool.hpp>
#include <webhookdb/pg/job_store.hpp>
#include <webhookdb/pg/replica_store.hpp>
#include <webhookdb/webhookdb.hpp>

#include "api_server/api_server.hpp"
#include "stripe_charges/stripe_charge_replicator.hpp"

namespace {

using namespace webhookdb;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

struct Settings {
  std::string database_url;
  std::string server_exe;
  std::string json_path = "bench-results.json";
  bool smoke = false;
  std::size_t write_n = 200'000;
  std::size_t single_n = 20'000;  // per-row upserts are slow: fewer rows, same rate
  std::size_t e2e_n = 200'000;
  std::vector<std::size_t> rss_n{100'000, 1'000'000};
  int abort_runs = 5;
  std::string only;  // comma-separated sections to run (write,e2e,rss,abort); empty: all
  int pool_size = 8;
  int max_concurrent_copies = pg::Config{}.max_concurrent_copies;
  std::string e2e_filter;  // end-to-end configurations whose name contains this (for profiling one)
  // --rss-child mode
  bool rss_child = false;
  std::string server_url;
  std::size_t child_objects = 0;
};

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

// CPU seconds spent so far by the benchmark's PostgreSQL server (its
// postmaster, with what it has collected from exited backends, and its live
// children) and by this process (which hosts the API server). The server is
// local, so the difference over a phase says where its time went.
//
// Only the server of --database-url counts. Summing every process named
// postgres on the machine printed `pg -176 us/row` once: another PostgreSQL
// (a test's throwaway server) stopped during the phase, and its processes'
// CPU left the sum. A backend's CPU moves into its postmaster's cutime/cstime
// when it exits and is reaped, so the sum over one server only grows.
struct CpuSample {
  double postgres = 0;
  double self = 0;
  bool known = true;  // false: the server's processes are not visible here (another host)
};

// The postmaster of the server behind `database_url`: the parent of a backend.
pid_t g_postmaster = 0;

struct ProcStat {
  pid_t ppid = 0;
  double own = 0;       // utime + stime, in ticks
  double children = 0;  // cutime + cstime (reaped children), in ticks
};

std::optional<ProcStat> proc_stat(const std::filesystem::path& dir) {
  std::ifstream in(dir / "stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return std::nullopt;
  // Fields after the command: state is field 3, ppid 4; utime, stime, cutime, cstime are 14-17.
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  ProcStat out;
  for (int n = 3; n <= 17 && rest >> field; ++n) {
    if (n == 4) out.ppid = static_cast<pid_t>(std::stol(field));
    if (n == 14 || n == 15) out.own += std::stod(field);
    if (n == 16 || n == 17) out.children += std::stod(field);
  }
  return out;
}

void find_postmaster(const std::string& database_url) {
  try {
    pqxx::connection c(database_url);
    pqxx::nontransaction tx(c);
    const auto backend = tx.exec("SELECT pg_backend_pid()")[0][0].as<long>();
    if (const auto stat = proc_stat("/proc/" + std::to_string(backend))) g_postmaster = stat->ppid;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench: could not find the server's postmaster (%s); no PostgreSQL CPU figures\n",
                 e.what());
  }
}

CpuSample cpu_sample() {
  CpuSample out;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const auto postmaster = g_postmaster > 0 ? proc_stat("/proc/" + std::to_string(g_postmaster)) : std::nullopt;
  out.known = postmaster.has_value();
  if (postmaster) {
    double ticks = postmaster->own + postmaster->children;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string pid = entry.path().filename().string();
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      const auto stat = proc_stat(entry.path());
      // A live child (backend, checkpointer, WAL writer...) of this server only.
      if (stat && stat->ppid == g_postmaster) ticks += stat->own + stat->children;
    }
    out.postgres = ticks / tick;
  }
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  const auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  out.self = secs(self.ru_utime) + secs(self.ru_stime);
  return out;
}

// "pg 21 + client 9 us/row" over a phase that wrote `rows`.
std::string cpu_per_row(const CpuSample& before, const CpuSample& after, std::size_t rows) {
  char buf[80];
  const double n = static_cast<double>(rows) / 1e6;
  const double pg = after.postgres - before.postgres;
  if (!before.known || !after.known || pg < 0) {
    // Not measurable here (or the server restarted): say so instead of a wrong figure.
    std::snprintf(buf, sizeof buf, "cpu: pg n/a + bench %.0f us/row", (after.self - before.self) / n);
  } else {
    std::snprintf(buf, sizeof buf, "cpu: pg %.0f + bench %.0f us/row", pg / n, (after.self - before.self) / n);
  }
  return buf;
}

// Settings the bench replicator reads (it is built by a factory).
struct E2EMode {
  bool pipelined = true;
  int partitions = 0;
  std::size_t objects = 0;
  // Walk /pages by its Link header (rel="next", rel="last") with
  // pagination::LinkHeader instead of counting page numbers itself, fetching
  // up to concurrent_pages pages at once.
  bool link = false;
  int concurrent_pages = 1;
};
E2EMode g_mode;

// The example Stripe replicator, reading the server's page-number endpoint so
// a backfill splits into page ranges: one partition per range.
class BenchReplicator : public examples::StripeChargeReplicator {
 public:
  using StripeChargeReplicator::StripeChargeReplicator;
  static Descriptor descriptor() {
    Descriptor d = StripeChargeReplicator::descriptor();
    d.name = "bench_charge_v1";
    d.factory = Descriptor::factory_for<BenchReplicator>();
    return d;
  }

 protected:
  [[nodiscard]] BackfillOptions backfill_options() const override {
    BackfillOptions options = StripeChargeReplicator::backfill_options();
    options.pipelined = g_mode.pipelined;
    options.parallel = g_mode.partitions;
    options.concurrent_pages = g_mode.concurrent_pages;
    return options;
  }
  [[nodiscard]] std::vector<BackfillPartition> backfill_partitions(const json& /*criteria*/) const override {
    std::vector<BackfillPartition> out;
    if (g_mode.partitions <= 1) return out;
    const auto pages = static_cast<long long>((g_mode.objects + 99) / 100);
    const auto parts = static_cast<long long>(g_mode.partitions);
    for (long long i = 0; i < parts; ++i) {
      const long long first = 1 + i * pages / parts;
      const long long end = 1 + (i + 1) * pages / parts;
      out.push_back(
          {"pages:" + std::to_string(first) + "-" + std::to_string(end), {{"first", first}, {"end", end}}});
    }
    return out;
  }
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& /*since*/,
                                   const CancellationToken& cancel) override {
    if (g_mode.link) {
      const HttpRequest first{.url = integration().api_url + "/pages?per_page=100"};
      return link_pages_.fetch(*context().http, first, token, cancel);
    }
    return fetch_pages(1, static_cast<long long>((g_mode.objects + 99) / 100) + 1, token, cancel);
  }
  BackfillPage fetch_partition_page(const BackfillPartition& p, const std::string& token,
                                    const std::optional<Timestamp>& /*since*/,
                                    const CancellationToken& cancel) override {
    return fetch_pages(p.bounds["first"].get<long long>(), p.bounds["end"].get<long long>(), token, cancel);
  }

 private:
  pagination::LinkHeader link_pages_{{.items_path = {"data"}}};

  BackfillPage fetch_pages(long long first, long long end, const std::string& token,
                           const CancellationToken& cancel) {
    const long long page = token.empty() ? first : std::stoll(token);
    auto response = context().http->get(
        integration().api_url + "/pages?per_page=100&page=" + std::to_string(page), {}, cancel);
    auto body = parse_json_limited(response.body, context().json_limits, "bench page");
    BackfillPage out{std::move(body["data"]), "", response.body.size()};
    if (page + 1 < end && !out.items.empty()) out.next = std::to_string(page + 1);
    return out;
  }
};

struct Bench {
  Settings s;
  std::shared_ptr<pg::ConnectionPool> pool;
  std::shared_ptr<pg::PgReplicaStore> replica;
  std::shared_ptr<pg::PgJobStore> jobs;
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
  json results = json::object();
  double baseline = 0;       // raw COPY rows/s
  std::string baseline_cpu;  // the last raw COPY run's CPU per row
  std::string last_cpu;      // the last end-to-end run's

  explicit Bench(Settings settings) : s(std::move(settings)) {
    pool = std::make_shared<pg::ConnectionPool>(pg::Config{
        .url = s.database_url, .pool_size = s.pool_size, .max_concurrent_copies = s.max_concurrent_copies});
    replica = std::make_shared<pg::PgReplicaStore>(pool);
    jobs = std::make_shared<pg::PgJobStore>(pool);
    registry->add(BenchReplicator::descriptor());
    find_postmaster(s.database_url);
  }

  ReplicatorContext context(const std::string& api_url = "http://127.0.0.1:1") {
    ReplicatorContext ctx;
    ctx.http = curl::make_curl_client(curl::CurlOptions{.timeout = std::chrono::seconds(30)});
    ctx.replica = replica;
    ctx.jobs = jobs;
    ctx.registry = registry;
    (void)api_url;
    return ctx;
  }

  // One integration per table (the job store refuses a second claim on a
  // table): a phase, or a second run of the benchmark, that reuses a table
  // reuses its integration.
  ServiceIntegration integration(const std::string& table, const std::string& api_url) {
    if (auto si = jobs->find_integration_by_table(table)) {
      si->api_url = api_url;
      jobs->update_integration(*si);
      return *si;
    }
    return jobs->create_integration({.service_name = "bench_charge_v1",
                                     .table_name = table,
                                     .api_url = api_url,
                                     .backfill_key = "sk_bench"});
  }

  // A replicator whose table is fresh.
  std::unique_ptr<Replicator> fresh(const ServiceIntegration& si, const ReplicatorContext& ctx) {
    auto r = registry->make(si, ctx);
    replica->drop_table(r->table_spec());
    r->create_table();
    return r;
  }

  static void print_row(const std::string& name, double rows_per_s, double ratio,
                        const std::string& extra = {}) {
    std::printf("  %-68s %10.0f %8.2fx  %s\n", name.c_str(), rows_per_s, ratio, extra.c_str());
    std::fflush(stdout);
  }

  // --- 1. write paths ---

  // Every timed phase starts right after a checkpoint, so none pays for an
  // earlier phase's WAL (or full-page writes after a checkpoint it set off),
  // and after a VACUUM with no autovacuum worker running: otherwise the
  // cleanup an earlier phase left (the baseline's 200,000 inserted rows, a
  // phase's dead row versions) lands on whichever phase is running when a
  // worker wakes up. On this 2-core machine that cost the first library phase
  // after the baseline about a quarter of its speed.
  void settle() {
    try {
      pqxx::connection c(s.database_url);
      pqxx::nontransaction tx(c);
      tx.exec("VACUUM");
      const auto deadline = SteadyClock::now() + std::chrono::seconds(120);
      while (tx.exec("SELECT 1 FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND datname = "
                     "current_database()")
                     .size() > 0 &&
             SteadyClock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      tx.exec("CHECKPOINT");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench: VACUUM or CHECKPOINT failed (%s); figures will be noisier\n", e.what());
    }
  }

  // The baseline: the median of three raw COPY runs, after one untimed run
  // (a fresh server first has to create its WAL segment files).
  double raw_copy(const std::vector<Row>& rows) {
    (void)raw_copy_once(rows);
    std::vector<double> runs;
    for (int i = 0; i < 3; ++i) runs.push_back(raw_copy_once(rows));
    try {
      pqxx::connection c(s.database_url);
      pqxx::nontransaction(c).exec("DROP TABLE bench_raw_copy");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench: dropping the baseline's table failed (%s)\n", e.what());
    }
    std::sort(runs.begin(), runs.end());
    return runs[1];
  }

  double raw_copy_once(const std::vector<Row>& rows) {
    pqxx::connection c(s.database_url);
    {
      pqxx::nontransaction nt(c);
      nt.exec(
          "DROP TABLE IF EXISTS bench_raw_copy; CREATE TABLE bench_raw_copy (pk bigserial PRIMARY KEY, "
          "stripe_id text "
          "UNIQUE NOT NULL, amount bigint, currency text, customer text, status text, created timestamptz, "
          "updated "
          "timestamptz, data jsonb NOT NULL); CREATE INDEX ON bench_raw_copy (customer); CREATE INDEX ON "
          "bench_raw_copy (created); CREATE INDEX ON bench_raw_copy (updated)");
    }
    settle();
    const auto cpu0 = cpu_sample();
    const auto t0 = SteadyClock::now();
    pqxx::work tx(c);
    pqxx::stream_to stream(tx, "bench_raw_copy",
                           std::vector<std::string>{"stripe_id", "amount", "currency", "customer", "status",
                                                    "created", "updated", "data"});
    for (const auto& r : rows) {
      const auto& v = r.values;
      stream << std::make_tuple(r.key.get<std::string>(), v[0].get<long long>(), v[1].get<std::string>(),
                                v[2].is_null() ? std::optional<std::string>{} : v[2].get<std::string>(),
                                v[3].get<std::string>(), v[4].get<std::string>(), v[5].get<std::string>(),
                                r.data.dump());
    }
    stream.complete();
    tx.commit();
    const double rate = static_cast<double>(rows.size()) / seconds_since(t0);
    baseline_cpu = cpu_per_row(cpu0, cpu_sample(), rows.size());
    return rate;
  }

  // `checkpointed`: each batch saves a checkpoint in its transaction, as a
  // backfill's batches do (and so commits without waiting for the disk).
  double library_write(const TableSpec& spec, const std::vector<Row>& rows, WriteMethod method,
                       std::size_t batch, bool checkpointed) {
    settle();
    const auto t0 = SteadyClock::now();
    UpsertOptions options;
    options.method = method;
    for (std::size_t i = 0; i < rows.size(); i += batch) {
      const std::size_t n = std::min(batch, rows.size() - i);
      if (checkpointed) options.checkpoint = Checkpoint{0, "bench", std::to_string(i + n), false};
      replica->upsert(spec, std::span<const Row>(rows).subspan(i, n), options);
    }
    return static_cast<double>(rows.size()) / seconds_since(t0);
  }

  static std::vector<Row> newer(std::vector<Row> rows, std::size_t updated_col) {
    for (auto& r : rows) {
      auto t = parse_timestamp(r.values[updated_col].get<std::string>()).value() + std::chrono::seconds(1);
      r.values[updated_col] = format_timestamp(t);
      r.data["updated"] = r.data["updated"].get<long long>() + 1;
    }
    return rows;
  }

  std::vector<Row> bench_rows(std::size_t n) {
    tools::Dataset data(n, 11);
    ReplicatorContext ctx = context();
    auto r = registry->make(integration("bench_write", "http://127.0.0.1:1"), ctx);
    std::vector<Row> rows;
    rows.reserve(n);
    for (std::size_t i = 0; i < n; ++i) rows.push_back(*r->row_for(Payload{.resource = data.object(i)}));
    return rows;
  }

  // The COPY baseline alone, for runs that skip the write-path section.
  double raw_copy_baseline() {
    baseline = raw_copy(bench_rows(s.write_n));
    std::printf("\nraw COPY baseline: %.0f rows/s (last run's %s)\n", baseline, baseline_cpu.c_str());
    results["baseline_copy_rows_per_s"] = baseline;
    return baseline;
  }

  void write_paths() {
    std::printf("\n1. Write path: %zu rows of ~1.2 KB (per-row: %zu), table with 3 indexes\n", s.write_n,
                s.single_n);
    std::printf("  %-68s %10s %9s\n", "path", "rows/s", "vs COPY");
    ReplicatorContext ctx = context();
    auto si = integration("bench_write", "http://127.0.0.1:1");
    auto r = registry->make(si, ctx);
    std::vector<Row> rows = bench_rows(s.write_n);
    s.single_n = std::min(s.single_n, s.write_n);
    const std::size_t updated_col = r->table_spec().column_index("updated").value();

    baseline = raw_copy(rows);
    print_row("raw COPY into a plain table (baseline, median of 3)", baseline, 1.0,
              "last run's " + baseline_cpu);
    results["baseline_copy_rows_per_s"] = baseline;

    struct Method {
      const char* name;
      WriteMethod method;
      std::size_t batch;
      std::size_t n;
      bool checkpointed;
    };
    const std::vector<Method> methods{
        {"COPY path, as a backfill (2000/batch + checkpoint)", WriteMethod::staging_copy, 2000, s.write_n,
         true},
        {"COPY path, plain upsert() calls (2000/batch)", WriteMethod::staging_copy, 2000, s.write_n, false},
        {"multi-row INSERT ON CONFLICT (500/stmt + checkpoint)", WriteMethod::multi_row, 500, s.write_n,
         true},
        {"per-row upsert (WebhookDB default)", WriteMethod::single_row, 1, s.single_n, false}};
    json& out = results["write_path"];
    for (const auto& m : methods) {
      std::vector<Row> subset(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(m.n));
      const auto newer_rows = newer(subset, updated_col);
      // The library's default (COPY) path is measured like the baseline: the
      // median of three runs, each on a fresh table. The baseline commits once
      // (one flush to disk for all rows); a backfill commits every batch, with
      // its checkpoint, without waiting for the disk (a crash loses the batch
      // and its checkpoint together). Plain upsert() calls wait every time.
      const int runs = m.method == WriteMethod::staging_copy && !s.smoke ? 3 : 1;
      std::vector<double> inserts, updates, noops;
      for (int run = 0; run < runs; ++run) {
        const auto spec = fresh(si, ctx)->table_spec();
        inserts.push_back(library_write(spec, subset, m.method, m.batch, m.checkpointed));
        updates.push_back(library_write(spec, newer_rows, m.method, m.batch, m.checkpointed));
        noops.push_back(library_write(spec, newer_rows, m.method, m.batch, m.checkpointed));
        if (replica->count(spec) != m.n)
          throw InvariantViolation(std::string(m.name) + ": row count differs");
      }
      const auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
      };
      const double insert = median(inserts);
      const double update = median(updates);
      const double noop = median(noops);
      print_row(std::string(m.name) + ": insert", insert, insert / baseline);
      print_row(std::string(m.name) + ": every row newer", update, update / baseline);
      print_row(std::string(m.name) + ": identical rows", noop, noop / baseline);
      out[m.name] = {{"insert", insert},
                     {"newer", update},
                     {"identical", noop},
                     {"rows", m.n},
                     {"insert_ratio", insert / baseline},
                     {"newer_ratio", update / baseline},
                     {"identical_ratio", noop / baseline}};
    }
    replica->drop_table(r->table_spec());
  }

  // --- 2. end to end ---

  double fetch_and_parse(const std::string& base_url, std::size_t objects) {
    ReplicatorContext ctx = context();
    auto si = integration("bench_fetch_only", base_url);
    auto r = registry->make(si, ctx);
    const auto t0 = SteadyClock::now();
    std::size_t items = 0;
    const std::size_t pages = (objects + 99) / 100;
    for (std::size_t page = 1; page <= pages; ++page) {
      auto response = ctx.http->get(base_url + "/pages?per_page=100&page=" + std::to_string(page));
      // As the bench replicator (and the library's Paginator) parses a page.
      auto body = parse_json_limited(response.body, ctx.json_limits, "fetch-and-parse page");
      for (const auto& item : body["data"]) {
        if (r->row_for(Payload{.resource = item})) ++items;
      }
    }
    if (items != objects) throw InvariantViolation("fetch-and-parse saw " + std::to_string(items) + " items");
    return static_cast<double>(items) / seconds_since(t0);
  }

  // One page of 100 objects parsed by the library (parse_json_limited) and by
  // nlohmann's parser: the per-object cost the fetch thread pays.
  void parse_speed(const std::string& base_url, json& out) {
    const std::string body = context().http->get(base_url + "/pages?per_page=100&page=1").body;
    const int rounds = s.smoke ? 5 : 200;
    const auto time_per_object = [&](auto&& parse) {
      const auto t0 = SteadyClock::now();
      std::size_t objects = 0;
      for (int i = 0; i < rounds; ++i) objects += parse().at("data").size();
      return seconds_since(t0) * 1e6 / static_cast<double>(objects);
    };
    const double library = time_per_object([&] { return parse_json_limited(body); });
    const double plain = time_per_object([&] { return json::parse(body); });
    std::printf("  parsing a page: %.2f us/object (nlohmann's parser: %.2f, %.2fx as long)\n", library, plain,
                plain / library);
    out["parse_us_per_object"] = {{"library", library}, {"nlohmann", plain}};
  }

  double end_to_end(const std::string& base_url, std::size_t objects, bool pipelined, int partitions,
                    bool link = false, int concurrent_pages = 1) {
    g_mode = E2EMode{pipelined, partitions, objects, link, concurrent_pages};
    ReplicatorContext ctx = context();
    auto si = integration("bench_e2e", base_url);
    auto r = fresh(si, ctx);
    auto job = jobs->create_recursive(si, false, json::object());
    settle();
    const auto cpu0 = cpu_sample();
    const auto t0 = SteadyClock::now();
    r->backfill(job);
    const double rate = static_cast<double>(objects) / seconds_since(t0);
    last_cpu = cpu_per_row(cpu0, cpu_sample(), objects);
    const auto count = replica->count(r->table_spec());
    if (count != objects) throw InvariantViolation("end to end wrote " + std::to_string(count) + " rows");
    replica->drop_table(r->table_spec());
    return rate;
  }

  void end_to_end_section() {
    std::printf("\n2. End to end: %zu objects from the local API server, pages of 100, into PostgreSQL\n",
                s.e2e_n);
    std::printf("  %-68s %10s %9s  %s\n", "configuration", "rows/s", "vs COPY", "vs fetch+parse");
    tools::ApiServerOptions options;
    options.objects = s.e2e_n;
    options.threads = 2;
    tools::ApiServer server(options);
    server.start();
    json& out = results["end_to_end"];
    parse_speed(server.base_url(), out);
    struct Config {
      const char* name;
      bool pipelined;
      int partitions;
      bool link = false;
      int concurrent_pages = 1;
    };
    for (int latency : {0, 20}) {
      std::vector<Config> configs{{"serial, not pipelined", false, 0},
                                  {"serial, pipelined", true, 0},
                                  {"2 partitions, pipelined", true, 2},
                                  {"4 partitions, pipelined", true, 4}};
      if (latency > 0) {
        configs.push_back({"16 partitions, pipelined", true, 16});
        // Issue 19 item 4: one integration, no partitions, a Link-paginated
        // API naming its last page; pages fetched 1, 4, 8 and 16 at once.
        configs.push_back({"Link rel=last, no partitions, 1 page at a time", true, 0, true, 1});
        configs.push_back({"Link rel=last, no partitions, 4 pages at once", true, 0, true, 4});
        configs.push_back({"Link rel=last, no partitions, 8 pages at once", true, 0, true, 8});
        configs.push_back({"Link rel=last, no partitions, 16 pages at once", true, 0, true, 16});
      }
      const auto name_of = [latency](const Config& c) {
        return std::string(c.name) + ", " + std::to_string(latency) + " ms/page";
      };
      std::erase_if(configs,
                    [&](const Config& c) { return name_of(c).find(s.e2e_filter) == std::string::npos; });
      if (configs.empty()) continue;
      server.set_latency(std::chrono::milliseconds(latency));
      const double fetch_only = fetch_and_parse(server.base_url(), s.e2e_n);
      print_row("fetch + parse alone, " + std::to_string(latency) + " ms/page", fetch_only,
                fetch_only / baseline);
      out["fetch_parse_" + std::to_string(latency) + "ms"] = fetch_only;
      for (const auto& c : configs) {
        const std::string name = name_of(c);
        const double rate =
            end_to_end(server.base_url(), s.e2e_n, c.pipelined, c.partitions, c.link, c.concurrent_pages);
        char extra[128];
        std::snprintf(extra, sizeof extra, "%.2fx  %s", rate / fetch_only, last_cpu.c_str());
        print_row(name, rate, rate / baseline, extra);
        out[name] = {{"rows_per_s", rate},
                     {"ratio_to_copy", rate / baseline},
                     {"ratio_to_fetch_parse", rate / fetch_only}};
      }
    }
    server.stop();
  }

  // --- 3. memory ---

  struct Child {
    pid_t pid = -1;
    FILE* out = nullptr;
  };

  static Child spawn(const std::vector<std::string>& args, bool quiet_stderr = false) {
    int fds[2];
    if (pipe(fds) != 0) throw InvariantViolation("pipe failed");
    const pid_t pid = fork();
    if (pid == 0) {
      dup2(fds[1], STDOUT_FILENO);
      if (quiet_stderr) {
        if (FILE* null = std::fopen("/dev/null", "w")) dup2(fileno(null), STDERR_FILENO);
      }
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    return {pid, fdopen(fds[0], "r")};
  }

  static std::string read_line(FILE* f) {
    std::string line;
    for (int c = std::fgetc(f); c != EOF && c != '\n'; c = std::fgetc(f)) line += static_cast<char>(c);
    return line;
  }

  static std::string self_exe() {
    char buf[4096];
    const auto n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) throw InvariantViolation("cannot find own executable");
    return std::string(buf, static_cast<std::size_t>(n));
  }

  void memory_section() {
    std::printf("\n3. Peak RSS of a backfill (serial, pipelined; the API server runs in its own process)\n");
    json& out = results["peak_rss_mib"];
    std::vector<double> peaks;
    for (std::size_t n : s.rss_n) {
      Child server = spawn({s.server_exe, "--objects", std::to_string(n), "--threads", "2"}, true);
      const std::string first = read_line(server.out);
      const auto colon = first.rfind(':');
      if (first.rfind("listening", 0) != 0 || colon == std::string::npos) {
        throw InvariantViolation("api server did not start: " + first);
      }
      const std::string url = "http://127.0.0.1:" + first.substr(colon + 1);
      Child child = spawn({self_exe(), "--rss-child", "--server-url", url, "--database-url", s.database_url,
                           "--objects", std::to_string(n)});
      std::string line;
      double kib = 0;
      while (!(line = read_line(child.out)).empty()) {
        if (line.rfind("peak_rss_kib ", 0) == 0) kib = std::stod(line.substr(13));
      }
      int status = 0;
      waitpid(child.pid, &status, 0);
      fclose(child.out);
      kill(server.pid, SIGTERM);
      waitpid(server.pid, nullptr, 0);
      fclose(server.out);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || kib == 0) {
        throw InvariantViolation("rss child failed for " + std::to_string(n) + " objects");
      }
      const double mib = kib / 1024.0;
      peaks.push_back(mib);
      std::printf("  %-68s %10.1f MiB\n", (std::to_string(n) + " objects").c_str(), mib);
      out[std::to_string(n)] = mib;
    }
    if (peaks.size() == 2) {
      std::printf("  %-68s %10.2fx\n", "ratio largest / smallest", peaks[1] / peaks[0]);
      out["ratio"] = peaks[1] / peaks[0];
    }
  }

  // --- 4. abort latency ---

  void abort_section() {
    std::printf(
        "\n4. Abort latency: 2 parallel backfillers, one fails (401) while the other waits on a slow "
        "response\n");
    tools::ApiServer server(tools::ApiServerOptions{.objects = 10});
    server.start();
    std::vector<double> latencies;
    for (int run = 0; run < s.abort_runs; ++run) {
      ReplicatorContext ctx = context();
      auto si = integration("bench_abort", server.base_url());
      AbortReplicator r(registry->get("bench_charge_v1"), si, ctx);
      BackfillJob job = jobs->create_recursive(si, false, json::object());
      try {
        r.backfill(job);
        throw InvariantViolation("abort run did not fail");
      } catch (const HttpError& e) {
        const auto returned = SteadyClock::now();
        if (e.status() != 401) throw;
        latencies.push_back(std::chrono::duration<double, std::milli>(returned - r.failed_at()).count());
      }
    }
    server.stop();
    std::sort(latencies.begin(), latencies.end());
    const double median = latencies[latencies.size() / 2];
    const double worst = latencies.back();
    std::printf("  %-68s %10.2f ms (worst of %d: %.2f ms)\n", "median, first error -> backfill() returns",
                median, s.abort_runs, worst);
    results["abort_latency_ms"] = {{"median", median}, {"max", worst}, {"runs", s.abort_runs}};
  }

  class AbortReplicator final : public BenchReplicator {
   public:
    using BenchReplicator::BenchReplicator;
    [[nodiscard]] SteadyClock::time_point failed_at() const { return failed_at_; }

   protected:
    [[nodiscard]] BackfillOptions backfill_options() const override {
      BackfillOptions options = BenchReplicator::backfill_options();
      options.parallel = 2;
      return options;
    }
    [[nodiscard]] std::vector<BackfillPartition> backfill_partitions(const json&) const override {
      return {{"slow", json::object()}, {"fail", json::object()}};
    }
    BackfillPage fetch_partition_page(const BackfillPartition& p, const std::string&,
                                      const std::optional<Timestamp>&,
                                      const CancellationToken& cancel) override {
      if (p.key == "slow") {
        context().http->get(integration().api_url + "/delay?ms=10000", {}, cancel);
        return {json::array(), "", 0};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the slow request get in flight
      try {
        context().http->get(integration().api_url + "/status/401", {}, cancel);
      } catch (...) {
        failed_at_ = SteadyClock::now();
        throw;
      }
      return {json::array(), "", 0};
    }

   private:
    SteadyClock::time_point failed_at_{};
  };

  void run() {
    const auto t0 = SteadyClock::now();
    std::printf("webhookdb-bench%s: %u cores\n", s.smoke ? " (smoke)" : "",
                std::thread::hardware_concurrency());
    // Ratios depend on what a commit costs: say how durable the server is.
    try {
      pqxx::connection c(s.database_url);
      pqxx::nontransaction nt(c);
      const auto r = nt.exec(
          "SELECT current_setting('server_version'), current_setting('fsync'), "
          "current_setting('synchronous_commit'),"
          " current_setting('full_page_writes'), current_setting('min_wal_size'), "
          "current_setting('max_wal_size')");
      std::printf(
          "PostgreSQL %s: fsync=%s synchronous_commit=%s full_page_writes=%s min_wal_size=%s "
          "max_wal_size=%s\n",
          r[0][0].c_str(), r[0][1].c_str(), r[0][2].c_str(), r[0][3].c_str(), r[0][4].c_str(),
          r[0][5].c_str());
      results["postgres"] = {{"version", r[0][0].c_str()},
                             {"fsync", r[0][1].c_str()},
                             {"synchronous_commit", r[0][2].c_str()},
                             {"full_page_writes", r[0][3].c_str()},
                             {"min_wal_size", r[0][4].c_str()},
                             {"max_wal_size", r[0][5].c_str()}};
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench: cannot read the server's settings (%s)\n", e.what());
    }
    const auto wanted = [&](const std::string& section) {
      return s.only.empty() || ("," + s.only + ",").find("," + section + ",") != std::string::npos;
    };
    if (wanted("write")) write_paths();
    if (wanted("e2e")) {
      if (baseline == 0) baseline = raw_copy_baseline();
      end_to_end_section();
    }
    if (wanted("rss")) memory_section();
    if (wanted("abort")) abort_section();
    results["smoke"] = s.smoke;
    results["seconds"] = seconds_since(t0);
    std::ofstream(s.json_path) << results.dump(2) << "\n";
    std::printf("\nresults written to %s\nbenchmark complete in %.0f s\n", s.json_path.c_str(),
                seconds_since(t0));
  }
};

long peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

int rss_child(const Settings& s) {
  g_mode = E2EMode{true, 0, s.child_objects};
  auto pool = std::make_shared<pg::ConnectionPool>(pg::Config{.url = s.database_url, .pool_size = 2});
  auto registry = std::make_shared<Registry>();
  registry->add(BenchReplicator::descriptor());
  ReplicatorContext ctx;
  ctx.http = curl::make_curl_client();
  ctx.replica = std::make_shared<pg::PgReplicaStore>(pool);
  ctx.jobs = std::make_shared<pg::PgJobStore>(pool);
  ctx.registry = registry;
  // One integration per table: a run reuses the one an earlier run made.
  ServiceIntegration si{.service_name = "bench_charge_v1",
                        .table_name = "bench_rss",
                        .api_url = s.server_url,
                        .backfill_key = "sk_bench"};
  if (auto found = ctx.jobs->find_integration_by_table(si.table_name)) {
    found->api_url = s.server_url;
    ctx.jobs->update_integration(*found);
    si = *found;
  } else {
    si = ctx.jobs->create_integration(si);
  }
  auto r = registry->make(si, ctx);
  ctx.replica->drop_table(r->table_spec());
  r->create_table();
  auto job = ctx.jobs->create_recursive(si, false, json::object());
  r->backfill(job);
  const auto count = ctx.replica->count(r->table_spec());
  ctx.replica->drop_table(r->table_spec());
  std::printf("rows %zu\npeak_rss_kib %ld\n", count, peak_rss_kib());
  return count == s.child_objects ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // The integrations' secrets are sealed (PgJobStore), as a host with a key
  // has them: without the host's key, a throwaway one (not a secret).
  if (std::getenv("WEBHOOKDB_SECRET_KEY") == nullptr && std::getenv("WEBHOOKDB_SECRET_KEY_FILE") == nullptr) {
    setenv("WEBHOOKDB_SECRET_KEY", "62656e63682d6f6e6c792d6b65792d6e6f742d612d7365637265742d2d2d2d21", 1);
  }
  Settings s;
  if (const char* env = std::getenv("WEBHOOKDB_TEST_DATABASE_URL")) s.database_url = env;
  CLI::App app{"webhookdb-bench: write paths, end to end, peak RSS, abort latency", "webhookdb-bench"};
  app.add_option("--database-url", s.database_url, "PostgreSQL (default: WEBHOOKDB_TEST_DATABASE_URL)");
  app.add_option("--server-exe", s.server_exe, "the webhookdb-api-server program");
  app.add_option("--json", s.json_path, "where the results go");
  app.add_flag("--smoke", s.smoke, "small and quick (CI)");
  app.add_option("--only", s.only, "sections: write,e2e,rss,abort (default: all)");
  app.add_option("--write-rows", s.write_n, "rows a write-path run writes")->check(CLI::PositiveNumber);
  app.add_option("--e2e-objects", s.e2e_n, "objects an end-to-end backfill fetches")->check(CLI::PositiveNumber);
  app.add_option("--e2e-filter", s.e2e_filter, "only the end-to-end configurations whose name contains this");
  app.add_option("--pool-size", s.pool_size, "pg::Config::pool_size of the library's store")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-concurrent-copies", s.max_concurrent_copies, "pg::Config::max_concurrent_copies")
      ->check(CLI::PositiveNumber);
  // The peak-RSS child (this program again, one backfill, then exit).
  app.add_flag("--rss-child", s.rss_child)->group("");
  app.add_option("--server-url", s.server_url)->group("");
  app.add_option("--objects", s.child_objects)->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (s.database_url.empty()) {
    std::fprintf(stderr, "webhookdb-bench: --database-url or WEBHOOKDB_TEST_DATABASE_URL is required\n");
    return 2;
  }
  try {
    if (s.rss_child) return rss_child(s);
    if (s.server_exe.empty()) {
      std::fprintf(stderr, "webhookdb-bench: --server-exe (the webhookdb-api-server program) is required\n");
      return 2;
    }
    if (s.smoke) {
      s.write_n = 3000;
      s.single_n = 500;
      s.e2e_n = 2000;
      s.rss_n = {2000, 6000};
      s.abort_runs = 2;
    }
    Bench bench(s);
    bench.run();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "webhookdb-bench: failed: %s\n", e.what());
    return 1;
  }
}
