// parse_json_limited / try_parse_json_limited: size and depth limits enforced
// while parsing, errors that name the limit and the byte offset but never the
// text, and documents far deeper than any stack survive (rejected, no crash).

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "webhookdb/errors.hpp"
#include "webhookdb/json_limits.hpp"

namespace webhookdb {
namespace {

using nlohmann::json;

std::string nested_arrays(std::size_t depth, std::string_view inner = "1") {
  return std::string(depth, '[') + std::string(inner) + std::string(depth, ']');
}

std::string nested_objects(std::size_t depth) {
  std::string out;
  for (std::size_t i = 0; i < depth; ++i) out += "{\"k\":";
  out += "null";
  out += std::string(depth, '}');
  return out;
}

TEST(JsonLimits, DefaultsAre64MiBAndDepth512) {
  const JsonLimits limits;
  EXPECT_EQ(limits.max_bytes, 64U * 1024U * 1024U);
  EXPECT_EQ(limits.max_depth, 512U);
}

TEST(JsonLimits, ParsesOrdinaryDocumentsLikeNlohmann) {
  const std::string text = R"({"a":[1,2.5,"x",true,null,{"b":-3}],"c":{"d":"\u00e9\u0000"},"n":18446744073709551615})";
  EXPECT_EQ(parse_json_limited(text), json::parse(text));
  EXPECT_EQ(parse_json_limited("  42 "), json(42));
  EXPECT_EQ(parse_json_limited("\"s\""), json("s"));
  EXPECT_EQ(parse_json_limited("[]"), json::array());
  auto r = try_parse_json_limited(text);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value, json::parse(text));
}

// The same document, node for node, with the same types (== would call 1u and
// 1 equal, and 1.0 and 1).
void expect_identical(const json& got, const json& want, const std::string& path = "$") {
  ASSERT_EQ(got.type(), want.type()) << path;
  if (got.is_object()) {
    ASSERT_EQ(got.size(), want.size()) << path;
    for (auto it = want.begin(); it != want.end(); ++it) {
      ASSERT_TRUE(got.contains(it.key())) << path << "." << it.key();
      expect_identical(got.at(it.key()), it.value(), path + "." + it.key());
    }
  } else if (got.is_array()) {
    ASSERT_EQ(got.size(), want.size()) << path;
    for (std::size_t i = 0; i < got.size(); ++i)
      expect_identical(got[i], want[i], path + "[" + std::to_string(i) + "]");
  } else if (got.is_number_float()) {
    EXPECT_EQ(std::signbit(got.get<double>()), std::signbit(want.get<double>())) << path;
    EXPECT_EQ(got.get<double>(), want.get<double>()) << path;
  } else {
    EXPECT_EQ(got, want) << path;
  }
}

// Documents that take the fast parser's path, or leave it part-way (it gives
// up and nlohmann's parser runs): either way the result is nlohmann's.
TEST(JsonLimits, EveryPathBuildsExactlyWhatNlohmannBuilds) {
  const std::vector<std::string> accepted = {
      "0",
      "-0",
      "1",
      "-1",
      "0.0",
      "-0.0",
      "1.5e3",
      "1E-3",
      "-2.5E+10",
      "123456789012345678",
      "18446744073709551615",  // largest unsigned
      "18446744073709551616",  // past it: a float in nlohmann
      "-9223372036854775808",  // smallest signed
      "-9223372036854775809",  // past it: a float
      "1e-400",                // underflows to zero
      "4.9e-324",
      "1.7976931348623157e308",
      "0.1",
      "3.141592653589793238462643383279",
      R"("")",
      R"("plain")",
      R"("\"\\\/\b\f\n\r\t")",
      R"("\u0000\u001f\u007f\u0080\u07ff\u0800\uffff")",
      R"("\ud83d\ude00 and \uD83D\uDE00")",
      "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"",
      R"("a\u0041b")",
      "[]",
      "{}",
      "[[]]",
      " [ 1 , [ 2 , { } ] ] ",
      "\t\r\n{\"a\"\t:\r\n1}\n",
      R"({"b":1,"a":2,"c":{"z":[true,false,null],"y":{}}})",
      R"({"k":1,"k":2})",  // a repeated key: the last value wins
      R"({"k":{"x":1},"k":[2]})",
      "\xEF\xBB\xBF{\"bom\":true}",  // nlohmann skips a byte order mark
      R"({"id":"ch_1","amount":2000,"paid":true,"refunds":{"data":[],"has_more":false},"metadata":{},)"
      R"("created":1700000000,"fee":0.029,"description":null})",
  };
  for (const auto& text : accepted) {
    SCOPED_TRACE(text);
    const auto parsed = try_parse_json_limited(text);
    ASSERT_TRUE(parsed.ok()) << parsed.error->message;
    expect_identical(parsed.value, json::parse(text));
    EXPECT_EQ(parsed.value.dump(), json::parse(text).dump());
  }
  // Refused by nlohmann, so refused here, at nlohmann's offset.
  const std::vector<std::string> refused = {"",
                                            " ",
                                            "01",
                                            "-",
                                            "1.",
                                            ".5",
                                            "1e",
                                            "1e+",
                                            "+1",
                                            "0x10",
                                            "1e400",
                                            "-1e400",
                                            "NaN",
                                            "tru",
                                            "nul",
                                            "[1,]",
                                            "{\"a\":1,}",
                                            "{\"a\" 1}",
                                            "{a:1}",
                                            "[1 2]",
                                            "\"unterminated",
                                            R"("\x")",
                                            R"("\u12")",
                                            R"("\ud800")",
                                            R"("\udc00")",
                                            R"("\ud800\u0041")",
                                            "\"tab\there\"",
                                            "\"\xC3\"",
                                            "\"\xED\xA0\x80\"",
                                            "\"\xC0\xAF\"",
                                            "\"\xF4\x90\x80\x80\"",
                                            "[1]]",
                                            "{}{}",
                                            "[\"a\"\n",
                                            "\xEF\xBB",
                                            "'single'"};
  for (const auto& text : refused) {
    SCOPED_TRACE(text);
    const auto parsed = try_parse_json_limited(text);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.error->failure, JsonFailure::malformed);
    EXPECT_TRUE(json::parse(text, nullptr, false).is_discarded());
    try {
      const json ignored = json::parse(text);
      ADD_FAILURE() << "nlohmann accepted it";
    } catch (const json::parse_error& e) {
      EXPECT_EQ(parsed.error->offset, e.byte > 0 ? e.byte - 1 : 0);
    } catch (const json::exception&) {
      // number overflow: not a parse_error, no byte to compare
    }
  }
  // Nesting past the fast parser's own bound (128) but within the limit.
  const std::string deep = nested_arrays(300, R"({"k":[1,2]})");
  expect_identical(parse_json_limited(deep), json::parse(deep));
}

