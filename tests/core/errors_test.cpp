// Errors: what they say, what they never say (secrets), redact_url.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "webhookdb/errors.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/testing/mock_http_client.hpp"

namespace webhookdb {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(RedactUrl, SecretLookingQueryValuesAreReplaced) {
  EXPECT_EQ(redact_url("https://api.test/v1/items?api_key=sk_live_1&limit=10"),
            "https://api.test/v1/items?api_key=REDACTED&limit=10");
  EXPECT_EQ(redact_url("https://api.test/x?access_token=abc&page=2&client_secret=s"),
            "https://api.test/x?access_token=REDACTED&page=2&client_secret=REDACTED");
  EXPECT_EQ(redact_url("https://api.test/x?Signature=zz#frag"), "https://api.test/x?Signature=REDACTED#frag");
  EXPECT_EQ(redact_url("https://api.test/x?password=p"), "https://api.test/x?password=REDACTED");
}

TEST(RedactUrl, UserInfoIsReplaced) {
  EXPECT_EQ(redact_url("https://user:hunter2@api.test/x"), "https://REDACTED@api.test/x");
  EXPECT_EQ(redact_url("postgres://me:pw@db.test:5432/app"), "postgres://REDACTED@db.test:5432/app");
}

TEST(RedactUrl, OrdinaryUrlsAreUnchanged) {
  EXPECT_EQ(redact_url("https://api.test/v1/items?limit=10&starting_after=ch_1"),
            "https://api.test/v1/items?limit=10&starting_after=ch_1");
  EXPECT_EQ(redact_url("https://api.test/v1/items"), "https://api.test/v1/items");
  EXPECT_EQ(redact_url("https://api.test/users/me@example.com"), "https://api.test/users/me@example.com");
}

TEST(HttpErrors, CarryStatusMethodUrlAndExcerptButNoCredentials) {
  HttpError e(503, "GET", redact_url("https://api.test/x?token=secret1"), std::string(5000, 'x'),
              {{"Retry-After", "5"}, {"Set-Cookie", "session=abc"}, {"Authorization", "Bearer t"}});
  EXPECT_EQ(e.status(), 503);
  EXPECT_EQ(e.method(), "GET");
  EXPECT_THAT(e.what(), HasSubstr("503"));
  EXPECT_THAT(e.what(), Not(HasSubstr("secret1")));
  EXPECT_EQ(e.body_excerpt().size(), 1024U);
  EXPECT_EQ(e.header("retry-after"), "5");
  EXPECT_FALSE(e.header("Set-Cookie"));
  EXPECT_FALSE(e.header("Authorization"));
  EXPECT_TRUE(e.retryable());
  EXPECT_FALSE(HttpError(404, "GET", "u").retryable());
  EXPECT_TRUE(HttpError(429, "GET", "u").retryable());
}

TEST(HttpErrors, RaiseForStatusThrowsForErrorsOnly) {
  HttpRequest request;
  request.url = "https://api.test/x?key=k1";
  HttpResponse ok{200, {}, "fine", {}};
  EXPECT_NO_THROW(raise_for_status(request, ok));
  HttpResponse missing{404, {{"X-Request-Id", "r1"}}, "not here", {}};
  try {
    raise_for_status(request, missing);
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(e.url(), "https://api.test/x?key=REDACTED");
    EXPECT_EQ(e.body_excerpt(), "not here");
    EXPECT_EQ(e.header("x-request-id"), "r1");
  }
}

// Every credential a request can carry, and a server reply that echoes them all back.
constexpr const char* kSecrets[] = {"userinfo-pw-31", "sk_live_query_42", "tok_bearer_53", "hdr_key_64"};

HttpRequest credentialed_request() {
  HttpRequest request;
  request.url = "https://me:userinfo-pw-31@api.test/v1/x?api_key=sk_live_query_42&limit=5";
  request.headers = {{"Authorization", "Bearer tok_bearer_53"}, {"X-Api-Key", "hdr_key_64"}};
  return request;
}

std::string echo_of(const HttpRequest& request) {
  std::string echo = "you sent " + request.url + " with";
  for (const auto& [name, value] : request.headers) echo += " " + name + ": " + value + ";";
  return echo;
}

void expect_no_secret(const HttpError& e) {
  for (const char* secret : kSecrets) {
    EXPECT_THAT(e.what(), Not(HasSubstr(secret)));
    EXPECT_THAT(e.body_excerpt(), Not(HasSubstr(secret)));
    for (const auto& [name, value] : e.headers()) EXPECT_THAT(value, Not(HasSubstr(secret))) << name;
  }
}

TEST(HttpErrors, RaiseForStatusCutsEchoedCredentialsFromMessageExcerptAndHeaders) {
  const HttpRequest request = credentialed_request();
  HttpResponse echoed{401, {{"X-Echo", echo_of(request)}, {"X-Request-Id", "r1"}}, "denied: " + echo_of(request), {}};
  try {
    raise_for_status(request, echoed);
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    expect_no_secret(e);
    EXPECT_THAT(e.what(), HasSubstr("denied: you sent"));
    EXPECT_THAT(e.body_excerpt(), HasSubstr("REDACTED"));
    EXPECT_EQ(e.header("x-request-id"), "r1");
  }
  // A secret across the 1 KiB cut is not left half-shown.
  HttpResponse cut{500, {}, std::string(1020, '.') + "sk_live_query_42", {}};
  try {
    raise_for_status(request, cut);
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.body_excerpt().size(), 1024U);
    EXPECT_THAT(e.body_excerpt(), Not(HasSubstr("sk_l")));
  }
}

