#include "webhookdb/webhooks/hmac.hpp"

#include <array>
#include <atomic>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb::webhooks {
namespace {

std::atomic<std::uint64_t> g_comparisons{0};

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
  return codec::hex_encode(hmac_sha256(key, message));
}

std::string hmac_sha256_base64(std::string_view key, std::string_view message) {
  return codec::base64_encode(hmac_sha256(key, message));
}

bool constant_time_equals(std::string_view a, std::string_view b) noexcept {
  g_comparisons.fetch_add(1, std::memory_order_relaxed);
  // Lengths of signatures are public (fixed by the scheme); only the content is secret.
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace detail {
std::uint64_t constant_time_comparisons() noexcept {
  return g_comparisons.load(std::memory_order_relaxed);
}
}  // namespace detail

}  // namespace webhookdb::webhooks
