// The quota governor (issue 19): every header form, the policy and the
// in-process limiter under a ManualClock (no test really sleeps), the
// HttpClient decorator and the Replicator wiring.
#include "webhookdb/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "support.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/mock_http_client.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::test {
namespace {

using testing::ManualClock;
using testing::MockHttpClient;
using testing::RecordingSleeper;
using std::chrono::milliseconds;

Timestamp now0() { return ManualClock::default_start(); }

QuotaSignal parse(int status, const Headers& headers) { return parse_quota_signal(status, headers, now0()); }

std::string epoch_seconds_from_now(std::chrono::seconds in) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>((now0() + in).time_since_epoch()).count());
}

// --- header forms ---

TEST(QuotaHeaders, GitHubStyleResetIsAnEpochInSeconds) {
  const auto s = parse(200, {{"X-RateLimit-Limit", "5000"},
                             {"x-ratelimit-remaining", "4999"},
                             {"X-RateLimit-Reset", epoch_seconds_from_now(1800s)}});
  EXPECT_FALSE(s.limited);
  EXPECT_EQ(s.limit, 5000);
  EXPECT_EQ(s.remaining, 4999);
  EXPECT_EQ(s.reset_in, milliseconds(1800s));
  EXPECT_FALSE(s.window);
}

TEST(QuotaHeaders, ResetAsAnEpochInMillisecondsOrAsSecondsFromNow) {
  const auto ms_epoch = std::chrono::duration_cast<milliseconds>((now0() + 90s).time_since_epoch()).count();
  EXPECT_EQ(parse(200, {{"X-RateLimit-Remaining", "3"}, {"X-RateLimit-Reset", std::to_string(ms_epoch)}}).reset_in,
            milliseconds(90s));
  EXPECT_EQ(parse(200, {{"X-RateLimit-Remaining", "3"}, {"X-RateLimit-Reset", "30"}}).reset_in, milliseconds(30s));
  EXPECT_EQ(parse(200, {{"X-RateLimit-Remaining", "3"}, {"X-RateLimit-Reset-After", "1.5"}}).reset_in,
            milliseconds(1500));
  // A reset in the past is now.
  EXPECT_EQ(parse(200, {{"X-RateLimit-Reset", epoch_seconds_from_now(-5s)}, {"X-RateLimit-Remaining", "1"}}).reset_in,
            milliseconds(0));
}

TEST(QuotaHeaders, UsedGivesTheRemainingWhenItIsMissing) {
  const auto s = parse(200, {{"X-RateLimit-Limit", "100"}, {"X-RateLimit-Used", "40"}, {"X-RateLimit-Reset", "30"}});
  EXPECT_EQ(s.remaining, 60);
  EXPECT_EQ(s.limit, 100);
}

TEST(QuotaHeaders, IetfSeparateHeadersWithThePolicyInTheLimit) {
  const auto s = parse(200, {{"RateLimit-Limit", "10, 10;w=1, 1000;w=3600"},
                             {"RateLimit-Remaining", "7"},
                             {"RateLimit-Reset", "1"}});
  EXPECT_EQ(s.limit, 10);
  EXPECT_EQ(s.remaining, 7);
  EXPECT_EQ(s.reset_in, milliseconds(1000));
  EXPECT_EQ(s.window, milliseconds(1000));
}

TEST(QuotaHeaders, IetfPolicyHeaderGivesTheWindow) {
  const auto s = parse(200, {{"RateLimit-Policy", "100;w=60"}, {"RateLimit-Remaining", "42"}, {"RateLimit-Reset", "20"}});
  EXPECT_EQ(s.limit, 100);
  EXPECT_EQ(s.window, milliseconds(60s));
  EXPECT_EQ(s.remaining, 42);
  EXPECT_EQ(s.reset_in, milliseconds(20s));
}

TEST(QuotaHeaders, IetfCombinedDictionaryForm) {
  const auto s = parse(200, {{"RateLimit", "limit=100, remaining=50, reset=30"}});
  EXPECT_EQ(s.limit, 100);
  EXPECT_EQ(s.remaining, 50);
  EXPECT_EQ(s.reset_in, milliseconds(30s));
}

