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
