#pragma once
// JSON text as it goes into jsonb.

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"

namespace webhookdb {

// Serializes `doc` for jsonb: encoded NULs (\u0000) are removed, an escaped
// backslash followed by u0000 (\\u0000) is kept. Invalid UTF-8 throws
// InvalidInput naming `where`. So does an object whose keys would meet once
// their NULs are removed ({"k\u0000":1,"k":2}): jsonb would keep one value
// and drop the other, so the document is refused, its message naming the
// key's path ("info.k\u0000"). A key whose NULs can go without meeting a
// sibling is written without them, as strings are.
[[nodiscard]] WEBHOOKDB_EXPORT std::string to_jsonb_text(const nlohmann::json& doc,
                                                         std::string_view where = {});

// Removes encoded NULs from serialized JSON text, keeping \\u0000.
[[nodiscard]] WEBHOOKDB_EXPORT std::string strip_encoded_nuls(std::string_view json_text);

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or
// code points past U+10FFFF), as jsonb and nlohmann's dump() require.
[[nodiscard]] WEBHOOKDB_EXPORT bool is_valid_utf8(std::string_view text) noexcept;

// The path ("info.title", "tags.2"; "" for `doc` itself) of the first string
// or object key in `doc` that is not valid UTF-8; nullopt when there is none.
// Walks without recursion, so it is safe on a document of any depth.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<std::string> find_invalid_utf8(const nlohmann::json& doc);

// A copy of `doc` with NUL characters removed from every string and key;
// InvalidInput (no `where`) when that would merge two keys of one object.
[[nodiscard]] WEBHOOKDB_EXPORT nlohmann::json strip_nuls(const nlohmann::json& doc);

}  // namespace webhookdb
