#pragma once
// Byte and text codecs: base64 (standard and url-safe), hex, ASCII trimming
// and case-insensitive comparison. The one home of these helpers: every
// component (HTTP auth, webhook signatures, curl, pagination, pg) uses them.
//
//   std::string sig = codec::base64_encode(hmac);
//   if (auto raw = codec::try_base64_decode(header)) ...   // strict, nullopt on junk
//   std::string token = codec::base64_decode(text);        // strict, throws InvalidInput
//   if (codec::iequals(name, "Content-Type")) ...

#include <optional>
#include <string>
#include <string_view>

#include "webhookdb/export.hpp"

namespace webhookdb::codec {

enum class Base64Alphabet {
  standard,  // RFC 4648 section 4: '+' '/', padded with '=' (Basic auth, Shopify, Svix)
  url_safe,  // RFC 4648 section 5: '-' '_', unpadded (JWT, URL tokens)
};

[[nodiscard]] WEBHOOKDB_EXPORT std::string base64_encode(std::string_view bytes,
                                                         Base64Alphabet alphabet = Base64Alphabet::standard);

// Strict: only the chosen alphabet, padding optional but correct when present,
// no whitespace, and the unused trailing bits zero (the canonical encoding).
// Why strict everywhere: a signature verifier must not accept two spellings of
// one signature, and a Basic credential we redact was encoded canonically by
// the client (a secret sent in the other alphabet is tried in that alphabet by
// the caller, see http_auth.cpp). nullopt for anything else.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<std::string> try_base64_decode(
    std::string_view text, Base64Alphabet alphabet = Base64Alphabet::standard);
// The same; throws InvalidInput naming the first offending position (never the text).
[[nodiscard]] WEBHOOKDB_EXPORT std::string base64_decode(std::string_view text,
                                                         Base64Alphabet alphabet = Base64Alphabet::standard);

// Lower-case hex, two digits per byte.
[[nodiscard]] WEBHOOKDB_EXPORT std::string hex_encode(std::string_view bytes);
// Upper or lower case; nullopt for an odd length or a non-hex character.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<std::string> hex_decode(std::string_view hex);
// 0-15 for a hex digit, -1 otherwise.
[[nodiscard]] WEBHOOKDB_EXPORT int hex_value(char c) noexcept;

// Without leading and trailing ASCII whitespace (space, \t, \r, \n, \f, \v).
// HTTP's OWS is only space and tab, but a header value never holds \r or \n
// (the parser split lines on them), so one definition serves both.
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view trim(std::string_view text) noexcept;
[[nodiscard]] WEBHOOKDB_EXPORT char ascii_lower(char c) noexcept;
[[nodiscard]] WEBHOOKDB_EXPORT std::string ascii_lower(std::string_view text);
// ASCII case-insensitive equality / prefix (header names, schemes, tokens):
// never locale-dependent, bytes >= 0x80 compare exactly.
[[nodiscard]] WEBHOOKDB_EXPORT bool iequals(std::string_view a, std::string_view b) noexcept;
[[nodiscard]] WEBHOOKDB_EXPORT bool istarts_with(std::string_view text, std::string_view prefix) noexcept;

}  // namespace webhookdb::codec
