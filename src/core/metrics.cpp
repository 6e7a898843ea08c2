#include "webhookdb/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>

#include "webhookdb/errors.hpp"

namespace webhookdb {
namespace {

bool valid_name(const std::string& name, bool allow_colon) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(const std::string& help) {
  std::string out;
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buffer, sizeof buffer, "%.0f", v);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.9g", v);
  }
  return buffer;
}

// {a="x",b="y"}, or "" without labels; `extra` (le="...") goes last.
std::string label_text(const MetricLabels& labels, const std::string& extra = {}) {
  if (labels.empty() && extra.empty()) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ",";
    first = false;
    out += name + "=\"" + escape_label_value(value) + "\"";
  }
  if (!extra.empty()) out += (first ? "" : ",") + extra;
  return out + "}";
}

const char* type_name(MetricKind kind) {
  switch (kind) {
    case MetricKind::counter:
      return "counter";
    case MetricKind::gauge:
      return "gauge";
    case MetricKind::histogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::vector<double> Metrics::default_buckets() { return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}; }

void Metrics::describe(const std::string& name, MetricKind kind, std::string help, std::vector<double> buckets) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, kind);
  f.help = std::move(help);
  if (kind == MetricKind::histogram && !buckets.empty() && f.series.empty()) {
    std::sort(buckets.begin(), buckets.end());
    f.buckets = std::move(buckets);
  }
}

Metrics::Family& Metrics::family(const std::string& name, MetricKind kind) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    if (!valid_name(name, true)) throw InvalidPrecondition("metric name '" + name + "' is not a Prometheus name");
    Family f;
    f.kind = kind;
    if (kind == MetricKind::histogram) f.buckets = default_buckets();
    it = families_.emplace(name, std::move(f)).first;
  } else if (it->second.kind != kind) {
    throw InvalidPrecondition("metric '" + name + "' is a " + type_name(it->second.kind) + ", used as a " +
                              type_name(kind));
  }
  return it->second;
}

Metrics::Series& Metrics::series(Family& family, const MetricLabels& labels) {
  for (const auto& [label, value] : labels) {
    (void)value;
    if (!valid_name(label, false) || label.rfind("__", 0) == 0 || label == "le") {
      throw InvalidPrecondition("metric label '" + label + "' is not a Prometheus label name");
    }
  }
  auto [it, inserted] = family.series.try_emplace(label_text(labels));
  if (inserted) {
    it->second.labels = labels;
    it->second.bucket_counts.assign(family.buckets.size(), 0);
  }
  return it->second;
}

void Metrics::add(const std::string& name, double delta, const MetricLabels& labels) {
  if (!(delta >= 0)) throw InvalidPrecondition("counter '" + name + "' cannot go down");
  std::lock_guard lock(mutex_);
  series(family(name, MetricKind::counter), labels).value += delta;
}

void Metrics::set(const std::string& name, double value, const MetricLabels& labels) {
  std::lock_guard lock(mutex_);
  series(family(name, MetricKind::gauge), labels).value = value;
}

void Metrics::observe(const std::string& name, double value, const MetricLabels& labels) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, MetricKind::histogram);
  Series& s = series(f, labels);
  for (std::size_t i = 0; i < f.buckets.size(); ++i) {
    if (value <= f.buckets[i]) ++s.bucket_counts[i];
  }
  s.value += value;
  ++s.count;
}

