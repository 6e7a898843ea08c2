// Backfiller::backfill: the page loop, its retries and its flush, with a
// scripted backfiller and a sleeper that records waits instead of sleeping.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support.hpp"
#include "webhookdb/testing/recording_progress_sink.hpp"
#include "webhookdb/testing/scripted_backfiller.hpp"

namespace webhookdb {
namespace {

using namespace webhookdb::testing;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> tokens(const ScriptedBackfiller& b) {
  std::vector<std::string> out;
  for (const auto& f : b.fetches()) out.push_back(f.token);
  return out;
}

class BackfillerTest : public ::testing::Test {
 protected:
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::shared_ptr<RecordingSleeper> sleeper = std::make_shared<RecordingSleeper>(clock);

  void prepare(ScriptedBackfiller& b, CancellationToken cancel = {}) {
    b.set_runtime(test::runtime_with(sleeper, std::move(cancel)));
  }
};

TEST_F(BackfillerTest, OneFetchWhenTheFirstPageIsEmptyWithoutToken) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{}}));
  prepare(b);
  b.backfill(std::nullopt);
  EXPECT_THAT(tokens(b), ElementsAre(""));
  EXPECT_TRUE(b.handled().empty());
}

TEST_F(BackfillerTest, FollowsTokensUntilTheNextIsEmpty) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1, 2}, {3}, {4, 5, 6}}));
  prepare(b);
  b.backfill(std::nullopt);
  EXPECT_THAT(tokens(b), ElementsAre("", "page1", "page2"));
  EXPECT_THAT(b.handled(), ElementsAre(1, 2, 3, 4, 5, 6));
}

TEST_F(BackfillerTest, PassesLastBackfilledToEveryFetch) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}, {2}}));
  prepare(b);
  const auto since = test::ts("2023-03-04T05:06:07Z");
  b.backfill(since);
  const auto fetches = b.fetches();
  ASSERT_EQ(fetches.size(), 2U);
  EXPECT_EQ(fetches[0].last_backfilled, since);
  EXPECT_EQ(fetches[1].last_backfilled, since);
}

TEST_F(BackfillerTest, ANullPageIsAnErrorAboutAMissingKey) {
  ScriptedBackfiller b([](const std::string&, const std::optional<Timestamp>&, const CancellationToken&) {
    return BackfillPage{nullptr, "", 0};
  });
  prepare(b);
  try {
    b.backfill(std::nullopt);
    FAIL() << "expected an error";
  } catch (const InvalidPostcondition& e) {
    EXPECT_THAT(e.what(), HasSubstr("lacks a key"));
  }
  EXPECT_EQ(b.fetch_count(), 1U) << "a shape error is not retried";
}

TEST_F(BackfillerTest, ANullPageNamesThePathLookedForAndTheRedactedUrl) {
  ScriptedBackfiller b([](const std::string&, const std::optional<Timestamp>&, const CancellationToken&) {
    BackfillPage page;
    page.url = "https://api.test/v1/items?api_key=SECRET_k1&limit=100";
    page.items_path = "results.items";
    return page;
  });
  prepare(b);
  try {
    b.backfill(std::nullopt);
    FAIL() << "expected an error";
  } catch (const InvalidPostcondition& e) {
    EXPECT_THAT(e.what(), HasSubstr("lacks a key: no array at 'results.items'"));
    EXPECT_THAT(e.what(), HasSubstr("https://api.test/v1/items"));
    EXPECT_THAT(e.what(), Not(HasSubstr("SECRET_k1")));
  }
}

TEST_F(BackfillerTest, AnEmptyPageIsNotAnError) {
  ScriptedBackfiller b([](const std::string&, const std::optional<Timestamp>&, const CancellationToken&) {
    return BackfillPage{nlohmann::json::array(), "", 2};
  });
  prepare(b);
  EXPECT_NO_THROW(b.backfill(std::nullopt));
}

