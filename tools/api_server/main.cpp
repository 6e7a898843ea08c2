// webhookdb-api-server: the fault-injecting test API as a process, for the
// demo and the benchmark. Prints "listening 127.0.0.1:PORT" as the first line
// of stdout, serves until SIGTERM or SIGINT, then prints its counters as JSON
// on stderr.

#include <csignal>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "api_server/api_server.hpp"

int main(int argc, char** argv) {
  using webhookdb::tools::Fault;
  webhookdb::tools::ApiServerOptions options;
  CLI::App app{"webhookdb-api-server: the local fault-injecting paginated API", "webhookdb-api-server"};
  app.add_option("--address", options.address, "listen address")->capture_default_str();
  app.add_option("--port", options.port, "port (0: ephemeral)")->capture_default_str();
  app.add_option("--threads", options.threads, "I/O threads")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--objects", options.objects, "objects in the dataset")->capture_default_str();
  app.add_option("--seed", options.seed, "dataset and fault seed")->capture_default_str();
  app.add_option("--duplicates", options.duplicates, "stale copies served on the non-Stripe paths");
  long latency_ms = 0;
  app.add_option("--latency-ms", latency_ms, "added before each data page")->check(CLI::NonNegativeNumber);
  double spread = -1;
  app.add_option("--fault-rate", spread, "probability of a fault per data request, spread over every kind")
      ->check(CLI::Range(0.0, 1.0));
  webhookdb::tools::FaultRates kinds;
  for (std::size_t k = 1; k < webhookdb::tools::kFaultKinds; ++k) {
    const std::string kind(webhookdb::tools::to_string(static_cast<Fault>(k)));
    app.add_option("--rate-" + kind, kinds.rate[k], "probability of a " + kind + " fault")
        ->check(CLI::Range(0.0, 1.0))
        ->group("Faults of one kind");
  }
  long slow_ms = 2000;
  app.add_option("--slow-ms", slow_ms, "stall of a slow response")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--retry-after", options.retry_after_seconds, "Retry-After seconds of 429/503 faults")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--retry-after-date", options.retry_after_date, "send Retry-After as an HTTP date");
  app.add_flag("--gzip", options.gzip, "gzip JSON bodies when the client accepts it");
  app.add_flag("--oauth", options.oauth.enabled,
               "act as an OAuth2 provider (POST /oauth/token, /oauth/grant; GET /oauth/stats); data paths then "
               "need a live bearer token");
  long token_lifetime_ms = 2000;
  app.add_option("--oauth-token-lifetime-ms", token_lifetime_ms, "access token lifetime")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--oauth-client-id", options.oauth.client_id, "the one client accepted");
  app.add_option("--oauth-client-secret", options.oauth.client_secret, "its secret");
  app.add_option("--quota", options.quota.limit, "requests per window per API key on the data paths (0: off)")
      ->check(CLI::NonNegativeNumber);
  long quota_window_ms = 1000;
  app.add_option("--quota-window-ms", quota_window_ms, "the quota's window")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  std::string algorithm = "fixed-window";
  app.add_option("--quota-algorithm", algorithm, "fixed-window or token-bucket")->capture_default_str();
  std::string mode = "github";
  app.add_option("--quota-mode", mode,
                 "what it advertises: github, ietf, none (bare 429), retry-after (429 + Retry-After), "
                 "secondary (403 + Retry-After)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
    const auto quota_algorithm = webhookdb::tools::parse_quota_algorithm(algorithm);
    if (!quota_algorithm) throw CLI::ValidationError("--quota-algorithm", "fixed-window or token-bucket");
    const auto quota_mode = webhookdb::tools::parse_quota_mode(mode);
    if (!quota_mode) throw CLI::ValidationError("--quota-mode", "github, ietf, none, retry-after or secondary");
    options.quota.algorithm = *quota_algorithm;
    options.quota.mode = *quota_mode;
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  options.latency = std::chrono::milliseconds(latency_ms);
  options.slow_stall = std::chrono::milliseconds(slow_ms);
  options.oauth.access_lifetime = std::chrono::milliseconds(token_lifetime_ms);
  options.quota.window = std::chrono::milliseconds(quota_window_ms);
  if (spread >= 0) options.faults = webhookdb::tools::FaultRates::spread(spread);
  for (std::size_t k = 1; k < webhookdb::tools::kFaultKinds; ++k) {
    if (kinds.rate[k] > 0) options.faults.rate[k] = kinds.rate[k];
  }

  // Block the signals before any thread starts, so only sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  webhookdb::tools::ApiServer server(options);
  try {
    server.start();
  } catch (const std::exception& e) {
    std::cerr << "webhookdb-api-server: cannot listen on " << options.address << ":" << options.port << ": "
              << e.what() << "\n";
    return 1;
  }
  std::cout << "listening " << options.address << ":" << server.port() << std::endl;

  int received = 0;
  sigwait(&signals, &received);
  server.stop();
  std::cerr << server.stats().to_json().dump() << std::endl;
  return 0;
}
