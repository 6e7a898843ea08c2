#include "pg/values.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "pg/sql.hpp"
#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"

namespace webhookdb::pg::values {
namespace {

using nlohmann::json;

// Copies `s` without NUL characters; InvalidInput for invalid UTF-8.
void put_text(std::string_view s, std::string& out) {
  if (!sql::valid_utf8(s)) throw InvalidInput("invalid UTF-8 in text");
  if (s.find('\0') == std::string_view::npos) {
    out.append(s);
    return;
  }
  for (char c : s) {
    if (c != '\0') out += c;
  }
}

void put_integer(std::int64_t n, std::string& out) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, res.ptr);
}

void put_number(const json& v, std::string& out) {
  if (v.is_number_unsigned()) {
    char buf[24];
    auto res = std::to_chars(buf, buf + sizeof buf, v.get<std::uint64_t>());
    out.append(buf, res.ptr);
  } else if (v.is_number_integer()) {
    put_integer(v.get<std::int64_t>(), out);
  } else {
    const double d = v.get<double>();
    if (std::isnan(d)) {
      out += "NaN";
    } else if (std::isinf(d)) {
      out += d > 0 ? "Infinity" : "-Infinity";
    } else {
      out += v.dump();
    }
  }
}

void put_json(const json& v, std::string& out) {
  try {
    out += to_jsonb_text(v);
  } catch (const InvalidInput& e) {
    // "invalid UTF-8 in JSON", or object keys that NUL removal would merge
    // (the message names the key); callers add the row and column.
    throw InvalidInput(e.message());
  }
}

// One element of an array literal ({"a","b",NULL}).
void put_array_element(const json& v, std::string& out) {
  if (v.is_null()) {
    out += "NULL";
  } else if (v.is_array()) {
    out += '{';
    bool first = true;
    for (const auto& item : v) {
      if (!first) out += ',';
      first = false;
      put_array_element(item, out);
    }
    out += '}';
  } else if (v.is_number()) {
    put_number(v, out);
  } else if (v.is_boolean()) {
    out += v.get<bool>() ? "true" : "false";
  } else {
    std::string text;
    if (v.is_string()) {
      put_text(v.get_ref<const std::string&>(), text);
    } else {
      put_json(v, text);
    }
    out += '"';
    for (char c : text) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
}

}  // namespace

std::string timestamp_text(Timestamp t) {
  // From format_timestamp's text, without snprintf (two of these per row on
  // the COPY path): "2022-01-01T00:00:00.5Z" becomes
  // "2022-01-01 00:00:00.500000+00", "0001-12-31T23:00:00Z BC" becomes
  // "0001-12-31 23:00:00.000000+00 BC". Its 64-bit civil date keeps years past
  // 32767 (std::chrono::year_month_day wrapped them: 70000 became 4464).
  std::string out = format_timestamp(t);
  const bool bc = out.back() == 'C';
  if (bc) out.resize(out.size() - 3);  // " BC"
  out.pop_back();                      // Z
  const auto tee = out.find('T');
  out[tee] = ' ';
  const auto dot = out.find('.', tee);
  const std::size_t digits = dot == std::string::npos ? 0 : out.size() - dot - 1;
  if (dot == std::string::npos) out += '.';
  out.append(6 - digits, '0');
  out += bc ? "+00 BC" : "+00";
  return out;
}

bool encode(ColumnType type, const json& value, std::string& out) {
  out.clear();
  if (value.is_null()) return false;
  switch (type) {
    case ColumnType::jsonb:
      put_json(value, out);
      return true;
    case ColumnType::text_array:
    case ColumnType::integer_array:
    case ColumnType::bigint_array:
      if (!value.is_array()) {
        throw InvalidInput("expected a JSON array for a " + std::string(sql_type(type)) + " column, got " +
                           value.type_name());
      }
      put_array_element(value, out);
      return true;
    case ColumnType::timestamptz:
      if (value.is_string()) {
        const auto& s = value.get_ref<const std::string&>();
        if (auto t = parse_timestamp(s)) {
          out = timestamp_text(*t);
          return true;
        }
      }
      break;
    case ColumnType::integer:
    case ColumnType::bigint:
      if (value.is_number_float()) {
        const double d = value.get<double>();
        if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.2e18) {
          put_integer(static_cast<std::int64_t>(d), out);
          return true;
        }
      }
      break;
    case ColumnType::boolean:
      if (value.is_boolean()) {
        out += value.get<bool>() ? "true" : "false";
        return true;
      }
      break;
    default:
      break;
  }
  if (value.is_string()) {
    put_text(value.get_ref<const std::string&>(), out);
  } else if (value.is_number()) {
    put_number(value, out);
  } else if (value.is_boolean()) {
    out += value.get<bool>() ? "true" : "false";
  } else {
    put_json(value, out);
  }
  return true;
}