TEST_F(BackfillerTest, HttpErrorsAreRetriedWithWaitsOfOneAndTwoSeconds) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}, {2}}));
  b.fail_page(1, 2, test::http_timeout());
  prepare(b);
  const auto start = clock->now();
  b.backfill(std::nullopt);
  EXPECT_THAT(tokens(b), ElementsAre("", "page1", "page1", "page1"));
  EXPECT_THAT(sleeper->waits(), ElementsAre(1000ms, 2000ms));
  EXPECT_EQ(clock->now() - start, 3s) << "waits go through the injected sleeper";
  EXPECT_THAT(b.handled(), ElementsAre(1, 2));
  EXPECT_EQ(b.progress().retries, 2U);
}

TEST_F(BackfillerTest, ConnectionErrorsAndServerErrorsAreRetried) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}}));
  b.fail_token("", 1, test::connection_error());
  prepare(b);
  b.backfill(std::nullopt);
  EXPECT_EQ(b.fetch_count(), 2U);

  ScriptedBackfiller c(ScriptedBackfiller::pages({{1}}));
  c.fail_token("", 2, test::http_error(503));
  prepare(c);
  c.backfill(std::nullopt);
  EXPECT_EQ(c.fetch_count(), 3U);
}

TEST_F(BackfillerTest, TheLastErrorIsRethrownAfterThreeAttempts) {
  int attempt = 0;
  ScriptedBackfiller b(
      [&](const std::string&, const std::optional<Timestamp>&, const CancellationToken&) -> BackfillPage {
        ++attempt;
        throw HttpError(500 + attempt, "GET", "https://api.example.test/items");
      });
  prepare(b);
  try {
    b.backfill(std::nullopt);
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 503) << "the third attempt's error";
  }
  EXPECT_EQ(attempt, 3);
  EXPECT_THAT(sleeper->waits(), ElementsAre(1000ms, 2000ms));
}

TEST_F(BackfillerTest, UnauthorizedIsNeverRetried) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}}));
  b.fail_token("", 5, test::http_error(401));
  prepare(b);
  try {
    b.backfill(std::nullopt);
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 401);
  }
  EXPECT_EQ(b.fetch_count(), 1U);
  EXPECT_TRUE(sleeper->waits().empty());
}

TEST_F(BackfillerTest, NonHttpErrorsAreNotRetried) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}}));
  b.fail_token("", 1, std::make_exception_ptr(InvalidInput("bad shape", "items")));
  prepare(b);
  EXPECT_THROW(b.backfill(std::nullopt), InvalidInput);
  EXPECT_EQ(b.fetch_count(), 1U);
  EXPECT_TRUE(sleeper->waits().empty());
}

TEST_F(BackfillerTest, RetryOrDieGoesStraightUp) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}}));
  b.fail_token("", 1, std::make_exception_ptr(RetryOrDie(2, 63s, test::http_error(503), "server error")));
  prepare(b);
  EXPECT_THROW(b.backfill(std::nullopt), RetryOrDie);
  EXPECT_EQ(b.fetch_count(), 1U);
  EXPECT_TRUE(sleeper->waits().empty());
}

TEST_F(BackfillerTest, PendingInsertsAreFlushedAtTheEnd) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1, 2}, {3}}));
  prepare(b);
  b.backfill(std::nullopt);
  EXPECT_THAT(b.flushed(), ElementsAre(1, 2, 3));
  ASSERT_FALSE(b.flush_sizes().empty());
  EXPECT_EQ(b.flush_sizes().back(), 3U) << "buffered items are written by the final flush";
}

TEST_F(BackfillerTest, NothingIsFlushedWhenAFetchFails) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1, 2}, {3}}));
  b.fail_page(1, 1, test::http_error(401));
  prepare(b);
  EXPECT_THROW(b.backfill(std::nullopt), HttpError);
  EXPECT_TRUE(b.flushed().empty());
}

TEST_F(BackfillerTest, ACancelledTokenStopsBeforeTheFirstFetch) {
  CancellationSource source;
  source.cancel();
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}}));
  prepare(b, source.token());
  EXPECT_THROW(b.backfill(std::nullopt), Cancelled);
  EXPECT_EQ(b.fetch_count(), 0U);
}

