#include "webhookdb/codec.hpp"

#include <cstdint>
#include <utility>

#include "webhookdb/errors.hpp"

namespace webhookdb::codec {
namespace {

constexpr std::string_view kStandard = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kUrlSafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kHexDigits = "0123456789abcdef";

std::string_view alphabet_of(Base64Alphabet alphabet) noexcept {
  return alphabet == Base64Alphabet::standard ? kStandard : kUrlSafe;
}

int base64_value(char c, Base64Alphabet alphabet) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  const std::string_view table = alphabet_of(alphabet);
  if (c == table[62]) return 62;
  if (c == table[63]) return 63;
  return -1;
}

// Decodes, or says why not (the position, never the text: it may be a secret).
std::optional<std::string> decode(std::string_view text, Base64Alphabet alphabet, std::string* why) {
  const std::size_t full = text.size();
  std::size_t padding = 0;
  while (!text.empty() && text.back() == '=' && padding < 2) {
    text.remove_suffix(1);
    ++padding;
  }
  // With padding the total length was a multiple of 4; without, 1 leftover char is impossible.
  if ((padding > 0 && full % 4 != 0) || text.size() % 4 == 1) {
    if (why != nullptr) *why = "length " + std::to_string(full) + " is not a base64 length";
    return std::nullopt;
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  unsigned bits = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const int v = base64_value(text[i], alphabet);
    if (v < 0) {
      if (why != nullptr) *why = "byte " + std::to_string(i) + " is not in the base64 alphabet";
      return std::nullopt;
    }
    acc = (acc << 6U) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFFU));
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1U << bits) - 1U)) != 0) {
    if (why != nullptr) *why = "non-canonical final character";
    return std::nullopt;
  }
  return out;
}

}  // namespace

std::string base64_encode(std::string_view bytes, Base64Alphabet alphabet) {
  const std::string_view table = alphabet_of(alphabet);
  const bool pad = alphabet == Base64Alphabet::standard;
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16U) |
                            (std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8U) |
                            std::uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    out.push_back(table[(n >> 18U) & 63U]);
    out.push_back(table[(n >> 12U) & 63U]);
    out.push_back(table[(n >> 6U) & 63U]);
    out.push_back(table[n & 63U]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t n = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16U;
    if (rest == 2) n |= std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8U;
    out.push_back(table[(n >> 18U) & 63U]);
    out.push_back(table[(n >> 12U) & 63U]);
    if (rest == 2) out.push_back(table[(n >> 6U) & 63U]);
    if (pad) out.append(rest == 2 ? 1 : 2, '=');
  }
  return out;
}

std::optional<std::string> try_base64_decode(std::string_view text, Base64Alphabet alphabet) {
  return decode(text, alphabet, nullptr);
}

std::string base64_decode(std::string_view text, Base64Alphabet alphabet) {
  std::string why;
  auto out = decode(text, alphabet, &why);
  if (!out) {
    const char* name = alphabet == Base64Alphabet::standard ? "standard" : "url-safe";
    throw InvalidInput(std::string("invalid ") + name + " base64: " + why);
  }
  return std::move(*out);
}

std::string hex_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(kHexDigits[u >> 4U]);
    out.push_back(kHexDigits[u & 0x0FU]);
  }
  return out;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_value(hex[i]);
    const int lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

std::string_view trim(std::string_view text) noexcept {
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(kSpace);
  return text.substr(first, last - first + 1);
}

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view text, std::string_view prefix) noexcept {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

}  // namespace webhookdb::codec
