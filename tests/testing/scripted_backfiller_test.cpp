// ScriptedBackfiller: pages by token, scripted failures, records.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "webhookdb/errors.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"
#include "webhookdb/testing/scripted_backfiller.hpp"

namespace webhookdb::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

BackfillRuntime runtime(std::shared_ptr<Sleeper> sleeper) {
  BackfillRuntime rt;
  rt.sleeper = std::move(sleeper);
  return rt;
}

TEST(ScriptedBackfiller, PagesAreChainedByToken) {
  const auto pages = ScriptedBackfiller::pages({{1}, {2}, {3}}, "t");
  ASSERT_EQ(pages.size(), 3U);
  EXPECT_EQ(pages[0].next, "t1");
  EXPECT_EQ(pages[1].next, "t2");
  EXPECT_EQ(pages[2].next, "");
  EXPECT_EQ(pages[1].items, nlohmann::json::array({2}));
}

TEST(ScriptedBackfiller, RecordsFetchesItemsAndFlushes) {
  auto sleeper = std::make_shared<RecordingSleeper>();
  ScriptedBackfiller b(ScriptedBackfiller::pages({{"a", "b"}, {"c"}}));
  b.set_runtime(runtime(sleeper));
  b.backfill(std::nullopt);
  const auto fetches = b.fetches();
  ASSERT_EQ(fetches.size(), 2U);
  EXPECT_EQ(fetches[1].token, "page1");
  EXPECT_THAT(b.handled(), ElementsAre("a", "b", "c"));
  EXPECT_THAT(b.flushed(), ElementsAre("a", "b", "c"));
  EXPECT_EQ(b.flush_checkpoints().back(), std::nullopt) << "no checkpoints without a job";
  EXPECT_TRUE(b.wait_started(0ms));
}

TEST(ScriptedBackfiller, UnbufferedItemsAreNeverPending) {
  auto sleeper = std::make_shared<RecordingSleeper>();
  ScriptedBackfiller b(ScriptedBackfiller::pages({{"a"}}));
  b.buffer_items(false);
  b.set_runtime(runtime(sleeper));
  b.backfill(std::nullopt);
  EXPECT_THAT(b.handled(), ElementsAre("a"));
  EXPECT_TRUE(b.flushed().empty());
}

TEST(ScriptedBackfiller, FailPageFailsThatManyAttempts) {
  auto sleeper = std::make_shared<RecordingSleeper>();
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}, {2}}));
  b.fail_page(1, 2, std::make_exception_ptr(HttpConnectionError("reset", "GET", "https://x.test")));
  b.set_runtime(runtime(sleeper));
  b.backfill(std::nullopt);
  EXPECT_EQ(b.fetch_count(), 4U);
  EXPECT_THAT(sleeper->waits(), ElementsAre(1s, 2s));
  EXPECT_THROW(b.fail_page(5, 1, std::make_exception_ptr(std::runtime_error("x"))), InvalidPrecondition);
}

TEST(ScriptedBackfiller, AnUnknownTokenIsNamed) {
  auto sleeper = std::make_shared<RecordingSleeper>();
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}}));
  auto rt = runtime(sleeper);
  rt.start_token = "nowhere";
  b.set_runtime(rt);
  try {
    b.backfill(std::nullopt);
    FAIL() << "expected InvalidPrecondition";
  } catch (const InvalidPrecondition& e) {
    EXPECT_THAT(e.what(), HasSubstr("'nowhere'"));
  }
}

TEST(ScriptedBackfiller, ACustomRetryPolicyIsUsed) {
  auto sleeper = std::make_shared<RecordingSleeper>();
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}}));
  b.retry_with(webhookdb_retry_policy(5));
  b.fail_page(0, 4, std::make_exception_ptr(HttpTimeout("t", "GET", "https://x.test")));
  b.set_runtime(runtime(sleeper));
  b.backfill(std::nullopt);
  EXPECT_EQ(b.fetch_count(), 5U);
  EXPECT_THAT(sleeper->waits(), ElementsAre(1s, 2s, 3s, 4s));
}

}  // namespace
}  // namespace webhookdb::testing