TEST_F(BackfillerTest, CancellationDuringARetryWaitStopsTheLoop) {
  CancellationSource source;
  sleeper->on_sleep([&](std::chrono::milliseconds) { source.cancel(); });
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}}));
  b.fail_token("", 2, test::http_timeout());
  prepare(b, source.token());
  EXPECT_THROW(b.backfill(std::nullopt), Cancelled);
  EXPECT_EQ(b.fetch_count(), 1U);
  EXPECT_EQ(sleeper->waits().size(), 1U);
}

TEST_F(BackfillerTest, CancellationAtAPageBoundaryStopsTheLoop) {
  CancellationSource source;
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}, {2}, {3}}));
  b.on_item([&](const nlohmann::json& item) {
    if (item == 1) source.cancel();
  });
  prepare(b, source.token());
  EXPECT_THROW(b.backfill(std::nullopt), Cancelled);
  EXPECT_THAT(tokens(b), ElementsAre(""));
  EXPECT_TRUE(b.flushed().empty()) << "a cancelled run does not flush";
}

TEST_F(BackfillerTest, ARepeatedTokenIsAnErrorInsteadOfAnEndlessLoop) {
  ScriptedBackfiller b([](const std::string&, const std::optional<Timestamp>&, const CancellationToken&) {
    return BackfillPage{nlohmann::json::array({1}), "same", 0};
  });
  prepare(b);
  EXPECT_THROW(b.backfill(std::nullopt), InvariantViolation);
  EXPECT_EQ(b.fetch_count(), 2U);
}

TEST_F(BackfillerTest, ARepeatedNextUrlIsReportedWithItsAccessTokenRedacted) {
  const std::string next = "https://graph.example.com/v1/items?after=abc&access_token=tok_SECRET_123";
  ScriptedBackfiller b([&](const std::string&, const std::optional<Timestamp>&, const CancellationToken&) {
    return BackfillPage{nlohmann::json::array({1}), next, 0};
  });
  prepare(b);
  try {
    b.backfill(std::nullopt);
    FAIL() << "expected InvariantViolation";
  } catch (const InvariantViolation& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find("tok_SECRET_123"), std::string::npos) << what;
    EXPECT_NE(what.find("graph.example.com"), std::string::npos) << what;
  }
}

TEST_F(BackfillerTest, StartsAtTheRuntimesStartToken) {
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1}, {2}, {3}}));
  auto rt = test::runtime_with(sleeper);
  rt.start_token = "page1";
  b.set_runtime(rt);
  b.backfill(std::nullopt);
  EXPECT_THAT(tokens(b), ElementsAre("page1", "page2"));
  EXPECT_THAT(b.handled(), ElementsAre(2, 3));
}

TEST_F(BackfillerTest, ReportsProgressAfterPagesAndAtTheEnd) {
  auto sink = std::make_shared<RecordingProgressSink>();
  ScriptedBackfiller b(ScriptedBackfiller::pages({{1, 2}, {3}}));
  auto rt = test::runtime_with(sleeper);
  rt.progress = sink;
  b.set_runtime(rt);
  b.backfill(std::nullopt);
  const auto events = sink->events();
  ASSERT_GE(events.size(), 2U);
  EXPECT_FALSE(events.front().done);
  EXPECT_TRUE(events.back().done);
  EXPECT_EQ(events.back().pages, 2U);
  EXPECT_EQ(events.back().items, 3U);
}

TEST_F(BackfillerTest, PipelinedLoopHandlesEveryPageInOrder) {
  std::vector<std::vector<nlohmann::json>> items;
  std::vector<nlohmann::json> expected;
  for (int p = 0; p < 20; ++p) {
    items.push_back({p * 2, p * 2 + 1});
    expected.push_back(p * 2);
    expected.push_back(p * 2 + 1);
  }
  ScriptedBackfiller b(ScriptedBackfiller::pages(items));
  b.pipeline(true);
  b.fail_page(7, 1, test::http_timeout());
  prepare(b);
  b.backfill(std::nullopt);
  EXPECT_EQ(b.handled(), expected);
  EXPECT_EQ(b.flushed(), expected);
  EXPECT_EQ(b.fetch_count(), 21U);
}