std::string canonical_key(ColumnType type, const std::string& encoded) {
  switch (type) {
    case ColumnType::integer:
    case ColumnType::bigint: {
      // PostgreSQL's integer input skips the same ASCII whitespace.
      std::string_view s = codec::trim(encoded);
      if (!s.empty() && s.front() == '+') s.remove_prefix(1);
      std::int64_t n = 0;
      auto res = std::from_chars(s.data(), s.data() + s.size(), n);
      if (res.ec != std::errc{} || res.ptr != s.data() + s.size()) return encoded;
      return std::to_string(n);
    }
    case ColumnType::uuid: {
      std::string hex;
      for (char c : encoded) {
        if (codec::hex_value(c) >= 0) hex += codec::ascii_lower(c);
      }
      return hex.size() == 32 ? hex : encoded;
    }
    default:
      return encoded;
  }
}

std::string epoch_expr(const std::string& expr) { return "extract(epoch from " + expr + ")::text"; }

std::string select_expr(ColumnType type, const std::string& quoted) {
  switch (type) {
    case ColumnType::timestamptz:
      return epoch_expr(quoted);
    case ColumnType::text_array:
    case ColumnType::integer_array:
    case ColumnType::bigint_array:
      return "array_to_json(" + quoted + ")::text";
    default:
      return quoted;
  }
}

std::optional<Timestamp> timestamp_from_epoch_text(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  const auto dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  std::int64_t seconds = 0;
  auto res = std::from_chars(whole.data(), whole.data() + whole.size(), seconds);
  if (whole.empty() || res.ec != std::errc{} || res.ptr != whole.data() + whole.size()) return std::nullopt;
  std::int64_t micros = 0;
  for (std::size_t i = 0; i < 6; ++i) {
    micros *= 10;
    if (i < frac.size()) {
      if (frac[i] < '0' || frac[i] > '9') return std::nullopt;
      micros += frac[i] - '0';
    }
  }
  // Past 64 bits of microseconds (PostgreSQL's timestamptz runs ~29 years
  // further): not a Timestamp.
  std::int64_t total = 0;
  if (__builtin_mul_overflow(seconds, std::int64_t{1'000'000}, &total) ||
      __builtin_add_overflow(total, micros, &total)) {
    return std::nullopt;
  }
  if (negative) total = -total;
  return Timestamp{std::chrono::microseconds{total}};
}

json decode(ColumnType type, const std::optional<std::string_view>& text) {
  if (!text) return nullptr;
  const std::string_view t = *text;
  switch (type) {
    case ColumnType::integer:
    case ColumnType::bigint: {
      std::int64_t n = 0;
      auto res = std::from_chars(t.data(), t.data() + t.size(), n);
      if (res.ec == std::errc{} && res.ptr == t.data() + t.size()) return n;
      return std::string(t);
    }
    case ColumnType::numeric:
    case ColumnType::double_precision: {
      json parsed = json::parse(t, nullptr, false);
      if (!parsed.is_discarded() && parsed.is_number() &&
          (type == ColumnType::double_precision || parsed.dump() == t)) {
        return parsed;
      }
      return std::string(t);
    }
    case ColumnType::boolean:
      return t == "t" || t == "true";
    case ColumnType::timestamptz: {
      if (auto ts = timestamp_from_epoch_text(t)) return format_timestamp(*ts);
      return codec::ascii_lower(t);
    }
    case ColumnType::jsonb:
    case ColumnType::text_array:
    case ColumnType::integer_array:
    case ColumnType::bigint_array: {
      json parsed = json::parse(t, nullptr, false);
      if (parsed.is_discarded()) return std::string(t);
      return parsed;
    }
    default:
      return std::string(t);
  }
}

