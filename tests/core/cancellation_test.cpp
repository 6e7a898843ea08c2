// Cancellation tokens and the real sleeper: cancellation wakes waiters at once.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/clock.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(Cancellation, ADefaultTokenIsNeverCancelled) {
  CancellationToken token;
  EXPECT_FALSE(token.cancelled());
  EXPECT_NO_THROW(token.throw_if_cancelled());
  EXPECT_FALSE(token.wait_for(1ms));
  bool called = false;
  const auto id = token.subscribe([&] { called = true; });
  token.unsubscribe(id);
  EXPECT_FALSE(called);
}

TEST(Cancellation, CancelIsSeenByEveryToken) {
  CancellationSource source;
  auto a = source.token();
  auto b = source.token();
  EXPECT_FALSE(source.cancelled());
  source.cancel();
  source.cancel();  // idempotent
  EXPECT_TRUE(source.cancelled());
  EXPECT_TRUE(a.cancelled());
  EXPECT_TRUE(b.cancelled());
  EXPECT_THROW(a.throw_if_cancelled(), Cancelled);
  EXPECT_TRUE(a.wait_for(10s)) << "returns at once when already cancelled";
}

TEST(Cancellation, CancelWakesAWaiterPromptly) {
  CancellationSource source;
  auto token = source.token();
  std::atomic<bool> woke{false};
  Clock::duration waited{};
  std::thread waiter([&] {
    const auto start = Clock::now();
    woke = token.wait_for(30s);
    waited = Clock::now() - start;
  });
  std::this_thread::sleep_for(20ms);
  source.cancel();
  waiter.join();
  EXPECT_TRUE(woke);
  EXPECT_LT(waited, 1s);
}

TEST(Cancellation, CallbacksRunOnceAndCanBeRemoved) {
  CancellationSource source;
  auto token = source.token();
  int runs = 0;
  int removed_runs = 0;
  token.subscribe([&] { ++runs; });
  const auto id = token.subscribe([&] { ++removed_runs; });
  token.unsubscribe(id);
  source.cancel();
  source.cancel();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(removed_runs, 0);
  int late = 0;
  token.subscribe([&] { ++late; });
  EXPECT_EQ(late, 1) << "subscribing to a cancelled token runs the callback at once";
}

TEST(Cancellation, AChildSourceFollowsItsParentButNotTheOtherWay) {
  CancellationSource parent;
  CancellationSource child(parent.token());
  CancellationSource sibling(parent.token());
  child.cancel();
  EXPECT_FALSE(parent.cancelled());
  EXPECT_FALSE(sibling.cancelled());
  parent.cancel();
  EXPECT_TRUE(sibling.cancelled());
  CancellationSource born_cancelled(parent.token());
  EXPECT_TRUE(born_cancelled.cancelled());
}

TEST(Cancellation, ConcurrentSubscribersAndCancel) {
  for (int round = 0; round < 50; ++round) {
    CancellationSource source;
    auto token = source.token();
    std::atomic<int> calls{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 20; ++i) {
          const auto id = token.subscribe([&] { ++calls; });
          if (i % 2 == 0) token.unsubscribe(id);
        }
      });
    }
    source.cancel();
    for (auto& t : threads) t.join();
    // The 40 subscriptions never withdrawn ran exactly once each (at cancel
    // or at once when subscribed after it); the 40 withdrawn ones at most once.
    EXPECT_GE(calls.load(), 40);
    EXPECT_LE(calls.load(), 80);
    EXPECT_TRUE(token.cancelled());
    const int before = calls.load();
    source.cancel();
    EXPECT_EQ(calls.load(), before) << "a second cancel runs nothing again";
  }
}

TEST(RealSleeper, SleepsForShortWaits) {
  CancellationSource source;
  const auto start = Clock::now();
  real_sleeper()->sleep_for(5ms, source.token());
  EXPECT_GE(Clock::now() - start, 4ms);
}

TEST(RealSleeper, CancellationInterruptsTheWait) {
  CancellationSource source;
  std::thread canceller([&] {
    std::this_thread::sleep_for(20ms);
    source.cancel();
  });
  const auto start = Clock::now();
  EXPECT_THROW(real_sleeper()->sleep_for(30s, source.token()), Cancelled);
  canceller.join();
  EXPECT_LT(Clock::now() - start, 1s);
}

TEST(SystemClock, IsUtcMicroseconds) {
  const auto before = std::chrono::system_clock::now();
  const auto now = system_clock()->now();
  EXPECT_LE(std::chrono::abs(now - std::chrono::time_point_cast<std::chrono::microseconds>(before)), 5s);
}

}  // namespace
}  // namespace webhookdb
