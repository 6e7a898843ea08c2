// http_auth.hpp's pure parts: Basic values, credential headers and the
// secrets a request carries (moved from tests/curl: they need no server).

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/http_auth.hpp"

namespace webhookdb {
namespace {

bool has(const std::vector<std::string>& secrets, const std::string& s) {
  return std::find(secrets.begin(), secrets.end(), s) != secrets.end();
}

TEST(HttpAuth, BasicValueAndCredentialHeaders) {
  EXPECT_EQ(basic_auth_value("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  EXPECT_TRUE(is_credential_header("Authorization"));
  EXPECT_TRUE(is_credential_header("x-api-key"));
  EXPECT_TRUE(is_credential_header("X-Shopify-Access-Token"));
  EXPECT_TRUE(is_credential_header("Set-Cookie"));
  EXPECT_FALSE(is_credential_header("Content-Type"));
  EXPECT_EQ(without_credentials({{"Cookie", "a"}, {"Link", "b"}}), (Headers{{"Link", "b"}}));
  EXPECT_THROW(HeaderAuth(nullptr, "X-Key", "v\r\nInjected: 1"), InvalidPrecondition);
}

// curl sends "http://user:pa+ss@h/" as Basic base64("user:pa+ss"): in
// userinfo '+' is a '+'. The redaction decoded it as a space (form rules) and
// so missed the Basic form a server might echo.
TEST(HttpAuth, UserinfoPlusIsAPlusInTheBasicFormItRedacts) {
  HttpRequest request;
  request.url = "http://user:pa+ss@127.0.0.1/x";
  const auto secrets = request_secrets(request);
  EXPECT_TRUE(has(secrets, codec::base64_encode("user:pa+ss")));
  EXPECT_TRUE(has(secrets, "pa+ss"));
}

// In a query value '+' is a space: both spellings are cut.
TEST(HttpAuth, QuerySecretsAreCutInBothDecodings) {
  HttpRequest request;
  request.url = "http://127.0.0.1/x?api_key=sk+live%2Fz";
  const auto secrets = request_secrets(request);
  EXPECT_TRUE(has(secrets, "sk live/z"));
  EXPECT_TRUE(has(secrets, "sk+live/z"));
}

// A Basic header in the url-safe alphabet still has its parts redacted.
TEST(HttpAuth, BasicCredentialsInEitherAlphabetAreDecoded) {
  const std::string pair = "ab:\xfb\xff\xbfxyz";  // the middle group is "+/+/" or "-_-_"
  for (const auto alphabet : {codec::Base64Alphabet::standard, codec::Base64Alphabet::url_safe}) {
    HttpRequest request;
    request.url = "http://127.0.0.1/x";
    request.headers = {{"Authorization", "Basic " + codec::base64_encode(pair, alphabet)}};
    EXPECT_TRUE(has(request_secrets(request), "\xfb\xff\xbfxyz"));
  }
}

}  // namespace
}  // namespace webhookdb