void Metrics::on_collect(std::function<void(Metrics&)> collector) {
  std::lock_guard lock(collect_mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Metrics::render() {
  {
    // One scrape collects at a time; the collectors call set() (mutex_).
    std::lock_guard lock(collect_mutex_);
    for (const auto& collect : collectors_) {
      try {
        collect(*this);
      } catch (const std::exception&) {
        add("webhookdb_metrics_collect_errors_total", 1);
      }
    }
  }
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    if (!f.help.empty()) out += "# HELP " + name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + name + " " + type_name(f.kind) + "\n";
    for (const auto& [key, s] : f.series) {
      if (f.kind != MetricKind::histogram) {
        out += name + key + " " + format_number(s.value) + "\n";
        continue;
      }
      for (std::size_t i = 0; i < f.buckets.size(); ++i) {
        out += name + "_bucket" + label_text(s.labels, "le=\"" + format_number(f.buckets[i]) + "\"") + " " +
               std::to_string(s.bucket_counts[i]) + "\n";
      }
      out += name + "_bucket" + label_text(s.labels, "le=\"+Inf\"") + " " + std::to_string(s.count) + "\n";
      out += name + "_sum" + key + " " + format_number(s.value) + "\n";
      out += name + "_count" + key + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

double Metrics::value(const std::string& name, const MetricLabels& labels) const {
  std::lock_guard lock(mutex_);
  const auto f = families_.find(name);
  if (f == families_.end()) return 0;
  const auto s = f->second.series.find(label_text(labels));
  if (s == f->second.series.end()) return 0;
  return f->second.kind == MetricKind::histogram ? static_cast<double>(s->second.count) : s->second.value;
}

// --- MetricsProgressSink ---

MetricsProgressSink::MetricsProgressSink(std::shared_ptr<Metrics> metrics, std::shared_ptr<ProgressSink> next)
    : metrics_(std::move(metrics)), next_(std::move(next)) {
  metrics_->describe("webhookdb_backfill_pages_total", MetricKind::counter, "Backfill pages fetched.");
  metrics_->describe("webhookdb_backfill_items_total", MetricKind::counter, "Items on the backfill pages fetched.");
  metrics_->describe("webhookdb_backfill_rows_written_total", MetricKind::counter,
                     "Rows backfills asked the store to write.");
  metrics_->describe("webhookdb_backfill_rows_changed_total", MetricKind::counter,
                     "Rows backfills inserted or updated (the update rule let them through).");
  metrics_->describe("webhookdb_backfill_retries_total", MetricKind::counter, "Backfill page fetches retried.");
  metrics_->describe("webhookdb_backfill_bytes_total", MetricKind::counter, "Bytes of backfill pages fetched.");
  metrics_->describe("webhookdb_backfills_finished_total", MetricKind::counter,
                     "Backfiller runs that reached their last page.");
}

void MetricsProgressSink::on_progress(const BackfillProgress& progress) {
  BackfillProgress before;
  {
    std::lock_guard lock(mutex_);
    const std::string key = std::to_string(progress.job_id) + "/" + progress.integration + "/" + progress.backfiller;
    auto [it, inserted] = last_.try_emplace(key);
    before = it->second;
    // A resumed or retried run counts from zero again.
    if (!inserted && progress.pages < before.pages) before = BackfillProgress{};
    if (progress.done) {
      last_.erase(it);
    } else {
      it->second = progress;
    }
  }
  const auto grow = [&](const char* name, std::uint64_t now, std::uint64_t was) {
    if (now > was) metrics_->add(name, static_cast<double>(now - was));
  };
  grow("webhookdb_backfill_pages_total", progress.pages, before.pages);
  grow("webhookdb_backfill_items_total", progress.items, before.items);
  grow("webhookdb_backfill_rows_written_total", progress.rows_written, before.rows_written);
  grow("webhookdb_backfill_rows_changed_total", progress.rows_changed, before.rows_changed);
  grow("webhookdb_backfill_retries_total", progress.retries, before.retries);
  grow("webhookdb_backfill_bytes_total", progress.bytes, before.bytes);
  if (progress.done) metrics_->add("webhookdb_backfills_finished_total", 1);
  if (next_) next_->on_progress(progress);
}

// --- MetricsHttpClient ---

namespace {
std::string outcome_of(int status) {
  if (status == 429) return "429";
  if (status >= 500) return "5xx";
  if (status >= 400) return "4xx";
  if (status >= 300) return "3xx";
  return "2xx";
}
}  // namespace

MetricsHttpClient::MetricsHttpClient(std::shared_ptr<HttpClient> next, std::shared_ptr<Metrics> metrics)
    : HttpClientDecorator(std::move(next)), metrics_(std::move(metrics)) {
  metrics_->describe("webhookdb_http_requests_total", MetricKind::counter,
                     "API requests by outcome (2xx, 3xx, 4xx, 429, 5xx, timeout, error).");
  metrics_->describe("webhookdb_http_request_duration_seconds", MetricKind::histogram,
                     "Time from sending an API request to its answer or failure, by outcome.");
}

HttpResponse MetricsHttpClient::send(const HttpRequest& request, const CancellationToken& cancel) {
  const auto start = std::chrono::steady_clock::now();
  std::string outcome = "error";
  const auto record = [&] {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics_->add("webhookdb_http_requests_total", 1, {{"outcome", outcome}});
    metrics_->observe("webhookdb_http_request_duration_seconds", seconds, {{"outcome", outcome}});
  };
  try {
    HttpResponse response = next().send(request, cancel);
    outcome = outcome_of(response.status);
    record();
    return response;
  } catch (const HttpError& e) {
    outcome = outcome_of(e.status());
    record();
    throw;
  } catch (const HttpTimeout&) {
    outcome = "timeout";
    record();
    throw;
  } catch (const Cancelled&) {
    throw;  // not the API's doing
  } catch (...) {
    record();
    throw;
  }
}

// --- MeteredRateLimiter ---

MeteredRateLimiter::MeteredRateLimiter(std::shared_ptr<RateLimiter> next, std::shared_ptr<Metrics> metrics)
    : next_(std::move(next)), metrics_(std::move(metrics)) {
  if (!next_) throw InvalidPrecondition("MeteredRateLimiter needs a rate limiter to measure");
  metrics_->describe("webhookdb_quota_permits_total", MetricKind::counter, "Permits granted, by quota key.");
  metrics_->describe("webhookdb_quota_wait_seconds_total", MetricKind::counter,
                     "Time requests waited for a permit, by quota key.");
  metrics_->describe("webhookdb_quota_limited_total", MetricKind::counter,
                     "Responses that said slow down (429, 503 or 403 with Retry-After...), by quota key.");
}

void MeteredRateLimiter::acquire(const std::string& key, QuotaLane lane, const CancellationToken& cancel) {
  const auto start = std::chrono::steady_clock::now();
  const auto waited = [&] {
    metrics_->add("webhookdb_quota_wait_seconds_total",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                  {{"quota_key", key}});
  };
  try {
    next_->acquire(key, lane, cancel);
  } catch (...) {
    waited();
    throw;
  }
  waited();
  metrics_->add("webhookdb_quota_permits_total", 1, {{"quota_key", key}});
}

void MeteredRateLimiter::observe(const std::string& key, const QuotaSignal& signal) {
  if (signal.limited) {
    metrics_->add("webhookdb_quota_limited_total", 1, {{"quota_key", key}, {"status", std::to_string(signal.status)}});
  }
  next_->observe(key, signal);
}

void MeteredRateLimiter::declare(const std::string& key, const RateLimit& limit) { next_->declare(key, limit); }

}  // namespace webhookdb
