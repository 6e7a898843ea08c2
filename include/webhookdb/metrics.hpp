#pragma once
// Counters, gauges and histograms rendered in Prometheus' text format
// (version 0.0.4), and the decorators that feed them from the ports a
// replicator already goes through: progress (rows, pages), HTTP requests
// (latency by outcome) and the quota governor (waits and refusals by quota
// key). A host serves render() on an endpoint of its own (webhookdb-worker
// and the webhook receiver: --metrics-port, jobs/metrics_server.hpp).
//
//   auto metrics = std::make_shared<Metrics>();
//   ctx.progress = std::make_shared<MetricsProgressSink>(metrics, ctx.progress);
//   ctx.http = std::make_shared<MetricsHttpClient>(ctx.http, metrics);
//   ctx.rate_limiter = std::make_shared<MeteredRateLimiter>(ctx.rate_limiter, metrics);
//   std::string text = metrics->render();
//
// Labels are kept few on purpose: nothing is labelled per integration (a
// host with 100,000 of them would flood its Prometheus); quota keys are a
// service and a hash of the credential, never the credential.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/logger.hpp"
#include "webhookdb/rate_limiter.hpp"

namespace webhookdb {

enum class MetricKind { counter, gauge, histogram };

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Thread-safe.
class WEBHOOKDB_EXPORT Metrics {
 public:
  // Seconds, from 5 ms to 10 s.
  [[nodiscard]] static std::vector<double> default_buckets();

  // Declares a family with its help text (and a histogram's upper bounds).
  // Using a name before describing it declares it with the kind of that use
  // and no help. A name that is not [a-zA-Z_:][a-zA-Z0-9_:]*, or a second
  // declaration with another kind, is an InvalidPrecondition.
  void describe(const std::string& name, MetricKind kind, std::string help, std::vector<double> buckets = {});
  // A counter goes up by `delta` (>= 0).
  void add(const std::string& name, double delta, const MetricLabels& labels = {});
  // A gauge is set.
  void set(const std::string& name, double value, const MetricLabels& labels = {});
  // A histogram observes one value.
  void observe(const std::string& name, double value, const MetricLabels& labels = {});
  // Runs before each render (e.g. to read queue depths into gauges); an
  // exception it throws is counted in webhookdb_metrics_collect_errors_total.
  void on_collect(std::function<void(Metrics&)> collector);

  // Every family, # HELP and # TYPE first, label values escaped.
  [[nodiscard]] std::string render();
  // A counter's or gauge's value, a histogram's count; 0 when absent.
  [[nodiscard]] double value(const std::string& name, const MetricLabels& labels = {}) const;

 private:
  struct Series {
    MetricLabels labels;
    double value = 0;  // counter, gauge; a histogram's sum
    std::vector<std::uint64_t> bucket_counts;
    std::uint64_t count = 0;
  };
  struct Family {
    MetricKind kind = MetricKind::counter;
    std::string help;
    std::vector<double> buckets;
    std::map<std::string, Series> series;  // by rendered label set
  };
  Family& family(const std::string& name, MetricKind kind);
  static Series& series(Family& family, const MetricLabels& labels);

  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
  std::vector<std::function<void(Metrics&)>> collectors_;
  std::mutex collect_mutex_;
};

// Turns the cumulative progress of each backfiller run into counter
// increments (webhookdb_backfill_pages_total, _items_total, _rows_written_total,
// _rows_changed_total, _retries_total, _bytes_total, and
// webhookdb_backfills_finished_total), then passes it on to `next`.
class WEBHOOKDB_EXPORT MetricsProgressSink final : public ProgressSink {
 public:
  explicit MetricsProgressSink(std::shared_ptr<Metrics> metrics, std::shared_ptr<ProgressSink> next = nullptr);
  void on_progress(const BackfillProgress& progress) override;

 private:
  std::shared_ptr<Metrics> metrics_;
  std::shared_ptr<ProgressSink> next_;
  std::mutex mutex_;
  std::map<std::string, BackfillProgress> last_;  // by job and backfiller
};

// Times every request: webhookdb_http_requests_total and the histogram
// webhookdb_http_request_duration_seconds, by outcome (2xx, 3xx, 4xx, 429,
// 5xx, timeout, error).
class WEBHOOKDB_EXPORT MetricsHttpClient final : public HttpClientDecorator {
 public:
  MetricsHttpClient(std::shared_ptr<HttpClient> next, std::shared_ptr<Metrics> metrics);
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override;

 private:
  std::shared_ptr<Metrics> metrics_;
};

// The quota governor, measured: webhookdb_quota_permits_total and
// webhookdb_quota_wait_seconds_total (time spent waiting for a permit), and
// webhookdb_quota_limited_total (responses that said slow down: 429s and
// their kin), each by quota key.
class WEBHOOKDB_EXPORT MeteredRateLimiter final : public RateLimiter {
 public:
  MeteredRateLimiter(std::shared_ptr<RateLimiter> next, std::shared_ptr<Metrics> metrics);
  void acquire(const std::string& key, QuotaLane lane, const CancellationToken& cancel) override;
  void observe(const std::string& key, const QuotaSignal& signal) override;
  void declare(const std::string& key, const RateLimit& limit) override;

 private:
  std::shared_ptr<RateLimiter> next_;
  std::shared_ptr<Metrics> metrics_;
};

}  // namespace webhookdb
