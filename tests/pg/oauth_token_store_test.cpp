// PgOAuthTokenStore (issue 21): OAuth2 grants shared by processes through
// PostgreSQL. Each "process" here is its own pool, store, OAuth2Credentials and
// CredentialAuth, so the only thing they share is the database (and the
// provider: a MockHttpClient playing a token endpoint whose refresh tokens
// work once, and the API).

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pg_support.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/oauth2.hpp"
#include "webhookdb/pg/oauth_token_store.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/mock_http_client.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb::test {
namespace {

using namespace std::chrono_literals;
using oauth2::ClientConfig;
using oauth2::GrantType;

constexpr const char* kKey = "q2v1Xb1Jz4Lr8kM0pO9sT3uW6yZ5aB7cD2eF4gH6iJ8=";
constexpr const char* kKeyB = "5f1c0a9e8d7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877";
constexpr const char* kClientSecret = "cs-SECRET-4711";

pg::SecretKeys test_keys() {
  pg::SecretKeys keys;
  keys.current = pg::SecretKey::parse(kKey, "test key");
  return keys;
}

// Access tokens at-N (10 s), refresh tokens rt-N, each refresh token good
// once (reuse: invalid_grant, as rotating providers do); counts every use.
class Provider {
 public:
  explicit Provider(testing::MockHttpClient& http, std::chrono::milliseconds think = 0ms) : think_(think) {
    http.on("/oauth/token").call([this](const HttpRequest& r, const CancellationToken&) { return answer(r); }).repeat();
    http.on("/api/")
        .call([this](const HttpRequest& r, const CancellationToken&) -> HttpResponse {
          const auto auth = find_header(r.headers, "Authorization").value_or("");
          std::lock_guard lock(mutex_);
          if (revoked_.count(auth) != 0) {
            ++unauthorized;
            return {.status = 401, .headers = {{"WWW-Authenticate", "Bearer error=\"invalid_token\""}}};
          }
          return {.status = 200, .body = "ok"};
        })
        .repeat();
  }
  HttpResponse answer(const HttpRequest& r) {
    std::this_thread::sleep_for(think_);
    const auto rt = url::query_param("?" + r.body, "refresh_token").value_or("");
    std::lock_guard lock(mutex_);
    ++uses[rt];
    if (uses[rt] > 1 || rt.rfind("rt-", 0) != 0) return {.status = 400, .body = R"({"error":"invalid_grant"})"};
    const int n = ++issued;
    return {.status = 200,
            .body = R"({"access_token":"at-)" + std::to_string(n) + R"(-SECRET","expires_in":10,"refresh_token":"rt-)" +
                    std::to_string(n) + R"("})"};
  }
  void revoke_all_issued() {
    std::lock_guard lock(mutex_);
    for (int n = 1; n <= issued; ++n) revoked_.insert("Bearer at-" + std::to_string(n) + "-SECRET");
  }
  std::map<std::string, int> uses;
  int issued = 0;
  std::atomic<int> unauthorized{0};

 private:
  std::chrono::milliseconds think_;
  std::mutex mutex_;
  std::set<std::string> revoked_;
};

ClientConfig client() {
  return ClientConfig{.token_url = "https://auth.example.test/oauth/token",
                      .client_id = "cid",
                      .client_secret = kClientSecret,
                      .scopes = {"read"},
                      .grant = GrantType::refresh_token};
}

class PgOAuthTest : public PgTest {
 protected:
  struct Process {
    std::shared_ptr<pg::PgOAuthTokenStore> store;
    std::shared_ptr<CredentialAuth> http;
  };
  Process process(pg::OAuthTokenStoreOptions options = {}) {
    auto pool = std::make_shared<pg::ConnectionPool>(config(2));
    auto store = std::make_shared<pg::PgOAuthTokenStore>(pool, test_keys(), options);
    auto creds = std::make_shared<oauth2::OAuth2Credentials>(provider_http, store, clock);
    return {store, std::make_shared<CredentialAuth>(provider_http, creds)};
  }
  static HttpResponse get(const Process& p, std::int64_t id) {
    HttpRequest r{.url = "https://api.example.test/api/items"};
    r.integration_id = id;
    return p.http->send(r);
  }
  std::string dump_grants() const {
    return admin_exec("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM " + schema().quoted() +
                      ".webhookdb_oauth_grants t")
        .rows.at(0)
        .at(0)
        .value_or("");
  }
  std::shared_ptr<testing::MockHttpClient> provider_http = std::make_shared<testing::MockHttpClient>();
  std::shared_ptr<testing::ManualClock> clock = std::make_shared<testing::ManualClock>();
};