TEST_F(BackfillerTest, PipelinedLoopRethrowsAnItemErrorAndStopsFetching) {
  std::vector<std::vector<nlohmann::json>> items(50, std::vector<nlohmann::json>{1});
  ScriptedBackfiller b(ScriptedBackfiller::pages(items));
  b.pipeline(true);
  b.on_item([](const nlohmann::json&) { throw test::CustomError("cannot store", 7); });
  prepare(b);
  EXPECT_THROW(b.backfill(std::nullopt), test::CustomError);
  // At most the pipeline's depth ahead of the failed page (plus one in flight).
  EXPECT_LE(b.fetch_count(), 5U);
}

// --- Bounds on a walk that never ends (issue 16) ---

// Pages with a fresh token each, forever (until a safety stop far past any
// bound, so that a missing bound fails the test instead of hanging it).
BackfillPage endless_page(const std::string& token, bool empty) {
  const std::size_t n = token.empty() ? 0 : std::stoul(token.substr(1));
  if (n > 200'000) throw std::runtime_error("runaway: the page loop has no bound");
  return BackfillPage{empty ? nlohmann::json::array() : nlohmann::json::array({n}),
                      "c" + std::to_string(n + 1), 0};
}

TEST_F(BackfillerTest, EndlessEmptyPagesStopAtTheConsecutiveEmptyPageLimit) {
  ScriptedBackfiller b([](const std::string& token, const std::optional<Timestamp>&,
                          const CancellationToken&) { return endless_page(token, true); });
  prepare(b);
  try {
    b.backfill(std::nullopt);
    FAIL() << "an endless walk of empty pages ended";
  } catch (const InvariantViolation& e) {
    EXPECT_THAT(e.what(), HasSubstr("100 consecutive empty pages")) << e.what();
    EXPECT_THAT(e.what(), HasSubstr("svi_test")) << e.what();
  }
  EXPECT_EQ(b.fetch_count(), 100U);
}

TEST_F(BackfillerTest, AnItemResetsTheEmptyPageCount) {
  ScriptedBackfiller b(
      [](const std::string& token, const std::optional<Timestamp>&, const CancellationToken&) {
        const std::size_t n = token.empty() ? 0 : std::stoul(token.substr(1));
        BackfillPage page = endless_page(token, n % 60 != 59);  // 59 empty pages, then one item
        if (n == 600) page.next.clear();
        return page;
      });
  prepare(b);
  EXPECT_NO_THROW(b.backfill(std::nullopt));
  EXPECT_EQ(b.fetch_count(), 601U);
}

TEST_F(BackfillerTest, ThePageBudgetStopsAWalkThatNeverEnds) {
  ScriptedBackfiller b([](const std::string& token, const std::optional<Timestamp>&,
                          const CancellationToken&) { return endless_page(token, false); });
  b.set_limits({.max_pages = 50});
  prepare(b);
  try {
    b.backfill(std::nullopt);
    FAIL() << "an endless walk ended";
  } catch (const InvariantViolation& e) {
    EXPECT_THAT(e.what(), HasSubstr("page budget of 50 pages")) << e.what();
  }
  EXPECT_EQ(b.fetch_count(), 50U);
  EXPECT_EQ(b.handled().size(), 50U) << "every page within the budget is handled";
}

TEST_F(BackfillerTest, ThePipelinedLoopHasTheSameBounds) {
  ScriptedBackfiller b([](const std::string& token, const std::optional<Timestamp>&,
                          const CancellationToken&) { return endless_page(token, true); });
  b.pipeline(true);
  b.set_limits({.max_consecutive_empty_pages = 7});
  prepare(b);
  EXPECT_THROW(b.backfill(std::nullopt), InvariantViolation);
  EXPECT_EQ(b.fetch_count(), 7U);
}

TEST(BackfillLimits, ZeroIsRefused) {
  testing::ScriptedBackfiller b(testing::ScriptedBackfiller::pages({{1}}));
  EXPECT_THROW(b.set_limits({.max_pages = 0}), InvalidPrecondition);
  EXPECT_THROW(b.set_limits({.max_consecutive_empty_pages = 0}), InvalidPrecondition);
}

}  // namespace
}  // namespace webhookdb
