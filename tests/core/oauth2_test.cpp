// OAuth2 credentials (webhookdb/oauth2.hpp) behind CredentialAuth: grants,
// rotation, 401 retry, re-authorisation, one refresh at a time in a process.
// MockHttpClient plays the token endpoint and the API; ManualClock the time.

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "webhookdb/http_auth.hpp"
#include "webhookdb/oauth2.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/mock_http_client.hpp"
#include "webhookdb/testing/test_harness.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb::oauth2 {
namespace {

using namespace std::chrono_literals;
using testing::MockHttpClient;

constexpr const char* kTokenUrl = "https://auth.example.test/oauth/token";
constexpr const char* kSecret = "client-secret-XYZ123";

// A token endpoint that counts what it is sent and issues numbered tokens:
// access tok-N (expires_in 10 s), refresh rt-N. A refresh token works once.
class FakeProvider {
 public:
  explicit FakeProvider(MockHttpClient& http) {
    http.on("/oauth/token")
        .call([this](const HttpRequest& r, const CancellationToken&) { return answer(r); })
        .repeat();
  }
  HttpResponse answer(const HttpRequest& r) {
    bodies.push_back(r.body);
    if (const auto rt = field(r.body, "refresh_token")) {
      if (used_refresh.count(*rt) != 0 || rt->rfind("rt-", 0) != 0) {
        return {.status = 400, .body = R"({"error":"invalid_grant","error_description":"token )" + *rt + " reused\"}"};
      }
      used_refresh.insert(*rt);
    }
    const int n = ++issued;
    return {.status = 200,
            .body = R"({"access_token":"tok-)" + std::to_string(n) + R"(","token_type":"Bearer","expires_in":10,)" +
                    R"("refresh_token":"rt-)" + std::to_string(n) + R"("})"};
  }
  static std::optional<std::string> field(const std::string& body, const std::string& name) {
    return url::query_param("?" + body, name);
  }
  std::atomic<int> issued{0};
  std::vector<std::string> bodies;
  std::set<std::string> used_refresh;
};

struct Rig {
  std::shared_ptr<MockHttpClient> http = std::make_shared<MockHttpClient>();
  std::shared_ptr<testing::ManualClock> clock = std::make_shared<testing::ManualClock>();
  std::shared_ptr<InMemoryTokenStore> store = std::make_shared<InMemoryTokenStore>();
  std::shared_ptr<OAuth2Credentials> creds;
  std::shared_ptr<CredentialAuth> client;
  explicit Rig(OAuth2Options options = {}) {
    creds = std::make_shared<OAuth2Credentials>(http, store, clock, options);
    client = std::make_shared<CredentialAuth>(http, creds);
  }
  HttpResponse get(std::int64_t id, const std::string& path = "/api/items") {
    HttpRequest r{.url = "https://api.example.test" + path};
    r.integration_id = id;
    return client->send(r);
  }
  std::vector<std::string> api_tokens() const {
    std::vector<std::string> out;
    for (const auto& r : http->requests()) {
      if (r.url.find("/api/") == std::string::npos) continue;
      out.push_back(find_header(r.headers, "Authorization").value_or(""));
    }
    return out;
  }
};

ClientConfig client(GrantType grant, ClientAuthentication auth = ClientAuthentication::basic) {
  return ClientConfig{.token_url = kTokenUrl,
                      .client_id = "client-1",
                      .client_secret = kSecret,
                      .scopes = {"read", "write"},
                      .grant = grant,
                      .authentication = auth};
}

TEST(OAuth2, ClientCredentialsAreExchangedOnceAndReusedUntilDue) {
  Rig rig;
  FakeProvider provider(*rig.http);
  rig.http->on("/api/").respond(200, "ok").repeat();
  rig.store->authorize(1, client(GrantType::client_credentials), {});
  (void)rig.get(1);
  (void)rig.get(1);
  ASSERT_EQ(provider.issued, 1) << "one token for two requests";
  EXPECT_EQ(rig.api_tokens(), (std::vector<std::string>{"Bearer tok-1", "Bearer tok-1"}));
  const HttpRequest token_request = rig.http->requests().at(0);
  EXPECT_EQ(token_request.method, "POST");
  EXPECT_EQ(FakeProvider::field(token_request.body, "grant_type"), "client_credentials");
  EXPECT_EQ(FakeProvider::field(token_request.body, "scope"), "read write");
  EXPECT_FALSE(FakeProvider::field(token_request.body, "client_secret")) << "basic: the secret is not in the body";
  EXPECT_EQ(find_header(token_request.headers, "Authorization"), basic_auth_value("client-1", kSecret));
  // 10 s tokens: due within a quarter of their life (2.5 s) before expiry.
  rig.clock->advance(7s);
  (void)rig.get(1);
  EXPECT_EQ(provider.issued, 1);
  rig.clock->advance(1s);
  (void)rig.get(1);
  EXPECT_EQ(provider.issued, 2);
  EXPECT_EQ(rig.api_tokens().back(), "Bearer tok-2");
}

