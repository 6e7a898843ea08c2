// OAuth2 end to end over real HTTP (issue 21): the local API server issues
// 2-second access tokens and single-use refresh tokens; four "processes"
// (each its own connection pool, PgOAuthTokenStore, curl client and
// OAuth2Credentials) read four integrations for several seconds through ONE
// CredentialAuth each. No request fails for authentication, every refresh
// token is presented once (the server's count), and no token, refresh token,
// client secret or key appears in any log line or error.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "api_server/api_server.hpp"
#include "api_server/oauth.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/codec.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/oauth2.hpp"
#include "webhookdb/pg/oauth_token_store.hpp"
#include "webhookdb/testing/capturing_logger.hpp"

namespace webhookdb::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kKey = "q2v1Xb1Jz4Lr8kM0pO9sT3uW6yZ5aB7cD2eF4gH6iJ8=";
constexpr const char* kClientSecret = "fleet-client-SECRET-9d2";

class OAuthFleetTest : public PgTest {};

json get_json(HttpClient& http, const std::string& url, const std::string& method = "GET") {
  HttpRequest r{.method = method, .url = url};
  return json::parse(http.send(r).body);
}

TEST_F(OAuthFleetTest, FourProcessesShareRotatingTokensWithoutAFailureOrALeak) {
  tools::ApiServerOptions options;
  options.objects = 300;
  options.oauth = {.enabled = true,
                   .access_lifetime = 2000ms,
                   .client_id = "fleet-client",
                   .client_secret = kClientSecret};
  tools::ApiServer server(options);
  server.start();
  auto plain = curl::make_curl_client();

  pg::SecretKeys keys;
  keys.current = pg::SecretKey::parse(kKey, "test key");
  const oauth2::ClientConfig client{.token_url = server.url("/oauth/token"),
                                    .client_id = "fleet-client",
                                    .client_secret = kClientSecret,
                                    .grant = oauth2::GrantType::refresh_token,
                                    .authentication = oauth2::ClientAuthentication::body,
                                    .resource_origin = server.base_url()};
  auto logger = std::make_shared<testing::CapturingLogger>();
  struct Process {
    std::shared_ptr<pg::PgOAuthTokenStore> store;
    std::shared_ptr<HttpClient> http;
  };
  std::vector<Process> fleet;
  for (int p = 0; p < 4; ++p) {
    auto store = std::make_shared<pg::PgOAuthTokenStore>(std::make_shared<pg::ConnectionPool>(config(2)), keys);
    auto logged = std::make_shared<LoggingHttpClient>(curl::make_curl_client(), logger, LogLevel::info);
    auto creds = std::make_shared<oauth2::OAuth2Credentials>(logged, store);
    fleet.push_back({store, std::make_shared<CredentialAuth>(logged, creds)});
  }
  for (std::int64_t id = 1; id <= 4; ++id) {
    const std::string first = get_json(*plain, server.url("/oauth/grant"), "POST")["refresh_token"];
    fleet[0].store->authorize(id, client, {.refresh_token = first});
  }

  std::atomic<int> ok{0};
  std::atomic<int> auth_failures{0};
  std::mutex errors_mutex;
  std::vector<std::string> errors;
  const auto until = std::chrono::steady_clock::now() + 7s;
  std::vector<std::thread> threads;
  for (std::size_t p = 0; p < fleet.size(); ++p) {
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, p, t] {
        for (std::int64_t n = 0; std::chrono::steady_clock::now() < until; ++n) {
          HttpRequest r{.url = server.url("/v1/charges?limit=20")};
          r.integration_id = 1 + (n + static_cast<std::int64_t>(p) + t) % 4;
          try {
            (void)fleet[p].http->send(r);
            ++ok;
          } catch (const std::exception& e) {
            const auto* http = dynamic_cast<const HttpError*>(&e);
            if ((http != nullptr && http->status() == 401) ||
                dynamic_cast<const oauth2::ReauthorizationRequired*>(&e) != nullptr) {
              ++auth_failures;
            }
            std::lock_guard lock(errors_mutex);
            errors.push_back(e.what());
          }
          std::this_thread::sleep_for(5ms);
        }
      });
    }
  }
  for (auto& t : threads) t.join();

  const json stats = get_json(*plain, server.url("/oauth/stats"));
  std::int64_t refreshes = 0;
  for (std::int64_t id = 1; id <= 4; ++id) {
    const auto count = fleet[1].store->refresh_count(id);
    EXPECT_GE(count, 3) << "7 s of 2 s tokens, integration " << id;
    refreshes += count;
  }
  std::cout << "requests ok " << ok << ", auth failures " << auth_failures << ", refreshes " << refreshes
            << ", server: " << stats.dump() << std::endl;
  EXPECT_EQ(auth_failures, 0);
  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, the first: " << errors.front();
  EXPECT_GT(ok, 400);
  EXPECT_EQ(stats["refresh_tokens_used_more_than_once"], 0) << stats.dump();
  EXPECT_EQ(stats["reuses_refused"], 0) << stats.dump();
  EXPECT_EQ(stats["refresh_tokens_used_once"], refreshes) << "every stored refresh used one token once";
  EXPECT_EQ(stats["refresh_tokens_unused"], 4) << "each integration holds its current one";
  EXPECT_TRUE(fleet[2].store->needing_reauthorization().empty());

  // No token, refresh token, client secret or key in a log line or an error.
  std::string seen = logger->text();
  for (const auto& e : errors) seen += e + "\n";
  EXPECT_NE(seen.find("/oauth/token"), std::string::npos) << "the exchanges are logged (without secrets)";
  const std::regex token(R"((at|rt)_[0-9]+_[0-9]+)");
  std::smatch m;
  EXPECT_FALSE(std::regex_search(seen, m, token)) << "a token in the logs: " << m.str(0);
  EXPECT_EQ(seen.find(kClientSecret), std::string::npos);
  EXPECT_EQ(seen.find(kKey), std::string::npos);
  for (std::int64_t id = 1; id <= 4; ++id) {
    const auto grant = fleet[3].store->load(id).value();
    EXPECT_EQ(seen.find(grant.tokens.access_token), std::string::npos);
    EXPECT_EQ(seen.find(grant.tokens.refresh_token), std::string::npos);
  }
  server.stop();
}