TEST(QuotaHeaders, IetfNamedPoliciesTheTightestWins) {
  const auto s = parse(200, {{"RateLimit-Policy", R"("burst";q=100;w=60, "daily";q=1000;w=86400)"},
                             {"RateLimit", R"("burst";r=50;t=30, "daily";r=10;t=3600)"}});
  EXPECT_EQ(s.limit, 1000);
  EXPECT_EQ(s.window, milliseconds(86400s));
  EXPECT_EQ(s.remaining, 10);
  EXPECT_EQ(s.reset_in, milliseconds(3600s));
}

TEST(QuotaHeaders, RetryAfterSecondsOn429AndHttpDateOn503) {
  const auto a = parse(429, {{"Retry-After", "120"}});
  EXPECT_TRUE(a.limited);
  EXPECT_EQ(a.retry_after, milliseconds(120s));
  // 2024-01-01T00:00:00Z is the ManualClock's start: 30 s later.
  const auto b = parse(503, {{"Retry-After", "Mon, 01 Jan 2024 00:00:30 GMT"}});
  EXPECT_TRUE(b.limited);
  EXPECT_EQ(b.retry_after, milliseconds(30s));
  // A 503 that names no wait is a server fault, not a quota.
  EXPECT_FALSE(parse(503, {}).limited);
  // A 429 is one whatever it says.
  EXPECT_TRUE(parse(429, {}).limited);
}

