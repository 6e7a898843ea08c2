// A webhookdb-worker process with --metrics-port, scraped while it backfills
// from the local API server (issue 22: "a test that scrapes /metrics during a
// backfill and checks the counters move and parse").
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <sstream>

#include "api_server/api_server.hpp"
#include "jobs/demo_replicators.hpp"
#include "support/child_process.hpp"
#include "support/pg_test_env.hpp"
#include "support/prometheus_text.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::jobs {
namespace {

using namespace std::chrono_literals;

class MetricsProcessTest : public test::PgTest {};

TEST_F(MetricsProcessTest, CountersMoveWhileAWorkerBackfills) {
  auto pool = std::make_shared<pg::ConnectionPool>(config(4));
  auto jobs = std::make_shared<pg::PgJobStore>(pool);
  auto replica = std::make_shared<pg::PgReplicaStore>(pool);
  auto queue = std::make_shared<pg::PgJobQueue>(pool);
  auto registry = std::make_shared<Registry>();
  demo::register_demo_replicators(*registry);
  tools::ApiServerOptions o;
  o.objects = 3000;
  o.latency = 20ms;  // 30 pages of 100: long enough to be scraped mid-run
  o.threads = 4;
  tools::ApiServer server(o);
  server.start();

  ServiceIntegration si;
  si.service_name = demo::kChargeService;
  si.table_name = "metrics_charges";
  si.api_url = server.base_url();
  si.backfill_key = "sk_test_metrics_secret_5e1f";
  si = jobs->create_integration(si);
  ReplicatorContext ctx;
  ctx.replica = replica;
  ctx.jobs = jobs;
  ctx.registry = registry;
  registry->make(si, ctx)->create_table();
  const auto job = jobs->create_recursive(si, false, nlohmann::json::object());

  char dir[] = "/tmp/webhookdb-metrics-test.XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  test::ChildProcess worker(WEBHOOKDB_WORKER_EXE,
                            {"--database-url", schema().url(), "--schema", schema_name(), "--replica-schema",
                             schema_name(), "--poll-seconds", "0.2", "--metrics-port", "0", "--owner", "scraped", "--log-format", "json"},
                            std::string(dir) + "/worker.log");
  ASSERT_TRUE(worker.wait_for_log("ready on", 20s)) << worker.log();
  std::smatch m;
  const std::string log = worker.log();
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(metrics on http://127\.0\.0\.1:([0-9]+)/metrics)"))) << log;
  const std::string url = "http://127.0.0.1:" + m[1].str() + "/metrics";
  auto http = curl::make_curl_client();
  const auto scrape = [&] {
    HttpRequest request{.url = url, .timeout = 10s};
    return test::parse_exposition(http->send(request).body);
  };

  const auto idle = scrape();
  EXPECT_EQ(idle.at("webhookdb_queue_jobs{state=\"queued\"}"), 0);
  queue->enqueue(job.id);

  // Mid-run: rows counted, not all of them yet.
  double mid_rows = 0;
  ASSERT_TRUE(test::wait_until(
      [&] {
        const auto s = scrape();
        const auto it = s.find("webhookdb_backfill_rows_written_total");
        mid_rows = it == s.end() ? 0 : it->second;
        return mid_rows > 0;
      },
      60s))
      << worker.log();
  EXPECT_LT(mid_rows, 3000) << "the scrape came after the backfill: no mid-run figure";

  ASSERT_TRUE(test::wait_until(
      [&] {
        const auto e = queue->entry(job.id);
        return e && e->state == pg::QueueState::done;
      },
      120s))
      << worker.log();
  const auto done = scrape();
  EXPECT_EQ(done.at("webhookdb_backfill_rows_written_total"), 3000);
  EXPECT_EQ(done.at("webhookdb_backfill_pages_total"), 30);
  EXPECT_EQ(done.at("webhookdb_backfills_finished_total"), 1);
  EXPECT_GE(done.at("webhookdb_http_requests_total{outcome=\"2xx\"}"), 30);
  EXPECT_GE(done.at("webhookdb_http_request_duration_seconds_count{outcome=\"2xx\"}"), 30);
  EXPECT_GT(done.at("webhookdb_http_request_duration_seconds_sum{outcome=\"2xx\"}"), 30 * 0.015)
      << "30 requests of 20 ms each";
  EXPECT_EQ(done.at("webhookdb_queue_jobs{state=\"done\"}"), 1);
  EXPECT_EQ(done.at("webhookdb_queue_due_jobs"), 0);

  worker.signal(SIGTERM);
  EXPECT_EQ(worker.wait_exit(15s), std::optional<int>(0));
  const std::string all = worker.log();
  EXPECT_EQ(all.find("sk_test_metrics_secret_5e1f"), std::string::npos) << "a secret in the worker's output";
  // --log-format json: every line one object a log shipper can read.
  std::istringstream lines(all);
  std::string line;
  int parsed = 0;
  while (std::getline(lines, line)) {
    const auto entry = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(entry.is_object() && entry.contains("ts") && entry.contains("level") && entry.contains("msg"))
        << "not a JSON log line: " << line;
    ++parsed;
  }
  EXPECT_GE(parsed, 3);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  server.stop();
}

}  // namespace
}  // namespace webhookdb::jobs
