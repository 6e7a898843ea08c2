#include "webhookdb/jobs/worker_main.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "webhookdb/errors.hpp"
#include "jobs/worker_metrics.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/jobs/metrics_server.hpp"
#include "webhookdb/jobs/worker.hpp"
#include "webhookdb/oauth2.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/oauth_token_store.hpp"
#include "webhookdb/pg/rate_limiter.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/pg/scheduler.hpp"

namespace webhookdb::jobs {
namespace {

// Messages below never repeat a value from the command line: an operator who
// puts the database URL in the wrong place must not see its password echoed
// to a terminal or a log collector.

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): the option, then the text given for it
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
                              " and 86400");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000.0)));
}

// The option, then the text given for it, then its range (min, max):
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters)
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
                              std::to_string(max));
  }
  return static_cast<int>(n);
}

LogLevel level_arg(const std::string& value) {
  if (value == "debug") return LogLevel::debug;
  if (value == "info") return LogLevel::info;
  if (value == "warn") return LogLevel::warn;
  if (value == "error") return LogLevel::error;
  throw InvalidPrecondition("--log-level needs debug, info, warn or error");
}

WorkerSettings::RateLimiterKind rate_limiter_arg(const std::string& value) {
  using Kind = WorkerSettings::RateLimiterKind;
  if (value == "off") return Kind::off;
  if (value == "memory") return Kind::memory;
  if (value == "pg") return Kind::pg;
  throw InvalidPrecondition("--rate-limiter takes off, memory or pg");
}

// --oauth2 and its two settings, read as text like every option and checked
// once parsed.
struct OAuth2Args {
  std::string mode, lock_wait, margin;
  CLI::Option* mode_option = nullptr;
  CLI::Option* lock_wait_option = nullptr;
  CLI::Option* margin_option = nullptr;

  void add_to(CLI::App& app) {
    mode_option = app.add_option("--oauth2", mode);
    lock_wait_option = app.add_option("--oauth2-lock-wait-seconds", lock_wait);
    margin_option = app.add_option("--oauth2-refresh-margin-seconds", margin);
  }
  void apply(WorkerSettings& s) const {
    if (mode_option->count() > 0) {
      if (mode != "on" && mode != "off") throw InvalidPrecondition("--oauth2 takes on or off");
      s.oauth2 = mode == "on";
    }
    if (lock_wait_option->count() > 0)
      s.oauth2_lock_wait = seconds_arg("--oauth2-lock-wait-seconds", lock_wait, 0.01);
    if (margin_option->count() > 0)
      s.oauth2_refresh_margin = seconds_arg("--oauth2-refresh-margin-seconds", margin, 0);
  }
};

// The first line of the file at `path`, without trailing whitespace (a secret
// mounted from Kubernetes or written with echo ends in a newline).
std::string read_url_file(const std::string& path) {
  std::ifstream in(path);
  std::string url;
  if (!in || !std::getline(in, url)) throw InvalidPrecondition("cannot read --database-url-file " + path);
  while (!url.empty() && std::isspace(static_cast<unsigned char>(url.back())) != 0) url.pop_back();
  if (url.empty()) throw InvalidPrecondition("--database-url-file " + path + " is empty");
  return url;
}

// What is left over after the options: named when it looks like an option
// name ("--bogus"), otherwise only counted, since it may be a URL.
std::string describe_extras(const std::vector<std::string>& extras) {
  const std::string& first = extras.front();
  const std::string name = first.substr(0, first.find('='));
  const bool option_like =
      name.size() > 2 && name.size() <= 40 && name.rfind("--", 0) == 0 &&
      name.find_first_not_of("-abcdefghijklmnopqrstuvwxyz0123456789") == std::string::npos;
  if (option_like) return "unknown option " + name;
  return "unexpected argument (not shown: it may hold a password); the database URL goes in --database-url, "
         "--database-url-file or WEBHOOKDB_DATABASE_URL";
}