// The failure the shared store prevents, shown against the same server: four
// processes that each keep the grant to themselves (InMemoryTokenStore) spend
// the same single-use refresh token, and all but one are refused.
TEST_F(OAuthFleetTest, ProcessesThatRefreshIndependentlyBreakEachOther) {
  tools::ApiServerOptions options;
  options.oauth = {.enabled = true, .access_lifetime = 2000ms, .client_id = "c", .client_secret = kClientSecret};
  tools::ApiServer server(options);
  server.start();
  auto plain = curl::make_curl_client();
  const std::string rt = get_json(*plain, server.url("/oauth/grant"), "POST")["refresh_token"];
  int refused = 0;
  for (int p = 0; p < 4; ++p) {
    auto store = std::make_shared<oauth2::InMemoryTokenStore>();
    store->authorize(1, {.token_url = server.url("/oauth/token"), .client_id = "c", .client_secret = kClientSecret,
                         .grant = oauth2::GrantType::refresh_token},
                     {.refresh_token = rt});
    CredentialAuth http(plain, std::make_shared<oauth2::OAuth2Credentials>(plain, store));
    HttpRequest r{.url = server.url("/v1/charges")};
    r.integration_id = 1;
    try {
      (void)http.send(r);
    } catch (const oauth2::ReauthorizationRequired&) {
      ++refused;
    }
  }
  const json stats = get_json(*plain, server.url("/oauth/stats"));
  EXPECT_EQ(refused, 3);
  EXPECT_EQ(stats["reuses_refused"], 3) << stats.dump();
  EXPECT_EQ(stats["refresh_tokens_used_more_than_once"], 1) << stats.dump();
  server.stop();
}

