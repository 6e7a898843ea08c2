#pragma once
// The keys PgJobStore encrypts integration secrets with (backfill key and
// secret, webhook secret) before they reach PostgreSQL: AES-256-GCM, a random
// nonce per value, the row id and column as associated data. The key comes from
// the host (an environment variable or a file), never from the database, so a
// dump of the database alone reveals no secret.
//
//   // WEBHOOKDB_SECRET_KEY=$(openssl rand -base64 32)
//   auto store = std::make_shared<pg::PgJobStore>(pool, pg::SecretKeys::from_environment());
//
//   // Rotation: the new key is current, the old one only decrypts until
//   // store->reencrypt_secrets() (or `webhookdb-worker --reencrypt-secrets`) has
//   // rewritten every row; then the old key can be retired.
//   pg::SecretKeys keys{.current = pg::SecretKey::parse(new_b64, "new key"),
//                       .previous = {pg::SecretKey::parse(old_b64, "old key")}};
//
// Stored values read "wdbenc:v1:<key id>:<base64(nonce | ciphertext | tag)>".
// The key id is 8 hex digits of a SHA-256 of the key: it tells which key sealed
// a value without revealing anything usable about the key.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webhookdb/export.hpp"

namespace webhookdb::pg {

// 32 bytes. Never printed: no error or log line holds a key or part of one.
class WEBHOOKDB_EXPORT SecretKey {
 public:
  static constexpr std::size_t kBytes = 32;

  // Base64 (standard or url-safe, padded or not) or hex of exactly 32 bytes,
  // surrounding whitespace ignored. InvalidInput naming `where` (never the text).
  [[nodiscard]] static SecretKey parse(std::string_view text, std::string_view where);
  // The whole file, parsed as above. InvalidInput naming the path when it cannot
  // be read or holds no key.
  [[nodiscard]] static SecretKey from_file(const std::string& path);

  [[nodiscard]] const std::string& id() const noexcept { return id_; }
  [[nodiscard]] const std::string& bytes() const noexcept { return bytes_; }

 private:
  SecretKey(std::string bytes, std::string id) : bytes_(std::move(bytes)), id_(std::move(id)) {}
  std::string bytes_;
  std::string id_;
};

// What a store without a current key does with a secret it is asked to store.
enum class PlainTextSecrets {
  refused,  // InvalidPrecondition: the default
  allowed,  // stored as it is (tests, local development)
};

struct WEBHOOKDB_EXPORT SecretKeys {
  // Encrypts every secret written, and decrypts.
  std::optional<SecretKey> current;
  // Only decrypt: keys being retired.
  std::vector<SecretKey> previous;
  // Matters only without a current key.
  PlainTextSecrets plain_text = PlainTextSecrets::refused;

  // Reads, through `getenv` (std::getenv by default):
  //   WEBHOOKDB_SECRET_KEY or WEBHOOKDB_SECRET_KEY_FILE    the current key
  //   WEBHOOKDB_PREVIOUS_SECRET_KEYS (comma-separated) and/or
  //   WEBHOOKDB_PREVIOUS_SECRET_KEYS_FILE (one key a line) the keys being retired
  //   WEBHOOKDB_PLAINTEXT_SECRETS=1                        the opt-in to plain text
  // InvalidInput naming the variable (never its value) for a malformed key, or
  // when both the key and its file are set.
  using Getenv = std::function<const char*(const char*)>;
  [[nodiscard]] static SecretKeys from_environment(const Getenv& getenv = {});
  // No key, plain text allowed.
  [[nodiscard]] static SecretKeys plain_text_for_tests();
};

}  // namespace webhookdb::pg
