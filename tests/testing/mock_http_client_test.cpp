// MockHttpClient: scripted answers in order or by URL, real-client errors,
// recorded requests, and a hang that only cancellation ends.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "webhookdb/errors.hpp"
#include "webhookdb/testing/mock_http_client.hpp"

namespace webhookdb::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

HttpRequest get(const std::string& url) {
  HttpRequest r;
  r.url = url;
  return r;
}

TEST(MockHttpClient, AnswersInOrder) {
  MockHttpClient http;
  http.respond(200, "one");
  http.respond_json({{"n", 2}}, 201, {{"X-Id", "7"}});
  EXPECT_EQ(http.send(get("https://a.test/1")).body, "one");
  const auto second = http.send(get("https://a.test/2"));
  EXPECT_EQ(second.status, 201);
  EXPECT_EQ(nlohmann::json::parse(second.body), nlohmann::json({{"n", 2}}));
  EXPECT_EQ(second.header("x-id"), "7");
  EXPECT_EQ(second.header("content-type"), "application/json");
  EXPECT_EQ(second.url, "https://a.test/2");
  EXPECT_EQ(http.pending_steps(), 0U);
}

TEST(MockHttpClient, RoutesMatchUrlsBeforeTheDefaultScript) {
  MockHttpClient http;
  http.respond(200, "default");
  http.on("/users").respond(200, "users").repeat();
  http.on("/teams").respond(200, "team 1").respond(200, "team 2");
  EXPECT_EQ(http.send(get("https://a.test/teams")).body, "team 1");
  EXPECT_EQ(http.send(get("https://a.test/users?page=1")).body, "users");
  EXPECT_EQ(http.send(get("https://a.test/users?page=2")).body, "users");
  EXPECT_EQ(http.send(get("https://a.test/other")).body, "default");
  EXPECT_EQ(http.send(get("https://a.test/teams")).body, "team 2");
}

TEST(MockHttpClient, TheMostSpecificRouteAnswersNotTheFirstRegistered) {
  MockHttpClient http;
  // Registered first and a substring of the second page's URL too: it used
  // to answer "token=p2" as well.
  http.on("token=").respond(200, "first page").repeat();
  http.on("token=p2").respond(200, "second page").repeat();
  EXPECT_EQ(http.send(get("https://a.test/items?token=p2")).body, "second page");
  EXPECT_EQ(http.send(get("https://a.test/items?token=")).body, "first page");
  // A route whose steps ran out gives way to the next most specific one.
  http.on("/items").respond(200, "items once");
  http.on("/items?token=p3").respond(200, "p3 once");
  EXPECT_EQ(http.send(get("https://a.test/items?token=p3")).body, "p3 once");
  EXPECT_EQ(http.send(get("https://a.test/items?token=p3")).body, "first page")
      << "\"token=\" and \"/items\" are as long: the first registered answers";
}

TEST(MockHttpClient, AnExactUrlRouteBeatsEveryPattern) {
  MockHttpClient http;
  http.on("https://a.test/items?token=").respond(200, "pattern").repeat();
  http.on_url("https://a.test/items?token=").respond(200, "exact").repeat();
  EXPECT_EQ(http.send(get("https://a.test/items?token=")).body, "exact");
  EXPECT_EQ(http.send(get("https://a.test/items?token=p2")).body, "pattern")
      << "on_url matches the whole URL only";
}

TEST(MockHttpClient, TimesRepeatsAStepThatManyTimes) {
  MockHttpClient http;
  http.respond(503, "busy").times(2);
  http.respond(200, "ok");
  HttpRequest r = get("https://a.test/x");
  r.raise_for_status = false;
  EXPECT_EQ(http.send(r).status, 503);
  EXPECT_EQ(http.send(r).status, 503);
  EXPECT_EQ(http.send(r).status, 200);
}

TEST(MockHttpClient, ErrorStatusesThrowLikeARealClient) {
  MockHttpClient http;
  http.respond(404, "missing", {{"X-Request-Id", "r9"}});
  http.respond(404, "missing");
  try {
    (void)http.send(get("https://a.test/x?api_key=sk_1"));
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(e.url(), "https://a.test/x?api_key=REDACTED");
    EXPECT_EQ(e.body_excerpt(), "missing");
    EXPECT_EQ(e.header("x-request-id"), "r9");
    EXPECT_THAT(e.what(), Not(HasSubstr("sk_1")));
  }
  HttpRequest quiet = get("https://a.test/x");
  quiet.raise_for_status = false;
  EXPECT_EQ(http.send(quiet).status, 404);
}