TEST(OAuth2, RefreshTokensRotateAndEachIsUsedOnce) {
  Rig rig;
  FakeProvider provider(*rig.http);
  rig.http->on("/api/").respond(200, "ok").repeat();
  rig.store->authorize(7, client(GrantType::refresh_token, ClientAuthentication::body), {.refresh_token = "rt-0"});
  for (int i = 0; i < 4; ++i) {
    (void)rig.get(7);
    rig.clock->advance(9s);
  }
  EXPECT_EQ(provider.issued, 4);
  ASSERT_EQ(provider.bodies.size(), 4U);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(FakeProvider::field(provider.bodies[static_cast<std::size_t>(i)], "refresh_token"),
              "rt-" + std::to_string(i))
        << "each refresh uses the token the previous one stored";
    EXPECT_EQ(FakeProvider::field(provider.bodies[static_cast<std::size_t>(i)], "client_secret"), kSecret);
  }
  EXPECT_EQ(rig.store->load(7)->tokens.refresh_token, "rt-4");
  EXPECT_FALSE(find_header(rig.http->requests().at(0).headers, "Authorization")) << "body authentication";
}

TEST(OAuth2, A401MarkedExpiredIsRetriedOnceAfterARefresh) {
  Rig rig;
  FakeProvider provider(*rig.http);
  const Headers expired = {{"WWW-Authenticate", R"(Bearer error="invalid_token", error_description="expired")"}};
  rig.http->on("/api/a").respond(401, "expired", expired).respond(200, "ok");
  rig.store->authorize(2, client(GrantType::refresh_token), {.refresh_token = "rt-0"});
  EXPECT_EQ(rig.get(2, "/api/a").body, "ok");
  EXPECT_EQ(rig.api_tokens(), (std::vector<std::string>{"Bearer tok-1", "Bearer tok-2"}));
  // Never more than once: a second 401 is the caller's error.
  rig.http->on("/api/b").respond(401, "no", expired).repeat();
  try {
    (void)rig.get(2, "/api/b");
    ADD_FAILURE() << "a 401 after the retry was swallowed";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_EQ(std::string(e.what()).find("tok-"), std::string::npos) << e.what();
  }
  EXPECT_EQ(provider.issued, 3) << "one refresh per failed request";
  // A 401 that does not say the token expired is not retried (by default).
  rig.http->on("/api/c").respond(401, "forbidden").repeat();
  EXPECT_THROW((void)rig.get(2, "/api/c"), HttpError);
  EXPECT_EQ(provider.issued, 3);
}

TEST(OAuth2, InvalidGrantMarksTheIntegrationAndStopsAskingTheProvider) {
  Rig rig;
  FakeProvider provider(*rig.http);
  rig.http->on("/api/").respond(200, "ok").repeat();
  rig.store->authorize(3, client(GrantType::refresh_token), {.refresh_token = "revoked-by-user"});
  const auto expect_reauth = [&] {
    try {
      (void)rig.get(3);
      ADD_FAILURE() << "a refused grant was not reported";
    } catch (const ReauthorizationRequired& e) {
      const std::string what = e.what();
      EXPECT_FALSE(e.retryable());
      EXPECT_EQ(e.integration_id(), 3);
      EXPECT_NE(what.find("invalid_grant"), std::string::npos) << what;
      EXPECT_NE(what.find("re-authorisation"), std::string::npos) << what;
      for (const char* secret : {"revoked-by-user", kSecret}) EXPECT_EQ(what.find(secret), std::string::npos) << what;
    }
  };
  expect_reauth();
  EXPECT_TRUE(rig.store->load(3)->needs_reauthorization);
  expect_reauth();
  EXPECT_EQ(provider.bodies.size(), 1U) << "the provider is asked once";
  EXPECT_TRUE(rig.api_tokens().empty());
  // A new grant (the user authorised again) clears the mark.
  rig.store->authorize(3, client(GrantType::refresh_token), {.refresh_token = "rt-0"});
  EXPECT_EQ(rig.get(3).body, "ok");
}

