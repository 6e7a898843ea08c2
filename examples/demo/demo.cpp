// The demo: a real backfill from a local paginated API (with faults switched
// on) into PostgreSQL, then an incremental one, then a deletion at the source
// mirrored by a full backfill's sweep, with live progress and a summary. Run
// by scripts/demo.sh.
//
//   webhookdb-demo --database-url URL [--objects 50000] [--fault-rate 0.03]
//                  [--touch 2000] [--delete 5] [--seed 7]
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <webhookdb/curl/curl_http_client.hpp>
#include <webhookdb/pg/connection_pool.hpp>
#include <webhookdb/pg/job_store.hpp>
#include <webhookdb/pg/replica_store.hpp>
#include <webhookdb/webhookdb.hpp>

#include "api_server/api_server.hpp"

namespace {

using namespace webhookdb;
using Clock = std::chrono::steady_clock;

// The local API server's made-up charges API (/v1/charges): Stripe-like
// charges that carry an `updated` time and are listed by it (updated_since),
// which Stripe's real API cannot do (examples/stripe_charges follows Stripe).
class LocalChargeReplicator : public Replicator {
 public:
  using Replicator::Replicator;

  static Descriptor descriptor() {
    return {.name = "local_charge_v1", .resource_name_singular = "Local Charge",
            .resource_name_plural = "Local Charges", .supports_backfill = true,
            .factory = Descriptor::factory_for<LocalChargeReplicator>()};
  }

 protected:
  Column remote_key_column() const override { return Column("charge_id", ColumnType::text).key("id"); }
  std::vector<Column> denormalized_columns() const override {
    return {Column("amount", ColumnType::bigint),
            Column("currency", ColumnType::text),
            Column("customer", ColumnType::text).optional().indexed(),
            Column("status", ColumnType::text),
            Column("created", ColumnType::timestamptz).convert(converters::unix_timestamp()).indexed(),
            Column("updated", ColumnType::timestamptz).convert(converters::unix_timestamp()).indexed()};
  }
  UpdateRule update_rule() const override { return UpdateRule::when_newer("updated"); }
  // Soft deletes: a full backfill marks the rows the API no longer lists
  // (deleted_at). No margin: nothing but the demo's own runs writes this
  // table, one after another (a host receiving webhooks keeps the default).
  DeleteOptions delete_options() const override {
    return {.mode = DeleteMode::soft, .sweep_margin = std::chrono::seconds(0)};
  }

  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& since,
                                   const CancellationToken& cancel) override {
    pagination::QueryParams query;
    if (since) query.emplace_back("updated_since", std::to_string(unix_seconds(*since)));
    HttpRequest first{.url = pagination::with_query(integration().api_url + "/v1/charges", query)};
    BearerAuth authed(context().http, integration().backfill_key);  // the library adds Authorization
    return pages_.fetch(authed, first, token, cancel);
  }
  BackfillOptions backfill_options() const override { return {.retry_policy = polite_retry_policy()}; }

 private:
  pagination::StartingAfter pages_;
};

struct Options {
  std::string database_url;
  std::size_t objects = 50'000;
  double fault_rate = 0.03;
  std::size_t touch = 2'000;
  std::size_t remove = 5;
  std::uint64_t seed = 7;
};

// Exits (0 for --help, non-zero for a bad argument) when the line does not parse.
Options parse(int argc, char** argv) {
  Options o;
  if (const char* env = std::getenv("WEBHOOKDB_DATABASE_URL")) o.database_url = env;
  CLI::App app{"webhookdb-demo: a backfill from the local API into PostgreSQL", "webhookdb-demo"};
  app.add_option("--database-url", o.database_url, "PostgreSQL (default: WEBHOOKDB_DATABASE_URL)");
  app.add_option("--objects", o.objects, "charges the local API holds")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--fault-rate", o.fault_rate, "probability of a fault per page request")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--touch", o.touch, "charges changed before the incremental run")->capture_default_str();
  app.add_option("--delete", o.remove, "charges deleted at the source before the full backfill")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "dataset and fault seed")->capture_default_str();
  try {
    app.parse(argc, argv);
    if (o.database_url.empty()) {
      throw CLI::RequiredError("--database-url (or WEBHOOKDB_DATABASE_URL)");
    }
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  return o;
}

