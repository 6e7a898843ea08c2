// The curl client across threads: cancellation latency of in-flight
// transfers (printed; fails above 100 ms), and many threads sharing a client.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "server_fixture.hpp"
#include "webhookdb/curl/curl_http_client.hpp"

namespace webhookdb::test {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Cancels `source` after `after` on another thread while `send` runs; returns
// the time from cancel() to send() returning.
template <class Send>
milliseconds cancel_latency(CancellationSource& source, milliseconds after, Send send) {
  Clock::time_point cancelled_at;
  std::thread canceller([&] {
    std::this_thread::sleep_for(after);
    cancelled_at = Clock::now();
    source.cancel();
  });
  Clock::time_point returned_at;
  try {
    send();
    ADD_FAILURE() << "expected Cancelled";
  } catch (const Cancelled&) {
  }
  returned_at = Clock::now();
  canceller.join();
  return std::chrono::duration_cast<milliseconds>(returned_at - cancelled_at);
}

TEST(CurlCancellation, AbortsAnInFlightTransferWithin100Milliseconds) {
  auto server = start_server({.objects = 50, .slow_stall = milliseconds(10'000)});
  curl::CurlHttpClient http;
  milliseconds worst{0};
  for (int i = 0; i < 5; ++i) {
    // Waiting for the response headers.
    CancellationSource before_headers;
    HttpRequest delayed;
    delayed.url = server->url("/delay?ms=10000");
    worst = std::max(worst, cancel_latency(before_headers, milliseconds(150),
                                           [&] { (void)http.send(delayed, before_headers.token()); }));
    // Mid-body, after a 200 status line.
    CancellationSource mid_body;
    HttpRequest stalled;
    stalled.url = server->url("/v1/charges?limit=30");
    stalled.headers = {{"X-Fault", "slow"}};
    worst = std::max(worst, cancel_latency(mid_body, milliseconds(150),
                                           [&] { (void)http.send(stalled, mid_body.token()); }));
  }
  std::cout << "[ measure  ] cancellation latency of an in-flight transfer: worst " << worst.count()
            << " ms over 10 cancellations\n";
  EXPECT_LT(worst, milliseconds(100));
  // The client still works afterwards.
  EXPECT_EQ(http.get(server->url("/v1/charges?limit=1")).status, 200);
}

TEST(CurlCancellation, OneSourceStopsManyThreadsAtOnce) {
  auto server = start_server({.threads = 2, .objects = 10});
  curl::CurlHttpClient http;
  CancellationSource source;
  std::atomic<int> cancelled{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      HttpRequest r;
      r.url = server->url("/delay?ms=10000");
      try {
        (void)http.send(r, source.token());
      } catch (const Cancelled&) {
        ++cancelled;
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(300));
  const auto start = Clock::now();
  source.cancel();
  for (auto& t : threads) t.join();
  const auto all_returned = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  EXPECT_EQ(cancelled.load(), 6);
  EXPECT_LT(all_returned, milliseconds(200));
}

TEST(CurlConcurrency, ThreadsShareOneClientWithAConnectionEach) {
  auto server = start_server({.threads = 2, .objects = 400});
  curl::CurlHttpClient http;
  constexpr int kThreads = 6;
  constexpr int kRequests = 40;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequests; ++i) {
        const std::size_t index = static_cast<std::size_t>((t * kRequests + i) % 400);
        const auto response =
            http.get(server->url("/cursor?limit=1&cursor=c" + std::to_string(index)));
        const auto body = nlohmann::json::parse(response.body);
        if (body["data"][0]["id"] == server->dataset().id(index)) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kRequests);
  const auto stats = server->stats();
  EXPECT_EQ(stats.requests, static_cast<std::uint64_t>(kThreads * kRequests));
  EXPECT_LE(stats.connections, static_cast<std::uint64_t>(kThreads)) << "connections are reused";
  EXPECT_LE(http.idle_handles(), static_cast<std::size_t>(kThreads));
  EXPECT_GE(http.idle_handles(), 1U);
}

TEST(ApiServerConcurrency, ManyKeepAliveConnectionsAtOnce) {
  auto server = start_server({.threads = 2, .objects = 100});
  constexpr int kClients = 32;
  std::vector<std::unique_ptr<curl::CurlHttpClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(std::make_unique<curl::CurlHttpClient>());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 20; ++k) {
        if (clients[static_cast<std::size_t>(i)]->get(server->url("/v1/charges?limit=10")).status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients * 20);
  EXPECT_EQ(server->stats().connections, static_cast<std::uint64_t>(kClients));
  EXPECT_EQ(server->stats().open_connections, static_cast<std::uint64_t>(kClients)) << "all still alive";
  clients.clear();
}

}  // namespace
}  // namespace webhookdb::test
