#pragma once
// Timestamps are UTC with microsecond precision, the precision of timestamptz.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace webhookdb {

using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

// ISO-8601 in UTC: 2022-01-01T00:00:00Z, or with .ffffff when not whole seconds.
[[nodiscard]] std::string format_timestamp(Timestamp t);

// Parses ISO-8601 (date and time with Z or an offset, optional fraction, 'T' or
// space separator) and RFC 2822 ("Thu, 30 Jul 2016 21:12:33 +0000").
// Returns nullopt when the text is neither.
[[nodiscard]] std::optional<Timestamp> parse_timestamp(std::string_view text);

// Parses an HTTP date (RFC 7231 IMF-fixdate, RFC 850 and asctime forms).
[[nodiscard]] std::optional<Timestamp> parse_http_date(std::string_view text);

}  // namespace webhookdb
