// codec.hpp: base64, hex, trim and case-insensitive comparison. Pure logic.

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb {
namespace {

using codec::Base64Alphabet;

TEST(Codec, Base64EncodesTheRfc4648Vectors) {
  EXPECT_EQ(codec::base64_encode(""), "");
  EXPECT_EQ(codec::base64_encode("f"), "Zg==");
  EXPECT_EQ(codec::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(codec::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(codec::base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(codec::base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(codec::base64_encode("foobar"), "Zm9vYmFy");
}

TEST(Codec, UrlSafeBase64UsesDashUnderscoreAndNoPadding) {
  const std::string bytes("\xfb\xff\xbf", 3);
  EXPECT_EQ(codec::base64_encode(bytes), "+/+/");
  EXPECT_EQ(codec::base64_encode(bytes, Base64Alphabet::url_safe), "-_-_");
  EXPECT_EQ(codec::base64_encode("f", Base64Alphabet::url_safe), "Zg");
  EXPECT_EQ(codec::try_base64_decode("-_-_", Base64Alphabet::url_safe), bytes);
  EXPECT_EQ(codec::try_base64_decode("Zg", Base64Alphabet::url_safe), "f");
}

TEST(Codec, Base64RoundTripsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t n = 0; n <= all.size(); n += 37) {
    const std::string part = all.substr(0, n);
    EXPECT_EQ(codec::try_base64_decode(codec::base64_encode(part)), part);
    EXPECT_EQ(
        codec::base64_decode(codec::base64_encode(part, Base64Alphabet::url_safe), Base64Alphabet::url_safe),
        part);
  }
}

// Strict: the http_auth decoder used to accept both alphabets mixed and any
// trailing bits; the one decoder accepts one canonical spelling per alphabet.
TEST(Codec, Base64DecodeIsStrict) {
  EXPECT_EQ(codec::try_base64_decode("Zg=="), "f");
  EXPECT_EQ(codec::try_base64_decode("Zg"), "f");              // padding optional
  EXPECT_EQ(codec::try_base64_decode("Zh=="), std::nullopt);   // non-zero trailing bits
  EXPECT_EQ(codec::try_base64_decode("Zg="), std::nullopt);    // wrong padding
  EXPECT_EQ(codec::try_base64_decode("Z"), std::nullopt);      // impossible length
  EXPECT_EQ(codec::try_base64_decode("Zm 9v"), std::nullopt);  // whitespace
  EXPECT_EQ(codec::try_base64_decode("-_-_"), std::nullopt);   // url-safe in standard
  EXPECT_EQ(codec::try_base64_decode("+/+/", Base64Alphabet::url_safe), std::nullopt);
}

TEST(Codec, Base64DecodeThrowsNamingThePositionNotTheText) {
  try {
    (void)codec::base64_decode("c2Vj!mV0");
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("byte 4"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("c2Vj"), std::string::npos) << e.what();
  }
}

TEST(Codec, HexEncodesLowerAndDecodesEitherCase) {
  EXPECT_EQ(codec::hex_encode(std::string("\x00\x9f\xff", 3)), "009fff");
  EXPECT_EQ(codec::hex_decode("009FfF"), std::string("\x00\x9f\xff", 3));
  EXPECT_EQ(codec::hex_decode("abc"), std::nullopt);
  EXPECT_EQ(codec::hex_decode("zz"), std::nullopt);
  EXPECT_EQ(codec::hex_value('f'), 15);
  EXPECT_EQ(codec::hex_value('g'), -1);
}

TEST(Codec, TrimRemovesAsciiWhitespaceOnly) {
  EXPECT_EQ(codec::trim(" \t a b \r\n"), "a b");
  EXPECT_EQ(codec::trim("   "), "");
  EXPECT_EQ(codec::trim(""), "");
  EXPECT_EQ(codec::trim("\xc2\xa0x"), "\xc2\xa0x");  // U+00A0 is not ASCII whitespace
}

TEST(Codec, CaseInsensitiveComparisonIsAsciiOnly) {
  EXPECT_TRUE(codec::iequals("Content-Type", "content-TYPE"));
  EXPECT_FALSE(codec::iequals("Content-Type", "Content-Typ"));
  EXPECT_FALSE(codec::iequals("\xc3\x89", "\xc3\xa9"));  // É and é: bytes compare exactly
  EXPECT_TRUE(codec::istarts_with("HTTP/1.1 200", "http/"));
  EXPECT_FALSE(codec::istarts_with("HT", "http/"));
  EXPECT_EQ(codec::ascii_lower("AbC-\xc3\x89"), "abc-\xc3\x89");
}

}  // namespace
}  // namespace webhookdb
