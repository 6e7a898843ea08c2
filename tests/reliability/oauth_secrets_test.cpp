// OAuth2 secrets never leak (issue 21): access tokens, refresh tokens (old and
// rotated), the client secret and its Basic form stay out of every error
// message, HTTP error excerpt and header, and stored re-authorisation reason,
// whatever the token endpoint and the API answer, even when they echo every
// credential they were sent back in their bodies (some do).
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "support/mini_server.hpp"
#include "webhookdb/codec.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/oauth2.hpp"

namespace webhookdb::test {
namespace {

constexpr const char* kClientId = "client-id-oauthleak";
constexpr const char* kClientSecret = "cs_OAUTHLEAK_7d1e2f3a";
constexpr const char* kAccess = "at_OAUTHLEAK_old_9b8c";
constexpr const char* kRefresh = "rt_OAUTHLEAK_old_5a6b";
constexpr const char* kNewAccess = "at_OAUTHLEAK_new_1c2d";
constexpr const char* kNewRefresh = "rt_OAUTHLEAK_new_3e4f";

std::vector<std::string> secrets() {
  return {kClientSecret, kAccess, kRefresh, kNewAccess, kNewRefresh,
          codec::base64_encode(std::string(kClientId) + ":" + kClientSecret)};
}

// Everything a request carried, as an echo.
std::string echo(const MiniRequest& request) {
  std::string out = request.method + " " + request.target + " " + request.body;
  for (const auto& [name, value] : request.headers) out += " " + name + ": " + value;
  return out;
}

enum class TokenAnswer { invalid_grant, invalid_request, server_error, garbage, no_access_token, good };

const char* name_of(TokenAnswer a) {
  switch (a) {
    case TokenAnswer::invalid_grant:
      return "invalid_grant";
    case TokenAnswer::invalid_request:
      return "invalid_request";
    case TokenAnswer::server_error:
      return "500";
    case TokenAnswer::garbage:
      return "garbage";
    case TokenAnswer::no_access_token:
      return "no access_token";
    case TokenAnswer::good:
      return "good";
  }
  return "?";
}

MiniResponse token_endpoint(TokenAnswer answer, const MiniRequest& request) {
  const Headers json_type = {{"Content-Type", "application/json"}};
  const nlohmann::json echoed = echo(request);
  switch (answer) {
    case TokenAnswer::invalid_grant:
      return {400, json_type, nlohmann::json{{"error", "invalid_grant"}, {"error_description", echoed}}.dump(), {}};
    case TokenAnswer::invalid_request:
      return {400, json_type, nlohmann::json{{"error", "invalid_request"}, {"error_description", echoed}}.dump(), {}};
    case TokenAnswer::server_error:
      return {500, {{"Content-Type", "text/plain"}}, "token store down: " + echo(request), {}};
    case TokenAnswer::garbage:
      return {200, {{"Content-Type", "text/html"}}, "<html>" + echo(request), {}};
    case TokenAnswer::no_access_token:
      return {200, json_type, nlohmann::json{{"token_type", "bearer"}, {"note", echoed}}.dump(), {}};
    case TokenAnswer::good:
      return {200, json_type,
              nlohmann::json{{"access_token", kNewAccess}, {"refresh_token", kNewRefresh}, {"token_type", "bearer"},
                             {"expires_in", 3600}}
                  .dump(),
              {}};
  }
  return {500, {}, "", {}};
}

TEST(OAuthSecretsTest, NoTokenOrClientSecretInAnyErrorWhateverTheEndpointsAnswer) {
  std::atomic<int> mode{0};
  MiniServer tokens([&](const MiniRequest& r) { return token_endpoint(static_cast<TokenAnswer>(mode.load()), r); });
  // The API refuses every token, saying it expired, and repeats what it was sent.
  MiniServer api([](const MiniRequest& r) {
    return MiniResponse{401,
                        {{"Content-Type", "text/plain"}, {"WWW-Authenticate", "Bearer error=\"invalid_token\""}},
                        "rejected: " + echo(r),
                        {}};
  });
  std::vector<std::pair<std::string, std::string>> texts;  // where, what
  int errors = 0;
  for (const auto answer : {TokenAnswer::invalid_grant, TokenAnswer::invalid_request, TokenAnswer::server_error,
                            TokenAnswer::garbage, TokenAnswer::no_access_token, TokenAnswer::good}) {
    for (const auto authentication : {oauth2::ClientAuthentication::basic, oauth2::ClientAuthentication::body}) {
      mode = static_cast<int>(answer);
      auto store = std::make_shared<oauth2::InMemoryTokenStore>();
      oauth2::ClientConfig client{.token_url = tokens.url("/oauth/token"),
                                  .client_id = kClientId,
                                  .client_secret = kClientSecret,
                                  .grant = oauth2::GrantType::refresh_token,
                                  .authentication = authentication};
      store->authorize(1, client, {.access_token = kAccess, .refresh_token = kRefresh});
      auto plain = curl::make_curl_client();
      CredentialAuth http(plain, std::make_shared<oauth2::OAuth2Credentials>(plain, store));
      const std::string where = std::string(name_of(answer)) +
                                (authentication == oauth2::ClientAuthentication::basic ? " (basic)" : " (body)");
      HttpRequest request{.url = api.url("/v1/things?page=1"), .integration_id = 1};
      try {
        (void)http.send(request);
        ADD_FAILURE() << where << ": the API's 401 did not fail the request";
      } catch (const HttpError& e) {
        ++errors;
        texts.emplace_back(where + ": HttpError", e.what());
        texts.emplace_back(where + ": HttpError body excerpt", e.body_excerpt());
        for (const auto& [name, value] : e.headers()) texts.emplace_back(where + ": HttpError header " + name, value);
      } catch (const std::exception& e) {
        ++errors;
        texts.emplace_back(where + ": " + typeid(e).name(), e.what());
      }
      if (const auto grant = store->load(1)) {
        texts.emplace_back(where + ": stored reason", grant->reauthorization_reason);
        if (answer == TokenAnswer::invalid_grant) {
          EXPECT_TRUE(grant->needs_reauthorization) << where;
        }
      }
    }
  }
  EXPECT_EQ(errors, 12);
  ASSERT_GE(tokens.requests().size(), 12U) << "the token endpoint was not asked";
  // The endpoints had the secrets to echo: the refresh token and the client
  // secret reached the token endpoint, the tokens reached the API.
  bool refresh_sent = false;
  bool secret_sent = false;
  for (const auto& r : tokens.requests()) {
    refresh_sent = refresh_sent || echo(r).find(kRefresh) != std::string::npos;
    secret_sent = secret_sent || echo(r).find(kClientSecret) != std::string::npos ||
                  echo(r).find(secrets().back()) != std::string::npos;
  }
  EXPECT_TRUE(refresh_sent && secret_sent);
  bool token_sent = false;
  for (const auto& r : api.requests()) token_sent = token_sent || echo(r).find(kNewAccess) != std::string::npos;
  EXPECT_TRUE(token_sent) << "the refreshed token never reached the API";
  for (const auto& [where, text] : texts) {
    for (const auto& secret : secrets()) {
      EXPECT_EQ(text.find(secret), std::string::npos) << "'" << secret << "' leaked in " << where << ":\n" << text;
    }
  }
}

}  // namespace
}  // namespace webhookdb::test