TEST(QuotaHeaders, GitHubSecondaryLimitsAre403WithRetryAfterOrNothingRemaining) {
  EXPECT_TRUE(parse(403, {{"Retry-After", "60"}}).limited);
  const auto exhausted =
      parse(403, {{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", epoch_seconds_from_now(600s)}});
  EXPECT_TRUE(exhausted.limited);
  EXPECT_EQ(exhausted.reset_in, milliseconds(600s));
  // A plain 403 is a permission problem.
  EXPECT_FALSE(parse(403, {{"x-ratelimit-remaining", "12"}}).limited);
  EXPECT_FALSE(parse(403, {}).limited);
}

TEST(QuotaHeaders, MalformedValuesAreIgnored) {
  const auto s = parse(200, {{"X-RateLimit-Limit", "lots"},
                             {"X-RateLimit-Remaining", "-5"},
                             {"X-RateLimit-Reset", "1e400"},
                             {"RateLimit", "remaining=;;,,"},
                             {"Retry-After", "soon"}});
  EXPECT_FALSE(s.advertised());
  EXPECT_FALSE(s.reset_in);
  EXPECT_FALSE(s.retry_after);
  EXPECT_FALSE(parse(200, {}).advertised());
}

// --- the limiter under a ManualClock ---

struct Fixture {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::shared_ptr<RecordingSleeper> sleeper = std::make_shared<RecordingSleeper>(clock);
  MemoryRateLimiter limiter{clock, sleeper};

  // Takes n permits of `key`; the elapsed (manual) time.
  std::chrono::microseconds take(const std::string& key, int n, QuotaLane lane = QuotaLane::full) {
    const auto start = clock->now();
    for (int i = 0; i < n; ++i) limiter.acquire(key, lane, CancellationToken{});
    return clock->now() - start;
  }
};

TEST(MemoryRateLimiter, OpenKeysNeverWait) {
  Fixture f;
  EXPECT_EQ(f.take("k", 1000), std::chrono::microseconds(0));
  EXPECT_TRUE(f.sleeper->waits().empty());
  EXPECT_EQ(f.limiter.granted(), 1000U);
}

TEST(MemoryRateLimiter, ADeclaredLimitGivesItsBurstThenPacesAtItsRate) {
  Fixture f;
  f.limiter.declare("k", {.per_second = 10, .burst = 5});
  EXPECT_EQ(f.take("k", 5), std::chrono::microseconds(0));
  // 20 more at 10/s: two seconds, one 100 ms wait each.
  EXPECT_EQ(f.take("k", 20), std::chrono::microseconds(2s));
  EXPECT_EQ(f.sleeper->waits().size(), 20U);
  EXPECT_EQ(f.sleeper->waits().front(), milliseconds(100));
  // Keys are independent.
  EXPECT_EQ(f.take("other", 50), std::chrono::microseconds(0));
}

TEST(MemoryRateLimiter, NeverMoreThanBurstPlusRateTimesElapsed) {
  Fixture f;
  f.limiter.declare("k", {.per_second = 200, .burst = 20});
  std::vector<Timestamp> granted;
  for (int i = 0; i < 2000; ++i) {
    f.limiter.acquire("k", QuotaLane::full, CancellationToken{});
    granted.push_back(f.clock->now());
  }
  // Every sliding interval [granted[i], granted[j]]: j - i + 1 <= burst + rate * seconds.
  for (std::size_t i = 0; i < granted.size(); i += 97) {
    for (std::size_t j = i; j < granted.size(); j += 13) {
      const double seconds = std::chrono::duration<double>(granted[j] - granted[i]).count();
      EXPECT_LE(static_cast<double>(j - i + 1), 20 + 200 * seconds + 1e-6) << i << ".." << j;
    }
  }
  const double total = std::chrono::duration<double>(granted.back() - granted.front()).count();
  EXPECT_NEAR(total, (2000 - 20) / 200.0, 0.05);
}

TEST(MemoryRateLimiter, RetryAfterPausesTheKey) {
  Fixture f;
  f.limiter.observe("k", parse_quota_signal(429, {{"Retry-After", "3"}}, f.clock->now()));
  EXPECT_EQ(f.take("k", 1), std::chrono::microseconds(3s));
}

TEST(MemoryRateLimiter, NothingRemainingWaitsForTheReset) {
  Fixture f;
  f.limiter.observe("k", parse_quota_signal(200,
                                            {{"X-RateLimit-Limit", "5000"},
                                             {"X-RateLimit-Remaining", "0"},
                                             {"X-RateLimit-Reset", epoch_seconds_from_now(5s)}},
                                            f.clock->now()));
  EXPECT_EQ(f.take("k", 1), std::chrono::microseconds(5s));
}

TEST(MemoryRateLimiter, AnAdvertisedPolicyIsPacedJustUnderItsRate) {
  Fixture f;
  const auto signal = parse_quota_signal(200, {{"RateLimit-Policy", "200;w=1"}, {"RateLimit-Remaining", "150"},
                                               {"RateLimit-Reset", "1"}},
                                         f.clock->now());
  f.limiter.observe("k", signal);
  const auto state = f.limiter.state("k");
  EXPECT_EQ(state.mode, QuotaMode::advertised);
  EXPECT_NEAR(state.rate, 196.0, 0.01);
  // 1,000 permits take about 1000/196 s.
  const double seconds = std::chrono::duration<double>(f.take("k", 1000)).count();
  EXPECT_NEAR(seconds, 1000 / 196.0, 0.1);
}

TEST(MemoryRateLimiter, AnAdvertisedLimitBeatsADeclaredOne) {
  Fixture f;
  f.limiter.declare("k", {.per_second = 1000});
  f.limiter.observe("k", parse_quota_signal(200, {{"RateLimit-Policy", "10;w=1"}}, f.clock->now()));
  EXPECT_EQ(f.limiter.state("k").mode, QuotaMode::advertised);
  f.limiter.declare("k", {.per_second = 1000});  // a later replicator's declaration does not undo it
  EXPECT_NEAR(f.limiter.state("k").rate, 9.8, 0.01);
}

TEST(MemoryRateLimiter, TheWindowIsLearntFromAnEpochResetThatJumps) {
  Fixture f;
  const auto observe = [&](const std::string& remaining) {
    const auto reset = std::chrono::ceil<std::chrono::seconds>(f.clock->now().time_since_epoch() + 1us);
    f.limiter.observe("k", parse_quota_signal(200,
                                              {{"X-RateLimit-Limit", "200"},
                                               {"X-RateLimit-Remaining", remaining},
                                               {"X-RateLimit-Reset", std::to_string(reset.count())}},
                                              f.clock->now()));
  };
  f.clock->advance(100ms);
  observe("150");  // remaining over reset_in: 150 / 1 s (rounded reset)
  EXPECT_NEAR(f.limiter.state("k").rate, 150 * 0.98, 0.5);
  f.clock->advance(1s);
  observe("190");  // the reset moved by a whole second: the window is 1 s
  EXPECT_EQ(f.limiter.state("k").window, milliseconds(1000));
  EXPECT_NEAR(f.limiter.state("k").rate, 200 * 0.98, 0.01);
}

TEST(MemoryRateLimiter, AimdBacksOffFromTheRateThatHitTheLimitAndProbesUpSlowly) {
  Fixture f;
  // Open: 100 permits in one second.
  for (int i = 0; i < 100; ++i) {
    f.limiter.acquire("k", QuotaLane::full, CancellationToken{});
    f.clock->advance(10ms);
  }
  f.limiter.observe("k", parse_quota_signal(429, {}, f.clock->now()));
  auto state = f.limiter.state("k");
  EXPECT_EQ(state.mode, QuotaMode::aimd);
  EXPECT_NEAR(state.rate, 80.0, 1.0);
  // The 429s of requests already in flight do not compound the decrease.
  f.limiter.observe("k", parse_quota_signal(429, {}, f.clock->now()));
  EXPECT_NEAR(f.limiter.state("k").rate, 80.0, 1.0);
  // The default pause is one second.
  EXPECT_EQ(f.take("k", 1), std::chrono::microseconds(1s));
  // Ten seconds of demand: +1%/s of about 80 (0.8/s each second).
  f.take("k", 800);
  state = f.limiter.state("k");
  EXPECT_GT(state.rate, 85.0);
  EXPECT_LT(state.rate, 100.0);
  // Another 429 after the cooldown decreases again.
  f.limiter.observe("k", parse_quota_signal(429, {{"Retry-After", "0"}}, f.clock->now()));
  EXPECT_NEAR(f.limiter.state("k").rate, state.rate * 0.8, 0.5);
}

TEST(MemoryRateLimiter, ACancelledWaitThrows) {
  Fixture f;
  f.limiter.observe("k", parse_quota_signal(429, {{"Retry-After", "60"}}, f.clock->now()));
  CancellationSource source;
  source.cancel();
  EXPECT_THROW(f.limiter.acquire("k", QuotaLane::full, source.token()), Cancelled);
}

TEST(MemoryRateLimiter, AHigherLaneGoesFirst) {
  // Real time: two threads contend for 50 permits a second.
  MemoryRateLimiter limiter;
  limiter.declare("k", {.per_second = 50, .burst = 1});
  std::atomic<int> full_taken{0};
  std::atomic<bool> stop{false};
  std::thread full([&] {
    while (!stop) {
      limiter.acquire("k", QuotaLane::full, CancellationToken{});
      ++full_taken;
    }
  });
  std::this_thread::sleep_for(100ms);
  const int before = full_taken;
  for (int i = 0; i < 10; ++i) limiter.acquire("k", QuotaLane::webhook, CancellationToken{});
  const int during = full_taken - before;
  stop = true;
  full.join();
  // Ten webhook permits at 50/s take about 200 ms; the full lane gets next to none of them.
  EXPECT_LE(during, 3);
}

// --- the decorator and the replicator ---

TEST(RateLimitedHttpClient, WaitsForAPermitAndFeedsBackErrorsToo) {
  Fixture f;
  auto mock = std::make_shared<MockHttpClient>();
  mock->respond(429, "slow down", {{"Retry-After", "2"}});
  mock->respond(200, "ok", {{"RateLimit-Policy", "10;w=1"}});
  auto limiter = std::shared_ptr<MemoryRateLimiter>(&f.limiter, [](MemoryRateLimiter*) {});
  RateLimitedHttpClient http(mock, limiter, QuotaBinding{.key = "k"}, f.clock);
  EXPECT_THROW(http.get("https://api.test/items"), HttpError);
  EXPECT_EQ(http.get("https://api.test/items").status, 200);
  EXPECT_EQ(f.sleeper->total(), milliseconds(2s));
  EXPECT_EQ(f.limiter.state("k").mode, QuotaMode::advertised);
}

TEST(QuotaKey, IsTheServicePlusAHashNeverTheCredential) {
  const auto key = default_quota_key("github_issue_v1", "ghp_supersecret_token");
  EXPECT_EQ(key.rfind("github_issue_v1:", 0), 0U);
  EXPECT_EQ(key.size(), std::string("github_issue_v1:").size() + 16);
  EXPECT_EQ(key.find("supersecret"), std::string::npos);
  EXPECT_EQ(key, default_quota_key("github_issue_v1", "ghp_supersecret_token"));
  EXPECT_NE(key, default_quota_key("github_issue_v1", "another"));
  EXPECT_EQ(default_quota_key("svc", "  "), "svc:-");
}

class PagingReplicator : public Replicator {
 public:
  PagingReplicator(const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& c,
                   RateLimitOptions quota)
      : Replicator(d, si, c), quota_(std::move(quota)) {}
  // What a replicator does in fetch_backfill_page: a request on context().http.
  int fetch() { return context().http->get("https://api.test/items").status; }

 protected:
  Column remote_key_column() const override { return Column("id", ColumnType::text); }
  std::vector<Column> denormalized_columns() const override { return {}; }
  UpdateRule update_rule() const override { return UpdateRule::always(); }
  BackfillOptions backfill_options() const override { return {.rate_limit = quota_}; }

 private:
  RateLimitOptions quota_;
};

TEST(ReplicatorQuota, ContextHttpIsMeteredUnderTheDefaultKeyWithTheDeclaredLimit) {
  auto clock = std::make_shared<ManualClock>();
  auto sleeper = std::make_shared<RecordingSleeper>(clock);
  auto limiter = std::make_shared<MemoryRateLimiter>(clock, sleeper);
  auto mock = std::make_shared<MockHttpClient>();
  mock->respond(200, "[]").repeat();
  Descriptor d{.name = "made_up_items_v1"};
  ServiceIntegration si;
  si.backfill_key = "sk_live_verysecret";
  ReplicatorContext context{.http = mock, .clock = clock, .sleeper = sleeper, .rate_limiter = limiter};
  PagingReplicator r(d, si, context, {.limit = {.per_second = 2, .burst = 1}});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r.fetch(), 200);
  const std::string key = default_quota_key("made_up_items_v1", "sk_live_verysecret\n");
  EXPECT_EQ(limiter->state(key).mode, QuotaMode::declared);
  EXPECT_EQ(limiter->granted(), 5U);
  EXPECT_EQ(sleeper->total(), milliseconds(2000));  // 1 at once, 4 at 2/s
}

TEST(ReplicatorQuota, IntegrationsNamingOneKeyShareIt) {
  auto clock = std::make_shared<ManualClock>();
  auto sleeper = std::make_shared<RecordingSleeper>(clock);
  auto limiter = std::make_shared<MemoryRateLimiter>(clock, sleeper);
  auto mock = std::make_shared<MockHttpClient>();
  mock->respond(200, "[]").repeat();
  Descriptor d{.name = "made_up_items_v1"};
  ServiceIntegration a;
  a.backfill_key = "one";
  ServiceIntegration b;
  b.backfill_key = "two";
  ReplicatorContext context{.http = mock, .clock = clock, .sleeper = sleeper, .rate_limiter = limiter};
  const RateLimitOptions shared{.quota_key = "made_up:org-token", .limit = {.per_second = 1, .burst = 1}};
  PagingReplicator ra(d, a, context, shared);
  PagingReplicator rb(d, b, context, shared);
  (void)ra.fetch();
  (void)rb.fetch();  // waits for the one the first took
  EXPECT_EQ(sleeper->total(), milliseconds(1000));
}

TEST(ReplicatorQuota, WithoutALimiterNothingChanges) {
  auto mock = std::make_shared<MockHttpClient>();
  mock->respond(200, "[]");
  Descriptor d{.name = "made_up_items_v1"};
  ReplicatorContext context{.http = mock};
  PagingReplicator r(d, ServiceIntegration{}, context, {});
  EXPECT_EQ(r.context().http, mock);
}

TEST(ReplicatorQuota, ANonsenseLimitIsABrokenSpecification) {
  BackfillOptions options{.rate_limit = {.limit = {.per_second = -1}}};
  EXPECT_THROW(options.validate("replicator x"), BrokenSpecification);
  options.rate_limit.limit = {.per_second = 0, .burst = 5};
  EXPECT_THROW(options.validate("replicator x"), BrokenSpecification);
}

}  // namespace
}  // namespace webhookdb::test
