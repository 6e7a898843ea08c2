// url.hpp: percent-encoding, query parameters, references and origins. Pure
// logic, no server.

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "webhookdb/pagination.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb {
namespace {

TEST(Url, PercentEncodesAllButUnreservedCharacters) {
  EXPECT_EQ(url::percent_encode("a b&c=d/é~"), "a%20b%26c%3Dd%2F%C3%A9~");
  EXPECT_EQ(url::percent_encode("A-z_0.9~"), "A-z_0.9~");
  EXPECT_EQ(url::percent_encode("a+b"), "a%2Bb");
  EXPECT_EQ(url::percent_encode(std::string("\0\xff", 2)), "%00%FF");
}

// The two decoders differ only on '+': a space in a query or form, a '+'
// anywhere else (a path segment, the password of "postgres://u:a+b@h").
TEST(Url, QueryDecodeTurnsPlusIntoASpaceButPercentDecodeKeepsIt) {
  EXPECT_EQ(url::query_decode("a+b%2Bc%20d"), "a b+c d");
  EXPECT_EQ(url::percent_decode("a+b%2Bc%20d"), "a+b+c d");
}

TEST(Url, DecodersLeaveMalformedEscapesAlone) {
  for (const auto* text : {"%", "%4", "%zz", "100%", "%%41"}) {
    EXPECT_EQ(url::percent_decode(text), std::string(text) == "%%41" ? "%A" : text) << text;
  }
  EXPECT_EQ(url::percent_decode("%41%62"), "Ab");
  EXPECT_EQ(url::percent_decode("%e2%82%ac"), "\xe2\x82\xac");
}

TEST(Url, QueryParamDecodesPlusAsASpace) {
  EXPECT_EQ(url::query_param("http://h/p?q=a+b%2Bc", "q"), "a b+c");
  const std::string set = url::set_query_param("http://h/p", "q", "a b+c");
  EXPECT_EQ(set, "http://h/p?q=a%20b%2Bc");
  EXPECT_EQ(url::query_param(set, "q"), "a b+c");
}

TEST(Url, RecognisesHttpUrls) {
  EXPECT_TRUE(url::is_http_url("http://h/"));
  EXPECT_TRUE(url::is_http_url("HTTPS://h/"));
  EXPECT_FALSE(url::is_http_url("ftp://h/"));
  EXPECT_FALSE(url::is_http_url("/relative"));
}

// pagination:: reaches the same functions (one home, two doors).
TEST(Url, PaginationUsesTheSameFunctions) {
  EXPECT_EQ(pagination::with_query("http://h/p", {{"a", "1"}}), url::with_query("http://h/p", {{"a", "1"}}));
}

TEST(Url, EncodesAndSetsQueryParameters) {
  EXPECT_EQ(url::with_query("http://h/p", {{"a", "1"}, {"b c", "x&y"}}), "http://h/p?a=1&b%20c=x%26y");
  EXPECT_EQ(url::with_query("http://h/p?z=0#frag", {{"a", "1"}}), "http://h/p?z=0&a=1#frag");
  EXPECT_EQ(url::with_query("http://h/p", {}), "http://h/p");
  EXPECT_EQ(url::set_query_param("http://h/p?limit=10&x=1", "limit", "100"), "http://h/p?limit=100&x=1");
  EXPECT_EQ(url::set_query_param("http://h/p?a=1&a=2", "a", "3"), "http://h/p?a=3");
  EXPECT_EQ(url::set_query_param("http://h/p", "cursor", "c/1"), "http://h/p?cursor=c%2F1");
  EXPECT_EQ(url::set_query_param("http://h/p?x=1#f", "y", "2"), "http://h/p?x=1&y=2#f");
  EXPECT_EQ(url::query_param("http://h/p?a=1&b=x%20y", "b"), "x y");
  EXPECT_EQ(url::query_param("http://h/p?a=1", "b"), std::nullopt);
  EXPECT_EQ(url::query_param("http://h/p?flag&a=1", "flag"), "");
}

TEST(Url, ResolvesReferencesLikeRfc3986) {
  const std::string base = "http://a/b/c/d;p?q";
  EXPECT_EQ(url::resolve_url(base, "g"), "http://a/b/c/g");
  EXPECT_EQ(url::resolve_url(base, "./g"), "http://a/b/c/g");
  EXPECT_EQ(url::resolve_url(base, "g/"), "http://a/b/c/g/");
  EXPECT_EQ(url::resolve_url(base, "/g"), "http://a/g");
  EXPECT_EQ(url::resolve_url(base, "//g"), "http://g");
  EXPECT_EQ(url::resolve_url(base, "?y"), "http://a/b/c/d;p?y");
  EXPECT_EQ(url::resolve_url(base, "g?y"), "http://a/b/c/g?y");
  EXPECT_EQ(url::resolve_url(base, "#s"), "http://a/b/c/d;p?q#s");
  EXPECT_EQ(url::resolve_url(base, "../g"), "http://a/b/g");
  EXPECT_EQ(url::resolve_url(base, "../../g"), "http://a/g");
  EXPECT_EQ(url::resolve_url(base, "../../../g"), "http://a/g");
  EXPECT_EQ(url::resolve_url(base, "https://other/x?y=1"), "https://other/x?y=1");
  EXPECT_EQ(url::resolve_url("https://api.example.com", "items?page=2"),
            "https://api.example.com/items?page=2");
}

TEST(Url, ComparesOrigins) {
  EXPECT_EQ(url::origin_of("HTTPS://API.Example.com/x?y"), "https://api.example.com:443");
  EXPECT_EQ(url::origin_of("https://api.example.com:443/z"), url::origin_of("https://api.example.com/"));
  EXPECT_EQ(url::origin_of("http://u:p@127.0.0.1:8080/a"), "http://127.0.0.1:8080");
  EXPECT_NE(url::origin_of("http://a.com/"), url::origin_of("https://a.com/"));
  EXPECT_EQ(url::origin_of("http://[::1]:99/"), "http://[::1]:99");
}

}  // namespace
}  // namespace webhookdb
