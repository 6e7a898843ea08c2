#include "webhookdb/column.hpp"

#include <cctype>
#include <cmath>
#include <limits>

#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {
namespace {

using nlohmann::json;

std::string join_path(const std::vector<std::string>& path) {
  std::string out;
  for (const auto& p : path) {
    if (!out.empty()) out += '.';
    out += p;
  }
  return out;
}

std::string_view type_name(const json& v) { return v.type_name(); }

[[noreturn]] void wrong_type(const Column& col, std::string_view expected, const json& v) {
  throw InvalidInput("wrong type: expected " + std::string(expected) + ", got " + std::string(type_name(v)),
                     "column '" + col.name + "'");
}

bool is_uuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (std::isxdigit(static_cast<unsigned char>(s[i])) == 0) {
      return false;
    }
  }
  return true;
}

enum class NumericText { ok, malformed, overflows };

// Whether PostgreSQL's numeric input takes `text`, so that a string a numeric
// column accepts is one the server accepts (strtod, used before, let "0x10",
// "0x1p3" and "1e999999" through, and the write failed after the webhook had
// been answered). Blanks around it; a sign; digits with at most one point; an
// exponent of at most 9 digits; or NaN, [+-]Infinity, [+-]inf in any case.
// PostgreSQL 15 refuses more than 131072 digits before the point or 16383
// after ("value overflows numeric format"), exponent included: 1e131071 and
// 1e-16383 are the largest and smallest it takes.
NumericText numeric_text(std::string_view text) {
  std::string_view s = codec::trim(text);
  const bool signed_text = !s.empty() && (s.front() == '+' || s.front() == '-');
  if (signed_text) s.remove_prefix(1);
  const std::string lower = codec::ascii_lower(s);
  if (lower == "inf" || lower == "infinity" || (!signed_text && lower == "nan")) return NumericText::ok;
  const auto digits_at = [&](std::size_t from) {
    std::size_t n = 0;
    while (from + n < s.size() && s[from + n] >= '0' && s[from + n] <= '9') ++n;
    return n;
  };
  const std::size_t int_len = digits_at(0);
  std::size_t i = int_len;
  std::size_t frac_len = 0;
  const bool point = i < s.size() && s[i] == '.';
  if (point) {
    frac_len = digits_at(i + 1);
    i += 1 + frac_len;
  }
  if (int_len + frac_len == 0) return NumericText::malformed;
  std::int64_t exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    const bool negative = i < s.size() && s[i] == '-';
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    const std::size_t exp_len = digits_at(i);
    if (exp_len == 0 || exp_len > 9) return NumericText::malformed;
    for (std::size_t k = 0; k < exp_len; ++k) exponent = exponent * 10 + (s[i + k] - '0');
    if (negative) exponent = -exponent;
    i += exp_len;
  }
  if (i != s.size()) return NumericText::malformed;
  if (static_cast<std::int64_t>(frac_len) - exponent > 16383) return NumericText::overflows;
  // The first significant digit's power of ten.
  const std::string_view int_part = s.substr(0, int_len);
  const std::string_view frac_part = point ? s.substr(int_len + 1, frac_len) : std::string_view{};
  std::int64_t power = 0;
  bool nonzero = false;
  if (const auto p = int_part.find_first_not_of('0'); p != std::string_view::npos) {
    power = static_cast<std::int64_t>(int_len - 1 - p);
    nonzero = true;
  } else if (const auto q = frac_part.find_first_not_of('0'); q != std::string_view::npos) {
    power = -1 - static_cast<std::int64_t>(q);
    nonzero = true;
  }
  if (nonzero && power + exponent > 131071) return NumericText::overflows;
  return NumericText::ok;
}

json as_numeric(const Column& col, json v) {
  if (v.is_number()) return v;
  if (!v.is_string()) wrong_type(col, "numeric", v);
  switch (numeric_text(v.get_ref<const std::string&>())) {
    case NumericText::ok:
      return v;
    case NumericText::overflows:
      throw InvalidInput(
          "numeric value out of PostgreSQL's range (131072 digits before the point, 16383 after)",
          "column '" + col.name + "'");
    case NumericText::malformed:
      break;
  }
  throw InvalidInput(
      "not a decimal number: expected digits with an optional sign, point and exponent, or NaN or "
      "Infinity",
      "column '" + col.name + "'");
}