TEST(MockHttpClient, ScriptedFailures) {
  MockHttpClient http;
  http.timeout();
  http.connection_error();
  http.fail(std::make_exception_ptr(std::runtime_error("custom")));
  EXPECT_THROW((void)http.send(get("https://a.test/1")), HttpTimeout);
  try {
    (void)http.send(get("https://u:pw@a.test/2"));
    FAIL();
  } catch (const HttpConnectionError& e) {
    EXPECT_EQ(e.url(), "https://REDACTED@a.test/2");
  }
  EXPECT_THROW((void)http.send(get("https://a.test/3")), std::runtime_error);
}

TEST(MockHttpClient, CallbacksComputeTheResponse) {
  MockHttpClient http;
  http.call([](const HttpRequest& r, const CancellationToken&) {
    return HttpResponse{r.method == "POST" ? 201 : 200, {}, r.body, {}};
  }).repeat();
  HttpRequest post = get("https://a.test/x");
  post.method = "POST";
  post.body = "hello";
  const auto response = http.send(post);
  EXPECT_EQ(response.status, 201);
  EXPECT_EQ(response.body, "hello");
  http.call([](const HttpRequest&, const CancellationToken&) { return HttpResponse{500, {}, "", {}}; });
  EXPECT_EQ(http.send(get("https://a.test/y")).status, 200) << "the repeated callback comes first";
}

TEST(MockHttpClient, NothingScriptedNamesTheRequest) {
  MockHttpClient http;
  try {
    (void)http.send(get("https://a.test/missing?token=t0k"));
    FAIL() << "expected InvalidPrecondition";
  } catch (const InvalidPrecondition& e) {
    EXPECT_THAT(e.what(), HasSubstr("GET https://a.test/missing?token=REDACTED"));
  }
  EXPECT_EQ(http.request_count(), 1U) << "still recorded";
}

TEST(MockHttpClient, RecordsEveryRequest) {
  MockHttpClient http;
  http.respond(200, "").repeat();
  HttpRequest r = get("https://a.test/1");
  r.headers = {{"Authorization", "Bearer x"}};
  r.timeout = 5s;
  (void)http.send(r);
  (void)http.get("https://a.test/2");
  const auto requests = http.requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(find_header(requests[0].headers, "authorization"), "Bearer x");
  EXPECT_EQ(requests[0].timeout, 5s);
  EXPECT_THAT(http.urls(), ElementsAre("https://a.test/1", "https://a.test/2"));
  http.reset();
  EXPECT_EQ(http.request_count(), 0U);
  EXPECT_THROW((void)http.send(get("https://a.test/3")), InvalidPrecondition) << "scripts forgotten too";
}

TEST(MockHttpClient, HangUntilCancelledEndsOnCancellationOnly) {
  MockHttpClient http;
  http.hang_until_cancelled();
  CancellationSource source;
  std::thread canceller([&] {
    EXPECT_TRUE(http.wait_for_requests(1, 5s));
    std::this_thread::sleep_for(10ms);
    source.cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW((void)http.send(get("https://a.test/slow"), source.token()), Cancelled);
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(MockHttpClient, AHangHasALimit) {
  MockHttpClient http;
  http.hang_until_cancelled(20ms);
  EXPECT_THROW((void)http.send(get("https://a.test/slow")), HttpTimeout);
}

TEST(MockHttpClient, ACancelledTokenFailsAtOnce) {
  MockHttpClient http;
  http.respond(200, "ok");
  CancellationSource source;
  source.cancel();
  EXPECT_THROW((void)http.send(get("https://a.test/x"), source.token()), Cancelled);
}

TEST(MockHttpClient, IsSafeToUseFromManyThreads) {
  MockHttpClient http;
  http.on("/a").respond(200, "a").repeat();
  http.respond(200, "d").times(400);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const auto r = http.send(get(t % 2 == 0 ? "https://x.test/a" : "https://x.test/d"));
        if (r.body == (t % 2 == 0 ? "a" : "d")) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 400);
  EXPECT_EQ(http.request_count(), 400U);
}

}  // namespace
}  // namespace webhookdb::testing
