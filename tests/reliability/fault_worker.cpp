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
#include <map>
#include <string>

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

  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  auto arg = [&](const std::string& name, const std::string& fallback) {
    auto it = args.find(name);
    return it == args.end() ? fallback : it->second;
  };
  if (arg("--database-url", "").empty()) {
    std::cerr << "usage: webhookdb-fault-worker --database-url URL [--schema S] [--owner O] ...\n";
    return 2;
  }

  auto logger = std::make_shared<StderrLogger>(LogLevel::info);
  std::unique_ptr<jobs::Worker> worker;
  try {
    pg::Config config;
    config.url = arg("--database-url", "");
    config.schema = arg("--schema", "public");
    config.replica_schema = config.schema;
    const int concurrency = std::stoi(arg("--concurrency", "1"));
    config.pool_size = concurrency + 4;
    // The schema tells one test's workers from another's on a shared server
    // (the fault matrix's terminator must only hit its own).
    config.application_name = "webhookdb-fault-worker " + config.schema;
    config.statement_timeout = std::chrono::milliseconds(std::stoll(arg("--statement-timeout-ms", "0")));
    config.acquire_timeout = std::chrono::seconds(20);
    // Backends are terminated under it: run a batch again on a fresh
    // connection a few times before giving the job back.
    config.retries = 3;
    auto pool = std::make_shared<pg::ConnectionPool>(config);
    auto job_store = std::make_shared<pg::PgJobStore>(pool);
    auto replica_store = std::make_shared<pg::PgReplicaStore>(pool);

    pg::PgJobQueueOptions queue_options;
    queue_options.lease =
        std::chrono::milliseconds(std::llround(std::stod(arg("--lease-seconds", "3")) * 1000.0));
    queue_options.logger = logger;
    queue_options.migrate = false;  // the test created it
    auto queue = std::make_shared<pg::PgJobQueue>(pool, queue_options);

    auto registry = std::make_shared<Registry>();
    reliability::register_fault_replicators(*registry);

    curl::CurlOptions curl_options;
    curl_options.timeout = std::chrono::milliseconds(std::stoll(arg("--http-timeout-ms", "60000")));
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
    options.owner = arg("--owner", jobs::default_worker_owner());
    options.logger = logger;
    options.transient_retries = 30;
    options.transient_backoff = std::chrono::seconds(std::stoll(arg("--transient-backoff-s", "1")));
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