// grant_list_every (webhookdb-worker: 1 s): an integration without a grant
// costs no statement per load, a grant another process stores is seen once
// the list is read again, this store's own at once; 0 reads every time.
TEST_F(PgOAuthTest, AListOfGrantsAnswersForIntegrationsWithout) {
  auto listing = process({.grant_list_every = 1h});
  auto exact = process();
  auto other = process();
  EXPECT_FALSE(listing.store->load(11)) << "none yet: the list is read";
  EXPECT_FALSE(exact.store->load(11));
  other.store->authorize(11, client(), {.refresh_token = "rt-0"});
  EXPECT_TRUE(exact.store->load(11)) << "read every time";
  EXPECT_FALSE(listing.store->load(11)) << "the list is an hour fresh";
  listing.store->authorize(12, client(), {.refresh_token = "rt-0"});
  EXPECT_TRUE(listing.store->load(12)) << "its own grant, at once (the list is read again)";
  EXPECT_TRUE(listing.store->load(11)) << "and with it the other process's";
  EXPECT_FALSE(listing.store->load(13));
}

// Six processes, each with two threads, through five expiries: exactly one
// refresh per expiry, every refresh token spent once, none refused.
TEST_F(PgOAuthTest, RacingProcessesRefreshOnceAndSpendEachRefreshTokenOnce) {
  Provider provider(*provider_http, 30ms);
  std::vector<Process> fleet;
  for (int i = 0; i < 6; ++i) fleet.push_back(process());
  fleet[0].store->authorize(1, client(), {.refresh_token = "rt-0"});
  std::atomic<int> failures{0};
  for (int round = 0; round < 5; ++round) {
    std::vector<std::thread> threads;
    for (auto& p : fleet) {
      for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&] {
          try {
            (void)get(p, 1);
          } catch (const std::exception& e) {
            ++failures;
            ADD_FAILURE() << e.what();
          }
        });
      }
    }
    for (auto& t : threads) t.join();
    clock->advance(9s);
  }
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(provider.issued, 5);
  EXPECT_EQ(provider.uses.size(), 5U);
  for (const auto& [token, count] : provider.uses) EXPECT_EQ(count, 1) << token << " was sent " << count << " times";
  EXPECT_EQ(fleet[3].store->refresh_count(1), 5);
  EXPECT_EQ(fleet[5].store->load(1)->tokens.refresh_token, "rt-5");
}

// A token the provider revokes early: every process gets a 401 marked
// expired; one refreshes, the others find the newer generation and reuse it,
// and each request is retried once and succeeds.
TEST_F(PgOAuthTest, A401SeenByEveryProcessCostsOneRefresh) {
  Provider provider(*provider_http, 30ms);
  std::vector<Process> fleet;
  for (int i = 0; i < 5; ++i) fleet.push_back(process());
  fleet[0].store->authorize(2, client(), {.refresh_token = "rt-0"});
  for (auto& p : fleet) EXPECT_EQ(get(p, 2).body, "ok");
  ASSERT_EQ(provider.issued, 1);
  provider.revoke_all_issued();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (auto& p : fleet) threads.emplace_back([&] { ok += get(p, 2).body == "ok" ? 1 : 0; });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 5);
  EXPECT_EQ(provider.issued, 2) << "one refresh for five 401s";
  EXPECT_EQ(provider.unauthorized, 5);
  for (const auto& [token, count] : provider.uses) EXPECT_EQ(count, 1) << token;
}

