// Pagination against the local API server: every style walking the
// local server's whole dataset exactly once (the pure URL, Link and repeat
// guard tests are in tests/core/url_test.cpp and pagination_test.cpp), filters, malformed bodies, and
// pagination that would loop forever.

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "server_fixture.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/pagination.hpp"

namespace webhookdb::test {
namespace {

namespace pn = webhookdb::pagination;

// --- Walking the server ---

struct Walk {
  std::vector<std::string> ids;
  int pages = 0;
};

// Follows `next` until it is empty, the way the page loop does.
Walk walk(pn::Paginator& paginator, HttpClient& http, const std::string& url, int max_pages = 10'000) {
  Walk w;
  std::string token;
  HttpRequest first;
  first.url = url;
  do {
    auto page = paginator.fetch(http, first, token);
    ++w.pages;
    EXPECT_TRUE(page.items.is_array()) << "page " << w.pages;
    EXPECT_GT(page.bytes, 0U);
    for (const auto& item : page.items) w.ids.push_back(item.at("id").get<std::string>());
    token = page.next;
  } while (!token.empty() && w.pages < max_pages);
  EXPECT_TRUE(token.empty()) << "walk did not end";
  return w;
}

void expect_exactly_once(const Walk& w, const tools::Dataset& dataset) {
  ASSERT_EQ(w.ids.size(), dataset.size());
  for (std::size_t i = 0; i < dataset.size(); ++i) {
    ASSERT_EQ(w.ids[i], dataset.id(i)) << "at " << i;
  }
}

class PaginationWalk : public ::testing::Test {
 protected:
  // 1,050 objects: the last page of 100 is short.
  void SetUp() override { server_ = start_server({.objects = 1050}); }
  std::unique_ptr<tools::ApiServer> server_;
  curl::CurlHttpClient http_;
};

TEST_F(PaginationWalk, StartingAfterWalksTheDatasetOnce) {
  pn::StartingAfter pages({.limit = 100});
  const auto w = walk(pages, http_, server_->url("/v1/charges"));
  expect_exactly_once(w, server_->dataset());
  EXPECT_EQ(w.pages, 11);
  EXPECT_EQ(server_->stats().data_requests, 11U);
}

TEST_F(PaginationWalk, CursorWalksTheDatasetOnce) {
  pn::Cursor pages({.limit = 100});
  const auto w = walk(pages, http_, server_->url("/cursor"));
  expect_exactly_once(w, server_->dataset());
  EXPECT_EQ(w.pages, 11);
}

TEST_F(PaginationWalk, LinkHeaderWalksTheDatasetOnce) {
  pn::LinkHeader pages;
  const auto w = walk(pages, http_, server_->url("/link?limit=100"));
  expect_exactly_once(w, server_->dataset());
  EXPECT_EQ(w.pages, 11);
}

TEST_F(PaginationWalk, PageNumberWalksTheDatasetOnce) {
  pn::PageNumber pages({.per_page = 100});
  const auto w = walk(pages, http_, server_->url("/pages"));
  expect_exactly_once(w, server_->dataset());
  EXPECT_EQ(w.pages, 11) << "the short last page ends the walk";
}

TEST_F(PaginationWalk, PageNumberCanStopAtTotalPages) {
  pn::PageNumber pages({.per_page = 50, .total_pages_path = {"total_pages"}});
  const auto w = walk(pages, http_, server_->url("/pages"));
  expect_exactly_once(w, server_->dataset());
  EXPECT_EQ(w.pages, 21);
}

TEST_F(PaginationWalk, OffsetWalksTheDatasetOnce) {
  pn::Offset pages({.limit = 100});
  const auto w = walk(pages, http_, server_->url("/offset"));
  expect_exactly_once(w, server_->dataset());
  EXPECT_EQ(w.pages, 11);
}

TEST_F(PaginationWalk, OffsetCanStopAtTheTotal) {
  pn::Offset pages({.limit = 75, .total_path = {"total"}});
  const auto w = walk(pages, http_, server_->url("/offset"));
  expect_exactly_once(w, server_->dataset());
  EXPECT_EQ(w.pages, 14);
}

TEST_F(PaginationWalk, NextUrlWalksTheDatasetOnce) {
  pn::NextUrl pages;
  const auto w = walk(pages, http_, server_->url("/nexturl?limit=100"));
  expect_exactly_once(w, server_->dataset());
  EXPECT_EQ(w.pages, 11);
}

TEST(PaginationExact, AFullLastPageCostsOneEmptyPageOnlyWithoutHints) {
  auto server = start_server({.objects = 1000});
  curl::CurlHttpClient http;
  pn::PageNumber pages({.per_page = 100});
  const auto w = walk(pages, http, server->url("/pages"));
  expect_exactly_once(w, server->dataset());
  EXPECT_EQ(w.pages, 11) << "ten full pages, then an empty one";
  pn::StartingAfter stripe({.limit = 100});
  EXPECT_EQ(walk(stripe, http, server->url("/v1/charges")).pages, 10) << "has_more=false ends it";
}

TEST(PaginationFilter, UpdatedSinceReturnsOnlyTouchedObjects) {
  auto server = start_server({.objects = 900});
  curl::CurlHttpClient http;
  std::vector<std::size_t> touched;
  for (std::size_t i = 3; i < 900; i += 37) touched.push_back(i);
  const std::int64_t t = 1'900'000'000;
  server->touch(touched, t);
  std::set<std::string> expected;
  for (const auto i : touched) expected.insert(server->dataset().id(i));

  const std::string since = "updated_since=" + std::to_string(t);
  for (const std::string path : {"/v1/charges", "/cursor", "/link", "/pages", "/offset", "/nexturl"}) {
    std::unique_ptr<pn::Paginator> p;
    if (path == "/v1/charges") p = std::make_unique<pn::StartingAfter>(pn::StartingAfterOptions{.limit = 10});
    if (path == "/cursor") p = std::make_unique<pn::Cursor>(pn::CursorOptions{.limit = 10});
    if (path == "/link") p = std::make_unique<pn::LinkHeader>();
    if (path == "/pages") p = std::make_unique<pn::PageNumber>(pn::PageNumberOptions{.per_page = 10});
    if (path == "/offset") p = std::make_unique<pn::Offset>(pn::OffsetOptions{.limit = 10});
    if (path == "/nexturl") p = std::make_unique<pn::NextUrl>();
    const auto w = walk(*p, http, server->url(path + "?limit=10&" + since));
    EXPECT_EQ(std::set<std::string>(w.ids.begin(), w.ids.end()), expected) << path;
    EXPECT_EQ(w.ids.size(), expected.size()) << path;
  }
}

TEST(PaginationDuplicates, StaleCopiesAreListedAfterTheirObject) {
  auto server = start_server({.objects = 300, .duplicates = 10});
  curl::CurlHttpClient http;
  pn::Cursor pages({.limit = 50});
  const auto w = walk(pages, http, server->url("/cursor"));
  EXPECT_EQ(w.ids.size(), 310U);
  EXPECT_EQ(std::set<std::string>(w.ids.begin(), w.ids.end()).size(), 300U);
  // /v1/charges lists every object once.
  pn::StartingAfter stripe({.limit = 50});
  expect_exactly_once(walk(stripe, http, server->url("/v1/charges")), server->dataset());
}

// --- Failures ---

TEST(PaginationRepeat, CyclingCursorIsCaught) {
  auto server = start_server({.objects = 20});
  curl::CurlHttpClient http;
  pn::Cursor pages({.limit = 0});
  try {
    (void)walk(pages, http, server->url("/broken/cursor"), 50);
    FAIL() << "expected InvariantViolation";
  } catch (const InvariantViolation& e) {
    EXPECT_NE(std::string(e.what()).find("'a'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server->stats().data_requests, 3U) << "caught at the first repeat";
}

TEST(PaginationRepeat, CyclingLinkIsCaught) {
  auto server = start_server({.objects = 20});
  curl::CurlHttpClient http;
  pn::LinkHeader pages;
  try {
    (void)walk(pages, http, server->url("/broken/link"), 50);
    FAIL() << "expected InvariantViolation";
  } catch (const InvariantViolation& e) {
    EXPECT_NE(std::string(e.what()).find("/broken/link?page=2"), std::string::npos) << e.what();
  }
}

TEST(PaginationRepeat, AnApiIgnoringThePageParameterIsCaught) {
  auto server = start_server({.objects = 20});
  curl::CurlHttpClient http;
  pn::PageNumber pages({.per_page = 5});
  try {
    (void)walk(pages, http, server->url("/broken/pages"), 50);
    FAIL() << "expected InvariantViolation";
  } catch (const InvariantViolation& e) {
    EXPECT_NE(std::string(e.what()).find("same items"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server->stats().data_requests, 2U);
}

TEST(PaginationBodies, MalformedBodiesAreRetryableConnectionErrors) {
  auto server = start_server({.objects = 20});
  curl::CurlHttpClient http;
  for (const char* fault : {"truncated", "empty", "wrong_type"}) {
    pn::StartingAfter pages({.limit = 10});
    HttpRequest first;
    first.url = server->url("/v1/charges?api_key=sk_SECRET");
    first.headers = {{"X-Fault", fault}};
    try {
      (void)pages.fetch(http, first, "");
      ADD_FAILURE() << fault << ": expected HttpConnectionError";
    } catch (const HttpConnectionError& e) {
      EXPECT_TRUE(e.retryable());
      EXPECT_EQ(std::string(e.what()).find("sk_SECRET"), std::string::npos) << e.what();
      if (std::string(fault) == "wrong_type") {
        EXPECT_NE(std::string(e.what()).find("text/html"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(PaginationBodies, MissingItemsGiveANullPageAndErrorsPropagate) {
  auto server = start_server({.objects = 20});
  curl::CurlHttpClient http;
  HttpRequest first;
  first.url = server->url("/v1/charges");
  pn::StartingAfter wrong_key({.items_path = {"items"}});
  EXPECT_TRUE(wrong_key.fetch(http, first, "").items.is_null());
  pn::StartingAfter pages;
  first.url = server->url("/status/500");
  EXPECT_THROW((void)pages.fetch(http, first, ""), HttpError);
  first.url = server->url("/v1/charges");
  EXPECT_THROW((void)pages.fetch(http, first, "ch_does_not_exist"), HttpError) << "the server's 400";
}

// A client that answers every request with one canned response.
class CannedClient final : public HttpClient {
 public:
  explicit CannedClient(HttpResponse response) : response_(std::move(response)) {}
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken&) override {
    HttpResponse r = response_;
    r.url = request.url;
    return r;
  }

 private:
  HttpResponse response_;
};

TEST(PaginationOrigin, NextUrlsOnAnotherOriginAreRefused) {
  HttpResponse response;
  response.status = 200;
  response.body = R"({"data":[{"id":"x"}],"next":"https://evil.example.com/steal?page=2"})";
  CannedClient http(response);
  HttpRequest first;
  first.url = "https://api.example.com/items";
  pn::NextUrl pages;
  EXPECT_THROW((void)pages.fetch(http, first, ""), InvariantViolation);
  pn::NextUrl permissive({.same_origin = false});
  EXPECT_EQ(permissive.fetch(http, first, "").next, "https://evil.example.com/steal?page=2");

  response.body = R"([{"id":"x"}])";
  response.headers = {{"Link", R"(<https://evil.example.com/x>; rel="next")"}};
  CannedClient linked(response);
  pn::LinkHeader link_pages;
  EXPECT_THROW((void)link_pages.fetch(linked, first, ""), InvariantViolation);
}

TEST(PaginationOrigin, RelativeNextUrlsResolveAgainstTheRequest) {
  HttpResponse response;
  response.status = 200;
  response.body = R"({"data":[{"id":"x"}],"meta":{"next_page_uri":"/2010-04-01/Messages.json?Page=1"}})";
  CannedClient http(response);
  HttpRequest first;
  first.url = "https://api.twilio.example/2010-04-01/Messages.json";
  pn::NextUrl pages({.next_path = {"meta", "next_page_uri"}});
  EXPECT_EQ(pages.fetch(http, first, "").next, "https://api.twilio.example/2010-04-01/Messages.json?Page=1");
}

}  // namespace
}  // namespace webhookdb::test
