#include "jobs/worker_metrics.hpp"

#include <string>

namespace webhookdb::jobs {
namespace {

double number(const std::optional<std::string>& text) { return text ? std::stod(*text) : 0; }

}  // namespace

std::shared_ptr<Metrics> worker_metrics(std::shared_ptr<pg::ConnectionPool> pool) {
  auto metrics = std::make_shared<Metrics>();
  metrics->describe("webhookdb_queue_jobs", MetricKind::gauge, "Jobs in the queue table, by state.");
  metrics->describe("webhookdb_queue_due_jobs", MetricKind::gauge, "Queued jobs whose time has come.");
  metrics->describe("webhookdb_queue_oldest_due_seconds", MetricKind::gauge,
                    "How long the oldest due job has waited to be taken.");
  metrics->describe("webhookdb_metrics_collect_errors_total", MetricKind::counter,
                    "Scrapes that could not read the queue (the database was unreachable).");
  metrics->on_collect([pool](Metrics& m) {
    // One connection for both reads; the schema quoted by the adapter.
    pool->autocommit([&](pg::Session& session) {
      const std::string table = session.quote_name(pool->config().schema) + ".webhookdb_job_queue";
      const auto by_state = session.exec("SELECT state, count(*) AS n FROM " + table + " GROUP BY state");
      for (const char* state : {"queued", "running", "done", "failed", "cancelled"}) {
        double n = 0;
        for (std::size_t i = 0; i < by_state.rows.size(); ++i) {
          if (by_state.at(i, "state") == state) n = number(by_state.at(i, "n"));
        }
        m.set("webhookdb_queue_jobs", n, {{"state", state}});
      }
      const auto due = session.exec(
          "SELECT count(*) AS n, COALESCE(extract(epoch FROM clock_timestamp() - "
          "min(GREATEST(enqueued_at, COALESCE(run_at, enqueued_at)))), 0) AS oldest FROM " +
          table + " WHERE state = 'queued' AND (run_at IS NULL OR run_at <= clock_timestamp())");
      m.set("webhookdb_queue_due_jobs", number(due.at(0, "n")));
      m.set("webhookdb_queue_oldest_due_seconds", number(due.at(0, "oldest")));
    });
  });
  return metrics;
}

void instrument(ReplicatorContext& context, const std::shared_ptr<Metrics>& metrics) {
  if (context.http) context.http = std::make_shared<MetricsHttpClient>(context.http, metrics);
  context.progress = std::make_shared<MetricsProgressSink>(metrics, context.progress);
  if (context.rate_limiter) context.rate_limiter = std::make_shared<MeteredRateLimiter>(context.rate_limiter, metrics);
}

}  // namespace webhookdb::jobs
