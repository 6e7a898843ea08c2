#include "webhookdb/webhooks/hmac.hpp"

#include <array>
#include <atomic>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "webhookdb/errors.hpp"

namespace webhookdb::webhooks {
namespace {

std::atomic<std::uint64_t> g_comparisons{0};

constexpr std::string_view kHexDigits = "0123456789abcdef";
constexpr std::string_view kBase64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int base64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string hmac_sha256(std::string_view key, std::string_view message) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  // HMAC() accepts a null key pointer only with length 0; give it a valid one.
  static const unsigned char empty = 0;
  const void* key_ptr = key.empty() ? static_cast<const void*>(&empty) : static_cast<const void*>(key.data());
  const auto* msg_ptr = reinterpret_cast<const unsigned char*>(message.empty() ? "" : message.data());
  if (HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()), msg_ptr, message.size(), out.data(), &len) ==
      nullptr) {
    throw InvariantViolation("HMAC-SHA256 computation failed in OpenSSL");
  }
  return {reinterpret_cast<const char*>(out.data()), len};
}

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  return to_hex(hmac_sha256(key, message));
}

std::string hmac_sha256_base64(std::string_view key, std::string_view message) {
  return to_base64(hmac_sha256(key, message));
}

bool constant_time_equals(std::string_view a, std::string_view b) noexcept {
  g_comparisons.fetch_add(1, std::memory_order_relaxed);
  // Lengths of signatures are public (fixed by the scheme); only the content is secret.
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string to_hex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(kHexDigits[u >> 4U]);
    out.push_back(kHexDigits[u & 0x0FU]);
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
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

std::string to_base64(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16U) |
                            (std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8U) |
                            std::uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    out.push_back(kBase64Alphabet[(n >> 18U) & 63U]);
    out.push_back(kBase64Alphabet[(n >> 12U) & 63U]);
    out.push_back(kBase64Alphabet[(n >> 6U) & 63U]);
    out.push_back(kBase64Alphabet[n & 63U]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t n = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16U;
    if (rest == 2) n |= std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8U;
    out.push_back(kBase64Alphabet[(n >> 18U) & 63U]);
    out.push_back(kBase64Alphabet[(n >> 12U) & 63U]);
    out.push_back(rest == 2 ? kBase64Alphabet[(n >> 6U) & 63U] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> from_base64(std::string_view text) {
  std::size_t padding = 0;
  while (!text.empty() && text.back() == '=' && padding < 2) {
    text.remove_suffix(1);
    ++padding;
  }
  // With padding the total length was a multiple of 4; without, 1 leftover char is impossible.
  if (padding > 0 && (text.size() + padding) % 4 != 0) return std::nullopt;
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  unsigned bits = 0;
  for (char c : text) {
    const int v = base64_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6U) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFFU));
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1U << bits) - 1U)) != 0) return std::nullopt;
  return out;
}

namespace detail {
std::uint64_t constant_time_comparisons() noexcept { return g_comparisons.load(std::memory_order_relaxed); }
}  // namespace detail

}  // namespace webhookdb::webhooks
