#include "webhookdb/json_limits.hpp"

#include <utility>
#include <vector>

namespace webhookdb {
namespace {

using json = nlohmann::json;

std::string where_of(std::string_view where, std::optional<std::size_t> offset) {
  std::string out(where);
  if (!offset) return out;
  if (!out.empty()) out += ", ";
  out += "byte " + std::to_string(*offset);
  return out;
}

// nlohmann's message without its "[json.exception...] parse error at line L,
// column C: " prefix and without the "; last read: '<input>'" part, which
// would echo the (possibly secret-bearing) text back.
std::string safe_parse_message(std::string_view what) {
  std::string_view msg = what;
  if (const auto at = msg.find("parse error"); at != std::string_view::npos) {
    if (const auto colon = msg.find(": ", at); colon != std::string_view::npos) msg.remove_prefix(colon + 2);
  }
  if (const auto cut = msg.find("; last read:"); cut != std::string_view::npos) msg = msg.substr(0, cut);
  return "malformed JSON: " + std::string(msg);
}

// Offset of the bracket that opens level `level` (1-based) in text whose
// prefix up to there is valid JSON (strings are skipped, escapes honoured).
std::size_t offset_of_level(std::string_view text, std::size_t level) noexcept {
  bool in_string = false;
  bool escaped = false;
  std::size_t depth = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth >= level) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return text.size();
}

// The DOM builder, with a depth counter in front: parsing stops (false) at
// the first container past the limit, before it is built.
class LimitedSax {
 public:
  LimitedSax(json& root, std::size_t max_depth) : dom_(root, false), max_depth_(max_depth) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) { return dom_.number_float(v, s); }
  bool string(json::string_t& v) { return dom_.string(v); }
  bool binary(json::binary_t& v) { return dom_.binary(v); }
  bool key(json::string_t& k) { return dom_.key(k); }
  bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t position, const std::string& /*last_token*/, const nlohmann::detail::exception& ex) {
    error_ = JsonParseError{JsonFailure::malformed, position > 0 ? position - 1 : 0, safe_parse_message(ex.what())};
    return false;
  }

  [[nodiscard]] bool too_deep() const noexcept { return too_deep_; }
  [[nodiscard]] std::optional<JsonParseError>& error() noexcept { return error_; }

 private:
  bool enter() {
    if (++depth_ > max_depth_) {
      too_deep_ = true;
      return false;
    }
    return true;
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  std::size_t max_depth_;
  std::size_t depth_ = 0;
  bool too_deep_ = false;
  std::optional<JsonParseError> error_;
};

template <class Visit>
void walk_depth(const json& doc, Visit&& visit) {
  // (node, its depth as a container); scalars never go on the stack.
  std::vector<std::pair<const json*, std::size_t>> stack;
  if (doc.is_structured()) stack.emplace_back(&doc, 1);
  while (!stack.empty()) {
    const auto [node, depth] = stack.back();
    stack.pop_back();
    if (!visit(depth)) return;
    for (const auto& child : *node) {
      if (child.is_structured()) stack.emplace_back(&child, depth + 1);
    }
  }
}

}  // namespace

std::string_view to_string(JsonFailure failure) noexcept {
  switch (failure) {
    case JsonFailure::too_large:
      return "too_large";
    case JsonFailure::too_deep:
      return "too_deep";
    case JsonFailure::malformed:
      return "malformed";
  }
  return "unknown";
}

InvalidJson::InvalidJson(JsonParseError error, std::string_view where, bool has_offset)
    : InvalidInput(error.message, where_of(where, has_offset ? std::optional<std::size_t>(error.offset) : std::nullopt)),
      error_(std::move(error)) {}

JsonParseResult try_parse_json_limited(std::string_view text, const JsonLimits& limits) {
  JsonParseResult result;
  if (text.size() > limits.max_bytes) {
    result.error = JsonParseError{JsonFailure::too_large, limits.max_bytes,
                                  "JSON text is " + std::to_string(text.size()) + " bytes, more than the limit of " +
                                      std::to_string(limits.max_bytes)};
    return result;
  }
  // nlohmann's lexer takes a NUL byte for the end of input, so "1\0garbage"
  // would parse as 1. A raw NUL is never valid JSON (not whitespace, and
  // control characters in strings must be escaped): refuse it where it is.
  if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
    result.error = JsonParseError{JsonFailure::malformed, nul,
                                  "malformed JSON: a NUL byte at offset " + std::to_string(nul)};
    return result;
  }
  json doc;
  LimitedSax sax(doc, limits.max_depth);
  const bool ok = json::sax_parse(text.data(), text.data() + text.size(), &sax);
  if (ok) {
    result.value = std::move(doc);
    return result;
  }
  if (sax.too_deep()) {
    result.error = JsonParseError{JsonFailure::too_deep, offset_of_level(text, limits.max_depth + 1),
                                  "JSON nested deeper than " + std::to_string(limits.max_depth) + " levels"};
  } else if (sax.error()) {
    result.error = std::move(sax.error());
  } else {
    result.error = JsonParseError{JsonFailure::malformed, 0, "malformed JSON"};
  }
  return result;
}

nlohmann::json parse_json_limited(std::string_view text, const JsonLimits& limits, std::string_view where) {
  auto result = try_parse_json_limited(text, limits);
  if (result.error) throw InvalidJson(std::move(*result.error), where);
  return std::move(result.value);
}

std::size_t json_depth(const nlohmann::json& doc) {
  std::size_t deepest = 0;
  walk_depth(doc, [&](std::size_t depth) {
    if (depth > deepest) deepest = depth;
    return true;
  });
  return deepest;
}

void check_json_depth(const nlohmann::json& doc, std::size_t max_depth, std::string_view where) {
  bool too_deep = false;
  walk_depth(doc, [&](std::size_t depth) {
    too_deep = depth > max_depth;
    return !too_deep;
  });
  if (too_deep) {
    throw InvalidJson(
        JsonParseError{JsonFailure::too_deep, 0, "JSON nested deeper than " + std::to_string(max_depth) + " levels"},
        where, false);
  }
}

}  // namespace webhookdb