// A refresh token spent elsewhere (the server refuses its reuse): the
// integration needs re-authorisation, the error says so and holds no secret,
// and the requests stop reaching the provider.
TEST_F(OAuthFleetTest, AReusedRefreshTokenIsRefusedAndReportedWithoutASecret) {
  tools::ApiServerOptions options;
  options.oauth = {.enabled = true, .access_lifetime = 2000ms, .client_id = "c", .client_secret = kClientSecret};
  tools::ApiServer server(options);
  server.start();
  auto plain = curl::make_curl_client();
  const std::string rt = get_json(*plain, server.url("/oauth/grant"), "POST")["refresh_token"];
  // Someone else spends it first.
  HttpRequest spend{.method = "POST",
                    .url = server.url("/oauth/token"),
                    .headers = {{"Content-Type", "application/x-www-form-urlencoded"}},
                    .body = "grant_type=refresh_token&refresh_token=" + rt + "&client_id=c&client_secret=" +
                            std::string(kClientSecret)};
  ASSERT_EQ(plain->send(spend).status, 200);
  pg::SecretKeys keys;
  keys.current = pg::SecretKey::parse(kKey, "test key");
  auto store = std::make_shared<pg::PgOAuthTokenStore>(std::make_shared<pg::ConnectionPool>(config(2)), keys);
  store->authorize(9, {.token_url = server.url("/oauth/token"), .client_id = "c", .client_secret = kClientSecret,
                       .grant = oauth2::GrantType::refresh_token},
                   {.refresh_token = rt});
  auto logger = std::make_shared<testing::CapturingLogger>();
  auto logged = std::make_shared<LoggingHttpClient>(plain, logger, LogLevel::info);
  CredentialAuth http(logged, std::make_shared<oauth2::OAuth2Credentials>(logged, store));
  HttpRequest r{.url = server.url("/v1/charges")};
  r.integration_id = 9;
  std::string what;
  for (int i = 0; i < 3; ++i) {
    try {
      (void)http.send(r);
      ADD_FAILURE() << "a reused refresh token worked";
    } catch (const oauth2::ReauthorizationRequired& e) {
      what = e.what();
    }
  }
  EXPECT_NE(what.find("invalid_grant"), std::string::npos) << what;
  EXPECT_EQ(store->needing_reauthorization(), (std::vector<std::int64_t>{9}));
  const json stats = get_json(*plain, server.url("/oauth/stats"));
  EXPECT_EQ(stats["reuses_refused"], 1) << "asked once, then the stored mark answers: " << stats.dump();
  const std::string seen = logger->text() + what;
  for (const std::string& secret : {rt, std::string(kClientSecret), std::string(kKey)}) {
    EXPECT_EQ(seen.find(secret), std::string::npos) << secret << " in " << seen;
  }
  server.stop();
}

// The provider's token endpoint under hostile input: malformed escapes, empty
// fields, junk Basic credentials are 4xx answers, never an exception out of the
// handler; an id and secret form-encoded inside Basic (RFC 6749 2.3.1) work.
TEST(OAuthProviderInput, MalformedFormsAndBasicCredentialsAreAnsweredNotThrown) {
  tools::OAuthOptions options;
  options.enabled = true;
  options.client_id = "cid";
  options.client_secret = "s e+c";
  tools::OAuthIssuer issuer(options);
  const std::vector<std::string> bodies{"grant_type=%zz&client_id=%", "%", "&&==&=", "client_id=cid&client_secret=%2",
                                        "grant_type=client_credentials&client_id=cid&client_secret=s+e%2Bc%",
                                        std::string("grant_type=\0\xff", 13)};
  for (const std::string& body : bodies) {
    std::optional<tools::OAuthReply> reply;
    ASSERT_NO_THROW(reply = issuer.handle("POST", "/oauth/token", body, "")) << body;
    ASSERT_TRUE(reply);
    EXPECT_GE(reply->status, 400) << body;
    EXPECT_LT(reply->status, 500) << body;
  }
  for (const std::string& basic : std::vector<std::string>{"Basic !!!not-base64", "Basic ", "Basic Y2lk", "Basic ====",
                                                          "Basic %"}) {
    std::optional<tools::OAuthReply> reply;
    ASSERT_NO_THROW(reply = issuer.handle("POST", "/oauth/token", "grant_type=client_credentials", basic)) << basic;
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 401) << basic;
  }
  const auto good = issuer.handle("POST", "/oauth/token", "grant_type=client_credentials",
                                  "Basic " + codec::base64_encode("cid:s+e%2Bc"));
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 200) << good->body;
}

}  // namespace
}  // namespace webhookdb::test
