#pragma once
// Row values <-> PostgreSQL text, per ColumnType.

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "webhookdb/column.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb::pg::values {

// Writes the PostgreSQL input text of `value` for a column of `type` into
// `out` (replacing its content, reusing its capacity); false for SQL NULL.
// NUL characters are removed from text and JSON. Throws InvalidInput (without
// `where`; the caller adds the remote key and column) for invalid UTF-8 or a
// value of the wrong shape (an object for an array column...).
WEBHOOKDB_INTERNAL_EXPORT bool encode(ColumnType type, const nlohmann::json& value, std::string& out);

// A timestamp as PostgreSQL input text in UTC ("0001-01-01 00:00:00+00 BC"
// style for years before 1, which ISO-8601 text cannot express to PostgreSQL).
[[nodiscard]] WEBHOOKDB_INTERNAL_EXPORT std::string timestamp_text(Timestamp t);

// The form two keys are compared in, to find duplicates of one batch as the
// database would (uuid case and hyphens, integer spelling, stripped NULs).
[[nodiscard]] WEBHOOKDB_INTERNAL_EXPORT std::string canonical_key(ColumnType type,
                                                                  const std::string& encoded);

// SQL expression that selects column `quoted` for decode() below.
[[nodiscard]] std::string select_expr(ColumnType type, const std::string& quoted);
// The JSON value of text produced by select_expr(); nullopt (SQL NULL) gives null.
[[nodiscard]] nlohmann::json decode(ColumnType type, const std::optional<std::string_view>& text);

// Microseconds since the epoch (text of a numeric epoch, as select_expr makes
// for timestamptz) to a Timestamp; nullopt for infinity or garbage.
[[nodiscard]] WEBHOOKDB_INTERNAL_EXPORT std::optional<Timestamp> timestamp_from_epoch_text(
    std::string_view text);
// SQL expression giving the epoch text of a timestamptz expression.
[[nodiscard]] std::string epoch_expr(const std::string& expr);

// Appends `text` escaped for COPY's text format (backslash, tab, newline, CR).
WEBHOOKDB_INTERNAL_EXPORT void append_copy_escaped(std::string& buf, std::string_view text);

// Appends `doc` as jsonb input text (see to_jsonb_text: encoded NULs removed),
// already escaped for COPY's text format, without an intermediate string.
// Throws InvalidInput("invalid UTF-8 in JSON") as encode() does.
WEBHOOKDB_INTERNAL_EXPORT void append_jsonb_copy(std::string& buf, const nlohmann::json& doc);

}  // namespace webhookdb::pg::values
