#pragma once
// Built-in converters for Column::convert.

#include <string>

#include "webhookdb/column.hpp"

namespace webhookdb::converters {

// ISO-8601 or RFC 2822 text to a UTC timestamp.
[[nodiscard]] Converter time();
// Seconds since the epoch (number or numeric string) to a timestamp.
[[nodiscard]] Converter unix_timestamp();
// Milliseconds since the epoch to a timestamp.
[[nodiscard]] Converter unix_timestamp_ms();
// Integer from a number or a string, with surrounding quotes stripped ("\"12\"" -> 12).
[[nodiscard]] Converter to_integer();
// "a, b,c" -> ["a","b","c"] (empty entries dropped).
[[nodiscard]] Converter comma_separated();
// The `group`th capture of `pattern` (ECMAScript) in the string value; null
// when no match. Matched without backtracking or recursion, so values of any
// length are safe; back-references are not supported (std::regex_error).
[[nodiscard]] Converter regex_capture(const std::string& pattern, int group = 1);
// A date (YYYY-MM-DD) from a date or timestamp string.
[[nodiscard]] Converter date();

}  // namespace webhookdb::converters
