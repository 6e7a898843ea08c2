// Retry-After parsing, the polite retry policy, and both through the real
// page loop against the local server with a recording sleeper (nothing
// really waits).

#include <gtest/gtest.h>

#include <ctime>
#include <string>
#include <vector>

#include "server_fixture.hpp"
#include "webhookdb/backfiller.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/retry_after.hpp"
#include "webhookdb/retry_policy.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Timestamp at(std::int64_t unix_seconds) {
  return Timestamp(std::chrono::duration_cast<std::chrono::microseconds>(seconds(unix_seconds)));
}

// --- Retry-After ---

TEST(RetryAfter, ParsesDeltaSeconds) {
  const auto now = at(1'700'000'000);
  EXPECT_EQ(parse_retry_after("120", now), milliseconds(120'000));
  EXPECT_EQ(parse_retry_after(" 3 ", now), milliseconds(3000));
  EXPECT_EQ(parse_retry_after("0", now), milliseconds(0));
  EXPECT_EQ(parse_retry_after("1.5", now), milliseconds(1500)) << "lenient: a fraction";
  EXPECT_EQ(parse_retry_after("0.0001", now), milliseconds(1)) << "rounded up";
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("-5", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("12abc", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("99999999999999999999", now), std::nullopt) << "absurd values are not plans";
}

TEST(RetryAfter, ParsesHttpDatesInEveryForm) {
  // Sun, 06 Nov 1994 08:49:37 GMT is 784111777.
  const auto now = at(784'111'777 - 30);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), milliseconds(30'000));
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), milliseconds(30'000));
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), milliseconds(30'000));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at(784'111'777 + 100)), milliseconds(0))
      << "a date in the past means now";
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 25:49:37 GMT", now), std::nullopt);
}

TEST(RetryAfter, ReadsTheHeaderOfAnHttpError) {
  const auto now = at(1'700'000'000);
  EXPECT_EQ(retry_after(HttpError(429, "GET", "u", "", {{"retry-after", "7"}}), now), milliseconds(7000));
  EXPECT_EQ(retry_after(HttpError(429, "GET", "u"), now), std::nullopt);
  EXPECT_EQ(retry_after(HttpTimeout("t", "GET", "u"), now), std::nullopt);
}

// --- Polite policy ---

HttpError status_error(int status, Headers headers = {}, const std::string& body = {}) {
  return HttpError(status, "GET", "http://api/x", body, std::move(headers));
}

TEST(PoliteRetryPolicy, NeverRetries401And403AndOtherClientErrors) {
  const auto policy = polite_retry_policy({.seed = 1});
  for (int status : {400, 401, 403, 404, 409, 422}) {
    EXPECT_EQ(policy->wait_before_retry(status_error(status), 1), std::nullopt) << status;
  }
  for (int status : {408, 429, 500, 502, 503, 504}) {
    EXPECT_TRUE(policy->wait_before_retry(status_error(status), 1).has_value()) << status;
  }
  EXPECT_TRUE(policy->wait_before_retry(HttpTimeout("t", "GET", "u"), 1).has_value());
  EXPECT_TRUE(policy->wait_before_retry(HttpConnectionError("c", "GET", "u"), 1).has_value());
}

TEST(PoliteRetryPolicy, StopsAtMaxAttempts) {
  const auto policy = polite_retry_policy({.max_attempts = 4, .seed = 1});
  EXPECT_EQ(policy->max_attempts(), 4);
  EXPECT_TRUE(policy->wait_before_retry(HttpTimeout("a", "GET", "u"), 3).has_value());
  EXPECT_EQ(policy->wait_before_retry(HttpTimeout("b", "GET", "u"), 4), std::nullopt);
}

TEST(PoliteRetryPolicy, FullJitterUnderAnExponentialCeilingWithACap) {
  const auto policy = polite_retry_policy({.max_attempts = 10, .base = milliseconds(100),
                                           .cap = milliseconds(1000), .seed = 42});
  const std::vector<milliseconds> ceilings = {milliseconds(100), milliseconds(200), milliseconds(400),
                                              milliseconds(800), milliseconds(1000), milliseconds(1000)};
  for (std::size_t k = 0; k < ceilings.size(); ++k) {
    const int attempt = static_cast<int>(k) + 1;
    milliseconds lo = ceilings[k];
    milliseconds hi{0};
    for (int i = 0; i < 300; ++i) {
      // A new failure each time (its text differs), not the same one asked again.
      const HttpTimeout e("timeout " + std::to_string(i), "GET", "u");
      const auto wait = policy->wait_before_retry(e, attempt);
      ASSERT_TRUE(wait.has_value());
      EXPECT_GE(*wait, milliseconds(0));
      EXPECT_LE(*wait, ceilings[k]) << "attempt " << attempt;
      lo = std::min(lo, *wait);
      hi = std::max(hi, *wait);
    }
    EXPECT_LT(lo, ceilings[k] / 4) << "full jitter reaches low waits, attempt " << attempt;
    EXPECT_GT(hi, ceilings[k] * 3 / 4) << "and high ones, attempt " << attempt;
  }
}

TEST(PoliteRetryPolicy, SameSeedSameWaits) {
  auto draws = [](const std::shared_ptr<const RetryPolicy>& policy) {
    std::vector<std::optional<milliseconds>> out;
    for (int i = 0; i < 20; ++i) out.push_back(policy->wait_before_retry(HttpTimeout("t" + std::to_string(i), "GET", "u"), 4));
    return out;
  };
  const auto a = draws(polite_retry_policy({.seed = 9}));
  EXPECT_EQ(draws(polite_retry_policy({.seed = 9})), a);
  EXPECT_NE(draws(polite_retry_policy({.seed = 10})), a);
}

TEST(PoliteRetryPolicy, AskingTwiceAboutOneFailureGivesOneAnswer) {
  // The page loop may ask whether to retry, then how long to wait.
  const auto policy = polite_retry_policy({.base = milliseconds(10'000), .cap = milliseconds(10'000)});
  const HttpTimeout e("t", "GET", "u");
  const auto first = policy->wait_before_retry(e, 2);
  EXPECT_EQ(policy->wait_before_retry(e, 2), first);
  EXPECT_EQ(policy->wait_before_retry(e, 2), first);
}

TEST(PoliteRetryPolicy, HonoursRetryAfterOn429And503Only) {
  const auto policy = polite_retry_policy({.base = milliseconds(100), .cap = milliseconds(1000), .seed = 3});
  EXPECT_EQ(policy->wait_before_retry(status_error(429, {{"Retry-After", "7"}}), 1), milliseconds(7000))
      << "past the cap: the server said so";
  EXPECT_EQ(policy->wait_before_retry(status_error(503, {{"Retry-After", "2"}}), 1), milliseconds(2000));
  const auto on_500 = policy->wait_before_retry(status_error(500, {{"Retry-After", "7"}}), 1);
  ASSERT_TRUE(on_500.has_value());
  EXPECT_LE(*on_500, milliseconds(100));
  const auto garbage = policy->wait_before_retry(status_error(429, {{"Retry-After", "later"}}), 1);
  ASSERT_TRUE(garbage.has_value());
  EXPECT_LE(*garbage, milliseconds(100)) << "an unreadable Retry-After falls back to backoff";
}

TEST(PoliteRetryPolicy, HonoursRetryAfterAsAnHttpDate) {
  const auto policy = polite_retry_policy({.seed = 3});
  const std::time_t in_30s = std::time(nullptr) + 30;
  std::tm tm{};
  gmtime_r(&in_30s, &tm);
  std::array<char, 64> buf{};
  const auto n = std::strftime(buf.data(), buf.size(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  const auto wait = policy->wait_before_retry(status_error(503, {{"Retry-After", std::string(buf.data(), n)}}), 1);
  ASSERT_TRUE(wait.has_value());
  EXPECT_GT(*wait, milliseconds(28'000));
  EXPECT_LE(*wait, milliseconds(30'000));
}

TEST(PoliteRetryPolicy, ReadsNowFromTheInjectedClock) {
  class FixedClock final : public Clock {
   public:
    [[nodiscard]] Timestamp now() const override { return at(784'111'777); }
  };
  // Sun, 06 Nov 1994 08:49:37 GMT is 784111777: 45 s after the clock's now.
  const auto policy = polite_retry_policy({.seed = 3, .clock = std::make_shared<FixedClock>()});
  const auto wait = policy->wait_before_retry(status_error(429, {{"Retry-After", "Sun, 06 Nov 1994 08:50:22 GMT"}}), 1);
  EXPECT_EQ(wait, milliseconds(45'000));
}

TEST(PoliteRetryPolicy, GivesUpWhenTheTotalWaitWouldPassTheBudget) {
  const auto policy = polite_retry_policy({.max_attempts = 10, .max_total_wait = milliseconds(10'000), .seed = 3});
  // One page's retry loop: attempts 1, 2, 3 in order on this thread.
  const auto e1 = status_error(429, {{"Retry-After", "4"}}, "first");
  const auto e2 = status_error(429, {{"Retry-After", "4"}}, "second");
  const auto e3 = status_error(429, {{"Retry-After", "4"}}, "third");
  EXPECT_EQ(policy->wait_before_retry(e1, 1), milliseconds(4000));
  EXPECT_EQ(policy->wait_before_retry(e2, 2), milliseconds(4000));
  EXPECT_EQ(policy->wait_before_retry(e3, 3), std::nullopt) << "12 s would pass the 10 s budget";
  // A single wait beyond the budget is refused outright.
  EXPECT_EQ(policy->wait_before_retry(status_error(429, {{"Retry-After", "11"}}), 1), std::nullopt);
}

// --- Through the page loop, against the server ---

class WalkBackfiller final : public Backfiller {
 public:
  WalkBackfiller(HttpClient& http, std::string url, std::shared_ptr<const RetryPolicy> policy)
      : http_(http), url_(std::move(url)), policy_(std::move(policy)) {}

  std::vector<std::string> ids;

 protected:
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>&,
                                   const CancellationToken& cancel) override {
    HttpRequest first;
    first.url = url_;
    return pages_.fetch(http_, first, token, cancel);
  }
  void handle_item(const nlohmann::json& item) override { ids.push_back(item.at("id").get<std::string>()); }
  [[nodiscard]] std::shared_ptr<const RetryPolicy> retry_policy() const override {
    return policy_ ? policy_ : Backfiller::retry_policy();
  }

 private:
  HttpClient& http_;
  std::string url_;
  std::shared_ptr<const RetryPolicy> policy_;
  pagination::StartingAfter pages_{{.limit = 50}};
};

struct LoopRun {
  std::unique_ptr<tools::ApiServer> server;
  std::shared_ptr<testing::RecordingSleeper> sleeper = std::make_shared<testing::RecordingSleeper>();
  curl::CurlHttpClient http;
};

void run(WalkBackfiller& backfiller, const std::shared_ptr<Sleeper>& sleeper) {
  BackfillRuntime runtime;
  runtime.sleeper = sleeper;
  backfiller.set_runtime(runtime);
  backfiller.backfill(std::nullopt);
}

TEST(RetryAfterHonoured, RecordedWaitsEqualTheServersHeaderValues) {
  LoopRun r;
  r.server = start_server({.objects = 200, .retry_after_seconds = 3});
  r.server->inject(tools::Fault::http429, 2);
  r.server->inject(tools::Fault::http503, 1);
  WalkBackfiller backfiller(r.http, r.server->url("/v1/charges"), polite_retry_policy({.seed = 5}));
  run(backfiller, r.sleeper);
  EXPECT_EQ(r.sleeper->waits(), (std::vector<milliseconds>{milliseconds(3000), milliseconds(3000), milliseconds(3000)}));
  EXPECT_EQ(backfiller.ids.size(), 200U);
  EXPECT_EQ(backfiller.progress().retries, 3U);
  EXPECT_EQ(r.server->stats().data_requests, 4U + 3U);
}

TEST(RetryAfterHonoured, PerRequestValuesAreFollowedExactly) {
  LoopRun r;
  r.server = start_server({.objects = 60});
  // A client that adds a different Retry-After each time the server faults.
  class Varying final : public HttpClientDecorator {
   public:
    using HttpClientDecorator::HttpClientDecorator;
    using HttpClient::send;
    HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override {
      HttpRequest r = request;
      r.headers.emplace_back("X-Retry-After", std::to_string(++n_));
      return HttpClientDecorator::send(r, cancel);
    }

   private:
    int n_ = 0;
  };
  auto http = std::make_shared<Varying>(curl::make_curl_client());
  r.server->inject(tools::Fault::http429, 3);
  WalkBackfiller backfiller(*http, r.server->url("/v1/charges"), polite_retry_policy({.seed = 5}));
  run(backfiller, r.sleeper);
  EXPECT_EQ(r.sleeper->waits(), (std::vector<milliseconds>{milliseconds(1000), milliseconds(2000), milliseconds(3000)}));
  EXPECT_EQ(backfiller.ids.size(), 60U);
}

TEST(RetryAfterHonoured, PoliteLoopRetriesEveryFaultKindAndWalksOnce) {
  LoopRun r;
  r.server = start_server({.objects = 500, .slow_stall = milliseconds(1000)});
  for (auto f : {tools::Fault::http500, tools::Fault::http502, tools::Fault::drop, tools::Fault::reset,
                 tools::Fault::truncated, tools::Fault::empty, tools::Fault::wrong_type}) {
    r.server->inject(f, 1);
  }
  curl::CurlOptions options;
  options.timeout = milliseconds(2000);
  curl::CurlHttpClient http(options);
  WalkBackfiller backfiller(http, r.server->url("/v1/charges"), polite_retry_policy({.max_attempts = 10, .seed = 5}));
  run(backfiller, r.sleeper);
  ASSERT_EQ(backfiller.ids.size(), 500U);
  for (std::size_t i = 0; i < 500; ++i) ASSERT_EQ(backfiller.ids[i], r.server->dataset().id(i));
  EXPECT_EQ(r.sleeper->waits().size(), 7U);
  EXPECT_EQ(r.server->stats().faults_total(), 7U);
}

TEST(RetryAfterHonoured, Unauthorized401And403AreNeverRetried) {
  for (int status : {401, 403}) {
    LoopRun r;
    r.server = start_server({.objects = 10});
    WalkBackfiller backfiller(r.http, r.server->url("/status/" + std::to_string(status)), polite_retry_policy());
    try {
      run(backfiller, r.sleeper);
      ADD_FAILURE() << "expected HttpError " << status;
    } catch (const HttpError& e) {
      EXPECT_EQ(e.status(), status);
    }
    EXPECT_TRUE(r.sleeper->waits().empty()) << status;
    EXPECT_EQ(r.server->stats().requests, 1U) << status;
  }
}

TEST(RetryAfterHonoured, TheWebhookdbDefaultStaysTheDefault) {
  LoopRun r;
  r.server = start_server({.objects = 100, .retry_after_seconds = 9});
  r.server->inject(tools::Fault::http429, 2);
  WalkBackfiller backfiller(r.http, r.server->url("/v1/charges"), nullptr);
  run(backfiller, r.sleeper);
  EXPECT_EQ(r.sleeper->waits(), (std::vector<milliseconds>{milliseconds(1000), milliseconds(2000)}))
      << "WebhookDB waits attempt seconds and ignores Retry-After";
  EXPECT_EQ(backfiller.ids.size(), 100U);
}

}  // namespace
}  // namespace webhookdb::test
