// The JSON NUL rule (json_text.hpp): what goes into jsonb never holds an
// encoded NUL (\u0000), keeps an escaped backslash followed by u0000, parses
// back to the document with its NULs removed, and stripping is idempotent.
//
// Input: first byte selects the mode.
//   even: the rest is JSON text (NULs only as \u0000 escapes)
//   odd:  the rest is raw bytes used as one JSON string (raw NULs, invalid UTF-8)
// Any text at all also goes through strip_encoded_nuls, which must not crash.

#include <cstdint>
#include <string>

#include "reliability/fuzz/fuzz_support.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/json_text.hpp"

namespace {

using nlohmann::json;
using webhookdb::test::printable;

// True when serialized JSON holds a \u0000 escape (an escaped backslash
// followed by u0000 is not one).
bool has_encoded_nul(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 >= text.size()) continue;
    if (text[i + 1] == 'u') {
      if (text.substr(i + 2, 4) == "0000") return true;
      i += 5;
    } else {
      ++i;  // \\, \", \n...: skip the escaped character
    }
  }
  return false;
}

void check_document(const json& doc) {
  std::string text;
  try {
    text = webhookdb::to_jsonb_text(doc, "fuzz");
  } catch (const webhookdb::InvalidInput& e) {
    // Object keys that NUL removal would merge are refused (jsonb would keep
    // only one of them); the same must then hold for strip_nuls.
    if (std::string_view(e.message()).find("holds a NUL character") != std::string_view::npos) {
      bool strip_refuses = false;
      try {
        (void)webhookdb::strip_nuls(doc);
      } catch (const webhookdb::InvalidInput&) {
        strip_refuses = true;
      }
      FUZZ_CHECK(strip_refuses, "to_jsonb_text refused colliding keys that strip_nuls accepted");
      return;
    }
    // Otherwise only invalid UTF-8 may be refused: the same document must fail dump().
    bool dump_fails = false;
    try {
      (void)doc.dump();
    } catch (const json::type_error&) {
      dump_fails = true;
    }
    FUZZ_CHECK(dump_fails, "to_jsonb_text refused a document that dumps fine");
    return;
  }
  FUZZ_CHECK(!has_encoded_nul(text), printable(text));
  FUZZ_CHECK(text.find('\0') == std::string::npos, "raw NUL in jsonb text");
  const json back = json::parse(text, nullptr, false);
  FUZZ_CHECK(!back.is_discarded(), "jsonb text is not JSON: " + printable(text));
  FUZZ_CHECK(back == webhookdb::strip_nuls(doc), "jsonb text differs from the document without NULs: " + printable(text));
  FUZZ_CHECK(webhookdb::strip_encoded_nuls(text) == text, "stripping is not idempotent: " + printable(text));
  FUZZ_CHECK(webhookdb::strip_nuls(back) == back, "strip_nuls is not idempotent");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view all = webhookdb::test::as_text(data, size);
  const std::string_view rest = all.substr(1);
  // Any text: no crash, never longer.
  FUZZ_CHECK(webhookdb::strip_encoded_nuls(all).size() <= all.size(), "strip grew the text");
  if ((data[0] & 1U) == 0) {
    auto parsed = webhookdb::try_parse_json_limited(rest, {.max_bytes = 1 << 20, .max_depth = 64});
    if (!parsed) return 0;
    check_document(parsed.value);
    // Serialized valid JSON: stripping its text directly gives JSON without encoded NULs.
    const std::string stripped = webhookdb::strip_encoded_nuls(rest);
    FUZZ_CHECK(!has_encoded_nul(stripped), printable(stripped));
    FUZZ_CHECK(!json::parse(stripped, nullptr, false).is_discarded(), "stripped valid JSON is not JSON: " + printable(stripped));
    FUZZ_CHECK(webhookdb::strip_encoded_nuls(stripped) == stripped, "not idempotent on valid JSON: " + printable(stripped));
  } else {
    const std::string raw(rest);
    check_document(json(raw));
    check_document(json{{raw, json::array({raw, 1, nullptr})}});
  }
  return 0;
}