void append_copy_escaped(std::string& buf, std::string_view text) {
  // A plain loop: find_first_of with a set costs a memchr per byte.
  const char* run = text.data();
  const char* const end = run + text.size();
  for (const char* p = run; p < end; ++p) {
    const char c = *p;
    if (c != '\\' && c != '\t' && c != '\n' && c != '\r') continue;
    buf.append(run, p);
    buf += '\\';
    buf += c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
    run = p + 1;
  }
  buf.append(run, end);
}

namespace {

// Thrown inside the writer below; never leaves this file.
struct NotWritable {};

// A JSON string, escaped for JSON and then for COPY (each JSON escape's
// backslash doubled; no raw control character remains). NULs are dropped, as
// to_jsonb_text drops them. Stops at invalid UTF-8.
void put_json_string_copy(std::string& buf, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  buf += '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  const auto* run = p;
  const auto flush = [&](const unsigned char* to) {
    buf.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(to - run));
  };
  while (p < end) {
    const unsigned char c = *p;
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++p;
      continue;
    }
    flush(p);
    if (c >= 0x80) {
      const std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
      if (static_cast<std::size_t>(end - p) < n ||
          !is_valid_utf8(std::string_view(reinterpret_cast<const char*>(p), n))) {
        throw NotWritable{};
      }
      run = p;
      p += n;
      continue;
    }
    switch (c) {
      case '\0':
        break;
      case '"':
        buf += "\\\\\"";
        break;
      case '\\':
        buf += "\\\\\\\\";
        break;
      case '\b':
        buf += "\\\\b";
        break;
      case '\f':
        buf += "\\\\f";
        break;
      case '\n':
        buf += "\\\\n";
        break;
      case '\r':
        buf += "\\\\r";
        break;
      case '\t':
        buf += "\\\\t";
        break;
      default:
        buf += "\\\\u00";
        buf += kHex[c >> 4U];
        buf += kHex[c & 0xFU];
        break;
    }
    run = ++p;
  }
  flush(end);
  buf += '"';
}

// Past this depth the writer hands over to nlohmann's serializer.
constexpr int kMaxWriterDepth = 200;

void put_json_copy(std::string& buf, const json& v, int depth) {
  switch (v.type()) {
    case json::value_t::null:
      buf += "null";
      return;
    case json::value_t::boolean:
      buf += v.get<bool>() ? "true" : "false";
      return;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      put_number(v, buf);
      return;
    case json::value_t::number_float:
      buf += v.dump();  // nlohmann's spelling (1.0 stays 1.0; NaN becomes null)
      return;
    case json::value_t::string:
      put_json_string_copy(buf, v.get_ref<const std::string&>());
      return;
    case json::value_t::array: {
      if (depth >= kMaxWriterDepth) throw NotWritable{};
      buf += '[';
      bool first = true;
      for (const auto& item : v) {
        if (!first) buf += ',';
        first = false;
        put_json_copy(buf, item, depth + 1);
      }
      buf += ']';
      return;
    }
    case json::value_t::object: {
      if (depth >= kMaxWriterDepth) throw NotWritable{};
      buf += '{';
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        // A key with a NUL may meet a sibling once the NUL is dropped:
        // to_jsonb_text refuses that, naming the key.
        if (it.key().find('\0') != std::string::npos) throw NotWritable{};
        if (!first) buf += ',';
        first = false;
        put_json_string_copy(buf, it.key());
        buf += ':';
        put_json_copy(buf, it.value(), depth + 1);
      }
      buf += '}';
      return;
    }
    case json::value_t::binary:
    case json::value_t::discarded:
      break;
  }
  throw NotWritable{};
}

}  // namespace

void append_jsonb_copy(std::string& buf, const nlohmann::json& doc) {
  const std::size_t mark = buf.size();
  try {
    put_json_copy(buf, doc, 0);
  } catch (const NotWritable&) {
    // Invalid UTF-8 (to_jsonb_text says so), a key holding a NUL, binary
    // values or great depth: the general path decides.
    buf.resize(mark);
    std::string text;
    try {
      text = to_jsonb_text(doc);
    } catch (const InvalidInput& e) {
      throw InvalidInput(e.message());
    }
    append_copy_escaped(buf, text);
  }
}

}  // namespace webhookdb::pg::values
