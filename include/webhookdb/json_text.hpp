#pragma once
// JSON text as it goes into jsonb.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace webhookdb {

// Serializes `doc` for jsonb: encoded NULs (\u0000) are removed, an escaped
// backslash followed by u0000 (\\u0000) is kept. Invalid UTF-8 throws
// InvalidInput naming `where`.
[[nodiscard]] std::string to_jsonb_text(const nlohmann::json& doc, std::string_view where = {});

// Removes encoded NULs from serialized JSON text, keeping \\u0000.
[[nodiscard]] std::string strip_encoded_nuls(std::string_view json_text);

// A copy of `doc` with NUL characters removed from every string and key.
[[nodiscard]] nlohmann::json strip_nuls(const nlohmann::json& doc);

}  // namespace webhookdb
