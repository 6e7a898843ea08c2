#include "pg/secret_box.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb::pg {
namespace {

constexpr std::string_view kVersion = "v1:";
constexpr std::size_t kNonceBytes = 12;  // GCM's natural nonce: no GHASH of the IV
constexpr std::size_t kTagBytes = 16;

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string key_id_of(std::string_view key) {
  // Domain-separated, so the id is never a hash a user may have computed of
  // the key for another purpose.
  std::string input = "webhookdb secret key id\n";
  input.append(key);
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(bytes_of(input), input.size(), digest.data());
  OPENSSL_cleanse(input.data(), input.size());
  return codec::hex_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), 4));
}

std::optional<std::string> decode_key_text(std::string_view text) {
  if (text.size() == 2 * SecretKey::kBytes) {
    if (auto raw = codec::hex_decode(text)) return raw;
  }
  for (auto alphabet : {codec::Base64Alphabet::standard, codec::Base64Alphabet::url_safe}) {
    auto raw = codec::try_base64_decode(text, alphabet);
    if (raw && raw->size() == SecretKey::kBytes) return raw;
  }
  return std::nullopt;
}

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

CipherCtx new_ctx() {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) throw InvariantViolation("OpenSSL could not allocate a cipher context");
  return ctx;
}

int int_size(std::size_t n) {
  if (n > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw InvalidInput("a secret longer than 2 GiB cannot be stored");
  return static_cast<int>(n);
}

}  // namespace

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): the key text, then where it came from
SecretKey SecretKey::parse(std::string_view text, std::string_view where) {
  auto raw = decode_key_text(codec::trim(text));
  if (!raw) {
    throw InvalidInput(std::string(where) + " is not a secret key: expected base64 or hex of " +
                       std::to_string(kBytes) + " bytes (openssl rand -base64 32)");
  }
  std::string id = key_id_of(*raw);
  return SecretKey(std::move(*raw), std::move(id));
}

SecretKey SecretKey::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInput("cannot read the secret key file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string content = text.str();
  SecretKey key = parse(content, "the secret key file " + path);
  OPENSSL_cleanse(content.data(), content.size());
  return key;
}

SecretKeys SecretKeys::plain_text_for_tests() {
  SecretKeys keys;
  keys.plain_text = PlainTextSecrets::allowed;
  return keys;
}