TEST(JsonLimits, DepthExactlyAtTheLimitIsAcceptedOneMoreIsNot) {
  const JsonLimits limits{.max_bytes = 1 << 20, .max_depth = 10};
  EXPECT_EQ(json_depth(parse_json_limited(nested_arrays(10), limits)), 10U);
  EXPECT_EQ(json_depth(parse_json_limited(nested_objects(10), limits)), 10U);
  try {
    (void)parse_json_limited(nested_arrays(11), limits, "page 3 of svi_abc");
    FAIL() << "depth 11 accepted with a limit of 10";
  } catch (const InvalidJson& e) {
    EXPECT_EQ(e.failure(), JsonFailure::too_deep);
    EXPECT_EQ(e.offset(), 10U) << "the 11th '[' is at byte 10";
    EXPECT_EQ(e.where(), "page 3 of svi_abc, byte 10");
    EXPECT_EQ(std::string(e.what()), "JSON nested deeper than 10 levels (at page 3 of svi_abc, byte 10)");
  }
  // Objects, with brackets inside strings that must not count.
  const std::string tricky = R"({"[[[[":{"k\"[":{"x":[{"y":"]]]]"}]}}})";
  EXPECT_NO_THROW((void)parse_json_limited(tricky, {.max_bytes = 1000, .max_depth = 5}));
  auto r = try_parse_json_limited(tricky, {.max_bytes = 1000, .max_depth = 4});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->failure, JsonFailure::too_deep);
  EXPECT_EQ(r.error->offset, tricky.find("{\"y\""));
  EXPECT_TRUE(r.value.is_null());
}

