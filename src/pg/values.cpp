#include "pg/values.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "pg/sql.hpp"
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
  } catch (const InvalidInput&) {
    throw InvalidInput("invalid UTF-8 in JSON");
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
  using namespace std::chrono;
  const auto day_point = floor<days>(t);
  const year_month_day ymd{day_point};
  auto micros = (t - day_point).count();
  const auto h = micros / 3'600'000'000;
  micros %= 3'600'000'000;
  const auto m = micros / 60'000'000;
  micros %= 60'000'000;
  const auto s = micros / 1'000'000;
  micros %= 1'000'000;
  int y = static_cast<int>(ymd.year());
  const bool bc = y <= 0;
  if (bc) y = 1 - y;  // year 0 is 1 BC
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02lld:%02lld:%02lld.%06lld+00%s", y,
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), static_cast<long long>(h),
                static_cast<long long>(m), static_cast<long long>(s), static_cast<long long>(micros),
                bc ? " BC" : "");
  return buf;
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
      std::string_view s = encoded;
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
      if (!s.empty() && s.front() == '+') s.remove_prefix(1);
      std::int64_t n = 0;
      auto res = std::from_chars(s.data(), s.data() + s.size(), n);
      if (res.ec != std::errc{} || res.ptr != s.data() + s.size()) return encoded;
      return std::to_string(n);
    }
    case ColumnType::uuid: {
      std::string hex;
      for (char c : encoded) {
        if (std::isxdigit(static_cast<unsigned char>(c)) != 0) {
          hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
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
  std::int64_t total = seconds * 1'000'000 + micros;
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
      std::string lower;
      for (char c : t) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return lower;
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
  std::size_t start = 0;
  while (true) {
    const auto pos = text.find_first_of("\\\t\n\r", start);
    if (pos == std::string_view::npos) {
      buf.append(text.substr(start));
      return;
    }
    buf.append(text.substr(start, pos - start));
    buf += '\\';
    switch (text[pos]) {
      case '\t': buf += 't'; break;
      case '\n': buf += 'n'; break;
      case '\r': buf += 'r'; break;
      default: buf += '\\'; break;
    }
    start = pos + 1;
  }
}

}  // namespace webhookdb::pg::values
