// The shared quota governor across processes (issue 19's fleet figures, in
// small): 4 forked processes, 2 threads each, every request through the curl
// client and a PgRateLimiter on the process's own connection, all under one
// API key of the local API server enforcing 200 requests a second. Measures
// utilisation (served / what the quota allows in the time) and the share of
// refused requests, with the quota advertised (GitHub headers) and not
// (429 + Retry-After only: AIMD).

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "server_fixture.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/pg/rate_limiter.hpp"
#include "webhookdb/rate_limiter.hpp"

namespace webhookdb::test {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

constexpr int kProcesses = 4;
constexpr int kThreadsEach = 2;
constexpr double kQuota = 200;
// 8 s in CI; WEBHOOKDB_QUOTA_FLEET_SECONDS=60 measures the 60 s window.
std::chrono::seconds run_length() {
  const char* text = std::getenv("WEBHOOKDB_QUOTA_FLEET_SECONDS");
  const long seconds = text != nullptr ? std::strtol(text, nullptr, 10) : 0;
  return std::chrono::seconds(seconds > 0 ? seconds : 8);
}

// A child: waits for the server's port on `start`, then sends requests for
// run_length() through the governor. Never returns.
[[noreturn]] void child(int start, const pg::Config& config) {
  int status = 0;
  try {
    std::uint16_t port = 0;
    if (::read(start, &port, sizeof port) != static_cast<ssize_t>(sizeof port)) ::_exit(3);
    auto limiter = std::make_shared<pg::PgRateLimiter>(std::make_shared<pg::ConnectionPool>(config),
                                                       pg::PgRateLimiterOptions{.migrate = false});
    auto http = std::make_shared<RateLimitedHttpClient>(curl::make_curl_client(), limiter,
                                                        QuotaBinding{.key = "made_up:fleet"});
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1/charges?limit=10";
    const auto deadline = Steady::now() + run_length();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreadsEach; ++t) {
      threads.emplace_back([&] {
        HttpRequest request;
        request.url = url;
        request.headers = {{"Authorization", "Bearer shared-fleet-token"}};
        request.raise_for_status = false;  // count, do not fail
        while (Steady::now() < deadline) (void)http->send(request);
      });
    }
    for (auto& t : threads) t.join();
  } catch (const std::exception& e) {
    std::cerr << "fleet child: " << e.what() << "\n";
    status = 1;
  }
  ::_exit(status);
}

struct FleetResult {
  double utilisation = 0;
  double refused_share = 0;
  std::uint64_t served = 0;
  std::uint64_t refused = 0;
};

FleetResult run_fleet(tools::QuotaMode mode) {
  ScopedSchema schema;
  // The table exists before the children race to use it.
  { pg::PgRateLimiter migrate(std::make_shared<pg::ConnectionPool>(schema.config(1))); }
  int pipes[kProcesses][2];
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    EXPECT_EQ(::pipe(pipes[p]), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(pipes[p][1]);
      child(pipes[p][0], schema.config(1));
    }
    ::close(pipes[p][0]);
    children.push_back(pid);
  }
  // The server's threads start after the forks: a child never inherits a lock one of them held.
  tools::ApiServerOptions options;
  options.objects = 200;
  options.threads = 4;
  options.latency = milliseconds(10);
  options.quota = {.limit = kQuota, .window = milliseconds(1000), .mode = mode};
  auto server = start_server(options);
  const std::uint16_t port = server->port();
  const auto start = Steady::now();
  for (int p = 0; p < kProcesses; ++p) {
    EXPECT_EQ(::write(pipes[p][1], &port, sizeof port), static_cast<ssize_t>(sizeof port));
    ::close(pipes[p][1]);
  }
  for (const pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << pid;
  }
  const double seconds = std::chrono::duration<double>(Steady::now() - start).count();
  const auto counts = server->quota_counts();
  FleetResult r;
  r.served = counts.served;
  r.refused = counts.refused;
  // Fixed windows on the epoch: a run of `seconds` touches at most ceil(seconds) + 1 of them.
  r.utilisation = static_cast<double>(counts.served) / (kQuota * seconds);
  r.refused_share = static_cast<double>(counts.refused) / static_cast<double>(counts.served + counts.refused);
  std::cout << "[ measure  ] fleet " << kProcesses << "x" << kThreadsEach << " at " << kQuota << "/s, "
            << (mode == tools::QuotaMode::github ? "advertised" : "429 + Retry-After only") << ": "
            << counts.served << " served, " << counts.refused << " refused in " << seconds << " s: utilisation "
            << 100 * r.utilisation << "%, refused " << 100 * r.refused_share << "%\n";
  return r;
}

TEST(QuotaFleet, AdvertisedQuotaIsUsedAndAlmostNeverExceeded) {
  const auto r = run_fleet(tools::QuotaMode::github);
  // The bounds catch a governor that starves the fleet or overruns the quota;
  // the figures themselves are scripts/bench.sh's (92% measured here in 8 s,
  // 97% over 60 s). The 8 s include forking and connecting, which a loaded CI
  // machine under a sanitizer stretches, so the floor is loose.
  EXPECT_GE(r.utilisation, 0.60);
  EXPECT_LE(r.refused_share, 0.005);
}

TEST(QuotaFleet, UnadvertisedQuotaIsFoundByAimd) {
  const auto r = run_fleet(tools::QuotaMode::retry_after);
  // 81% measured in 8 s, 84% over 60 s; CI under ASan on a shared machine
  // measured 68%. Half the quota still separates "found it" from a collapse
  // to the probe rate.
  EXPECT_GE(r.utilisation, 0.50);
  EXPECT_LE(r.refused_share, 0.03);
}

}  // namespace
}  // namespace webhookdb::test
