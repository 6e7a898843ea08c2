#pragma once
// Shared by the libFuzzer targets: an invariant check that aborts (so
// libFuzzer saves the input) with a message saying which invariant broke.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(condition, message)                                                          \
  do {                                                                                          \
    if (!(condition)) {                                                                         \
      std::fprintf(stderr, "invariant broken at %s:%d: %s\n  %s\n", __FILE__, __LINE__, #condition, \
                   std::string(message).c_str());                                               \
      std::abort();                                                                             \
    }                                                                                           \
  } while (false)

namespace webhookdb::test {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits the input at the first '\n': (header, rest).
inline std::pair<std::string_view, std::string_view> split_line(std::string_view text) {
  const auto nl = text.find('\n');
  if (nl == std::string_view::npos) return {text, {}};
  return {text.substr(0, nl), text.substr(nl + 1)};
}

// Printable form for messages (bytes outside ASCII as \xNN).
inline std::string printable(std::string_view text, std::size_t max = 200) {
  std::string out;
  for (const char ch : text.substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace webhookdb::test
