#pragma once
// Built-in converters for Column::convert.

#include <string>

#include "webhookdb/column.hpp"
#include "webhookdb/export.hpp"

namespace webhookdb::converters {

// ISO-8601 or RFC 2822 text to a UTC timestamp. Out of range or malformed
// text is an InvalidInput (see time.hpp for what PostgreSQL accepts).
[[nodiscard]] WEBHOOKDB_EXPORT Converter time();
// Seconds since the epoch (number or numeric string) to a timestamp, rounded
// to microseconds as PostgreSQL's to_timestamp() does; out of range refused.
[[nodiscard]] WEBHOOKDB_EXPORT Converter unix_timestamp();
// Milliseconds since the epoch to a timestamp.
[[nodiscard]] WEBHOOKDB_EXPORT Converter unix_timestamp_ms();
// Integer from a number or a string, with surrounding quotes stripped ("\"12\"" -> 12).
[[nodiscard]] WEBHOOKDB_EXPORT Converter to_integer();
// "a, b,c" -> ["a","b","c"] (empty entries dropped).
[[nodiscard]] WEBHOOKDB_EXPORT Converter comma_separated();
// The `group`th capture of `pattern` (ECMAScript) in the string value; null
// when no match. Matched without backtracking or recursion, so values of any
// length are safe; back-references are not supported (std::regex_error).
[[nodiscard]] WEBHOOKDB_EXPORT Converter regex_capture(const std::string& pattern, int group = 1);
// A date ("YYYY-MM-DD", more year digits past 9999, " BC" before 1 AD) from
// a date string (read as ::date) or a timestamp string (its UTC date).
[[nodiscard]] WEBHOOKDB_EXPORT Converter date();

}  // namespace webhookdb::converters
