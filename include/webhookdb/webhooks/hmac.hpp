#pragma once
// HMAC-SHA256 (OpenSSL) and the constant-time comparison every verifier in
// this component uses. Hex and base64 live in webhookdb/codec.hpp.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "webhookdb/export.hpp"

namespace webhookdb::webhooks {

// The raw 32-byte HMAC-SHA256 of `message` under `key`.
[[nodiscard]] WEBHOOKDB_EXPORT std::string hmac_sha256(std::string_view key, std::string_view message);
// The same, as 64 lower-case hex digits / as padded standard base64.
[[nodiscard]] WEBHOOKDB_EXPORT std::string hmac_sha256_hex(std::string_view key, std::string_view message);
[[nodiscard]] WEBHOOKDB_EXPORT std::string hmac_sha256_base64(std::string_view key, std::string_view message);

// Equal length and equal bytes. The time taken depends only on the lengths,
// never on where the first difference is (OpenSSL's CRYPTO_memcmp), so a
// forger cannot learn a signature byte by byte from response times.
[[nodiscard]] WEBHOOKDB_EXPORT bool constant_time_equals(std::string_view a, std::string_view b) noexcept;

namespace detail {
// How many times constant_time_equals ran in this process. Lets tests prove
// that the verifiers compare through it rather than with ==.
[[nodiscard]] WEBHOOKDB_EXPORT std::uint64_t constant_time_comparisons() noexcept;
}  // namespace detail

}  // namespace webhookdb::webhooks