// CLI11's own messages may quote a value (a conversion error repeats it):
// only the kind of error and, where CLI11 names one, the option are kept.
[[noreturn]] void rethrow_parse_error(const CLI::ParseError& e) {
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr) {
    const std::string what = e.what();
    const std::string option = what.substr(0, what.find(':'));
    if (option.rfind("--", 0) == 0 && option.find(' ') == std::string::npos) {
      throw InvalidPrecondition(option + " needs exactly one value");
    }
    throw InvalidPrecondition("an option is missing its value or has too many");
  }
  throw InvalidPrecondition("cannot read the command line (" + e.get_name() + ")");
}

bool on_command_line(const std::vector<std::string>& args, const std::string& name) {
  return std::any_of(args.begin(), args.end(),
                     [&](const std::string& a) { return a == name || a.rfind(name + "=", 0) == 0; });
}

}  // namespace

std::string worker_usage(std::string_view program) {
  return "usage: " + std::string(program) +
         " [--database-url URL | --database-url-file PATH] [options]\n"
         "Runs backfill jobs from the PostgreSQL job queue until SIGTERM or SIGINT, then drains and exits "
         "0.\n"
         "  --database-url URL          integrations, jobs, queue (and replication tables); default: the\n"
         "                              environment variable WEBHOOKDB_DATABASE_URL, which `ps` does not "
         "show\n"
         "  --database-url-file PATH    read the URL from the first line of this file instead\n"
         "  --replica-database-url URL  replication tables, when in another database\n"
         "                              (default: WEBHOOKDB_REPLICA_DATABASE_URL)\n"
         "  --schema NAME               schema of webhookdb's own tables (default public)\n"
         "  --replica-schema NAME       schema for every replication table\n"
         "  --concurrency N             jobs run at once (default 2)\n"
         "  --lease-seconds S           lease of a taken job; a dead worker's jobs run again after it "
         "(default 30)\n"
         "  --poll-seconds S            fallback poll when no notification arrives (default 5)\n"
         "  --drain-seconds S           on a signal, let running jobs finish this long before cancelling "
         "(default 0)\n"
         "  --time-slice-seconds S      a job that ran this long while other jobs wait yields its runner\n"
         "                              at a page boundary and resumes later at its checkpoint (default 5;\n"
         "                              0: never)\n"
         "  --schedule-poll-seconds S   fire the due schedules (recurring backfills) this often (default 1;\n"
         "                              0: this worker fires none)\n"
         "  --api-url URL               default API base URL for replicators that need one\n"
         "  --owner NAME                this worker's name in the queue (default host:pid:random)\n"
         "  --log-level LEVEL           debug, info, warn or error (default info)\n"
         "  --log-format text|json      json: one JSON object a line, for log shippers (default text)\n"
         "  --metrics-port P            serve Prometheus metrics on P (0: any free port, logged)\n"
         "  --metrics-address A         the metrics endpoint's IPv4 address (default 127.0.0.1)\n"
         "  --rate-limiter KIND         quota governor of the API requests: off (default), memory (this\n"
         "                              process), pg (one budget per quota key for every worker)\n"
         "  --oauth2 on|off             integrations with an OAuth2 grant (PgOAuthTokenStore::authorize)\n"
         "                              get its bearer tokens, refreshed by one worker at a time (default "
         "on)\n"
         "  --oauth2-lock-wait-seconds S  wait this long for another worker's refresh (default 30)\n"
         "  --oauth2-refresh-margin-seconds S  refresh this long before expiry, or at 3/4 of a shorter\n"
         "                              lifetime (default 60)\n"
         "  --reencrypt-secrets         re-encrypt every integration's secrets and OAuth2 grants under "
         "WEBHOOKDB_SECRET_KEY\n"
         "                              (older keys in WEBHOOKDB_PREVIOUS_SECRET_KEYS), then exit\n";
}