TEST(OAuth2, TokenEndpointFailuresHoldNoSecret) {
  Rig rig;
  rig.http->on("/oauth/token")
      .respond(503, std::string("down; you sent ") + kSecret + " and rt-secret-1")
      .respond(200, R"({"token_type":"mac","access_token":"tok-mac-secret"})")
      .respond(200, "<html>tok-html-secret</html>");
  rig.store->authorize(4, client(GrantType::refresh_token), {.refresh_token = "rt-secret-1"});
  const auto message_of = [&]() -> std::string {
    try {
      (void)rig.get(4);
    } catch (const Error& e) {
      return std::string(e.what()) + (dynamic_cast<const HttpError*>(&e) != nullptr
                                          ? dynamic_cast<const HttpError&>(e).body_excerpt()
                                          : std::string());
    }
    return "no error";
  };
  for (int i = 0; i < 3; ++i) {
    const std::string what = message_of();
    EXPECT_NE(what.find("/oauth/token"), std::string::npos) << "names the endpoint: " << what;
    for (const char* secret : {kSecret, "rt-secret-1", "tok-mac-secret", "tok-html-secret"}) {
      EXPECT_EQ(what.find(secret), std::string::npos) << what;
    }
  }
  EXPECT_FALSE(rig.store->load(4)->needs_reauthorization) << "a 503 or a bad answer is not a refused grant";
}

TEST(OAuth2, TokensGoOnlyToTheirIntegrationAndOrigin) {
  Rig rig;
  FakeProvider provider(*rig.http);
  rig.http->on("/api/").respond(200, "ok").repeat();
  auto config = client(GrantType::client_credentials);
  config.resource_origin = "https://api.example.test";
  rig.store->authorize(5, config, {});
  (void)rig.client->send(HttpRequest{.url = "https://api.example.test/api/none"});
  HttpRequest elsewhere{.url = "https://other.example.test/api/x"};
  elsewhere.integration_id = 5;
  (void)rig.client->send(elsewhere);
  (void)rig.get(99);  // an integration without a grant: sent as it is
  EXPECT_EQ(rig.api_tokens(), (std::vector<std::string>{"", "", ""}));
  (void)rig.get(5);
  EXPECT_EQ(rig.api_tokens().back(), "Bearer tok-1");
}

TEST(OAuth2, ThreadsOfOneProcessShareOneRefresh) {
  Rig rig;
  FakeProvider provider(*rig.http);
  rig.http->on("/api/").respond(200, "ok").repeat();
  rig.store->authorize(6, client(GrantType::refresh_token), {.refresh_token = "rt-0"});
  for (int round = 0; round < 3; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) threads.emplace_back([&] { (void)rig.get(6); });
    for (auto& t : threads) t.join();
    rig.clock->advance(9s);
  }
  EXPECT_EQ(provider.issued, 3) << "one refresh per expiry, whatever the number of threads";
  EXPECT_EQ(provider.used_refresh.size(), 3U);
}

// The static decorators' path: one client, each request's own key.
TEST(CredentialAuth, OneClientServesEveryIntegrationWithItsOwnKey) {
  auto http = std::make_shared<MockHttpClient>();
  http->on("/api/").respond(200, "ok").repeat();
  auto creds = std::make_shared<IntegrationCredentials>([](std::int64_t id) -> std::optional<Credential> {
    if (id == 1) return bearer_credential("key-one");
    if (id == 2) return basic_credential("sk_two", "");
    return std::nullopt;
  });
  auto shared = std::make_shared<CredentialAuth>(http, creds);
  (void)for_integration(shared, 1)->get("https://a.test/api/1");
  (void)for_integration(shared, 2)->get("https://a.test/api/2");
  (void)for_integration(shared, 3)->get("https://a.test/api/3");
  const auto requests = http->requests();
  EXPECT_EQ(find_header(requests.at(0).headers, "Authorization"), "Bearer key-one");
  EXPECT_EQ(find_header(requests.at(1).headers, "Authorization"), basic_auth_value("sk_two", ""));
  EXPECT_FALSE(find_header(requests.at(2).headers, "Authorization"));
  http->on("/api/fail").respond(403, "key-one is not allowed").repeat();
  try {
    (void)for_integration(shared, 1)->get("https://a.test/api/fail");
    ADD_FAILURE();
  } catch (const HttpError& e) {
    EXPECT_EQ(e.body_excerpt().find("key-one"), std::string::npos) << e.body_excerpt();
  }
}

