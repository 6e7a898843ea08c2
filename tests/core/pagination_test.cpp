// Pagination's pure parts: the Link header (RFC 8288), the repeat guard, and
// the body cursor's requests and walks against a scripted client. No server:
// the walks against the local API server are in tests/curl.

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
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

// --- BodyCursor (a cursor in a POST JSON body) ---

// Answers each request with `respond` and keeps what was sent.
class ScriptedHttp final : public HttpClient {
 public:
  explicit ScriptedHttp(std::function<nlohmann::json(const nlohmann::json& request_body)> respond)
      : respond_(std::move(respond)) {}
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken&) override {
    sent.push_back(request);
    const auto body = respond_(nlohmann::json::parse(request.body));
    return HttpResponse{200, {{"Content-Type", "application/json"}}, body.dump(), request.url};
  }
  std::vector<HttpRequest> sent;

 private:
  std::function<nlohmann::json(const nlohmann::json&)> respond_;
};

// HubSpot's CRM search: ids 1..total in pages of `limit`; `after` is the
// offset, and paging.next.after is absent on the last page.
nlohmann::json hubspot_search(const nlohmann::json& request, int total) {
  const int limit = request.at("limit").get<int>();
  const int after = request.contains("after") ? std::stoi(request.at("after").get<std::string>()) : 0;
  nlohmann::json page{{"total", total}, {"results", nlohmann::json::array()}};
  for (int id = after + 1; id <= std::min(total, after + limit); ++id) {
    page["results"].push_back(
        {{"id", std::to_string(id)}, {"properties", {{"email", "c" + std::to_string(id)}}}});
  }
  if (after + limit < total) page["paging"] = {{"next", {{"after", std::to_string(after + limit)}}}};
  return page;
}

const HttpRequest kSearch{.method = "POST",
                          .url = "https://api.hubapi.test/crm/v3/objects/contacts/search",
                          .headers = {{"Authorization", "Bearer pat-SECRET"}},
                          .body = R"({"filterGroups":[],"sorts":["hs_object_id"],"limit":7})"};

TEST(PaginationBodyCursor, TheFirstPageIsBuiltFromFirstToo) {
  // request_for runs for the empty token: page one carries the limit, keeps
  // the caller's body fields, method and headers, and has no cursor yet.
  ScriptedHttp http([](const nlohmann::json& request) { return hubspot_search(request, 5); });
  pn::BodyCursor pages{{.limit = 2}};
  const auto page = pages.fetch(http, kSearch, "");
  ASSERT_EQ(http.sent.size(), 1U);
  const HttpRequest& sent = http.sent[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.url, kSearch.url);
  EXPECT_EQ(find_header(sent.headers, "Authorization"), "Bearer pat-SECRET");
  EXPECT_EQ(find_header(sent.headers, "content-type"), "application/json");
  const auto body = nlohmann::json::parse(sent.body);
  EXPECT_EQ(body.at("limit"), 2) << "the option's limit replaces the body's";
  EXPECT_FALSE(body.contains("after"));
  EXPECT_EQ(body.at("sorts"), nlohmann::json::array({"hs_object_id"}));
  EXPECT_EQ(page.items.size(), 2U);
  EXPECT_EQ(page.next, "2");
}

TEST(PaginationBodyCursor, WalksHubSpotSearchToTheEndOnce) {
  ScriptedHttp http([](const nlohmann::json& request) { return hubspot_search(request, 7); });
  pn::BodyCursor pages{{.limit = 3}};
  std::vector<std::string> ids;
  std::string token;
  int fetched = 0;
  do {
    const auto page = pages.fetch(http, kSearch, token);
    for (const auto& item : page.items) ids.push_back(item.at("id").get<std::string>());
    token = page.next;
  } while (!token.empty() && ++fetched < 10);
  EXPECT_EQ(ids, (std::vector<std::string>{"1", "2", "3", "4", "5", "6", "7"}));
  ASSERT_EQ(http.sent.size(), 3U);
  EXPECT_EQ(nlohmann::json::parse(http.sent[1].body).at("after"), "3");
  EXPECT_EQ(nlohmann::json::parse(http.sent[2].body).at("after"), "6");
  EXPECT_EQ(find_header(http.sent[2].headers, "Content-Type"), "application/json");
}

