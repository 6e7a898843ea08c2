// CurlHttpClient against the real local server: responses, headers,
// keep-alive, decompression, redirects, the error mapping, auth decorators and
// secrets, and single-connection throughput.

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "server_fixture.hpp"
#include "webhookdb/codec.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/http_auth.hpp"

namespace webhookdb::test {
namespace {

using curl::CurlHttpClient;
using curl::CurlOptions;
using std::chrono::milliseconds;
using tools::ApiServerOptions;

CurlOptions fast_options() {
  CurlOptions o;
  o.connect_timeout = milliseconds(2000);
  o.timeout = milliseconds(5000);
  return o;
}

HttpRequest get(std::string url, milliseconds timeout = milliseconds(0)) {
  HttpRequest r;
  r.url = std::move(url);
  r.timeout = timeout;
  return r;
}

TEST(CurlClient, GetsAPageWithHeadersAndFinalUrl) {
  auto server = start_server({.objects = 20});
  CurlHttpClient http(fast_options());
  const auto response = http.get(server->url("/v1/charges?limit=3"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.header("content-TYPE"), "application/json");
  EXPECT_EQ(response.url, server->url("/v1/charges?limit=3"));
  const auto body = nlohmann::json::parse(response.body);
  ASSERT_EQ(body["data"].size(), 3U);
  EXPECT_EQ(body["data"][0]["id"], server->dataset().id(0));
  EXPECT_TRUE(body["has_more"].get<bool>());
}

TEST(CurlClient, KeepsRepeatedHeadersAndLooksThemUpCaseInsensitively) {
  auto server = start_server({.objects = 1});
  CurlHttpClient http(fast_options());
  const auto response = http.get(server->url("/headers"));
  EXPECT_EQ(find_headers(response.headers, "x-multi"), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(response.header("X-MIXED-CASE"), "yes");
  EXPECT_EQ(find_headers(response.headers, "LINK").size(), 2U);
}

TEST(CurlClient, KeepsOneConnectionAliveAcross100Requests) {
  auto server = start_server({.objects = 50});
  CurlHttpClient http(fast_options());
  for (int i = 0; i < 100; ++i) {
    const auto response = http.get(server->url("/v1/charges?limit=5"));
    ASSERT_EQ(response.status, 200);
  }
  const auto stats = server->stats();
  EXPECT_EQ(stats.requests, 100U);
  EXPECT_EQ(stats.connections, 1U);
  EXPECT_EQ(http.idle_handles(), 1U);
}

TEST(CurlClient, DecompressesGzipTransparently) {
  auto server = start_server({.objects = 20, .gzip = true});
  CurlHttpClient http(fast_options());
  const auto response = http.get(server->url("/v1/charges?limit=5"));
  EXPECT_EQ(response.header("Content-Encoding"), "gzip");
  const auto body = nlohmann::json::parse(response.body);
  EXPECT_EQ(body["data"].size(), 5U);
  EXPECT_EQ(body["data"][4]["id"], server->dataset().id(4));
  // The request advertised the encodings curl can decode.
  const auto echo = nlohmann::json::parse(http.get(server->url("/echo")).body);
  EXPECT_NE(echo["headers"]["accept-encoding"].get<std::string>().find("gzip"), std::string::npos);
}

TEST(CurlClient, CanTurnDecompressionOff) {
  auto server = start_server({.objects = 5, .gzip = true});
  auto options = fast_options();
  options.decompress = false;
  CurlHttpClient http(options);
  const auto echo = nlohmann::json::parse(http.get(server->url("/echo")).body);
  EXPECT_FALSE(echo["headers"].contains("accept-encoding"));
}

TEST(CurlClient, FollowsRedirectsUpToTheLimit) {
  auto server = start_server({.objects = 1});
  auto options = fast_options();
  options.max_redirects = 5;
  CurlHttpClient http(options);
  const auto response = http.get(server->url("/redirect/5"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.url, server->url("/redirect/0"));
  EXPECT_EQ(response.header("Location"), std::nullopt) << "headers are the final response's";
}

TEST(CurlClient, StopsAtTheRedirectLimitWithANonRetryableHttpError) {
  auto server = start_server({.objects = 1});
  auto options = fast_options();
  options.max_redirects = 3;
  CurlHttpClient http(options);
  try {
    (void)http.get(server->url("/redirect/50"));
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 302);
    EXPECT_FALSE(e.retryable());
    EXPECT_TRUE(e.header("Location").has_value());
  }
  EXPECT_EQ(server->stats().requests, 4U) << "the first request and 3 redirects, no more";
}

TEST(CurlClient, WithoutRedirectsReturnsThe3xx) {
  auto server = start_server({.objects = 1});
  auto options = fast_options();
  options.max_redirects = 0;
  CurlHttpClient http(options);
  const auto response = http.get(server->url("/redirect/1"));
  EXPECT_EQ(response.status, 302);
  EXPECT_EQ(response.header("Location"), "/redirect/0");
}

TEST(CurlClient, SlowResponseIsHttpTimeout) {
  auto server = start_server({.objects = 1});
  CurlHttpClient http(fast_options());
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)http.send(get(server->url("/delay?ms=3000"), milliseconds(200)));
    FAIL() << "expected HttpTimeout";
  } catch (const HttpTimeout& e) {
    EXPECT_EQ(e.method(), "GET");
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
    EXPECT_TRUE(e.retryable());
  }
  EXPECT_LT(elapsed_ms(start), milliseconds(1500));
}

TEST(CurlClient, StallMidBodyAfterA200IsHttpTimeout) {
  // The status line and half the body arrive, then the server stalls: the
  // curl code wins over the 200 status.
  auto server = start_server({.objects = 30, .slow_stall = milliseconds(2000)});
  CurlHttpClient http(fast_options());
  auto request = get(server->url("/v1/charges?limit=20"), milliseconds(250));
  request.headers.emplace_back("X-Fault", "slow");
  EXPECT_THROW((void)http.send(request), HttpTimeout);
  EXPECT_EQ(server->stats().fault_count(tools::Fault::slow), 1U);
}

TEST(CurlClient, RefusedConnectionIsHttpConnectionError) {
  std::string url;
  {
    auto server = start_server({.objects = 1});
    url = server->url("/v1/charges");
  }  // stopped: nothing listens on that port any more
  CurlHttpClient http(fast_options());
  try {
    (void)http.get(url);
    FAIL() << "expected HttpConnectionError";
  } catch (const HttpConnectionError& e) {
    EXPECT_EQ(e.url(), url);
    EXPECT_TRUE(e.retryable());
  }
}

TEST(CurlClient, ConnectionDroppedMidBodyIsHttpConnectionError) {
  auto server = start_server({.objects = 30});
  CurlHttpClient http(fast_options());
  auto request = get(server->url("/v1/charges?limit=20"));
  request.headers.emplace_back("X-Fault", "drop");
  EXPECT_THROW((void)http.send(request), HttpConnectionError);
  // The client recovers on a new connection.
  EXPECT_EQ(http.get(server->url("/v1/charges?limit=1")).status, 200);
  EXPECT_EQ(server->stats().connections, 2U);
}

TEST(CurlClient, ConnectionResetIsHttpConnectionError) {
  auto server = start_server({.objects = 5});
  CurlHttpClient http(fast_options());
  auto request = get(server->url("/v1/charges"));
  request.headers.emplace_back("X-Fault", "reset");
  EXPECT_THROW((void)http.send(request), HttpConnectionError);
}

TEST(CurlClient, NotFoundCarriesStatusExcerptHeadersAndARedactedUrl) {
  auto server = start_server({.objects = 1});
  CurlHttpClient http(fast_options());
  const std::string url = server->url("/status/404?api_key=sk_live_SECRET123&limit=1");
  try {
    (void)http.get(url);
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(e.method(), "GET");
    EXPECT_EQ(e.url(), server->url("/status/404?api_key=REDACTED&limit=1"));
    EXPECT_EQ(e.body_excerpt().size(), 1024U) << "the server sent 2048 bytes";
    EXPECT_EQ(e.body_excerpt().rfind("status 404 body", 0), 0U);
    EXPECT_TRUE(e.header("X-Request-Id").has_value());
    EXPECT_FALSE(e.header("Set-Cookie").has_value()) << "credential headers are dropped";
    EXPECT_FALSE(e.retryable());
    EXPECT_EQ(std::string(e.what()).find("SECRET123"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("404"), std::string::npos);
  }
}

TEST(CurlClient, ServerErrorIsARetryableHttpError) {
  auto server = start_server({.objects = 1});
  CurlHttpClient http(fast_options());
  try {
    (void)http.get(server->url("/status/500"));
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 500);
    EXPECT_TRUE(e.retryable());
    EXPECT_LE(e.body_excerpt().size(), 1024U);
  }
}

TEST(CurlClient, ReturnsErrorStatusesWhenNotRaising) {
  auto server = start_server({.objects = 1});
  CurlHttpClient http(fast_options());
  auto request = get(server->url("/status/503"));
  request.raise_for_status = false;
  const auto response = http.send(request);
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.body.size(), 2048U);
  EXPECT_EQ(response.header("Retry-After"), "1");
}

TEST(CurlClient, SendsMethodBodyAndHeaders) {
  auto server = start_server({.objects = 1});
  auto options = fast_options();
  options.default_headers = {{"X-Default", "d"}, {"X-Overridden", "default"}};
  CurlHttpClient http(options);
  HttpRequest request;
  request.method = "PUT";
  request.url = server->url("/echo?x=1");
  request.body = R"({"hello":"world"})";
  request.headers = {{"Content-Type", "application/json"}, {"X-Overridden", "request"}};
  const auto echo = nlohmann::json::parse(http.send(request).body);
  EXPECT_EQ(echo["method"], "PUT");
  EXPECT_EQ(echo["target"], "/echo?x=1");
  EXPECT_EQ(echo["body"], R"({"hello":"world"})");
  EXPECT_EQ(echo["headers"]["x-default"], "d");
  EXPECT_EQ(echo["headers"]["x-overridden"], "request");
  EXPECT_FALSE(echo["headers"].contains("expect"));
}

TEST(CurlClient, RejectsBadUrlsAndHeaderInjection) {
  CurlHttpClient http(fast_options());
  EXPECT_THROW((void)http.get("ftp://127.0.0.1/file"), InvalidPrecondition);
  EXPECT_THROW((void)http.get("not a url"), InvalidPrecondition);
  HttpRequest request = get("http://127.0.0.1:1/");
  request.headers = {{"X-Evil", "a\r\nInjected: yes"}};
  try {
    (void)http.send(request);
    FAIL() << "expected InvalidPrecondition";
  } catch (const InvalidPrecondition& e) {
    EXPECT_EQ(std::string(e.what()).find("Injected"), std::string::npos) << "values stay out of messages";
  }
}

TEST(CurlClient, OversizedBodyIsANonRetryableErrorNotAnOutOfMemory) {
  auto server = start_server({.objects = 20});
  auto options = fast_options();
  options.max_response_bytes = 4096;
  CurlHttpClient http(options);
  try {
    (void)http.get(server->url("/v1/charges?limit=10"));
    FAIL() << "expected ResponseTooLarge";
  } catch (const curl::ResponseTooLarge& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 4096"), std::string::npos) << e.what();
    EXPECT_FALSE(e.retryable());
    EXPECT_EQ(e.limit(), 4096U);
  }
}

TEST(CurlClient, CancelledTokenThrowsBeforeSending) {
  auto server = start_server({.objects = 1});
  CurlHttpClient http(fast_options());
  CancellationSource source;
  source.cancel();
  EXPECT_THROW((void)http.send(get(server->url("/v1/charges")), source.token()), Cancelled);
  EXPECT_EQ(server->stats().requests, 0U);
}

// --- Auth decorators and secrets ---

TEST(HttpAuth, BearerTokenReachesTheServerButNoMessage) {
  auto server = start_server({.objects = 1});
  auto http = std::make_shared<BearerAuth>(curl::make_curl_client(fast_options()), "tok_SECRET_abc");
  const auto echo = nlohmann::json::parse(http->get(server->url("/echo")).body);
  EXPECT_EQ(echo["headers"]["authorization"], "Bearer tok_SECRET_abc");
  try {
    (void)http->get(server->url("/status/401"));
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_EQ(std::string(e.what()).find("tok_SECRET"), std::string::npos);
    for (const auto& [name, value] : e.headers()) EXPECT_EQ(value.find("tok_SECRET"), std::string::npos);
  }
}

TEST(HttpAuth, BasicAuthAndARequestsOwnHeaderWins) {
  auto server = start_server({.objects = 1});
  auto http = std::make_shared<BasicAuth>(curl::make_curl_client(fast_options()), "sk_test_123", "");
  auto echo = nlohmann::json::parse(http->get(server->url("/echo")).body);
  EXPECT_EQ(echo["headers"]["authorization"], "Basic " + codec::base64_encode("sk_test_123:"));
  echo = nlohmann::json::parse(http->get(server->url("/echo"), {{"authorization", "Bearer other"}}).body);
  EXPECT_EQ(echo["headers"]["authorization"], "Bearer other");
}

TEST(HttpAuth, PasswordInTheUrlNeverReachesAMessage) {
  std::string url;
  {
    auto server = start_server({.objects = 1});
    url = "http://user:hunter2pass@127.0.0.1:" + std::to_string(server->port()) + "/v1/charges?token=tok_zzz";
  }
  CurlHttpClient http(fast_options());
  try {
    (void)http.get(url);
    FAIL() << "expected HttpConnectionError";
  } catch (const HttpConnectionError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find("hunter2pass"), std::string::npos) << what;
    EXPECT_EQ(what.find("tok_zzz"), std::string::npos) << what;
    EXPECT_EQ(e.url().find("hunter2pass"), std::string::npos);
  }
}

