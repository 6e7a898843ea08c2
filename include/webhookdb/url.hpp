#pragma once
// URL pieces: percent-encoding, query parameters, reference resolution and
// origins. The one home of these helpers (pagination, HTTP auth, curl, the
// pg connection-string redaction and the test doubles all use them).
//
//   std::string next = url::set_query_param(first.url, "starting_after", id);
//   std::optional<std::string> page = url::query_param(link.target, "page");
//   std::string segment = url::percent_encode(user_id);   // safe in a path or a query
//
// Decoding has two forms because '+' means two things:
//   - query_decode: a query component or form data (application/x-www-form-urlencoded),
//     where '+' is a space ("a+b" -> "a b"). Use it for parameters read back from URLs.
//   - percent_decode: anything else (a path segment, the userinfo of a URL, a
//     libpq connection URI), where '+' is a literal '+'. libpq and curl decode
//     userinfo this way: "postgres://u:a+b@h" has the password "a+b".
// Both leave a malformed escape ("%zz", a trailing "%") as it is, as browsers do.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "webhookdb/export.hpp"

namespace webhookdb::url {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Percent-encodes everything but RFC 3986 unreserved characters (A-Z a-z 0-9
// - . _ ~): the result is safe as a path segment, a query name or value.
[[nodiscard]] WEBHOOKDB_EXPORT std::string percent_encode(std::string_view text);
// %XX decoded, '+' kept (path segments, userinfo, libpq URIs).
[[nodiscard]] WEBHOOKDB_EXPORT std::string percent_decode(std::string_view text);
// %XX decoded, '+' as a space (query components, form data).
[[nodiscard]] WEBHOOKDB_EXPORT std::string query_decode(std::string_view text);

// Appends the parameters, encoded, with '?' or '&' (before any fragment).
[[nodiscard]] WEBHOOKDB_EXPORT std::string with_query(std::string_view url, const QueryParams& params);
// Replaces every `name` parameter with one `name=value`, or appends it.
[[nodiscard]] WEBHOOKDB_EXPORT std::string set_query_param(std::string_view url, std::string_view name,
                                                           std::string_view value);
// The decoded value of the first `name` parameter.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<std::string> query_param(std::string_view url,
                                                                      std::string_view name);
// Resolves a reference (absolute, //host, /path, relative path, ?query,
// #fragment) against an absolute `base` URL (RFC 3986 section 5.2).
[[nodiscard]] WEBHOOKDB_EXPORT std::string resolve_url(std::string_view base, std::string_view reference);
// "scheme://host:port" lower-cased, with the scheme's default port spelled
// out, so that equal origins compare equal.
[[nodiscard]] WEBHOOKDB_EXPORT std::string origin_of(std::string_view url);
// True for an absolute http:// or https:// URL (any case).
[[nodiscard]] WEBHOOKDB_EXPORT bool is_http_url(std::string_view url) noexcept;

}  // namespace webhookdb::url
