#include "webhookdb/json_limits.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <system_error>
#include <utility>
#include <vector>

#include "webhookdb/json_text.hpp"

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

// Parses the documents APIs send (pages of objects) two to three times as
// fast as nlohmann's parser: no per-character token buffer, each string built
// once, members inserted with a hint (free when keys come sorted). It accepts a subset
// of what nlohmann accepts and builds the same document, types included; on
// anything else (a syntax error, a number it cannot convert exactly as
// nlohmann would, a byte order mark, nesting past max_depth or kMaxDepth) it
// gives up, and nlohmann's parser runs from the start, so every error and
// every edge case is nlohmann's. Recursive, hence its own depth bound.
class FastParser {
 public:
  FastParser(std::string_view text, std::size_t max_depth)
      : p_(text.data()), end_(text.data() + text.size()), max_depth_(std::min(max_depth, kMaxDepth)) {}

  [[nodiscard]] bool parse(json& out) {
    skip_space();
    if (!value(out, 0)) return false;
    skip_space();
    return p_ == end_;
  }

 private:
  static constexpr std::size_t kMaxDepth = 128;

  void skip_space() noexcept {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  [[nodiscard]] bool at(char c) const noexcept { return p_ < end_ && *p_ == c; }

  bool value(json& out, std::size_t depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{':
        return object(out, depth + 1);
      case '[':
        return array(out, depth + 1);
      case '"': {
        std::string text;
        if (!string(text)) return false;
        out = std::move(text);
        return true;
      }
      case 't':
        return literal("true", out, json(true));
      case 'f':
        return literal("false", out, json(false));
      case 'n':
        return literal("null", out, json(nullptr));
      default:
        return number(out);
    }
  }

  bool literal(std::string_view word, json& out, json value) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word)
      return false;
    p_ += word.size();
    out = std::move(value);
    return true;
  }

  // The members or items after an opening bracket, each read by `element`.
  template <class Element>
  bool elements(char close, Element&& element) {
    ++p_;
    skip_space();
    if (at(close)) {
      ++p_;
      return true;
    }
    while (true) {
      if (!element()) return false;
      skip_space();
      if (at(close)) {
        ++p_;
        return true;
      }
      if (!at(',')) return false;
      ++p_;
      skip_space();
    }
  }

  bool object(json& out, std::size_t depth) {
    if (depth > max_depth_) return false;
    out = json::object();
    auto& members = *out.get_ptr<json::object_t*>();
    return elements('}', [&] {
      if (!at('"')) return false;
      std::string key;
      if (!string(key)) return false;
      skip_space();
      if (!at(':')) return false;
      ++p_;
      skip_space();
      // A repeated key keeps the last value, as nlohmann's parser does.
      json& member = members.try_emplace(members.end(), std::move(key))->second;
      return value(member, depth);
    });
  }

  bool array(json& out, std::size_t depth) {
    if (depth > max_depth_) return false;
    out = json::array();
    auto& items = *out.get_ptr<json::array_t*>();
    return elements(']', [&] { return value(items.emplace_back(), depth); });
  }

  // After the opening quote: runs of plain bytes are appended whole (and
  // checked as UTF-8 only when they hold a byte past ASCII); escapes decoded.
  bool string(std::string& out) {
    ++p_;
    while (true) {
      const char* run = p_;
      unsigned char high = 0;
      while (p_ < end_) {
        const auto c = static_cast<unsigned char>(*p_);
        if (c == '"' || c == '\\' || c < 0x20) break;
        high |= c;
        ++p_;
      }
      if (p_ == end_) return false;
      const std::string_view chunk(run, static_cast<std::size_t>(p_ - run));
      // A run ends at an ASCII byte, so it never splits a valid sequence.
      if ((high & 0x80U) != 0 && !is_valid_utf8(chunk)) return false;
      out.append(chunk);
      const char c = *p_++;
      if (c == '"') return true;
      if (c != '\\' || p_ == end_) return false;
      const char escape = *p_++;
      if (escape == 'u') {
        if (!unicode_escape(out)) return false;
        continue;
      }
      constexpr std::string_view kEscaped = "\"\\/bfnrt";
      constexpr std::string_view kMeaning = "\"\\/\b\f\n\r\t";
      const auto at_escape = kEscaped.find(escape);
      if (at_escape == std::string_view::npos) return false;
      out += kMeaning[at_escape];
    }
  }

  bool hex4(std::uint32_t& out) noexcept {
    if (end_ - p_ < 4) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_++;
      std::uint32_t digit = 0;
      if (c >= '0' && c <= '9') {
        digit = static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
      out = (out << 4U) | digit;
    }
    return true;
  }

  // After "\u": a code point, or a surrogate pair; a lone surrogate gives up.
  bool unicode_escape(std::string& out) {
    std::uint32_t cp = 0;
    if (!hex4(cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      std::uint32_t low = 0;
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
      p_ += 2;
      if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
      cp = 0x10000 + ((cp - 0xD800) << 10U) + (low - 0xDC00);
    }
    const auto byte = [&](std::uint32_t b) { out += static_cast<char>(b); };
    if (cp < 0x80) {
      byte(cp);
    } else if (cp < 0x800) {
      byte(0xC0 | (cp >> 6U));
      byte(0x80 | (cp & 0x3FU));
    } else if (cp < 0x10000) {
      byte(0xE0 | (cp >> 12U));
      byte(0x80 | ((cp >> 6U) & 0x3FU));
      byte(0x80 | (cp & 0x3FU));
    } else {
      byte(0xF0 | (cp >> 18U));
      byte(0x80 | ((cp >> 12U) & 0x3FU));
      byte(0x80 | ((cp >> 6U) & 0x3FU));
      byte(0x80 | (cp & 0x3FU));
    }
    return true;
  }

  // JSON's grammar exactly; nlohmann's types: an integer without a sign is
  // unsigned, with one signed; one out of range for its type, or a float
  // that overflows or underflows, gives up (nlohmann has its own rules there).
  bool number(json& out) {
    const char* start = p_;
    const auto digits = [&] {
      const char* first = p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      return p_ > first;
    };
    const bool negative = at('-');
    if (negative) ++p_;
    if (at('0')) {
      ++p_;
    } else if (p_ == end_ || *p_ < '1' || *p_ > '9' || !digits()) {
      return false;
    }
    bool is_float = false;
    if (at('.')) {
      ++p_;
      if (!digits()) return false;
      is_float = true;
    }
    if (at('e') || at('E')) {
      ++p_;
      if (at('+') || at('-')) ++p_;
      if (!digits()) return false;
      is_float = true;
    }
    if (is_float) {
      double v = 0;
      const auto [end, ec] = std::from_chars(start, p_, v);
      if (ec != std::errc() || end != p_ || !std::isfinite(v)) return false;
      out = v;
    } else if (negative) {
      json::number_integer_t v = 0;
      const auto [end, ec] = std::from_chars(start, p_, v);
      if (ec != std::errc() || end != p_) return false;
      out = v;
    } else {
      json::number_unsigned_t v = 0;
      const auto [end, ec] = std::from_chars(start, p_, v);
      if (ec != std::errc() || end != p_) return false;
      out = v;
    }
    return true;
  }

  const char* p_;
  const char* end_;
  std::size_t max_depth_;
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
  {
    json doc;
    if (FastParser(text, limits.max_depth).parse(doc)) {
      result.value = std::move(doc);
      return result;
    }
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
