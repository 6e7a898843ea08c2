#pragma once
// Parsing untrusted JSON text with limits on its size and nesting depth.
//
// nlohmann's parser is iterative, but much of what happens to a document
// afterwards is not: dump(), copies, comparisons and strip_nuls() recurse once
// per level, so a body of a few megabytes of '[' would exhaust the stack far
// from where it came in. These functions reject such a document while it is
// being parsed (a SAX handler stops at the first level past the limit; no
// deeper value is ever built), and reject oversized text before any parsing.
//
//   auto doc = parse_json_limited(response.body, {}, "GET /v1/charges page");
//
// Error messages name the limit, the byte offset and the caller's `where`,
// never the text itself (it may hold secrets).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"

namespace webhookdb {

struct JsonLimits {
  // Longest accepted text, in bytes.
  std::size_t max_bytes = std::size_t{64} * 1024U * 1024U;
  // Deepest accepted nesting: a scalar is depth 0, [] or {} depth 1, [[1]] depth 2.
  std::size_t max_depth = 512;
};

enum class JsonFailure : std::uint8_t {
  too_large,  // more than max_bytes
  too_deep,   // nested deeper than max_depth
  malformed,  // not JSON (syntax, invalid UTF-8, trailing garbage, empty)
};
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view to_string(JsonFailure failure) noexcept;

// What went wrong, and where.
struct JsonParseError {
  JsonFailure failure = JsonFailure::malformed;
  // Zero-based byte offset into the text:
  // - too_large: max_bytes (the first byte past the limit);
  // - too_deep: the '[' or '{' that opens the first level past max_depth;
  // - malformed: the byte at which the text stopped being JSON, i.e. the
  //   first byte that cannot continue it ('s' in `{"k": sk_1}`, the 0xFF in a
  //   string, the ']' in `[1,]`), or the text's length when it ends too early
  //   (empty, blank, an unterminated string). A well-formed token in the wrong
  //   place (`{"a" "b"}`) is reported at its last byte, where it was recognised.
  std::size_t offset = 0;
  // "JSON nested deeper than 512 levels", "JSON text is 70000000 bytes, more
  // than the limit of 67108864", "malformed JSON: syntax error ..."; without
  // the offset or `where` (see InvalidJson::what() for the full sentence).
  std::string message;
};

// The exception form: an InvalidInput whose where() is "<where>, byte <offset>"
// (or "byte <offset>" when no `where` was given; just `where` when the error
// has no meaningful offset, as for check_json_depth).
class WEBHOOKDB_EXPORT InvalidJson : public InvalidInput {
 public:
  InvalidJson(JsonParseError error, std::string_view where, bool has_offset = true);
  [[nodiscard]] JsonFailure failure() const noexcept { return error_.failure; }
  [[nodiscard]] std::size_t offset() const noexcept { return error_.offset; }
  [[nodiscard]] const JsonParseError& error() const noexcept { return error_; }

 private:
  JsonParseError error_;
};

// Parses `text`; throws InvalidJson (an InvalidInput) when it is too large,
// too deep or not JSON.
[[nodiscard]] WEBHOOKDB_EXPORT nlohmann::json parse_json_limited(std::string_view text,
                                                                 const JsonLimits& limits = {},
                                                                 std::string_view where = {});

// The non-throwing form (only std::bad_alloc can escape it).
struct JsonParseResult {
  // The document; null when parsing failed.
  nlohmann::json value;
  std::optional<JsonParseError> error;

  [[nodiscard]] bool ok() const noexcept { return !error.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
};
[[nodiscard]] WEBHOOKDB_EXPORT JsonParseResult try_parse_json_limited(std::string_view text,
                                                                      const JsonLimits& limits = {});

// The nesting depth of a document built some other way, computed without
// recursion (so it is safe on any document, however deep).
[[nodiscard]] WEBHOOKDB_EXPORT std::size_t json_depth(const nlohmann::json& doc);

// Throws InvalidJson (too_deep, no offset) naming `where` when `doc` is nested
// deeper than `max_depth`; stops walking as soon as the limit is passed.
WEBHOOKDB_EXPORT void check_json_depth(const nlohmann::json& doc, std::size_t max_depth,
                                       std::string_view where = {});

}  // namespace webhookdb
