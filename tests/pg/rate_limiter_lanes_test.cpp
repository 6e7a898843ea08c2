// PgRateLimiter's lanes across processes (issue 19, item 3): a full backfill
// saturating a quota key through some limiters does not starve an
// incremental sync drawing from the same key through another limiter (its
// own pool and connection, as another worker process would have), and the
// key's budget is still never exceeded. The bound on the incremental's time
// is loose (it catches starvation, not a target; the benchmark measures the
// figure: scripts/bench.sh, webhookdb-quota-fleet-bench).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "support/pg_test_env.hpp"
#include "webhookdb/pg/rate_limiter.hpp"

namespace webhookdb::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr double kRate = 100;
constexpr double kBurst = 10;
constexpr const char* kKey = "made_up:lanes";

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
}

// The largest number of grants inside any window of `width`.
std::size_t busiest(std::vector<std::int64_t> grants_us, std::chrono::microseconds width) {
  std::sort(grants_us.begin(), grants_us.end());
  std::size_t best = 0;
  std::size_t lo = 0;
  for (std::size_t hi = 0; hi < grants_us.size(); ++hi) {
    while (grants_us[hi] - grants_us[lo] >= width.count()) ++lo;
    best = std::max(best, hi - lo + 1);
  }
  return best;
}

class PgRateLimiterLanesTest : public PgTest {
 protected:
  std::shared_ptr<pg::PgRateLimiter> limiter(int pool_size) {
    auto made = std::make_shared<pg::PgRateLimiter>(std::make_shared<pg::ConnectionPool>(schema().config(pool_size)));
    made->declare(kKey, {.per_second = kRate, .burst = kBurst});  // connects before the clock starts
    return made;
  }

  // Full-lane consumers: `limiters` limiters (processes), `threads` threads
  // each, acquiring as fast as they are allowed until stop().
  void start_full_lane(int limiters, int threads) {
    for (int l = 0; l < limiters; ++l) full_.push_back(limiter(threads));
    for (const auto& one : full_) {
      for (int t = 0; t < threads; ++t) {
        threads_.emplace_back([this, one] {
          try {
            while (!stop_.load()) {
              one->acquire(kKey, QuotaLane::full, cancel_);
              record(now_us());
            }
          } catch (const Cancelled&) {
          }
        });
      }
    }
  }

  void stop() {
    stop_.store(true);
    cancel_source_.cancel();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  void record(std::int64_t t) {
    const std::lock_guard lock(mutex_);
    grants_.push_back(t);
  }

  // Seconds an incremental-lane user of its own limiter takes to get
  // `permits` permits, one request of `request_time` after each.
  double incremental_run(pg::PgRateLimiter& own, int permits, std::chrono::milliseconds request_time) {
    const auto started = Clock::now();
    for (int i = 0; i < permits; ++i) {
      own.acquire(kKey, QuotaLane::incremental, CancellationToken{});
      record(now_us());
      std::this_thread::sleep_for(request_time);
    }
    return std::chrono::duration<double>(Clock::now() - started).count();
  }

  void TearDown() override {
    if (!threads_.empty()) stop();
    PgTest::TearDown();
  }

  std::vector<std::shared_ptr<pg::PgRateLimiter>> full_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  CancellationSource cancel_source_;
  CancellationToken cancel_ = cancel_source_.token();
  std::mutex mutex_;
  std::vector<std::int64_t> grants_;
};

TEST_F(PgRateLimiterLanesTest, AFullBackfillElsewhereDoesNotStarveAnIncrementalSync) {
  constexpr int kPermits = 40;
  constexpr auto kRequest = 5ms;
  auto incremental = limiter(1);
  // Idle quota first: what the incremental takes with nobody else.
  const double idle = incremental_run(*incremental, kPermits, kRequest);
  {
    const std::lock_guard lock(mutex_);
    grants_.clear();
  }
  const auto start_us = now_us();
  start_full_lane(3, 4);  // 12 threads in 3 limiters keep the bucket empty and reserved ahead
  std::this_thread::sleep_for(1s);
  const double saturated = incremental_run(*incremental, kPermits, kRequest);
  std::this_thread::sleep_for(300ms);  // the full lane takes the key back
  stop();
  const double seconds = static_cast<double>(now_us() - start_us) / 1e6;
  std::vector<std::int64_t> all;
  {
    const std::lock_guard lock(mutex_);
    all = grants_;
  }
  const auto used = static_cast<double>(all.size());
  std::printf("incremental lane, %d permits: %.2f s on an idle quota, %.2f s while 12 full-lane threads in 3 other "
              "limiters saturate it (%.1fx); %.0f permits in %.2f s at %.0f/s\n",
              kPermits, idle, saturated, saturated / idle, used, seconds, kRate);
  // As equals, the incremental would get about 1/13 of the leases: 40
  // permits in about 5 s. With lanes it waits at most for the reservations
  // made before its demand was seen, then takes what it needs: under 1 s
  // here. 3 s catches starvation on a loaded machine under a sanitizer.
  EXPECT_LT(saturated, 3.0);
  // The budget is shared, never exceeded: the burst plus what the bucket
  // earned (and the last grants after stop).
  EXPECT_LE(used, kBurst + kRate * seconds + 1);
  EXPECT_LE(busiest(all, 1s), static_cast<std::size_t>(kRate + kBurst + 13 * 2));
  // And the full lane still used what the incremental left (no collapse).
  EXPECT_GE(used, 0.5 * kRate * seconds);
  const auto row = incremental->row(kKey);
  ASSERT_TRUE(row);
  EXPECT_GT(row->demand_until[static_cast<std::size_t>(QuotaLane::incremental)], Timestamp{});
  EXPECT_EQ(row->demand_until[static_cast<std::size_t>(QuotaLane::full)], Timestamp{});
}

TEST_F(PgRateLimiterLanesTest, AWebhookLaneGoesBeforeAnIncrementalOneElsewhere) {
  // The same across the two higher lanes: incremental syncs saturating the
  // key through 3 limiters, a webhook-lane user (enrichment) of a fourth.
  // (As equals: 40 permits in 3.6 s with 2 limiters of 4 threads.)
  auto webhook = limiter(1);
  for (int l = 0; l < 3; ++l) full_.push_back(limiter(4));
  for (const auto& one : full_) {
    for (int t = 0; t < 4; ++t) {
      threads_.emplace_back([this, one] {
        try {
          while (!stop_.load()) one->acquire(kKey, QuotaLane::incremental, cancel_);
        } catch (const Cancelled&) {
        }
      });
    }
  }
  std::this_thread::sleep_for(1s);
  const auto started = Clock::now();
  for (int i = 0; i < 40; ++i) {
    webhook->acquire(kKey, QuotaLane::webhook, CancellationToken{});
    std::this_thread::sleep_for(5ms);
  }
  const double took = std::chrono::duration<double>(Clock::now() - started).count();
  stop();
  std::printf("webhook lane, 40 permits while 12 incremental-lane threads saturate the key: %.2f s\n", took);
  EXPECT_LT(took, 3.0);
}

}  // namespace
}  // namespace webhookdb::test