WorkerSettings parse_worker_args(const std::vector<std::string>& args) {
  WorkerSettings s;
  // Every value is read as text and checked below, so that no CLI11 message
  // (which may quote the value) reaches the user.
  std::string url_file, concurrency, lease, poll, drain, time_slice, log_level, rate_limiter, schedule_poll;
  std::string metrics_port, log_format;
  OAuth2Args oauth2;
  CLI::App app{"webhookdb-worker"};
  app.set_help_flag();  // --help is a setting here, not an exception
  app.allow_extras();   // extras are reported by describe_extras, never echoed
  app.add_flag("-h,--help", s.help);
  app.add_flag("--reencrypt-secrets", s.reencrypt_secrets);
  auto* url_option = app.add_option("--database-url", s.database_url)->envname("WEBHOOKDB_DATABASE_URL");
  auto* file_option = app.add_option("--database-url-file", url_file);
  app.add_option("--replica-database-url", s.replica_database_url)->envname("WEBHOOKDB_REPLICA_DATABASE_URL");
  app.add_option("--schema", s.schema);
  app.add_option("--replica-schema", s.replica_schema);
  auto* concurrency_option = app.add_option("--concurrency", concurrency);
  auto* lease_option = app.add_option("--lease-seconds", lease);
  auto* poll_option = app.add_option("--poll-seconds", poll);
  auto* drain_option = app.add_option("--drain-seconds", drain);
  auto* slice_option = app.add_option("--time-slice-seconds", time_slice);
  auto* schedule_option = app.add_option("--schedule-poll-seconds", schedule_poll);
  app.add_option("--api-url", s.api_url);
  app.add_option("--owner", s.owner);
  auto* level_option = app.add_option("--log-level", log_level);
  auto* metrics_option = app.add_option("--metrics-port", metrics_port);
  auto* format_option = app.add_option("--log-format", log_format);
  app.add_option("--metrics-address", s.metrics_address);
  auto* limiter_option = app.add_option("--rate-limiter", rate_limiter);
  oauth2.add_to(app);
  try {
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));  // CLI11 takes them reversed
  } catch (const CLI::ParseError& e) {
    rethrow_parse_error(e);
  }
  if (!app.remaining().empty()) throw InvalidPrecondition(describe_extras(app.remaining()));
  if (s.help) return s;
  if (concurrency_option->count() > 0) s.concurrency = int_arg("--concurrency", concurrency, 1, 256);
  if (lease_option->count() > 0) s.lease = seconds_arg("--lease-seconds", lease, 0.1);
  if (poll_option->count() > 0) s.poll = seconds_arg("--poll-seconds", poll, 0.01);
  if (drain_option->count() > 0) s.drain = seconds_arg("--drain-seconds", drain, 0);
  if (slice_option->count() > 0) s.time_slice = seconds_arg("--time-slice-seconds", time_slice, 0);
  if (schedule_option->count() > 0) {
    s.schedule_poll = seconds_arg("--schedule-poll-seconds", schedule_poll, 0);
    if (s.schedule_poll.count() > 0 && s.schedule_poll < std::chrono::milliseconds(10)) {
      throw InvalidPrecondition("--schedule-poll-seconds must be 0 or at least 0.01");
    }
  }
  if (level_option->count() > 0) s.log_level = level_arg(log_level);
  if (format_option->count() > 0) {
    if (log_format != "text" && log_format != "json") throw InvalidPrecondition("--log-format takes text or json");
    s.json_logs = log_format == "json";
  }
  if (metrics_option->count() > 0) {
    s.metrics_port = static_cast<std::uint16_t>(int_arg("--metrics-port", metrics_port, 0, 65535));
  }
  if (limiter_option->count() > 0) s.rate_limiter = rate_limiter_arg(rate_limiter);
  oauth2.apply(s);
  if (file_option->count() > 0) {
    // The command line decides; the environment only fills what it left out.
    if (on_command_line(args, "--database-url")) {
      throw InvalidPrecondition("give --database-url or --database-url-file, not both");
    }
    s.database_url = read_url_file(url_file);
  }
  if (url_option->count() == 0 && file_option->count() == 0) {
    throw InvalidPrecondition(
        "no database URL: give --database-url-file, WEBHOOKDB_DATABASE_URL or --database-url");
  }
  if (s.database_url.empty()) throw InvalidPrecondition("the database URL is empty");
  if (s.schema.empty()) throw InvalidPrecondition("--schema must not be empty");
  return s;
}