// Replicators name their integration on every request: two integrations
// backfill through ONE CredentialAuth, each with its own key.
TEST(CredentialAuth, ReplicatorsStampTheirIntegrationOnEveryRequest) {
  testing::TestHarness h;
  const auto one = h.integration("fake_v1", [](ServiceIntegration& si) { si.backfill_key = "key-of-one"; });
  const auto two = h.integration("fake_v1", [](ServiceIntegration& si) { si.backfill_key = "key-of-two"; });
  auto jobs = h.jobs;
  auto shared = std::make_shared<CredentialAuth>(
      h.http, std::make_shared<IntegrationCredentials>([jobs](std::int64_t id) -> std::optional<Credential> {
        const auto si = jobs->find_integration(id);
        if (!si) return std::nullopt;
        return bearer_credential(si->backfill_key);
      }));
  h.http->respond_json(testing::fake_page({testing::fake_item("a", "2024-01-01T00:00:00Z")})).times(2);
  for (const auto& si : {one, two}) {
    auto ctx = h.context();
    ctx.http = shared;
    auto r = h.registry->make(si, ctx);
    r->create_table();
    auto job = h.jobs->create_job(BackfillJob{.service_integration_id = si.id});
    r->backfill(job);
  }
  const auto requests = h.http->requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(requests[0].integration_id, one.id);
  EXPECT_EQ(find_header(requests[0].headers, "Authorization"), "Bearer key-of-one");
  EXPECT_EQ(find_header(requests[1].headers, "Authorization"), "Bearer key-of-two");
}

// An integration without a backfill key is backfilled when the host's client
// holds a grant for it (HttpClient::authenticates down the decorators), and
// still skipped as CredentialsMissing when nobody does. An integration found
// without a grant is asked about again only after no_grant_recheck.
TEST(OAuth2, AGrantStandsInForTheBackfillKey) {
  testing::TestHarness h;
  const auto keyless = [](ServiceIntegration& si) {
    si.backfill_key.clear();
    si.backfill_secret.clear();
  };
  const auto with_grant = h.integration("fake_v1", keyless);
  const auto without = h.integration("fake_v1", keyless);
  auto store = std::make_shared<InMemoryTokenStore>();
  store->authorize(with_grant.id, client(GrantType::client_credentials), {});
  FakeProvider provider(*h.http);
  auto creds = std::make_shared<OAuth2Credentials>(h.http, store, h.clock);
  auto shared = std::make_shared<CredentialAuth>(h.http, creds);
  EXPECT_TRUE(shared->authenticates(with_grant.id));
  EXPECT_FALSE(shared->authenticates(without.id));
  EXPECT_TRUE(for_integration(shared, with_grant.id)->authenticates(with_grant.id))
      << "decorators ask down the chain";
  EXPECT_FALSE(h.http->authenticates(with_grant.id)) << "a plain adapter authenticates nothing";

  h.http->respond_json(testing::fake_page({testing::fake_item("a", "2024-01-01T00:00:00Z")}));
  auto ctx = h.context();
  ctx.http = shared;
  auto r = h.registry->make(with_grant, ctx);
  r->create_table();
  auto job = h.jobs->create_job(BackfillJob{.service_integration_id = with_grant.id});
  r->backfill(job);
  const auto requests = h.http->requests();
  ASSERT_EQ(requests.size(), 2U) << "the token, then the page";
  EXPECT_EQ(find_header(requests[1].headers, "Authorization"), "Bearer tok-1");

  auto bare = h.registry->make(without, ctx);
  auto bare_job = h.jobs->create_job(BackfillJob{.service_integration_id = without.id});
  EXPECT_THROW(bare->backfill(bare_job), CredentialsMissing);

  // A grant stored later is seen once the negative answer is 30 s old.
  store->authorize(without.id, client(GrantType::client_credentials), {});
  EXPECT_FALSE(creds->covers(without.id));
  h.clock->advance(31s);
  EXPECT_TRUE(creds->covers(without.id));
}

}  // namespace
}  // namespace webhookdb::oauth2