TEST(PaginationBodyCursor, NotionsHasMoreEndsTheWalkAndACursorWithoutMoreIsNotFollowed) {
  const pn::BodyCursorOptions notion{.limit_field = "page_size",
                                     .cursor_field = "start_cursor",
                                     .next_cursor_path = {"next_cursor"},
                                     .has_more_path = {"has_more"}};
  const HttpRequest query{.method = "POST", .url = "https://api.notion.test/v1/databases/d1/query"};
  ScriptedHttp http([](const nlohmann::json& request) {
    const bool first = !request.contains("start_cursor");
    EXPECT_EQ(request.at("page_size"), 100);
    // The second page says has_more false yet still names a cursor.
    return nlohmann::json{{"object", "list"},
                          {"results", {{{"id", first ? "p1" : "p2"}}}},
                          {"next_cursor", first ? "c2" : "c3"},
                          {"has_more", first}};
  });
  pn::BodyCursor pages{notion};
  const auto one = pages.fetch(http, query, "");
  EXPECT_EQ(one.next, "c2");
  const auto two = pages.fetch(http, query, one.next);
  EXPECT_EQ(two.next, "") << "has_more false ends the walk";
  EXPECT_EQ(nlohmann::json::parse(http.sent[1].body).at("start_cursor"), "c2");
}

TEST(PaginationBodyCursor, HasMoreWithoutACursorIsRefusedNamingBothFields) {
  ScriptedHttp http([](const nlohmann::json&) {
    return nlohmann::json{{"results", {{{"id", "p1"}}}}, {"next_cursor", nullptr}, {"has_more", true}};
  });
  pn::BodyCursor pages{{.next_cursor_path = {"next_cursor"}, .has_more_path = {"has_more"}}};
  try {
    (void)pages.fetch(http, HttpRequest{.method = "POST", .url = "https://api.notion.test/q"}, "");
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("'has_more' is true but 'next_cursor'"), std::string::npos)
        << e.what();
  }
}

TEST(PaginationBodyCursor, AGetOrABodyThatIsNotAnObjectIsRefusedBeforeSending) {
  ScriptedHttp http([](const nlohmann::json& request) { return hubspot_search(request, 1); });
  pn::BodyCursor pages;
  EXPECT_THROW((void)pages.fetch(http, HttpRequest{.url = "https://api.hubapi.test/search"}, ""),
               InvalidPrecondition);
  EXPECT_THROW(
      (void)pages.fetch(http, HttpRequest{.method = "POST", .url = "https://x/s", .body = "[1]"}, ""),
      InvalidPrecondition);
  EXPECT_THROW((void)pages.fetch(http, HttpRequest{.method = "POST", .url = "https://x/s", .body = "{"}, ""),
               InvalidPrecondition);
  EXPECT_TRUE(http.sent.empty());
}

TEST(PaginationBodyCursor, OptionsThatCannotWorkAreRefusedNamingTheField) {
  const auto refused = [](pn::BodyCursorOptions options, const std::string& field) {
    try {
      pn::BodyCursor pages{std::move(options)};
      ADD_FAILURE() << field << " was accepted";
    } catch (const BrokenSpecification& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  refused({.limit = -1}, "limit");
  refused({.cursor_field = ""}, "cursor_field");
  refused({.limit_field = ""}, "limit_field");
  refused({.limit_field = "after"}, "limit_field and cursor_field");
  refused({.next_cursor_path = {}}, "next_cursor_path");
  EXPECT_NO_THROW(pn::BodyCursor({.limit = 0, .limit_field = ""}));
}

TEST(PaginationBodyCursor, ARepeatedCursorIsCaught) {
  ScriptedHttp http([](const nlohmann::json& request) {
    const std::string after = request.value("after", "");
    return nlohmann::json{{"results", {{{"id", after}}}},
                          {"paging", {{"next", {{"after", after == "a" ? "b" : "a"}}}}}};
  });
  pn::BodyCursor pages;
  std::string token;
  EXPECT_THROW(
      {
        for (int i = 0; i < 5; ++i) token = pages.fetch(http, kSearch, token).next;
      },
      InvariantViolation);
  EXPECT_LE(http.sent.size(), 4U);
}

}  // namespace
}  // namespace webhookdb
