// One paginator shared by concurrent walks (the partitions of a parallel
// backfill): each walk keeps its own repeat detection.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "webhookdb/errors.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/testing/mock_http_client.hpp"

namespace webhookdb {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// GET https://api.test/p<n>?limit=1[&cursor=<c>]: one item per page; the
// cursor after `c` is c+1 up to `pages`, except that a partition that
// `cycles` goes from 3 back to 1.
template <typename Cycles>
HttpResponse cursor_page(const HttpRequest& request, int pages, Cycles cycles) {
  const std::string prefix = "https://api.test/p";
  const int partition = std::stoi(request.url.substr(prefix.size()));
  const int cursor = std::stoi(pagination::query_param(request.url, "cursor").value_or("0"));
  nlohmann::json body{{"data", {{{"id", std::to_string(partition) + "-" + std::to_string(cursor)}}}}};
  if (cycles(partition) && cursor == 3) {
    body["next_cursor"] = "1";
  } else if (cursor + 1 < pages) {
    body["next_cursor"] = std::to_string(cursor + 1);
  }
  return HttpResponse{200, {{"Content-Type", "application/json"}}, body.dump(), request.url};
}

HttpRequest first_of(int partition) {
  return HttpRequest{.url = "https://api.test/p" + std::to_string(partition)};
}

TEST(PaginatorWalks, InterleavedWalksDoNotResetEachOthersCycleDetection) {
  testing::MockHttpClient http;
  http.call([](const HttpRequest& r, const CancellationToken&) {
        return cursor_page(r, 10, [](int partition) { return partition == 1; });
      })
      .repeat();
  pagination::Cursor pages{{.limit = 1}};
  // Partition 1 cycles (1, 2, 3, 1...); partition 2 is fetched between each of its pages.
  std::string a;
  std::string b;
  auto step = [&](int partition, std::string& token) {
    token = pages.fetch(http, first_of(partition), token).next;
  };
  step(1, a);  // "" -> 1
  step(2, b);
  step(1, a);  // 1 -> 2
  step(2, b);
  step(1, a);  // 2 -> 3
  step(2, b);
  try {
    step(1, a);  // 3 -> 1: seen before in this walk
    FAIL() << "expected InvariantViolation, token now '" << a << "'";
  } catch (const InvariantViolation& e) {
    EXPECT_THAT(e.what(), HasSubstr("pagination token repeated ('1' after '3')"));
  }
  // Partition 2 walks on to its end, undisturbed.
  while (!b.empty()) step(2, b);
}

TEST(PaginatorWalks, ParallelWalksOnOnePaginatorCatchEveryCycleAndNothingElse) {
  testing::MockHttpClient http;
  constexpr int kPartitions = 8;
  constexpr int kPages = 40;
  // Even partitions cycle 1, 2, 3, 1...; odd ones walk kPages pages. With one
  // shared state, each walk's begin() would keep resetting the others' seen set.
  http.call([](const HttpRequest& r, const CancellationToken&) {
        return cursor_page(r, kPages, [](int partition) { return partition % 2 == 0; });
      })
      .repeat();
  pagination::Cursor pages{{.limit = 1}};
  std::vector<std::string> outcome(kPartitions);
  std::vector<int> fetched(kPartitions, 0);
  {
    std::vector<std::jthread> walkers;
    for (int p = 0; p < kPartitions; ++p) {
      walkers.emplace_back([&, p] {
        const auto slot = static_cast<std::size_t>(p);
        std::string token;
        try {
          do {
            token = pages.fetch(http, first_of(p), token).next;
            ++fetched[slot];
          } while (!token.empty() && fetched[slot] < 2 * kPages);
          outcome[slot] = token.empty() ? "done" : "still walking";
        } catch (const InvariantViolation& e) {
          outcome[slot] = e.what();
        }
      });
    }
  }
  for (int p = 0; p < kPartitions; ++p) {
    const auto slot = static_cast<std::size_t>(p);
    if (p % 2 == 0) {
      EXPECT_THAT(outcome[slot], HasSubstr("pagination token repeated ('1' after '3')")) << "partition " << p;
      EXPECT_EQ(fetched[slot], 3) << "partition " << p;
    } else {
      EXPECT_EQ(outcome[slot], "done") << "partition " << p;
      EXPECT_EQ(fetched[slot], kPages) << "partition " << p;
    }
  }
}

TEST(PaginatorWalks, MemoryIsBoundedByForgettingTheLeastRecentlyUsedWalk) {
  pagination::RepeatGuard guard;
  const auto page = [](int n) { return nlohmann::json::array({n}); };
  guard.begin("w0", "");
  guard.end("w0", "", "a", page(1));
  guard.begin("w0", "a");
  guard.end("w0", "a", "b", page(2));
  // As many newer walks as the limit, each left unfinished (an error, a cancel).
  for (std::size_t i = 1; i <= pagination::RepeatGuard::kMaxWalks; ++i) {
    const std::string walk = "w" + std::to_string(i);
    guard.begin(walk, "");
    guard.end(walk, "", "x", page(1));
  }
  // w0 was forgotten, so "b" starts a new walk and "a" is not a repeat in it.
  guard.begin("w0", "b");
  EXPECT_NO_THROW(guard.end("w0", "b", "a", page(3)));
  // The newest walks are still tracked.
  const std::string newest = "w" + std::to_string(pagination::RepeatGuard::kMaxWalks);
  guard.begin(newest, "x");
  EXPECT_THROW(guard.end(newest, "x", "", page(1)), InvariantViolation);  // same items as its previous page
}

// --- Hostile counts and endless walks (issue 16) ---

HttpResponse json_response(const HttpRequest& request, const nlohmann::json& body) {
  return HttpResponse{200, {{"Content-Type", "application/json"}}, body.dump(), request.url};
}

TEST(PaginatorWalks, ATotalPagesBeyondAnyPageNumberIsRefusedNamingTheField) {
  for (const double total : {1e300, -1e300, 9.3e18, -3.0}) {
    testing::MockHttpClient http;
    http.call([&](const HttpRequest& r, const CancellationToken&) {
          return json_response(r, {{"data", {{{"id", 1}}}}, {"meta", {{"total_pages", total}}}});
        })
        .repeat();
    pagination::PageNumber pages{{.per_page = 1, .total_pages_path = {"meta", "total_pages"}}};
    try {
      (void)pages.fetch(http, HttpRequest{.url = "https://api.test/items"}, "");
      ADD_FAILURE() << "total_pages " << total << " was accepted";
    } catch (const InvalidInput& e) {
      EXPECT_THAT(e.what(), HasSubstr("meta.total_pages")) << e.what();
    }
  }
}

TEST(PaginatorWalks, APageWithoutItsItemsSaysWhereItLookedAndWhichUrlAnswered) {
  testing::MockHttpClient http;
  http.call([](const HttpRequest& r, const CancellationToken&) {
    return json_response(r, {{"results", nlohmann::json::array()}});
  });
  pagination::Cursor pages{{.items_path = {"data", "items"}}};
  const auto page = pages.fetch(http, HttpRequest{.url = "https://api.test/items?api_key=SECRET_k1"}, "");
  EXPECT_TRUE(page.items.is_null());
  EXPECT_EQ(page.items_path, "data.items");
  EXPECT_THAT(page.url, HasSubstr("https://api.test/items"));
  EXPECT_THAT(page.url, Not(HasSubstr("SECRET_k1")));
}

TEST(PaginatorWalks, ATotalBeyondAnyOffsetIsRefusedNamingTheField) {
  testing::MockHttpClient http;
  http.call([](const HttpRequest& r, const CancellationToken&) {
        return json_response(r, {{"data", {{{"id", 1}}}}, {"total", 1e300}});
      })
      .repeat();
  pagination::Offset pages{{.limit = 1, .total_path = {"total"}}};
  EXPECT_THROW((void)pages.fetch(http, HttpRequest{.url = "https://api.test/items"}, ""), InvalidInput);
}

TEST(PaginatorWalks, AnIntegralTotalPagesStillEndsTheWalk) {
  testing::MockHttpClient http;
  http.call([](const HttpRequest& r, const CancellationToken&) {
        const std::string page = pagination::query_param(r.url, "page").value_or("?");
        return json_response(r, {{"data", {{{"id", page}}}}, {"total_pages", 2.0}});
      })
      .repeat();
  pagination::PageNumber pages{{.per_page = 1, .total_pages_path = {"total_pages"}}};
  const HttpRequest first{.url = "https://api.test/items"};
  EXPECT_EQ(pages.fetch(http, first, "").next, "2");
  EXPECT_EQ(pages.fetch(http, first, "2").next, "");
}

// The guard remembers the last kRememberedTokens tokens of a walk, as hashes:
// its memory stays bounded however long the walk. The trade-off: a cycle
// longer than that goes unnoticed here and is stopped by the page loop's
// bounds instead (BackfillLimits).
TEST(PaginatorWalks, TheRepeatGuardRemembersABoundedNumberOfTokens) {
  pagination::RepeatGuard guard;
  const std::size_t remembered = pagination::RepeatGuard::kRememberedTokens;
  std::string token;
  for (std::size_t n = 1; n <= remembered + 10; ++n) {
    const std::string next = "t" + std::to_string(n);
    guard.begin(token);
    guard.end(token, next, nlohmann::json::array({n}));
    token = next;
  }
  // A recent token is still a repeat...
  guard.begin(token);
  EXPECT_THROW(guard.end(token, "t" + std::to_string(remembered), nlohmann::json::array({-1})),
               InvariantViolation);
  // ...the oldest ones are forgotten.
  guard.begin("");
  std::string walk;
  for (std::size_t n = 1; n <= remembered + 10; ++n) {
    const std::string next = "t" + std::to_string(n);
    guard.begin(walk);
    guard.end(walk, next, nlohmann::json::array({n}));
    walk = next;
  }
  guard.begin(walk);
  EXPECT_NO_THROW(guard.end(walk, "t1", nlohmann::json::array({-2})));
}

}  // namespace
}  // namespace webhookdb
