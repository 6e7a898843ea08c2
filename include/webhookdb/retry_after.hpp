#pragma once
// The Retry-After response header (RFC 9110 10.2.3): delta-seconds or an HTTP
// date. Used by the polite retry policy on 429 and 503.

#include <chrono>
#include <optional>
#include <string_view>

#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {

// The wait a Retry-After value asks for, measured from `now`. A date in the
// past is a zero wait. Lenient where servers are sloppy (surrounding blanks, a
// fraction of a second); nullopt when the value is neither form or negative.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, Timestamp now);

// The wait asked for by an error's Retry-After header; nullopt when the error
// is not an HttpError or carries no valid Retry-After.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<std::chrono::milliseconds> retry_after(
    const HttpBaseError& error, Timestamp now);

}  // namespace webhookdb