TEST(HttpErrors, MockClientBehindBearerAuthNeverRepeatsTheTokenItWasSent) {
  auto mock = std::make_shared<testing::MockHttpClient>();
  mock->call([](const HttpRequest& request, const CancellationToken&) {
    return HttpResponse{403, {{"X-Echo", echo_of(request)}}, "forbidden: " + echo_of(request), {}};
  });
  BearerAuth http(mock, "tok_bearer_53");
  HttpRequest request;
  request.url = "https://api.test/v1/x?api_key=sk_live_query_42";
  request.headers = {{"X-Api-Key", "hdr_key_64"}};
  try {
    (void)http.send(request, CancellationToken{});
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 403);
    expect_no_secret(e);
    EXPECT_THAT(e.body_excerpt(), HasSubstr("Authorization: REDACTED;"));
  }
}

TEST(HttpErrors, PaginatorsUnfollowedRedirectCutsEchoedCredentials) {
  testing::MockHttpClient mock;
  const HttpRequest first = credentialed_request();
  mock.call([](const HttpRequest& request, const CancellationToken&) {
    return HttpResponse{302, {{"Location", "https://elsewhere.test/?" + echo_of(request)}}, echo_of(request), {}};
  });
  pagination::Cursor pages;
  try {
    (void)pages.fetch(mock, first, "");
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 302);
    expect_no_secret(e);
    EXPECT_TRUE(e.header("Location"));
  }
}

TEST(Errors, HierarchyAndRetryability) {
  EXPECT_TRUE(HttpTimeout("t", "GET", "u").retryable());
  EXPECT_TRUE(HttpConnectionError("c", "GET", "u").retryable());
  EXPECT_FALSE(InvalidInput("bad").retryable());
  EXPECT_TRUE(StoreError("lost", true).retryable());
  EXPECT_FALSE(StoreError("constraint", false).retryable());
  InvalidInput where("missing key", "column 'at'");
  EXPECT_STREQ(where.what(), "missing key (at column 'at')");
  EXPECT_EQ(where.where(), "column 'at'");
  RetryOrDie rod(2, 63s, std::make_exception_ptr(HttpTimeout("t", "GET", "u")), "later");
  EXPECT_EQ(rod.retries(), 2);
  EXPECT_EQ(rod.backoff(), 63s);
  EXPECT_THROW(std::rethrow_exception(rod.cause()), HttpTimeout);
  const Error& base = rod;
  EXPECT_TRUE(base.retryable());
}

TEST(Errors, DescribeNeverThrows) {
  EXPECT_EQ(describe(nullptr), "no error");
  EXPECT_EQ(describe(std::make_exception_ptr(InvalidPrecondition("nope"))), "nope");
  EXPECT_EQ(describe(std::make_exception_ptr(42)), "unknown error");
}

TEST(Headers, LookupIsCaseInsensitive) {
  Headers h{{"Content-Type", "a"}, {"link", "1"}, {"Link", "2"}};
  EXPECT_EQ(find_header(h, "content-type"), "a");
  EXPECT_FALSE(find_header(h, "accept"));
  EXPECT_EQ(find_headers(h, "LINK"), (std::vector<std::string>{"1", "2"}));
}

}  // namespace
}  // namespace webhookdb