class CapturingLogger final : public Logger {
 public:
  void log(LogLevel, std::string_view message) override { lines.emplace_back(message); }
  std::vector<std::string> lines;
};

TEST(HttpAuth, LoggingDecoratorLogsRedactedExchangesOnly) {
  auto server = start_server({.objects = 5});
  auto logger = std::make_shared<CapturingLogger>();
  auto authed = std::make_shared<BearerAuth>(curl::make_curl_client(fast_options()), "tok_SECRET_log");
  LoggingHttpClient http(authed, logger, LogLevel::info);
  (void)http.get(server->url("/v1/charges?limit=2&api_key=sk_SECRET_q"));
  EXPECT_THROW((void)http.get(server->url("/status/500")), HttpError);
  ASSERT_EQ(logger->lines.size(), 2U);
  EXPECT_NE(logger->lines[0].find("-> 200"), std::string::npos) << logger->lines[0];
  EXPECT_NE(logger->lines[1].find("-> 500"), std::string::npos) << logger->lines[1];
  for (const auto& line : logger->lines) {
    EXPECT_EQ(line.find("SECRET"), std::string::npos) << line;
  }
}

// --- Throughput on one connection (printed for the report) ---

TEST(CurlClient, ServesThousandsOfPagesPerSecondOnOneConnection) {
  auto server = start_server({.objects = 2000});
  CurlHttpClient http(fast_options());
  auto measure = [&](std::size_t limit, int pages) {
    const auto start = std::chrono::steady_clock::now();
    std::size_t position = 0;
    for (int i = 0; i < pages; ++i) {
      const auto url = server->url("/cursor?limit=" + std::to_string(limit) +
                                   (position > 0 ? "&cursor=c" + std::to_string(position) : ""));
      const auto response = http.get(url);
      if (response.status != 200) ADD_FAILURE() << "status " << response.status;
      position = (position + limit) % 2000;
    }
    const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return pages / seconds;
  };
  const double small = measure(10, 2000);
  const double large = measure(100, 500);
  std::cout << "[ measure  ] one keep-alive connection: " << static_cast<long>(small)
            << " pages/s of 10 objects (~10 KB), " << static_cast<long>(large)
            << " pages/s of 100 objects (~100 KB)\n";
  EXPECT_EQ(server->stats().connections, 1U);
  // Loose floors (sanitizer builds are slower); the printed figures are the point.
  EXPECT_GT(small, 300.0);
  EXPECT_GT(large, 50.0);
}

}  // namespace
}  // namespace webhookdb::test
