// Redirects and credentials: a 3xx to another origin (scheme, host or port)
// carries none of the request's headers, and a hop that would carry a query
// or body credential there is refused. Two loopback servers on two ports are
// two origins.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "support/mini_server.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/http_auth.hpp"

namespace webhookdb::curl {
namespace {

using test::MiniRequest;
using test::MiniResponse;
using test::MiniServer;

CurlOptions fast_options() {
  CurlOptions o;
  o.connect_timeout = std::chrono::milliseconds(2000);
  o.timeout = std::chrono::milliseconds(5000);
  return o;
}

MiniServer redirecting_to(std::string location, int status = 302) {
  return MiniServer([location = std::move(location), status](const MiniRequest&) {
    return MiniResponse{status, {{"Location", location}}, "moved", {}};
  });
}

MiniServer landing() {
  return MiniServer([](const MiniRequest&) {
    return MiniResponse{200, {{"Content-Type", "application/json"}}, R"({"landed":true})", {}};
  });
}

bool has_header(const MiniRequest& request, std::string_view name) {
  return find_header(request.headers, name).has_value();
}

TEST(RedirectOrigin, ACrossOriginRedirectCarriesNoCallerHeader) {
  MiniServer other = landing();
  MiniServer origin = redirecting_to(other.url("/landing"));
  CurlOptions options = fast_options();
  options.default_headers = {{"X-Default-Api-Key", "dflt_SECRET_1"}};
  auto http = std::make_shared<BearerAuth>(make_curl_client(options), "tok_SECRET_2");
  HttpRequest request{.url = origin.url("/start")};
  request.headers = {{"X-Shopify-Access-Token", "shpat_SECRET_3"}, {"X-Trace-Tag", "trace-1"}};

  const HttpResponse response = http->send(request);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.url, other.url("/landing"));
  ASSERT_EQ(origin.requests().size(), 1U);
  EXPECT_TRUE(has_header(origin.requests()[0], "X-Shopify-Access-Token"))
      << "the origin gets its credentials";
  ASSERT_EQ(other.requests().size(), 1U);
  const MiniRequest hop = other.requests()[0];
  EXPECT_FALSE(has_header(hop, "X-Shopify-Access-Token")) << "a custom credential header crossed origins";
  EXPECT_FALSE(has_header(hop, "Authorization")) << "the bearer token crossed origins";
  EXPECT_FALSE(has_header(hop, "X-Default-Api-Key")) << "a default header crossed origins";
  EXPECT_FALSE(has_header(hop, "X-Trace-Tag"))
      << "every caller-supplied header is dropped, not only known ones";
}

TEST(RedirectOrigin, ASameOriginRedirectKeepsTheHeaders) {
  MiniServer server([](const MiniRequest& r) {
    if (r.target == "/start") return MiniResponse{302, {{"Location", "/landing"}}, "moved", {}};
    return MiniResponse{200, {}, "{}", {}};
  });
  CurlHttpClient http(fast_options());
  HttpRequest request{.url = server.url("/start")};
  request.headers = {{"X-Shopify-Access-Token", "shpat_SECRET_3"}};
  EXPECT_EQ(http.send(request).status, 200);
  ASSERT_EQ(server.requests().size(), 2U);
  EXPECT_EQ(find_header(server.requests()[1].headers, "X-Shopify-Access-Token"), "shpat_SECRET_3");
}

TEST(RedirectOrigin, ACrossOriginRedirectThatCarriesAQueryCredentialIsRefused) {
  MiniServer other = landing();
  MiniServer origin = redirecting_to(other.url("/landing?api_key=qk_SECRET_4&page=2"));
  CurlHttpClient http(fast_options());
  try {
    (void)http.get(origin.url("/start?api_key=qk_SECRET_4"));
    FAIL() << "a query credential was sent to another origin";
  } catch (const Error& e) {
    EXPECT_FALSE(e.retryable()) << e.what();
    EXPECT_EQ(std::string(e.what()).find("qk_SECRET_4"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("another origin"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(other.requests().empty()) << "the other origin was contacted";
}

TEST(RedirectOrigin, ACrossOriginRedirectThatResendsTheBodyIsRefused) {
  MiniServer other = landing();
  MiniServer origin = redirecting_to(other.url("/token"), 307);
  CurlHttpClient http(fast_options());
  HttpRequest request{.method = "POST", .url = origin.url("/token")};
  request.body = "grant_type=client_credentials&client_secret=cs_SECRET_5";
  EXPECT_THROW((void)http.send(request), Error);
  EXPECT_TRUE(other.requests().empty())
      << "a request body (which may hold a secret) was resent to another origin";
}

TEST(RedirectOrigin, RefuseModeFollowsNoCrossOriginRedirect) {
  MiniServer other = landing();
  MiniServer origin = redirecting_to(other.url("/landing"));
  CurlOptions options = fast_options();
  options.cross_origin_redirects = CrossOriginRedirect::refuse;
  CurlHttpClient http(options);
  try {
    (void)http.get(origin.url("/start"));
    FAIL() << "a cross-origin redirect was followed";
  } catch (const InvariantViolation& e) {
    EXPECT_NE(std::string(e.what()).find(other.url("/landing")), std::string::npos) << e.what();
  }
  EXPECT_TRUE(other.requests().empty());
}

TEST(RedirectOrigin, ASeeOtherAfterAPostBecomesAGetWithoutBody) {
  MiniServer server([](const MiniRequest& r) {
    if (r.target == "/submit") return MiniResponse{303, {{"Location", "/result"}}, "", {}};
    return MiniResponse{200, {}, "{}", {}};
  });
  CurlHttpClient http(fast_options());
  HttpRequest request{.method = "POST", .url = server.url("/submit"), .body = "a=1"};
  EXPECT_EQ(http.send(request).status, 200);
  ASSERT_EQ(server.requests().size(), 2U);
  EXPECT_EQ(server.requests()[1].method, "GET");
  EXPECT_TRUE(server.requests()[1].body.empty());
}

}  // namespace
}  // namespace webhookdb::curl