namespace {

// Before any thread exists, so every thread inherits the mask and the
// signals are only ever taken by sigwait in drain_on_signal.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return signals;
}

pg::Config database_config(WorkerSettings& settings) {
  pg::Config config;
  config.url = settings.database_url;
  config.schema = settings.schema;
  config.pool_size = settings.concurrency + 4;
  if (settings.owner.empty()) settings.owner = default_worker_owner();
  // Operators (and tests) tell the workers' backends apart in pg_stat_activity.
  config.application_name = "webhookdb-worker " + settings.owner;
  if (!settings.replica_schema.empty()) config.replica_schema = settings.replica_schema;
  return config;
}

// The host's client, wrapped once (--oauth2 on) so that each request of an
// integration with a stored OAuth2 grant carries its bearer token. The grants
// are the host's: it stores each integration's client (token endpoint, id,
// secret, scopes, client authentication) and first tokens with
// PgOAuthTokenStore::authorize, sealed under WEBHOOKDB_SECRET_KEY; a worker
// needs no per-integration setting. The token endpoint is reached through
// the host's client itself, unwrapped.
std::shared_ptr<HttpClient> with_oauth2(const WorkerSettings& settings,
                                        const std::shared_ptr<pg::ConnectionPool>& pool,
                                        std::shared_ptr<HttpClient> http) {
  if (!settings.oauth2 || !http) return http;
  auto grants = std::make_shared<pg::PgOAuthTokenStore>(
      pool, pg::SecretKeys::from_environment(),
      pg::OAuthTokenStoreOptions{.lock_wait = settings.oauth2_lock_wait, .grant_list_every = std::chrono::seconds(1)});
  grants->migrate();
  oauth2::OAuth2Options options;
  options.refresh_margin = settings.oauth2_refresh_margin;
  auto tokens = std::make_shared<oauth2::OAuth2Credentials>(http, grants, system_clock(), options);
  return std::make_shared<CredentialAuth>(http, tokens);
}

// The stores, the queue and the worker, started; and the schedules' firer
// (--schedule-poll-seconds), left in `scheduler`.
std::unique_ptr<Worker> start_worker(const WorkerSettings& settings, const WorkerHooks& hooks,
                                     const std::shared_ptr<pg::ConnectionPool>& pool,
                                     const std::shared_ptr<pg::PgJobStore>& job_store,
                                     const std::shared_ptr<Logger>& logger,
                                     const std::shared_ptr<Metrics>& metrics,
                                     std::unique_ptr<pg::PgScheduler>& scheduler) {
  auto replica_pool = pool;
  if (!settings.replica_database_url.empty() && settings.replica_database_url != settings.database_url) {
    pg::Config replica_config = pool->config();
    replica_config.url = settings.replica_database_url;
    replica_pool = std::make_shared<pg::ConnectionPool>(replica_config);
  }
  auto replica_store = std::make_shared<pg::PgReplicaStore>(replica_pool);
  job_store->migrate();
  replica_store->migrate();
  // Every job run here ends with a queue statement that waits for the disk
  // (complete, fail, a release; else the next take), later in the WAL than
  // the job's finish: the finish need not wait for the disk itself.
  job_store->defer_finish_durability(true);

  pg::PgJobQueueOptions queue_options;
  queue_options.lease = settings.lease;
  queue_options.logger = logger;
  auto queue = std::make_shared<pg::PgJobQueue>(pool, queue_options);

  auto registry = std::make_shared<Registry>();
  hooks.register_replicators(*registry, settings);

  ReplicatorContext context;
  context.http = with_oauth2(settings, pool, hooks.http_client(settings));
  context.replica = replica_store;
  context.jobs = job_store;
  context.logger = logger;
  context.registry = registry;
  if (settings.rate_limiter == WorkerSettings::RateLimiterKind::pg) {
    context.rate_limiter = std::make_shared<pg::PgRateLimiter>(pool);
  } else if (settings.rate_limiter == WorkerSettings::RateLimiterKind::memory) {
    context.rate_limiter = std::make_shared<MemoryRateLimiter>();
  }
  if (metrics) instrument(context, metrics);  // --metrics-port

  WorkerOptions options;
  options.concurrency = settings.concurrency;
  options.poll_interval = settings.poll;
  options.time_slice = settings.time_slice;
  options.owner = settings.owner;
  options.logger = logger;
  auto worker = std::make_unique<Worker>(registry, context, queue, options);
  worker->start();
  if (settings.schedule_poll.count() > 0) {
    pg::PgSchedulerOptions schedule_options;
    schedule_options.logger = logger;
    schedule_options.poll = settings.schedule_poll;
    scheduler = std::make_unique<pg::PgScheduler>(pool, schedule_options);
    scheduler->start();
  }
  return worker;
}

