#include "webhookdb/jobs/worker_main.hpp"

#include <pthread.h>
#include <signal.h>

#include <cmath>
#include <iostream>

#include "webhookdb/errors.hpp"
#include "webhookdb/jobs/pg_job_queue.hpp"
#include "webhookdb/jobs/worker.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"

namespace webhookdb::jobs {
namespace {

std::chrono::milliseconds seconds_arg(const std::string& name, const std::string& value, double min_seconds) {
  std::size_t used = 0;
  double seconds = 0;
  try {
    seconds = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || !std::isfinite(seconds) || seconds < min_seconds || seconds > 86'400.0) {
    throw InvalidPrecondition(name + " needs a number of seconds between " + std::to_string(min_seconds) +
                              " and 86400, got '" + value.substr(0, 32) + "'");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000.0)));
}

int int_arg(const std::string& name, const std::string& value, int min, int max) {
  std::size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || n < min || n > max) {
    throw InvalidPrecondition(name + " needs a whole number between " + std::to_string(min) + " and " +
                              std::to_string(max) + ", got '" + value.substr(0, 32) + "'");
  }
  return static_cast<int>(n);
}

LogLevel level_arg(const std::string& value) {
  if (value == "debug") return LogLevel::debug;
  if (value == "info") return LogLevel::info;
  if (value == "warn") return LogLevel::warn;
  if (value == "error") return LogLevel::error;
  throw InvalidPrecondition("--log-level needs debug, info, warn or error, got '" + value.substr(0, 32) + "'");
}

}  // namespace

std::string worker_usage(std::string_view program) {
  return "usage: " + std::string(program) +
         " --database-url URL [options]\n"
         "Runs backfill jobs from the PostgreSQL job queue until SIGTERM or SIGINT, then drains and exits 0.\n"
         "  --database-url URL          integrations, jobs, queue (and replication tables)\n"
         "  --replica-database-url URL  replication tables, when in another database\n"
         "  --schema NAME               schema of webhookdb's own tables (default public)\n"
         "  --replica-schema NAME       schema for every replication table\n"
         "  --concurrency N             jobs run at once (default 2)\n"
         "  --lease-seconds S           lease of a taken job; a dead worker's jobs run again after it (default 30)\n"
         "  --poll-seconds S            fallback poll when no notification arrives (default 5)\n"
         "  --drain-seconds S           on a signal, let running jobs finish this long before cancelling (default 0)\n"
         "  --api-url URL               default API base URL for replicators that need one\n"
         "  --owner NAME                this worker's name in the queue (default host:pid:random)\n"
         "  --log-level LEVEL           debug, info, warn or error (default info)\n";
}

WorkerSettings parse_worker_args(const std::vector<std::string>& args) {
  WorkerSettings s;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::string value;
    bool has_value = false;
    if (const auto eq = name.find('='); name.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (name == "--help" || name == "-h") {
      s.help = true;
      continue;
    }
    if (name.rfind("--", 0) != 0) throw InvalidPrecondition("unexpected argument '" + name.substr(0, 32) + "'");
    if (!has_value) {
      if (i + 1 >= args.size()) throw InvalidPrecondition(name + " needs a value");
      value = args[++i];
    }
    if (name == "--database-url") s.database_url = value;
    else if (name == "--replica-database-url") s.replica_database_url = value;
    else if (name == "--schema") s.schema = value;
    else if (name == "--replica-schema") s.replica_schema = value;
    else if (name == "--concurrency") s.concurrency = int_arg(name, value, 1, 256);
    else if (name == "--lease-seconds") s.lease = seconds_arg(name, value, 0.1);
    else if (name == "--poll-seconds") s.poll = seconds_arg(name, value, 0.01);
    else if (name == "--drain-seconds") s.drain = seconds_arg(name, value, 0);
    else if (name == "--api-url") s.api_url = value;
    else if (name == "--owner") s.owner = value;
    else if (name == "--log-level") s.log_level = level_arg(value);
    else throw InvalidPrecondition("unknown option " + name.substr(0, 40));
  }
  if (!s.help && s.database_url.empty()) throw InvalidPrecondition("--database-url is required");
  if (s.schema.empty()) throw InvalidPrecondition("--schema must not be empty");
  return s;
}

int worker_main(int argc, char** argv, const WorkerHooks& hooks) {
  const std::string program = argc > 0 && argv[0] != nullptr ? argv[0] : "webhookdb-worker";
  // Before any thread exists, so every thread inherits the mask and the
  // signals are only ever taken by sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  WorkerSettings settings;
  try {
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
    settings = parse_worker_args(args);
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n" << worker_usage(program);
    return 2;
  }
  if (settings.help) {
    std::cout << worker_usage(program);
    return 0;
  }
  if (!hooks.register_replicators || !hooks.http_client) {
    std::cerr << program << ": the worker was built without a registration hook or an HTTP client\n";
    return 2;
  }

  auto logger = std::make_shared<StderrLogger>(settings.log_level);
  std::unique_ptr<Worker> worker;
  try {
    pg::Config config;
    config.url = settings.database_url;
    config.schema = settings.schema;
    config.pool_size = settings.concurrency + 4;
    if (settings.owner.empty()) settings.owner = default_worker_owner();
    // Operators (and tests) tell the workers' backends apart in pg_stat_activity.
    config.application_name = "webhookdb-worker " + settings.owner;
    if (!settings.replica_schema.empty()) config.replica_schema = settings.replica_schema;
    auto pool = std::make_shared<pg::ConnectionPool>(config);

    auto replica_pool = pool;
    if (!settings.replica_database_url.empty() && settings.replica_database_url != settings.database_url) {
      pg::Config replica_config = config;
      replica_config.url = settings.replica_database_url;
      replica_pool = std::make_shared<pg::ConnectionPool>(replica_config);
    }

    auto job_store = std::make_shared<pg::PgJobStore>(pool);
    auto replica_store = std::make_shared<pg::PgReplicaStore>(replica_pool);
    job_store->migrate();
    replica_store->migrate();

    PgJobQueueOptions queue_options;
    queue_options.lease = settings.lease;
    queue_options.logger = logger;
    auto queue = std::make_shared<PgJobQueue>(pool, queue_options);

    auto registry = std::make_shared<Registry>();
    hooks.register_replicators(*registry, settings);

    ReplicatorContext context;
    context.http = hooks.http_client(settings);
    context.replica = replica_store;
    context.jobs = job_store;
    context.logger = logger;
    context.registry = registry;

    WorkerOptions options;
    options.concurrency = settings.concurrency;
    options.poll_interval = settings.poll;
    options.owner = settings.owner;
    options.logger = logger;
    worker = std::make_unique<Worker>(registry, context, queue, options);
    worker->start();
    logger->log(LogLevel::info, "webhookdb-worker " + worker->owner() + " ready on " +
                                    pg::redact_database_url(settings.database_url));
  } catch (const std::exception& e) {
    logger->log(LogLevel::error, std::string("webhookdb-worker could not start: ") + e.what());
    if (worker) worker->stop();
    return 1;
  }

  int received = 0;
  while (sigwait(&signals, &received) != 0) {
  }
  logger->log(LogLevel::info, std::string("webhookdb-worker received ") + (received == SIGINT ? "SIGINT" : "SIGTERM") +
                                  ": draining");
  try {
    worker->stop(settings.drain);
  } catch (const std::exception& e) {
    logger->log(LogLevel::error, std::string("webhookdb-worker could not drain cleanly: ") + e.what());
    return 1;
  }
  logger->log(LogLevel::info, "webhookdb-worker drained, exiting");
  return 0;
}

}  // namespace webhookdb::jobs