// invalid_grant: stored and visible (column, needing_reauthorization()), other
// processes stop without asking the provider, authorize() clears it.
TEST_F(PgOAuthTest, ARefusedGrantIsVisibleAndStopsEveryProcess) {
  Provider provider(*provider_http);
  auto a = process();
  auto b = process();
  a.store->authorize(3, client(), {.refresh_token = "spent-elsewhere"});
  EXPECT_THROW((void)get(a, 3), oauth2::ReauthorizationRequired);
  EXPECT_EQ(b.store->needing_reauthorization(), (std::vector<std::int64_t>{3}));
  const auto row = admin_exec("SELECT needs_reauthorization::text, reauthorization_reason FROM " + schema().quoted() +
                              ".webhookdb_oauth_grants WHERE integration_id = 3");
  EXPECT_EQ(row.rows.at(0).at(0), "true");
  EXPECT_NE(row.rows.at(0).at(1)->find("invalid_grant"), std::string::npos) << *row.rows.at(0).at(1);
  try {
    (void)get(b, 3);
    ADD_FAILURE() << "a process used a refused grant";
  } catch (const oauth2::ReauthorizationRequired& e) {
    EXPECT_FALSE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("integration 3 needs re-authorisation"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("spent-elsewhere"), std::string::npos) << e.what();
  }
  EXPECT_EQ(provider.uses.size(), 1U) << "the provider was asked once";
  b.store->authorize(3, client(), {.refresh_token = "rt-0"});
  EXPECT_TRUE(b.store->needing_reauthorization().empty());
  EXPECT_EQ(get(a, 3).body, "ok");
}

// A process that dies after the provider answered and before the commit
// (here: its transaction is rolled back, as the server does for a dead
// session) leaves the spent refresh token stored: the next refresh is refused
// and the integration says it needs re-authorisation. One that dies after the
// commit leaves tokens the others reuse without asking the provider.
TEST_F(PgOAuthTest, DyingMidRefreshRecoversWhenTheStoredStateAllowsIt) {
  Provider provider(*provider_http);
  auto a = process();
  auto b = process();
  a.store->authorize(4, client(), {.refresh_token = "rt-0"});
  const auto grant = a.store->load(4).value();
  // Dies after the provider answered, before storing.
  EXPECT_THROW((void)a.store->refresh(4, grant.generation,
                                      [&](const oauth2::Grant& g) -> oauth2::Tokens {
                                        (void)oauth2::request_tokens(*provider_http, 4, g, clock->now(), {});
                                        throw std::runtime_error("killed");
                                      }),
               std::exception);
  EXPECT_EQ(b.store->load(4)->tokens.refresh_token, "rt-0") << "nothing was stored";
  try {
    (void)get(b, 4);
    ADD_FAILURE() << "the spent refresh token worked";
  } catch (const oauth2::ReauthorizationRequired& e) {
    EXPECT_NE(std::string(e.what()).find("invalid_grant"), std::string::npos) << e.what();
  }
  // After storing: the tokens are there for everyone.
  a.store->authorize(5, client(), {.refresh_token = "rt-1"});
  const auto g5 = a.store->load(5).value();
  const auto stored = a.store->refresh(5, g5.generation, [&](const oauth2::Grant& g) {
    return oauth2::request_tokens(*provider_http, 5, g, clock->now(), {});
  });  // ...and a dies here, before using them
  const int issued = provider.issued;
  EXPECT_EQ(get(b, 5).body, "ok");
  EXPECT_EQ(provider.issued, issued) << "b reused what a stored";
  EXPECT_EQ(b.store->load(5)->tokens, stored.tokens);
}