TEST(JsonLimits, AMillionLevelsAreRejectedWithoutRecursion) {
  // Deep enough that anything recursing per level (dump, copy, compare) would
  // overflow the stack; parsing stops at level 513 instead.
  const std::string deep = nested_arrays(1'000'000);
  auto r = try_parse_json_limited(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->failure, JsonFailure::too_deep);
  EXPECT_EQ(r.error->offset, 512U);
  const std::string deep_objects = nested_objects(300'000);
  EXPECT_THROW((void)parse_json_limited(deep_objects), InvalidJson);
  // An unterminated one too (the text is cut): still too deep, found first.
  EXPECT_EQ(try_parse_json_limited(std::string(2'000'000, '[')).error->failure, JsonFailure::too_deep);
}

TEST(JsonLimits, OversizedTextIsRejectedBeforeParsing) {
  const std::string big = "[\"" + std::string(2000, 'x') + "\"]";
  try {
    (void)parse_json_limited(big, {.max_bytes = 1000, .max_depth = 512}, "webhook body");
    FAIL();
  } catch (const InvalidJson& e) {
    EXPECT_EQ(e.failure(), JsonFailure::too_large);
    EXPECT_EQ(e.offset(), 1000U);
    EXPECT_NE(std::string(e.what()).find("2004 bytes, more than the limit of 1000"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("webhook body"), std::string::npos);
  }
  // Even text that is not JSON at all: size is checked first.
  EXPECT_EQ(try_parse_json_limited(std::string(1001, '!'), {.max_bytes = 1000}).error->failure,
            JsonFailure::too_large);
  EXPECT_TRUE(try_parse_json_limited(std::string(998, ' ') + "[]", {.max_bytes = 1000}).ok());
}

TEST(JsonLimits, MalformedTextNamesTheOffsetAndNeverEchoesTheText) {
  const std::string secret = "sk_live_DO_NOT_ECHO_51H";
  struct Case {
    std::string text;
    std::size_t offset;
  };
  const std::vector<Case> cases = {
      {"{\"key\": " + secret + "}", 8},                // a bare word
      {"{\"key\": \"" + secret, 9 + secret.size()},  // unterminated string: fails at the end
      {"[1, 2] " + secret, 7},                         // trailing garbage
      {"", 0},                                         // empty
      {"   ", 3},                                      // blanks only
      {"{\"a\":\"x\xff" + secret + "\"}", 7},          // invalid UTF-8: the 0xFF byte itself
      {"{\"a\":\"\x01\"}", 6},                         // a control character in a string
      {"[1,]", 3},
      {"{\"a\" 1}", 5},
      {"nul", 3},
  };
  for (const auto& c : cases) {
    auto r = try_parse_json_limited(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error->failure, JsonFailure::malformed) << c.text;
    EXPECT_EQ(r.error->offset, c.offset) << c.text << ": " << r.error->message;
    EXPECT_EQ(r.error->message.rfind("malformed JSON: ", 0), 0U) << r.error->message;
    EXPECT_EQ(r.error->message.find(secret), std::string::npos) << r.error->message;
    EXPECT_EQ(r.error->message.find("json.exception"), std::string::npos) << r.error->message;
    try {
      (void)parse_json_limited(c.text, {}, "body of svi_x");
      ADD_FAILURE() << "accepted: " << c.text;
    } catch (const InvalidInput& e) {  // InvalidJson is an InvalidInput
      EXPECT_EQ(std::string(e.what()).find(secret), std::string::npos) << e.what();
      EXPECT_EQ(e.where(), "body of svi_x, byte " + std::to_string(c.offset));
    }
  }
  // The UTF-8 case says what is wrong.
  EXPECT_NE(try_parse_json_limited("\"\xc3\x28\"").error->message.find("UTF-8"), std::string::npos);
}

TEST(JsonLimits, NulBytesAndEncodedNulsAreDataNotTerminators) {
  // A raw NUL outside a string is malformed; \u0000 inside one parses to a NUL.
  const std::string raw("[1,\0 2]", 7);
  auto r = try_parse_json_limited(raw);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->offset, 3U);
  // Not an end of input either: a complete document followed by a NUL and
  // more text is refused (nlohmann's lexer alone would stop at the NUL and
  // accept the document before it; the json_nul fuzz target found it).
  for (const auto& [text, offset] : std::vector<std::pair<std::string, std::size_t>>{
           {std::string("0\0[\"x\"", 5), 1}, {std::string("{\"a\":1}\0{\"b\":2}", 15), 7},
           {std::string("\"a\0b\"", 5), 2}, {std::string("[1]\0", 4), 3}}) {
    auto bad = try_parse_json_limited(text);
    ASSERT_FALSE(bad.ok()) << ::testing::PrintToString(text);
    EXPECT_EQ(bad.error->failure, JsonFailure::malformed);
    EXPECT_EQ(bad.error->offset, offset) << ::testing::PrintToString(text);
    EXPECT_NE(bad.error->message.find("NUL byte"), std::string::npos) << bad.error->message;
  }
  EXPECT_EQ(parse_json_limited(R"(["a\u0000b"])")[0].get<std::string>(), std::string("a\0b", 3));
}

TEST(JsonLimits, JsonDepthAndCheckJsonDepthWorkOnBuiltDocumentsOfAnyDepth) {
  EXPECT_EQ(json_depth(json(1)), 0U);
  EXPECT_EQ(json_depth(json::array()), 1U);
  EXPECT_EQ(json_depth(json::parse(R"({"a":[1,{"b":[]}],"c":{}})")), 4U);
  // Build 100k levels iteratively (nlohmann destroys iteratively too).
  json deep = json::array();
  for (int i = 0; i < 100'000; ++i) {
    json outer = json::array();
    outer.push_back(std::move(deep));
    deep = std::move(outer);
  }
  EXPECT_EQ(json_depth(deep), 100'001U);
  try {
    check_json_depth(deep, 512, "row data of key 7");
    FAIL();
  } catch (const InvalidJson& e) {
    EXPECT_EQ(e.failure(), JsonFailure::too_deep);
    EXPECT_EQ(e.where(), "row data of key 7");
  }
  EXPECT_NO_THROW(check_json_depth(json::parse(nested_arrays(512)), 512));
}

TEST(JsonLimits, FailureNames) {
  EXPECT_EQ(to_string(JsonFailure::too_large), "too_large");
  EXPECT_EQ(to_string(JsonFailure::too_deep), "too_deep");
  EXPECT_EQ(to_string(JsonFailure::malformed), "malformed");
}

}  // namespace
}  // namespace webhookdb
