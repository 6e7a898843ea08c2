#pragma once
// SQL text helpers of the pg adapter: identifiers and literals are built here,
// never by splicing raw names into SQL elsewhere.

#include <string>
#include <string_view>
#include <vector>

#include "webhookdb/export.hpp"

namespace webhookdb::pg::sql {

inline constexpr std::size_t kMaxIdentifierBytes = 63;

// True when `text` is well-formed UTF-8 (no overlongs, surrogates, or code
// points past U+10FFFF), as PostgreSQL requires.
[[nodiscard]] WEBHOOKDB_INTERNAL_EXPORT bool valid_utf8(std::string_view text) noexcept;

// "name" with inner quotes doubled. `what` ("table", "column"...) names the
// identifier in the BrokenSpecification thrown for an empty name, a name
// longer than 63 bytes (PostgreSQL would silently truncate it), a NUL byte or
// invalid UTF-8.
[[nodiscard]] WEBHOOKDB_INTERNAL_EXPORT std::string ident(std::string_view name,
                                                          std::string_view what = "identifier");
// "schema"."name".
[[nodiscard]] WEBHOOKDB_INTERNAL_EXPORT std::string qualified(std::string_view schema, std::string_view name);

// 'text' with inner quotes doubled (standard_conforming_strings is on for
// every pooled connection, so backslashes are literal). For text that comes
// from a specification (JSON paths), never for row values.
[[nodiscard]] WEBHOOKDB_INTERNAL_EXPORT std::string literal(std::string_view text);
// ARRAY['a','b']::text[] for a JSON path.
[[nodiscard]] WEBHOOKDB_INTERNAL_EXPORT std::string path_literal(const std::vector<std::string>& path);

// Replaces every occurrence of `from` in `text` by `to`.
[[nodiscard]] std::string replace_all(std::string text, std::string_view from, std::string_view to);

// A short, printable rendering of untrusted text for messages (invalid UTF-8
// and control characters escaped, at most `max` bytes).
[[nodiscard]] std::string printable(std::string_view text, std::size_t max = 80);

}  // namespace webhookdb::pg::sql
