// webhookdb-api-server: the fault-injecting test API as a process, for the
// demo and the benchmark. Prints "listening 127.0.0.1:PORT" as the first line
// of stdout, serves until SIGTERM or SIGINT, then prints its counters as JSON
// on stderr.

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

#include "api_server/api_server.hpp"

namespace {

void usage(std::ostream& out) {
  out << "usage: webhookdb-api-server [options]\n"
         "  --address A        listen address (default 127.0.0.1)\n"
         "  --port P           port (default 0: ephemeral)\n"
         "  --threads N        I/O threads (default 2)\n"
         "  --objects N        objects in the dataset (default 1000)\n"
         "  --seed S           dataset and fault seed (default 1)\n"
         "  --duplicates N     stale copies served on the non-Stripe paths (default 0)\n"
         "  --latency-ms MS    added before each data page (default 0)\n"
         "  --fault-rate R     probability of a fault per data request, spread over every kind\n"
         "  --rate-KIND R      probability of one kind: 500 502 503 429 slow drop reset truncated\n"
         "                     empty wrong_type (e.g. --rate-429 0.05)\n"
         "  --slow-ms MS       stall of a slow response (default 2000)\n"
         "  --retry-after S    Retry-After seconds of 429/503 faults (default 1)\n"
         "  --retry-after-date send Retry-After as an HTTP date\n"
         "  --gzip             gzip JSON bodies when the client accepts it\n"
         "  --oauth            act as an OAuth2 provider (POST /oauth/token, /oauth/grant; GET /oauth/stats);\n"
         "                     data paths then need a live bearer token\n"
         "  --oauth-token-lifetime-ms N   access token lifetime (default 2000)\n"
         "  --oauth-client-id ID, --oauth-client-secret S   the one client accepted\n"
         "  --quota N          requests per window per API key on the data paths (default 0: off)\n"
         "  --quota-window-ms MS   the window (default 1000)\n"
         "  --quota-algorithm A    fixed-window (default) or token-bucket\n"
         "  --quota-mode M     what it advertises: github (default), ietf, none (bare 429),\n"
         "                     retry-after (429 + Retry-After), secondary (403 + Retry-After)\n";
}

[[noreturn]] void fail(const std::string& message) {
  std::cerr << "webhookdb-api-server: " << message << "\n";
  usage(std::cerr);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  using webhookdb::tools::Fault;
  webhookdb::tools::ApiServerOptions options;
  double spread = -1;
  webhookdb::tools::FaultRates kinds;
  bool any_kind = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) fail("missing value for " + std::string(arg));
        return argv[++i];
      };
      if (arg == "--help" || arg == "-h") {
        usage(std::cout);
        return 0;
      } else if (arg == "--address") {
        options.address = value();
      } else if (arg == "--port") {
        options.port = static_cast<std::uint16_t>(std::stoul(value()));
      } else if (arg == "--threads") {
        options.threads = std::stoi(value());
      } else if (arg == "--objects") {
        options.objects = std::stoul(value());
      } else if (arg == "--seed") {
        options.seed = std::stoull(value());
      } else if (arg == "--duplicates") {
        options.duplicates = std::stoul(value());
      } else if (arg == "--latency-ms") {
        options.latency = std::chrono::milliseconds(std::stol(value()));
      } else if (arg == "--fault-rate") {
        spread = std::stod(value());
      } else if (arg.rfind("--rate-", 0) == 0) {
        const auto fault = webhookdb::tools::parse_fault(arg.substr(7));
        if (!fault || *fault == Fault::none) fail("unknown fault kind in " + std::string(arg));
        kinds[*fault] = std::stod(value());
        any_kind = true;
      } else if (arg == "--slow-ms") {
        options.slow_stall = std::chrono::milliseconds(std::stol(value()));
      } else if (arg == "--retry-after") {
        options.retry_after_seconds = std::stoi(value());
      } else if (arg == "--retry-after-date") {
        options.retry_after_date = true;
      } else if (arg == "--gzip") {
        options.gzip = true;
      } else if (arg == "--oauth") {
        options.oauth.enabled = true;
      } else if (arg == "--oauth-token-lifetime-ms") {
        options.oauth.access_lifetime = std::chrono::milliseconds(std::stol(value()));
      } else if (arg == "--oauth-client-id") {
        options.oauth.client_id = value();
      } else if (arg == "--oauth-client-secret") {
        options.oauth.client_secret = value();
      } else if (arg == "--quota") {
        options.quota.limit = std::stod(value());
      } else if (arg == "--quota-window-ms") {
        options.quota.window = std::chrono::milliseconds(std::stol(value()));
      } else if (arg == "--quota-algorithm") {
        const auto algorithm = webhookdb::tools::parse_quota_algorithm(value());
        if (!algorithm) fail("unknown --quota-algorithm (fixed-window or token-bucket)");
        options.quota.algorithm = *algorithm;
      } else if (arg == "--quota-mode") {
        const auto mode = webhookdb::tools::parse_quota_mode(value());
        if (!mode) fail("unknown --quota-mode (github, ietf, none, retry-after, secondary)");
        options.quota.mode = *mode;
      } else {
        fail("unknown option " + std::string(arg));
      }
    }
  } catch (const std::exception&) {
    fail("invalid number in the arguments");
  }
  if (spread >= 0) options.faults = webhookdb::tools::FaultRates::spread(spread);
  if (any_kind) {
    for (std::size_t k = 1; k < webhookdb::tools::kFaultKinds; ++k) {
      if (kinds.rate[k] > 0) options.faults.rate[k] = kinds.rate[k];
    }
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