// A refresh held by another process is waited for at most lock_wait.
TEST_F(PgOAuthTest, WaitingForAnotherRefreshHasADeadline) {
  auto a = process();
  auto b = process({.lock_wait = 200ms});
  a.store->authorize(6, client(), {.refresh_token = "rt-0"});
  const auto generation = a.store->load(6)->generation;
  std::atomic<bool> release{false};
  std::atomic<bool> holding{false};
  std::thread holder([&] {
    (void)a.store->refresh(6, generation, [&](const oauth2::Grant& g) {
      holding = true;
      while (!release) std::this_thread::sleep_for(5ms);
      return oauth2::Tokens{.access_token = "at-held", .refresh_token = g.tokens.refresh_token};
    });
  });
  ASSERT_TRUE(eventually([&] { return holding.load(); }));
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)b.store->refresh(6, generation, [](const oauth2::Grant&) -> oauth2::Tokens {
      ADD_FAILURE() << "two refreshes at once";
      return {};
    });
    ADD_FAILURE() << "did not wait for the lock";
  } catch (const StoreError& e) {
    EXPECT_TRUE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("integration 6"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  release = true;
  holder.join();
  EXPECT_EQ(b.store->refresh(6, generation, [](const oauth2::Grant&) -> oauth2::Tokens {
                  ADD_FAILURE() << "refreshed again instead of reusing";
                  return {};
                }).tokens.access_token,
            "at-held");
}

// COPY ... TO of the grants table: no client secret, access or refresh token.
TEST_F(PgOAuthTest, ADumpOfTheGrantsTableHoldsNoSecret) {
  Provider provider(*provider_http);
  auto a = process();
  a.store->authorize(7, client(), {.refresh_token = "rt-0"});
  EXPECT_EQ(get(a, 7).body, "ok");
  const std::string dump = dump_grants();
  EXPECT_NE(dump.find("auth.example.test"), std::string::npos) << "the dump holds the row:\n" << dump;
  for (const std::string& secret : {std::string(kClientSecret), std::string("at-1-SECRET"), std::string("rt-1"),
                                   std::string("rt-0"), std::string(kKey)}) {
    EXPECT_EQ(dump.find(secret), std::string::npos) << secret << " in:\n" << dump;
  }
  EXPECT_NE(dump.find("wdbenc:v1:"), std::string::npos) << dump;
  // Without a key and without the opt-in, a grant is refused, clearly.
  auto keyless = std::make_shared<pg::PgOAuthTokenStore>(std::make_shared<pg::ConnectionPool>(config(1)),
                                                         pg::SecretKeys{});
  try {
    keyless->authorize(8, client(), {.refresh_token = "rt-x-SECRET"});
    ADD_FAILURE() << "stored a client secret in plain text";
  } catch (const InvalidPrecondition& e) {
    EXPECT_NE(std::string(e.what()).find("WEBHOOKDB_SECRET_KEY"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find(kClientSecret), std::string::npos) << e.what();
  }
}

// Key rotation: a store with the new key (the old one only decrypting)
// re-seals every grant; then the old key can be retired.
TEST_F(PgOAuthTest, RotationReencryptsEveryGrant) {
  auto a = process();
  a.store->authorize(10, client(), {.access_token = "at-rot-SECRET", .refresh_token = "rt-rot"});
  a.store->authorize(11, client(), {});
  pg::SecretKeys rotating;
  rotating.current = pg::SecretKey::parse(kKeyB, "new key");
  rotating.previous = {pg::SecretKey::parse(kKey, "old key")};
  pg::PgOAuthTokenStore renewed(std::make_shared<pg::ConnectionPool>(config(1)), rotating);
  EXPECT_EQ(renewed.reencrypt_secrets(), 2U);
  EXPECT_EQ(renewed.reencrypt_secrets(), 0U);
  const std::string old_id = pg::SecretKey::parse(kKey, "k").id();
  EXPECT_EQ(dump_grants().find(":" + old_id + ":"), std::string::npos) << dump_grants();
  pg::SecretKeys only_new;
  only_new.current = pg::SecretKey::parse(kKeyB, "new key");
  pg::PgOAuthTokenStore retired(std::make_shared<pg::ConnectionPool>(config(1)), only_new);
  const auto g = retired.load(10).value();
  EXPECT_EQ(g.tokens.access_token, "at-rot-SECRET");
  EXPECT_EQ(g.tokens.refresh_token, "rt-rot");
  EXPECT_EQ(g.client.client_secret, kClientSecret);
  EXPECT_THROW((void)a.store->load(10), InvariantViolation) << "the old key alone no longer opens it";
}

}  // namespace
}  // namespace webhookdb::test
