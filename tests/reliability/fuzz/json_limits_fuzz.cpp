// parse_json_limited against nlohmann's own parser: whatever the limited
// parser accepts (with its own fast parser, or with nlohmann's after the fast
// one gave up), nlohmann parses to the same document with the same number
// types; whatever it refuses is malformed for nlohmann too, or really too
// large or too deep; offsets stay inside the text.

#include <cstdint>
#include <string>

#include "reliability/fuzz/fuzz_support.hpp"
#include "webhookdb/json_limits.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using nlohmann::json;
  const std::string_view text = webhookdb::test::as_text(data, size);
  const webhookdb::JsonLimits limits{.max_bytes = 2048, .max_depth = 8};
  const auto limited = webhookdb::try_parse_json_limited(text, limits);
  const json plain = json::parse(text, nullptr, false);
  if (limited.ok()) {
    FUZZ_CHECK(!plain.is_discarded(), "accepted what nlohmann refuses");
    FUZZ_CHECK(limited.value == plain, "a different document than nlohmann's");
    // == calls 1 and 1u and 1.0 equal; the text tells the types apart.
    FUZZ_CHECK(limited.value.dump() == plain.dump(), "a different number type than nlohmann's");
    FUZZ_CHECK(webhookdb::json_depth(limited.value) <= limits.max_depth, "accepted a document past the depth limit");
    FUZZ_CHECK(text.size() <= limits.max_bytes, "accepted text past the size limit");
    return 0;
  }
  const auto& error = *limited.error;
  FUZZ_CHECK(error.offset <= std::max(text.size(), limits.max_bytes), "offset past the end");
  FUZZ_CHECK(!error.message.empty(), "an error without a message");
  switch (error.failure) {
    case webhookdb::JsonFailure::too_large:
      FUZZ_CHECK(text.size() > limits.max_bytes, "too_large for a small text");
      break;
    case webhookdb::JsonFailure::too_deep:
      FUZZ_CHECK(plain.is_discarded() || webhookdb::json_depth(plain) > limits.max_depth, "too_deep for a shallow document");
      break;
    case webhookdb::JsonFailure::malformed:
      // nlohmann stops at a NUL byte and may accept what precedes it; we refuse
      // the NUL, at its offset.
      if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
        FUZZ_CHECK(error.offset == nul, "a NUL byte refused at the wrong offset");
      } else {
        FUZZ_CHECK(plain.is_discarded(), "malformed for text nlohmann accepts");
      }
      break;
  }
  return 0;
}