int drain_on_signal(const sigset_t& signals, Worker& worker, std::chrono::milliseconds drain, Logger& logger) {
  int received = 0;
  while (sigwait(&signals, &received) != 0) {
  }
  logger.log(LogLevel::info, std::string("webhookdb-worker received ") +
                                 (received == SIGINT ? "SIGINT" : "SIGTERM") + ": draining");
  try {
    worker.stop(drain);
  } catch (const std::exception& e) {
    logger.log(LogLevel::error, std::string("webhookdb-worker could not drain cleanly: ") + e.what());
    return 1;
  }
  logger.log(LogLevel::info, "webhookdb-worker drained, exiting");
  return 0;
}

}  // namespace

int worker_main(int argc, char** argv, const WorkerHooks& hooks) {
  const std::string program = argc > 0 && argv[0] != nullptr ? argv[0] : "webhookdb-worker";
  const sigset_t signals = block_stop_signals();

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

  std::shared_ptr<Logger> logger;
  if (settings.json_logs) {
    logger = std::make_shared<JsonLinesLogger>(settings.log_level);
  } else {
    logger = std::make_shared<StderrLogger>(settings.log_level);
  }
  std::unique_ptr<Worker> worker;
  std::unique_ptr<pg::PgScheduler> scheduler;
  std::shared_ptr<Metrics> metrics;
  std::unique_ptr<MetricsServer> metrics_server;
  try {
    auto pool = std::make_shared<pg::ConnectionPool>(database_config(settings));
    auto job_store = std::make_shared<pg::PgJobStore>(pool);
    if (settings.reencrypt_secrets) {
      const std::size_t n = job_store->reencrypt_secrets();
      std::cout << program << ": re-encrypted the secrets of " << n << " integration(s)\n";
      const std::size_t grants = pg::PgOAuthTokenStore(pool).reencrypt_secrets();
      std::cout << program << ": re-encrypted " << grants << " OAuth2 grant(s)\n";
      return 0;
    }
    if (settings.metrics_port) {
      metrics = worker_metrics(pool);
      metrics_server = std::make_unique<MetricsServer>(metrics, settings.metrics_address, *settings.metrics_port);
      logger->log(LogLevel::info, "webhookdb-worker metrics on http://" + settings.metrics_address + ":" +
                                      std::to_string(metrics_server->port()) + "/metrics");
    }
    worker = start_worker(settings, hooks, pool, job_store, logger, metrics, scheduler);
    logger->log(LogLevel::info, "webhookdb-worker " + worker->owner() + " ready on " +
                                    pg::redact_connection_string(settings.database_url));
  } catch (const std::exception& e) {
    logger->log(LogLevel::error, std::string("webhookdb-worker could not start: ") + e.what());
    if (scheduler) scheduler->stop();
    if (worker) worker->stop();
    return 1;
  }
  const int status = drain_on_signal(signals, *worker, settings.drain, *logger);
  if (scheduler) scheduler->stop();
  return status;
}

}  // namespace webhookdb::jobs
