#pragma once
// webhookdb-worker's --metrics-port: the registry, the instrumented ports and
// the queue gauges read at each scrape. Private to the worker.

#include <memory>

#include "webhookdb/metrics.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::jobs {

// A registry whose every scrape also reads, from the queue table in
// `pool`'s schema: webhookdb_queue_jobs{state}, webhookdb_queue_due_jobs and
// webhookdb_queue_oldest_due_seconds (how long the oldest due job has waited).
[[nodiscard]] std::shared_ptr<Metrics> worker_metrics(std::shared_ptr<pg::ConnectionPool> pool);

// Wraps the context's HTTP client, progress sink and rate limiter (when set)
// so they feed `metrics`.
void instrument(ReplicatorContext& context, const std::shared_ptr<Metrics>& metrics);

}  // namespace webhookdb::jobs
