// Metrics (webhookdb/metrics.hpp) and their endpoint (jobs/metrics_server.hpp):
// the text format parses line by line, counters only go up, the decorators
// count what passes through them, and the endpoint answers over loopback and
// survives a client that never sends its request.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "support/prometheus_text.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/jobs/metrics_server.hpp"
#include "webhookdb/metrics.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/mock_http_client.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::test {
namespace {

using namespace std::chrono_literals;

TEST(Metrics, RendersCountersGaugesAndCumulativeHistograms) {
  Metrics m;
  m.describe("jobs_total", MetricKind::counter, "Jobs.\nTwo lines.");
  m.add("jobs_total", 2, {{"state", "done"}});
  m.add("jobs_total", 1, {{"state", "done"}});
  m.add("jobs_total", 1, {{"state", "we\"ird\\\n"}});
  m.set("depth", 7);
  m.set("depth", 4);
  m.describe("latency_seconds", MetricKind::histogram, "Latency.", {0.1, 1});
  m.observe("latency_seconds", 0.05);
  m.observe("latency_seconds", 0.5);
  m.observe("latency_seconds", 5);
  const std::string text = m.render();
  const auto samples = parse_exposition(text);
  EXPECT_EQ(samples.at("jobs_total{state=\"done\"}"), 3);
  EXPECT_EQ(samples.at(R"(jobs_total{state="we\"ird\\\n"})"), 1);
  EXPECT_EQ(samples.at("depth"), 4);
  EXPECT_EQ(samples.at("latency_seconds_bucket{le=\"0.1\"}"), 1);
  EXPECT_EQ(samples.at("latency_seconds_bucket{le=\"1\"}"), 2);
  EXPECT_EQ(samples.at("latency_seconds_bucket{le=\"+Inf\"}"), 3);
  EXPECT_EQ(samples.at("latency_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(samples.at("latency_seconds_sum"), 5.55);
  EXPECT_NE(text.find("# HELP jobs_total Jobs.\\nTwo lines.\n# TYPE jobs_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE latency_seconds histogram\n"), std::string::npos);
  EXPECT_EQ(m.value("latency_seconds"), 3);
}

TEST(Metrics, RefusesWhatPrometheusWouldNot) {
  Metrics m;
  EXPECT_THROW(m.add("bad name", 1), InvalidPrecondition);
  EXPECT_THROW(m.add("0starts_with_digit", 1), InvalidPrecondition);
  EXPECT_THROW(m.add("ok_total", 1, {{"bad-label", "x"}}), InvalidPrecondition);
  EXPECT_THROW(m.add("ok_total", 1, {{"le", "x"}}), InvalidPrecondition);
  EXPECT_THROW(m.add("ok_total", -1), InvalidPrecondition);
  m.add("ok_total", 1);
  EXPECT_THROW(m.set("ok_total", 3), InvalidPrecondition) << "a counter is not a gauge";
  EXPECT_EQ(m.value("ok_total"), 1);
}

TEST(Metrics, ACollectorThatFailsIsCountedAndTheScrapeStillAnswers) {
  Metrics m;
  m.on_collect([](Metrics& self) { self.set("queue_depth", 12); });
  m.on_collect([](Metrics&) { throw StoreError("database unreachable", true); });
  const auto samples = parse_exposition(m.render());
  EXPECT_EQ(samples.at("queue_depth"), 12);
  EXPECT_EQ(samples.at("webhookdb_metrics_collect_errors_total"), 1);
}

TEST(Metrics, ProgressBecomesIncrementsAcrossRunsOfOneBackfiller) {
  auto m = std::make_shared<Metrics>();
  MetricsProgressSink sink(m);
  BackfillProgress p{.job_id = 7, .integration = "svi_a", .backfiller = "0", .pages = 1, .items = 10,
                     .rows_written = 10, .rows_changed = 10};
  sink.on_progress(p);
  p.pages = 3;
  p.items = p.rows_written = 30;
  sink.on_progress(p);
  p.done = true;
  sink.on_progress(p);
  // The same job resumed later counts from zero again.
  BackfillProgress again{.job_id = 7, .integration = "svi_a", .backfiller = "0", .pages = 2, .items = 20,
                         .rows_written = 20};
  sink.on_progress(again);
  EXPECT_EQ(m->value("webhookdb_backfill_pages_total"), 5);
  EXPECT_EQ(m->value("webhookdb_backfill_rows_written_total"), 50);
  EXPECT_EQ(m->value("webhookdb_backfill_rows_changed_total"), 10);
  EXPECT_EQ(m->value("webhookdb_backfills_finished_total"), 1);
}

TEST(Metrics, TheHttpDecoratorCountsOutcomes) {
  auto m = std::make_shared<Metrics>();
  auto mock = std::make_shared<testing::MockHttpClient>();
  mock->respond(200, "ok");
  mock->respond(429, "slow down");
  mock->timeout();
  mock->respond(503, "busy");
  MetricsHttpClient http(mock, m);
  HttpRequest request{.url = "https://api.example.test/x"};
  EXPECT_NO_THROW((void)http.send(request));
  EXPECT_THROW((void)http.send(request), HttpError);
  EXPECT_THROW((void)http.send(request), HttpTimeout);
  request.raise_for_status = false;
  EXPECT_EQ(http.send(request).status, 503);
  for (const char* outcome : {"2xx", "429", "timeout", "5xx"}) {
    EXPECT_EQ(m->value("webhookdb_http_requests_total", {{"outcome", outcome}}), 1) << outcome;
    EXPECT_EQ(m->value("webhookdb_http_request_duration_seconds", {{"outcome", outcome}}), 1) << outcome;
  }
}

TEST(Metrics, TheRateLimiterDecoratorCountsPermitsAndRefusalsByQuotaKey) {
  auto m = std::make_shared<Metrics>();
  auto clock = std::make_shared<testing::ManualClock>();
  auto limiter = std::make_shared<MemoryRateLimiter>(clock, std::make_shared<testing::RecordingSleeper>(clock));
  MeteredRateLimiter metered(limiter, m);
  for (int i = 0; i < 3; ++i) metered.acquire("github:abc123", QuotaLane::full, CancellationToken{});
  metered.observe("github:abc123", QuotaSignal{.status = 429, .limited = true});
  metered.observe("github:abc123", QuotaSignal{.status = 200});
  EXPECT_EQ(m->value("webhookdb_quota_permits_total", {{"quota_key", "github:abc123"}}), 3);
  EXPECT_EQ(m->value("webhookdb_quota_limited_total", {{"quota_key", "github:abc123"}, {"status", "429"}}), 1);
  EXPECT_NE(m->render().find("webhookdb_quota_wait_seconds_total{quota_key=\"github:abc123\"}"), std::string::npos);
}

TEST(JsonLinesLoggerTest, OneParseableLinePerMessageWhateverItHolds) {
  const std::string text = JsonLinesLogger::line(Timestamp{} + std::chrono::seconds(1'700'000'000), LogLevel::warn,
                                                 "two\nlines, a \"quote\" and bad \xff bytes");
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  const auto entry = nlohmann::json::parse(text);
  EXPECT_EQ(entry["ts"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(entry["level"], "warn");
  EXPECT_EQ(entry["msg"], "two\nlines, a \"quote\" and bad \xef\xbf\xbd bytes");
}

TEST(MetricsServerTest, AnswersGetMetricsAndNothingElseEvenAfterAStalledClient) {
  auto m = std::make_shared<Metrics>();
  m->add("served_total", 42);
  jobs::MetricsServer server(m, "127.0.0.1", 0);
  ASSERT_NE(server.port(), 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());

  // Clients that connect and send nothing (20 of them once held a scrape
  // 36 s, each taking its 2 s turn) do not delay a scrape.
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> stalled;
  for (int i = 0; i < 20; ++i) {
    stalled.push_back(::socket(AF_INET, SOCK_STREAM, 0));
    ASSERT_EQ(::connect(stalled.back(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }

  auto http = curl::make_curl_client();
  const auto start = std::chrono::steady_clock::now();
  HttpRequest request{.url = base + "/metrics", .timeout = 10s, .raise_for_status = false};
  const auto r = http->send(request);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "the scrape waited for the stalled clients (serially: 40 s)";
  for (const int fd : stalled) ::close(fd);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type").value_or(""), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(parse_exposition(r.body).at("served_total"), 42);

  request.url = base + "/";
  EXPECT_EQ(http->send(request).status, 404);
  request.url = base + "/metrics";
  request.method = "POST";
  EXPECT_EQ(http->send(request).status, 404);
}

TEST(MetricsServerTest, APortInUseIsAClearError) {
  auto m = std::make_shared<Metrics>();
  jobs::MetricsServer first(m, "127.0.0.1", 0);
  try {
    jobs::MetricsServer second(m, "127.0.0.1", first.port());
    FAIL() << "two servers on one port";
  } catch (const InvalidPrecondition& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(first.port())), std::string::npos) << e.what();
  }
  EXPECT_THROW(jobs::MetricsServer(m, "not-an-address", 0), InvalidPrecondition);
}

}  // namespace
}  // namespace webhookdb::test
