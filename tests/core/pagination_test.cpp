// Pagination's pure parts: the Link header (RFC 8288) and the repeat guard.
// No server: the walks against the local API server are in tests/curl.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "webhookdb/pagination.hpp"

namespace webhookdb {
namespace {

namespace pn = webhookdb::pagination;

// --- Link header ---

TEST(PaginationLink, ParsesSeveralLinksWithAwkwardSyntax) {
  const auto links = pn::parse_link_header(
      R"(<https://api.github.com/repos?page=2&a=b,c;d>; rel="next", <https://api.github.com/repos?page=9>;REL=last;)"
      R"( title="a, b; c", <https://x/y>;rel=prev  ,  <https://x/z>; rel="Next Last")");
  ASSERT_EQ(links.size(), 4U);
  EXPECT_EQ(links[0].target, "https://api.github.com/repos?page=2&a=b,c;d");
  EXPECT_EQ(links[0].rels(), (std::vector<std::string>{"next"}));
  EXPECT_EQ(links[1].rels(), (std::vector<std::string>{"last"}));
  EXPECT_EQ(links[1].params.at("title"), "a, b; c");
  EXPECT_EQ(links[2].rels(), (std::vector<std::string>{"prev"}));
  EXPECT_EQ(links[3].rels(), (std::vector<std::string>{"next", "last"}));
}

TEST(PaginationLink, SkipsMalformedEntriesAndKeepsTheRest) {
  EXPECT_TRUE(pn::parse_link_header("").empty());
  EXPECT_TRUE(pn::parse_link_header("garbage").empty());
  EXPECT_TRUE(pn::parse_link_header("<https://x/unterminated; rel=next").empty());
  const auto links = pn::parse_link_header(R"(junk; rel="next", <https://x/ok>; rel="next")");
  ASSERT_EQ(links.size(), 1U);
  EXPECT_EQ(links[0].target, "https://x/ok");
  // A quoted value with an escaped quote.
  const auto quoted = pn::parse_link_header(R"(<https://x/q>; title="say \"hi\""; rel=next)");
  ASSERT_EQ(quoted.size(), 1U);
  EXPECT_EQ(quoted[0].params.at("title"), R"(say "hi")");
  EXPECT_EQ(quoted[0].rels(), (std::vector<std::string>{"next"}));
}

TEST(PaginationLink, FindsNextAcrossHeadersAndResolvesRelativeTargets) {
  const Headers headers = {{"link", R"(</items?page=1>; rel="prev")"},
                           {"Content-Type", "application/json"},
                           {"LINK", R"(</items?page=3>; rel="next")"}};
  EXPECT_EQ(pn::find_link(headers, "https://api.x.com/items?page=2"), "https://api.x.com/items?page=3");
  EXPECT_EQ(pn::find_link(headers, "https://api.x.com/items", "PREV"), "https://api.x.com/items?page=1");
  EXPECT_EQ(pn::find_link(headers, "https://api.x.com/items", "last"), std::nullopt);
}

// --- Repeat guard ---

TEST(PaginationRepeat, CatchesACycleButNotARetryOrAResume) {
  pn::RepeatGuard guard;
  const auto items = nlohmann::json::array({1});
  guard.begin("");
  guard.end("", "a", nlohmann::json::array({1}));
  guard.begin("a");
  guard.begin("a");  // a retry of the same page
  guard.end("a", "b", nlohmann::json::array({2}));
  guard.begin("b");
  try {
    guard.end("b", "a", nlohmann::json::array({3}));
    FAIL() << "expected InvariantViolation";
  } catch (const InvariantViolation& e) {
    EXPECT_NE(std::string(e.what()).find("'a'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("loop forever"), std::string::npos) << e.what();
  }
  // A resume from a checkpoint is a new walk.
  guard.begin("a");
  guard.end("a", "b", nlohmann::json::array({2}));
  // The first page again is a new walk too.
  guard.begin("");
  guard.end("", "a", items);
}

TEST(PaginationRepeat, RedactsUrlTokensInTheMessage) {
  pn::RepeatGuard guard;
  const std::string url = "https://api.x.com/items?page=2&api_key=sk_SECRET";
  guard.begin("");
  guard.end("", url, nlohmann::json::array({1}));
  guard.begin(url);
  try {
    guard.end(url, url, nlohmann::json::array({2}));
    FAIL() << "expected InvariantViolation";
  } catch (const InvariantViolation& e) {
    EXPECT_EQ(std::string(e.what()).find("sk_SECRET"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("api_key=REDACTED"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace webhookdb
