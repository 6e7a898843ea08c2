#pragma once
// Sealing and opening one stored secret with AES-256-GCM (OpenSSL EVP): the
// one home of the at-rest format "wdbenc:v1:<key id>:<base64(nonce|ct|tag)>".
// Private to the pg component; keys come from webhookdb/pg/secret_key.hpp.

#include <string>
#include <string_view>

#include "webhookdb/pg/secret_key.hpp"

namespace webhookdb::pg::detail {

inline constexpr std::string_view kSealedPrefix = "wdbenc:";

// True when `stored` is in the sealed format (any version).
[[nodiscard]] bool is_sealed(std::string_view stored) noexcept;
// The key id of a sealed value ("" when it has none).
[[nodiscard]] std::string sealed_key_id(std::string_view stored);

// A fresh random nonce per call. `aad` binds the value to where it is stored.
[[nodiscard]] std::string seal(const SecretKey& key, std::string_view plain, std::string_view aad);

// The plain text of a sealed value, with the key among `keys` whose id it
// names. On failure throws InvariantViolation whose message starts with
// `what` and says why (no key with that id, malformed, or authentication
// failed: tampered with or stored for another row) and never holds the value
// or a key.
[[nodiscard]] std::string open(const SecretKeys& keys, std::string_view stored, std::string_view aad,
                               const std::string& what);

}  // namespace webhookdb::pg::detail
