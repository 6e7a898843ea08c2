// webhookdb-fault-worker: a worker process for the fault matrix. The same
// parts as webhookdb-worker (PgJobQueue, Worker, the pg stores, the curl
// client), wired the way a host would for a hostile environment, with the
// knobs webhookdb-worker does not expose on its command line:
//   --http-timeout-ms N        curl's total timeout (the API server's stalls outlast it)
//   --statement-timeout-ms N   every pooled connection's statement_timeout
//   --transient-backoff-s N    re-run delay after a retryable store error
// plus --database-url, --schema, --owner, --lease-seconds, --concurrency.
// Runs until SIGTERM/SIGINT, then drains; prints "ready on" once serving.

#include <pthread.h>
#include <signal.h>

#include <cmath>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "reliability/fault_replicators.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/jobs/worker.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"

int main(int argc, char** argv) {
  using namespace webhookdb;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::string database_url;
  std::string schema = "public";
  std::string owner = jobs::default_worker_owner();
  int concurrency = 1;
  long long statement_timeout_ms = 0;
  double lease_seconds = 3;
  long long http_timeout_ms = 60000;
  long long transient_backoff_s = 1;
  CLI::App app{"A worker for the fault matrix", "webhookdb-fault-worker"};
  app.add_option("--database-url", database_url)->required();
  app.add_option("--schema", schema);
  app.add_option("--owner", owner);
  app.add_option("--concurrency", concurrency)->check(CLI::PositiveNumber);
  app.add_option("--statement-timeout-ms", statement_timeout_ms)->check(CLI::NonNegativeNumber);
  app.add_option("--lease-seconds", lease_seconds)->check(CLI::PositiveNumber);
  app.add_option("--http-timeout-ms", http_timeout_ms)->check(CLI::PositiveNumber);
  app.add_option("--transient-backoff-s", transient_backoff_s)->check(CLI::NonNegativeNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  auto logger = std::make_shared<StderrLogger>(LogLevel::info);
  std::unique_ptr<jobs::Worker> worker;
  try {
    pg::Config config;
    config.url = database_url;
    config.schema = schema;
    config.replica_schema = config.schema;
    config.pool_size = concurrency + 4;
    // The schema tells one test's workers from another's on a shared server
    // (the fault matrix's terminator must only hit its own).
    config.application_name = "webhookdb-fault-worker " + config.schema;
    config.statement_timeout = std::chrono::milliseconds(statement_timeout_ms);
    config.acquire_timeout = std::chrono::seconds(20);
    // Backends are terminated under it: run a batch again on a fresh
    // connection a few times before giving the job back.
    config.retries = 3;
    auto pool = std::make_shared<pg::ConnectionPool>(config);
    auto job_store = std::make_shared<pg::PgJobStore>(pool);
    auto replica_store = std::make_shared<pg::PgReplicaStore>(pool);

    pg::PgJobQueueOptions queue_options;
    queue_options.lease =
        std::chrono::milliseconds(std::llround(lease_seconds * 1000.0));
    queue_options.logger = logger;
    queue_options.migrate = false;  // the test created it
    auto queue = std::make_shared<pg::PgJobQueue>(pool, queue_options);

    auto registry = std::make_shared<Registry>();
    test::register_fault_replicators(*registry);

    curl::CurlOptions curl_options;
    curl_options.timeout = std::chrono::milliseconds(http_timeout_ms);
    curl_options.connect_timeout = std::chrono::seconds(2);
    curl_options.user_agent = "webhookdb-fault-worker";

    ReplicatorContext context;
    context.http = curl::make_curl_client(curl_options);
    context.replica = replica_store;
    context.jobs = job_store;
    context.logger = logger;
    context.registry = registry;

    jobs::WorkerOptions options;
    options.concurrency = concurrency;
    options.poll_interval = std::chrono::milliseconds(300);
    options.owner = owner;
    options.logger = logger;
    options.transient_retries = 30;
    options.transient_backoff = std::chrono::seconds(transient_backoff_s);
    worker = std::make_unique<jobs::Worker>(registry, context, queue, options);
    worker->start();
    logger->log(LogLevel::info, "webhookdb-fault-worker " + worker->owner() + " ready on " +
                                    pg::redact_database_url(config.url));
  } catch (const std::exception& e) {
    logger->log(LogLevel::error, std::string("webhookdb-fault-worker could not start: ") + e.what());
    if (worker) worker->stop();
    return 1;
  }

  int received = 0;
  while (sigwait(&signals, &received) != 0) {
  }
  logger->log(LogLevel::info, "webhookdb-fault-worker draining");
  worker->stop();
  logger->log(LogLevel::info, "webhookdb-fault-worker drained, exiting");
  return 0;
}