namespace {

std::string read_file_text(const std::string& path, const char* variable) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInput(std::string("cannot read the file named by ") + variable + ": " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void add_keys(std::vector<SecretKey>& out, std::string_view list, const std::string& where) {
  std::size_t n = 0;
  while (!list.empty()) {
    const std::size_t end = list.find_first_of(",\n");
    const std::string_view item = codec::trim(list.substr(0, end));
    ++n;
    if (!item.empty()) out.push_back(SecretKey::parse(item, where + " (key " + std::to_string(n) + ")"));
    if (end == std::string_view::npos) break;
    list.remove_prefix(end + 1);
  }
}

}  // namespace

SecretKeys SecretKeys::from_environment(const Getenv& getenv_fn) {
  const auto get = [&](const char* name) -> std::optional<std::string> {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  SecretKeys keys;
  const auto key = get("WEBHOOKDB_SECRET_KEY");
  const auto key_file = get("WEBHOOKDB_SECRET_KEY_FILE");
  if (key && key_file) {
    throw InvalidInput("both WEBHOOKDB_SECRET_KEY and WEBHOOKDB_SECRET_KEY_FILE are set; set one");
  }
  if (key) keys.current = SecretKey::parse(*key, "WEBHOOKDB_SECRET_KEY");
  if (key_file) {
    keys.current = SecretKey::parse(read_file_text(*key_file, "WEBHOOKDB_SECRET_KEY_FILE"),
                                    "the file named by WEBHOOKDB_SECRET_KEY_FILE (" + *key_file + ")");
  }
  if (const auto list = get("WEBHOOKDB_PREVIOUS_SECRET_KEYS")) {
    add_keys(keys.previous, *list, "WEBHOOKDB_PREVIOUS_SECRET_KEYS");
  }
  if (const auto file = get("WEBHOOKDB_PREVIOUS_SECRET_KEYS_FILE")) {
    add_keys(keys.previous, read_file_text(*file, "WEBHOOKDB_PREVIOUS_SECRET_KEYS_FILE"),
             "the file named by WEBHOOKDB_PREVIOUS_SECRET_KEYS_FILE (" + *file + ")");
  }
  if (const auto plain = get("WEBHOOKDB_PLAINTEXT_SECRETS")) {
    if (*plain != "1" && *plain != "0") throw InvalidInput("WEBHOOKDB_PLAINTEXT_SECRETS must be 1 or 0");
    if (*plain == "1") keys.plain_text = PlainTextSecrets::allowed;
  }
  return keys;
}

namespace detail {

bool is_sealed(std::string_view stored) noexcept {
  return stored.substr(0, kSealedPrefix.size()) == kSealedPrefix;
}

std::string sealed_key_id(std::string_view stored) {
  if (!is_sealed(stored)) return "";
  stored.remove_prefix(kSealedPrefix.size());
  if (stored.substr(0, kVersion.size()) != kVersion) return "";
  stored.remove_prefix(kVersion.size());
  const auto colon = stored.find(':');
  if (colon == std::string_view::npos) return "";
  return std::string(stored.substr(0, colon));
}

std::string seal(const SecretKey& key, std::string_view plain, std::string_view aad) {
  std::string blob(kNonceBytes + plain.size() + kTagBytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(blob.data());
  if (RAND_bytes(out, static_cast<int>(kNonceBytes)) != 1) {
    throw InvariantViolation("OpenSSL gave no random nonce to encrypt a secret with");
  }
  CipherCtx ctx = new_ctx();
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceBytes), nullptr) == 1 &&
            EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, bytes_of(key.bytes()), out) == 1 &&
            EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes_of(aad), int_size(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx.get(), out + kNonceBytes, &len, bytes_of(plain), int_size(plain.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx.get(), out + kNonceBytes + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                                out + kNonceBytes + plain.size()) == 1;
  if (!ok) throw InvariantViolation("OpenSSL failed to encrypt a secret with AES-256-GCM");
  std::string sealed(kSealedPrefix);
  sealed.append(kVersion).append(key.id()).append(":").append(codec::base64_encode(blob));
  OPENSSL_cleanse(blob.data(), blob.size());
  return sealed;
}

// The sealed text, then its associated data (the order of seal's result and argument):
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters)
std::string open(const SecretKeys& keys, std::string_view stored, std::string_view aad, const std::string& what) {
  const std::string id = sealed_key_id(stored);
  if (id.empty()) {
    throw InvariantViolation(what + " is not in a format this version reads (expected wdbenc:v1:<key id>:...)");
  }
  const SecretKey* key = nullptr;
  if (keys.current && keys.current->id() == id) key = &*keys.current;
  for (const auto& k : keys.previous) {
    if (key == nullptr && k.id() == id) key = &k;
  }
  if (key == nullptr) {
    throw InvariantViolation(what + " is encrypted under key " + id +
                             ", which is not configured (WEBHOOKDB_SECRET_KEY or WEBHOOKDB_PREVIOUS_SECRET_KEYS)");
  }
  const std::string_view body = stored.substr(kSealedPrefix.size() + kVersion.size() + id.size() + 1);
  const auto blob = codec::try_base64_decode(body);
  if (!blob || blob->size() < kNonceBytes + kTagBytes) {
    throw InvariantViolation(what + " is malformed: the ciphertext is not base64 of a nonce, text and tag");
  }
  const std::size_t text_bytes = blob->size() - kNonceBytes - kTagBytes;
  const auto* in = bytes_of(*blob);
  std::string plain(text_bytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  std::array<unsigned char, kTagBytes> tag{};
  std::copy(in + kNonceBytes + text_bytes, in + blob->size(), tag.begin());
  CipherCtx ctx = new_ctx();
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceBytes), nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, bytes_of(key->bytes()), in) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes_of(aad), int_size(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), out, &len, in + kNonceBytes, int_size(text_bytes)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), tag.data()) == 1;
  // The tag is checked only here: until then `plain` is unauthenticated and never leaves.
  ok = ok && EVP_DecryptFinal_ex(ctx.get(), out + len, &len) == 1;
  if (!ok) {
    OPENSSL_cleanse(plain.data(), plain.size());
    throw InvariantViolation(what + " failed authentication under key " + id +
                             ": the stored value was tampered with or belongs to another row");
  }
  return plain;
}

}  // namespace detail
}  // namespace webhookdb::pg
