// JSON text for jsonb: encoded NULs removed, escaped backslashes kept.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"

namespace webhookdb {
namespace {

using nlohmann::json;

TEST(JsonText, EncodedNulIsRemovedEscapedBackslashIsKept) {
  // {"a":"x\u0000y","b":"x\\u0000y"}: a has a real NUL, b a backslash then "u0000".
  const json doc = json::parse(R"({"a":"x\u0000y","b":"x\\u0000y"})");
  ASSERT_EQ(doc["a"].get<std::string>().size(), 3U);
  const std::string text = to_jsonb_text(doc);
  EXPECT_EQ(text, R"({"a":"xy","b":"x\\u0000y"})");
  EXPECT_EQ(json::parse(text)["b"], "x\\u0000y");
}

TEST(JsonText, StripEncodedNulsOnText) {
  EXPECT_EQ(strip_encoded_nuls(R"({"k\u0000":"\u0000v"})"), R"({"k":"v"})");
  EXPECT_EQ(strip_encoded_nuls(R"(["\\u0000"])"), R"(["\\u0000"])");
  EXPECT_EQ(strip_encoded_nuls(R"(["\\\u0000"])"), R"(["\\"])");
  EXPECT_EQ(strip_encoded_nuls(R"(["\u0001"])"), R"(["\u0001"])");
}

TEST(JsonText, StripNulsFromKeysAndNestedStrings) {
  json doc;
  doc[std::string("ke\0y", 4)] = {std::string("a\0b", 3), 1, {{"n", std::string("\0", 1)}}};
  const json clean = strip_nuls(doc);
  ASSERT_TRUE(clean.contains("key"));
  EXPECT_EQ(clean["key"][0], "ab");
  EXPECT_EQ(clean["key"][1], 1);
  EXPECT_EQ(clean["key"][2]["n"], "");
}

// Removing the NUL from "k\u0000" would make it "k": two keys would become
// one and a value would be lost without a word. Refused, naming the place.
TEST(JsonText, KeysCollidingAfterNulRemovalAreRefused) {
  const json doc = json::parse(R"({"id":"x","info":{"k\u0000":1,"k":2}})");
  try {
    const std::string text = to_jsonb_text(doc, "data of row 7");
    FAIL() << "expected InvalidInput, got " << text;
  } catch (const InvalidInput& e) {
    EXPECT_EQ(e.where(), "data of row 7");
    EXPECT_THAT(e.message(), ::testing::HasSubstr("NUL"));
    EXPECT_THAT(e.message(), ::testing::HasSubstr(R"("info.k\u0000")"));
  }
  EXPECT_THROW((void)to_jsonb_text(json::parse(R"([{"a\u0000b":1,"ab":2}])")), InvalidInput);
  EXPECT_THROW((void)to_jsonb_text(json::parse(R"({"\u0000":1,"\u0000\u0000":2})")), InvalidInput);
  EXPECT_THROW((void)strip_nuls(json::parse(R"({"x":[{"k\u0000":1,"k":2}]})")), InvalidInput);
  // Keys that stay distinct are stored without their NULs, as values are.
  const json distinct = json::parse(R"({"k\u0000":1,"j":2,"s":"a\u0000"})");
  EXPECT_EQ(to_jsonb_text(distinct), R"({"j":2,"k":1,"s":"a"})");
  EXPECT_EQ(strip_nuls(distinct), json::parse(R"({"j":2,"k":1,"s":"a"})"));
}

TEST(JsonText, InvalidUtf8IsInvalidInputNamingWhere) {
  const json doc = {{"name", std::string("\xff\xfe")}};
  try {
    (void)to_jsonb_text(doc, "data of row 7");
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& e) {
    EXPECT_EQ(e.where(), "data of row 7");
  }
}

}  // namespace
}  // namespace webhookdb