std::string thousands(std::uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Sums the per-backfiller snapshots and draws a bar on a terminal, or a plain
// line every second otherwise.
class ProgressDisplay final : public ProgressSink {
 public:
  ProgressDisplay(std::string label, std::uint64_t expected)
      : label_(std::move(label)), expected_(expected), tty_(isatty(STDOUT_FILENO) != 0) {}

  void on_progress(const BackfillProgress& p) override {
    std::lock_guard lock(mutex_);
    latest_[p.backfiller] = p;
    const auto now = Clock::now();
    if (now - last_draw_ < (tty_ ? std::chrono::milliseconds(100) : std::chrono::seconds(1)) && !p.done)
      return;
    last_draw_ = now;
    draw(false);
    drawn_final_ = all_done();
  }

  void finish() {
    std::lock_guard lock(mutex_);
    if (!drawn_final_ || tty_) draw(true);
  }

  [[nodiscard]] BackfillProgress total() const {
    BackfillProgress t;
    for (const auto& [key, p] : latest_) {
      t.pages += p.pages;
      t.items += p.items;
      t.rows_written += p.rows_written;
      t.rows_changed += p.rows_changed;
      t.retries += p.retries;
      t.bytes += p.bytes;
    }
    return t;
  }

  [[nodiscard]] bool all_done() const {
    for (const auto& [key, p] : latest_) {
      if (!p.done) return false;
    }
    return !latest_.empty();
  }

  [[nodiscard]] double seconds() const {
    return std::chrono::duration<double>(Clock::now() - started_).count();
  }

 private:
  void draw(bool final_line) {
    const BackfillProgress t = total();
    const double secs = seconds();
    const double rate = secs > 0 ? static_cast<double>(t.rows_written) / secs : 0.0;
    const double fraction =
        expected_ == 0 ? 1.0 : std::min(1.0, static_cast<double>(t.items) / static_cast<double>(expected_));
    char line[256];
    if (tty_) {
      constexpr int width = 30;
      const int filled = static_cast<int>(fraction * width);
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.append(static_cast<std::size_t>(width - filled), '-');
      std::snprintf(line, sizeof line,
                    "\r  %-12s [%s] %3.0f%%  %s rows  %s rows/s  pages %s  retries %s  %.1fs ",
                    label_.c_str(), bar.c_str(), fraction * 100, thousands(t.rows_written).c_str(),
                    thousands(static_cast<std::uint64_t>(rate)).c_str(), thousands(t.pages).c_str(),
                    thousands(t.retries).c_str(), secs);
      std::fputs(line, stdout);
      if (final_line) std::fputs("\n", stdout);
    } else {
      std::snprintf(line, sizeof line,
                    "  %-12s %3.0f%%  rows %s  rows/s %s  pages %s  retries %s  elapsed %.1fs\n",
                    label_.c_str(), fraction * 100, thousands(t.rows_written).c_str(),
                    thousands(static_cast<std::uint64_t>(rate)).c_str(), thousands(t.pages).c_str(),
                    thousands(t.retries).c_str(), secs);
      std::fputs(line, stdout);
    }
    std::fflush(stdout);
  }

  std::string label_;
  std::uint64_t expected_;
  bool tty_;
  mutable std::mutex mutex_;
  std::map<std::string, BackfillProgress> latest_;
  Clock::time_point started_ = Clock::now();
  Clock::time_point last_draw_{};
  bool drawn_final_ = false;
};

struct RunSummary {
  std::string label;
  BackfillProgress totals;
  double seconds = 0;
  int job_runs = 0;
};

// Runs one job to the end the way a job queue would: a RetryOrDie re-runs it
// (resuming from its checkpoints) after a short pause instead of its backoff.
RunSummary run_job(const std::shared_ptr<Registry>& registry, ReplicatorContext ctx,
                   const ServiceIntegration& si, bool incremental, const std::string& label,
                   std::uint64_t expected) {
  auto display = std::make_shared<ProgressDisplay>(label, expected);
  ctx.progress = display;
  auto job = ctx.jobs->create_recursive(si, incremental, nlohmann::json::object());
  JobRunner runner(registry, ctx);
  RunSummary summary{label, {}, 0, 0};
  for (int attempt = 1;; ++attempt) {
    summary.job_runs = attempt;
    try {
      const auto outcome = runner.run(job.id);
      if (outcome != JobRunOutcome::ran) {
        throw InvariantViolation("job did not run: " + std::string(to_string(outcome)));
      }
      break;
    } catch (const RetryOrDie& e) {
      if (attempt > e.retries()) throw;
      std::printf("\n  server trouble (%s): re-running the job; it resumes at its last checkpoint\n",
                  e.what());
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
  display->finish();
  summary.totals = display->total();
  summary.seconds = display->seconds();
  return summary;
}

void print_summary(const std::vector<RunSummary>& runs) {
  std::printf("\n  %-14s %12s %12s %8s %8s %9s %10s\n", "run", "rows written", "rows changed", "pages",
              "retries", "time (s)", "rows/s");
  std::printf("  %-14s %12s %12s %8s %8s %9s %10s\n", "--------------", "------------", "------------",
              "--------", "--------", "---------", "----------");
  for (const auto& r : runs) {
    std::printf("  %-14s %12s %12s %8s %8s %9.2f %10s\n", r.label.c_str(),
                thousands(r.totals.rows_written).c_str(), thousands(r.totals.rows_changed).c_str(),
                thousands(r.totals.pages).c_str(), thousands(r.totals.retries).c_str(), r.seconds,
                thousands(static_cast<std::uint64_t>(
                              r.seconds > 0 ? static_cast<double>(r.totals.rows_written) / r.seconds : 0))
                    .c_str());
  }
}

// Deletes `count` charges at the source through the API server's admin path
// (POST /admin/delete, mutations.hpp: they leave every listing), spread over
// the id range; returns their ids.
std::set<std::string> delete_at_source(HttpClient& http, const tools::ApiServer& server, std::size_t count) {
  const std::size_t objects = server.dataset().size();
  count = std::min(count, objects);
  std::set<std::string> ids;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string id = server.dataset().id(i * objects / count + objects / (2 * count));
    http.send({.method = "POST", .url = server.base_url() + "/admin/delete?id=" + id});
    ids.insert(id);
  }
  return ids;
}

// What the table holds against the source (checked after the last run).
struct TableCheck {
  std::size_t rows = 0;
  std::size_t distinct = 0;
  // Live rows not at the source's newest version, or rows of unknown ids.
  std::size_t mismatched = 0;
  // Rows marked deleted (deleted_at set).
  std::set<std::string> marked_deleted;
};

TableCheck check_table(ReplicaStore& replica, const TableSpec& spec, const tools::Dataset& source) {
  const std::size_t updated_col = spec.column_index("updated").value();
  const std::size_t deleted_col = spec.column_index(kDeletedAtColumn).value();
  TableCheck c;
  std::set<std::string> seen;
  replica.for_each(spec, [&](const Row& row) {
    ++c.rows;
    const auto id = row.key.get<std::string>();
    seen.insert(id);
    if (!row.values[deleted_col].is_null()) c.marked_deleted.insert(id);
    const auto index = source.index_of(id);
    if (!index) {
      ++c.mismatched;
    } else if (!source.deleted(*index) &&
               row.values[updated_col] !=
                   format_timestamp(Timestamp{std::chrono::seconds{source.updated(*index)}})) {
      ++c.mismatched;
    }
  });
  c.distinct = seen.size();
  return c;
}

int run(const Options& o) {
  std::printf("webhookdb-cpp demo\n\n");
  tools::ApiServerOptions server_options;
  server_options.objects = o.objects;
  server_options.seed = o.seed;
  server_options.threads = 2;
  server_options.faults = tools::FaultRates::spread(
      o.fault_rate,
      {tools::Fault::http500, tools::Fault::http502, tools::Fault::http503, tools::Fault::http429,
       tools::Fault::truncated, tools::Fault::drop, tools::Fault::empty, tools::Fault::wrong_type});
  server_options.retry_after_seconds = 1;
  tools::ApiServer server(server_options);
  server.start();
  std::printf("  API server    %s: %s Stripe-like charges in pages of 100, %.1f%% of requests faulty\n",
              server.base_url().c_str(), thousands(o.objects).c_str(), o.fault_rate * 100);
  std::printf("  PostgreSQL    %s\n\n", pg::redact_database_url(o.database_url).c_str());

  pg::Config config{.url = o.database_url, .pool_size = 4};
  auto pool = std::make_shared<pg::ConnectionPool>(config);
  auto registry = std::make_shared<Registry>();
  registry->add(LocalChargeReplicator::descriptor());

  ReplicatorContext ctx;
  ctx.http = curl::make_curl_client(curl::CurlOptions{.timeout = std::chrono::seconds(10)});
  ctx.replica = std::make_shared<pg::PgReplicaStore>(pool);
  ctx.jobs = std::make_shared<pg::PgJobStore>(pool);
  ctx.registry = registry;

  // A second run of the demo on the same database starts clean: the earlier
  // run's integration (one per table) goes, with its jobs.
  if (auto earlier = ctx.jobs->find_integration_by_table("local_charges"))
    ctx.jobs->delete_integration(earlier->id);
  ServiceIntegration si = ctx.jobs->create_integration({.service_name = "local_charge_v1",
                                                        .table_name = "local_charges",
                                                        .api_url = server.base_url(),
                                                        .backfill_key = "sk_test_demo_secret"});
  auto replicator = registry->make(si, ctx);
  const TableSpec& spec = replicator->table_spec();
  ctx.replica->drop_table(spec);  // a second run of the demo starts clean
  replicator->create_table();

  std::vector<RunSummary> runs;
  std::printf("1. First backfill of integration %s: nothing was backfilled yet, so every page\n",
              si.opaque_id.c_str());
  runs.push_back(run_job(registry, ctx, si, /*incremental=*/true, "first", o.objects));

  // Some charges change at the source after the first run.
  const auto now_unix =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  std::vector<std::size_t> touched;
  const std::size_t touch = std::min(o.touch, o.objects);
  for (std::size_t i = 0; i < touch; ++i)
    touched.push_back(i * (o.objects / std::max<std::size_t>(touch, 1)));
  server.touch(touched, now_unix + 5);
  std::printf("\n2. %s charges change at the source; the incremental backfill asks only for those\n",
              thousands(touch).c_str());
  si = ctx.jobs->find_integration(si.id).value();
  runs.push_back(run_job(registry, ctx, si, /*incremental=*/true, "incremental", touch));

  // A few charges are deleted at the source; the API announces nothing, so
  // only a full backfill can notice: its sweep marks what it did not list.
  const std::set<std::string> removed = delete_at_source(*ctx.http, server, o.remove);
  std::printf("\n3. %s charges are deleted at the source (POST /admin/delete); a full backfill lists\n"
              "   everything again and its sweep marks the rows it did not see (soft delete: deleted_at)\n",
              thousands(removed.size()).c_str());
  runs.push_back(run_job(registry, ctx, si, /*incremental=*/false, "full + sweep", o.objects - removed.size()));

  print_summary(runs);

  // The table must equal the source: every id once, each live one at its
  // newest version, and exactly the deleted ones marked deleted.
  const TableCheck table = check_table(*ctx.replica, spec, server.dataset());
  std::string marked;
  for (const auto& id : table.marked_deleted) marked += (marked.empty() ? "" : ", ") + id;
  std::printf("\n  marked deleted by the sweep: %s of %s rows (%s) -> %s\n",
              thousands(table.marked_deleted.size()).c_str(), thousands(table.rows).c_str(), marked.c_str(),
              table.marked_deleted == removed ? "exactly the charges deleted at the source"
                                              : "NOT THE CHARGES DELETED AT THE SOURCE");
  const auto stats = server.stats();
  std::printf("\n  faults the API server injected and the backfill survived: %s",
              thousands(stats.faults_total()).c_str());
  std::string kinds;
  for (std::size_t k = 1; k < tools::kFaultKinds; ++k) {
    const auto n = stats.faults[k];
    if (n == 0) continue;
    kinds += (kinds.empty() ? "" : ", ") + std::string(tools::to_string(static_cast<tools::Fault>(k))) + " " +
             thousands(n);
  }
  std::printf("%s%s%s\n", kinds.empty() ? "" : " (", kinds.c_str(), kinds.empty() ? "" : ")");
  const bool ok = table.rows == o.objects && table.distinct == o.objects && table.mismatched == 0 &&
                  table.marked_deleted == removed;
  std::printf("  table %s: %s rows, %s distinct ids, %s not at the source's newest version -> %s\n",
              spec.table.c_str(), thousands(table.rows).c_str(), thousands(table.distinct).c_str(),
              thousands(table.mismatched).c_str(), ok ? "equals the source" : "DIFFERS FROM THE SOURCE");
  server.stop();
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  // The integration's API key is stored sealed (PgJobStore), as a host with a
  // key (WEBHOOKDB_SECRET_KEY) has it; without one, the demo's own (not a secret).
  if (std::getenv("WEBHOOKDB_SECRET_KEY") == nullptr && std::getenv("WEBHOOKDB_SECRET_KEY_FILE") == nullptr) {
    setenv("WEBHOOKDB_SECRET_KEY", "64656d6f2d6f6e6c792d6b65792d6e6f742d612d7365637265742d2d2d2d2d21", 1);
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nwebhookdb-demo: failed: %s\n", e.what());
    return 1;
  }
}
