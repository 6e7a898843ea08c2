#pragma once
// Timestamps are UTC with microsecond precision, the precision of timestamptz.
//
//   Timestamp t = timestamp_from_text("2024-02-29T23:59:59.9999995+01:00");  // InvalidInput if refused
//   format_timestamp(t);                      // "2024-02-29T23:00:00Z"
//   date_from_text("12345-06-07");            // "12345-06-07"
//
// Every text these functions accept means what PostgreSQL 15 means by it
// (`::timestamptz` in a session with TimeZone=UTC, `::date`); a text they
// accept is a subset of what PostgreSQL accepts, and anything PostgreSQL
// refuses, or that lies outside what a Timestamp holds, is refused: never
// wrapped, clamped or truncated. tests/pg/timestamp_corpus_test.cpp checks
// this against the server. The rules, as PostgreSQL has them:
// - range: timestamptz from 4714-11-24 00:00:00 BC UTC; PostgreSQL's end,
//   294276-12-31 23:59:59.999999 UTC, lies past what 64 bits of microseconds
//   since 1970 hold, so ours ends at Timestamp::max(), 294247-01-10T04:00:54.775807Z.
//   `date` runs from 4714-11-24 BC to 5874897-12-31.
// - years of 4 to 7 digits; no year 0 and no signed years ("-0001" is refused,
//   as PostgreSQL does): years before 1 AD are written "0044-03-15 BC".
// - 24:00:00 is the next midnight; a 60th second carries into the next minute
//   (23:59:60 is 00:00:00 of the next day), but not with a fraction left over.
// - fractions of any length (up to 64 digits) round to microseconds as
//   PostgreSQL does: rint(strtod(".fff") * 1e6), halves to even in double
//   arithmetic; a rounding that reaches the next second carries.
// - offsets up to ±15:59:59 (+HH, +H, +HHMM, +HH:MM, +HH:MM:SS), Z or z,
//   UTC/GMT/UT and the US zones of RFC 2822; no offset means UTC (the session
//   TimeZone of every connection of the pg adapter).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "webhookdb/export.hpp"

namespace webhookdb {

using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

// PostgreSQL's first timestamptz instant, 4714-11-24 00:00:00 BC UTC.
inline constexpr Timestamp kFirstTimestamp{std::chrono::microseconds{-210'866'803'200'000'000}};

// ISO-8601 in UTC: 2022-01-01T00:00:00Z, or with .ffffff when not whole
// seconds; years before 1 AD as PostgreSQL writes them: 0044-03-15T00:00:00Z BC.
[[nodiscard]] WEBHOOKDB_EXPORT std::string format_timestamp(Timestamp t);

// Parses ISO-8601 (date and time with Z or an offset, optional fraction, 'T' or
// space separator, optional " BC") and RFC 2822 ("Thu, 30 Jul 2016 21:12:33 +0000").
// Returns nullopt when the text is neither or is out of range (see above).
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<Timestamp> parse_timestamp(std::string_view text);

// parse_timestamp, but a refusal is an InvalidInput saying why: "not a
// timestamp: '<text>'" or "timestamp out of range ...: '<text>'".
[[nodiscard]] WEBHOOKDB_EXPORT Timestamp timestamp_from_text(std::string_view text);

// The date a `date` column holds for `text`, as PostgreSQL writes it
// ("2024-01-02", "12345-06-07", "0044-03-15 BC"): a date alone is read as
// `::date` reads it; a timestamp gives the UTC date of its instant (as
// `(text::timestamptz AT TIME ZONE 'UTC')::date`). InvalidInput when refused.
[[nodiscard]] WEBHOOKDB_EXPORT std::string date_from_text(std::string_view text);

// Seconds since 1970 to a Timestamp, as PostgreSQL's to_timestamp(double
// precision) computes it (same rounding); InvalidInput when not finite or
// outside the range above.
[[nodiscard]] WEBHOOKDB_EXPORT Timestamp timestamp_from_unix_seconds(double seconds);

// A Timestamp as whole seconds since 1970, rounded down (an instant half a
// second before 1970 is -1), for APIs filtering by Unix time:
//
//   query.emplace_back("created[gte]", std::to_string(unix_seconds(*since)));
[[nodiscard]] inline std::int64_t unix_seconds(Timestamp t) noexcept {
  return std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
}

// Parses an HTTP date (RFC 7231 IMF-fixdate, RFC 850 and asctime forms).
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<Timestamp> parse_http_date(std::string_view text);

}  // namespace webhookdb