json as_integer(const Column& col, const json& v, bool big) {
  std::int64_t n = 0;
  if (v.is_number_integer()) {
    n = v.get<std::int64_t>();
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      throw InvalidInput("integer out of range", "column '" + col.name + "'");
    }
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9.2e18)
      wrong_type(col, big ? "bigint" : "integer", v);
    n = static_cast<std::int64_t>(d);
  } else if (v.is_string()) {
    // Integer text, as PostgreSQL's cast accepts it ("42", "-7").
    const auto& text = v.get_ref<const std::string&>();
    std::size_t pos = 0;
    try {
      n = std::stoll(text, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (text.empty() || pos != text.size()) wrong_type(col, big ? "bigint" : "integer", v);
  } else {
    wrong_type(col, big ? "bigint" : "integer", v);
  }
  if (!big && (n > std::numeric_limits<std::int32_t>::max() || n < std::numeric_limits<std::int32_t>::min())) {
    throw InvalidInput("integer out of range for integer column", "column '" + col.name + "'");
  }
  return n;
}

// Takes the value by value: most types return it as it is, moved.
json check_scalar(const Column& col, ColumnType type, json v) {
  switch (type) {
    case ColumnType::text:
      if (v.is_string()) return v;
      if (v.is_number() || v.is_boolean()) return v.dump();
      wrong_type(col, "text", v);
    case ColumnType::integer:
      return as_integer(col, v, false);
    case ColumnType::bigint:
      return as_integer(col, v, true);
    case ColumnType::numeric:
      return as_numeric(col, std::move(v));
    case ColumnType::double_precision:
      if (v.is_number()) return v.get<double>();
      wrong_type(col, "double precision", v);
    case ColumnType::boolean:
      if (v.is_boolean()) return v;
      wrong_type(col, "boolean", v);
    case ColumnType::timestamptz: {
      if (!v.is_string()) wrong_type(col, "timestamp string", v);
      try {
        return format_timestamp(timestamp_from_text(v.get_ref<const std::string&>()));
      } catch (const InvalidInput& e) {
        throw InvalidInput(e.message(), "column '" + col.name + "'");
      }
    }
    case ColumnType::date: {
      if (!v.is_string()) wrong_type(col, "date string", v);
      try {
        return date_from_text(v.get_ref<const std::string&>());
      } catch (const InvalidInput& e) {
        throw InvalidInput(e.message(), "column '" + col.name + "'");
      }
    }
    case ColumnType::jsonb:
      return v;
    case ColumnType::uuid:
      if (v.is_string() && is_uuid(v.get_ref<const std::string&>())) return v;
      wrong_type(col, "uuid", v);
    case ColumnType::text_array:
    case ColumnType::integer_array:
    case ColumnType::bigint_array:
      break;
  }
  return v;
}

}  // namespace

std::string_view sql_type(ColumnType type) noexcept {
  switch (type) {
    case ColumnType::text: return "text";
    case ColumnType::integer: return "integer";
    case ColumnType::bigint: return "bigint";
    case ColumnType::numeric: return "numeric";
    case ColumnType::double_precision: return "double precision";
    case ColumnType::boolean: return "boolean";
    case ColumnType::timestamptz: return "timestamptz";
    case ColumnType::date: return "date";
    case ColumnType::jsonb: return "jsonb";
    case ColumnType::text_array: return "text[]";
    case ColumnType::integer_array: return "integer[]";
    case ColumnType::bigint_array: return "bigint[]";
    case ColumnType::uuid: return "uuid";
  }
  return "text";
}

namespace {

// json_at() for a path of one key, without building the path.
const json* dig_key(const json& doc, const std::string& key) {
  if (!doc.is_object()) return json_at(doc, std::vector<std::string>{key});
  auto it = doc.find(key);
  return it == doc.end() ? nullptr : &*it;
}

}  // namespace

json Column::value_from(const ConvertContext& ctx) const {
  // The path and the text naming it are built only for an error: this runs
  // for every column of every row.
  enum class Source { enrichment, event, resource };
  Source source = Source::resource;
  const json* raw = nullptr;
  if (from_enrichment) {
    source = Source::enrichment;
    if (ctx.enrichment != nullptr)
      raw = data_key.empty() ? dig_key(*ctx.enrichment, name) : json_at(*ctx.enrichment, data_key);
  } else if (!event_key.empty() && ctx.event != nullptr && !ctx.event->is_null()) {
    source = Source::event;
    raw = json_at(*ctx.event, event_key);
  } else {
    raw = data_key.empty() ? dig_key(ctx.resource, name) : json_at(ctx.resource, data_key);
  }
  const auto where = [&] {
    switch (source) {
      case Source::enrichment:
        return "enrichment." + join_path(effective_data_key());
      case Source::event:
        return "event." + join_path(event_key);
      case Source::resource:
        break;
    }
    return join_path(effective_data_key());
  };

  json value;
  if (raw == nullptr) {
    if (!is_optional && !defaulter) {
      throw InvalidInput("missing key '" + where() + "'", "column '" + name + "'");
    }
  } else if (!raw->is_null()) {
    if (converter.fn) {
      try {
        value = converter.fn(*raw, ctx);
      } catch (const InvalidInput& e) {
        // Converters know the value, not where it came from.
        const std::string here = "column '" + name + "' (key " + where() + ")";
        throw InvalidInput(e.message(), e.where().empty() ? here : e.where() + ", " + here);
      } catch (const std::exception& e) {
        throw InvalidInput(std::string("converter failed: ") + e.what(),
                           "column '" + name + "' (key " + where() + ")");
      }
    } else {
      value = *raw;
    }
  }
  if (value.is_null() && defaulter) value = defaulter(ctx);
  if (value.is_null()) return value;

  switch (type) {
    case ColumnType::text_array:
    case ColumnType::integer_array:
    case ColumnType::bigint_array: {
      if (!value.is_array()) wrong_type(*this, "array", value);
      const ColumnType element = type == ColumnType::text_array      ? ColumnType::text
                                 : type == ColumnType::integer_array ? ColumnType::integer
                                                                     : ColumnType::bigint;
      json out = json::array();
      for (auto& item : value)
        out.push_back(item.is_null() ? std::move(item) : check_scalar(*this, element, std::move(item)));
      return out;
    }
    default:
      return check_scalar(*this, type, std::move(value));
  }
}

}  // namespace webhookdb
