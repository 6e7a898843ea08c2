#include "webhookdb/converters.hpp"

#include <cmath>
#include <regex>
#include <string>

#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb::converters {
namespace {

using nlohmann::json;

std::string sql_literal(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

std::string trim(const std::string& s) { return std::string(codec::trim(s)); }

// As PostgreSQL's to_timestamp(double precision), the converters' SQL form:
// same range, same rounding (see timestamp_from_unix_seconds).
json from_unix(double seconds_since_epoch) {
  return format_timestamp(timestamp_from_unix_seconds(seconds_since_epoch));
}

double number_of(const json& v, const char* what) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const std::string s = trim(v.get<std::string>());
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return d;
  }
  throw InvalidInput(std::string("not a ") + what + ": " + v.dump().substr(0, 64));
}

}  // namespace

Converter time() {
  return {[](const json& v, const ConvertContext&) -> json {
            if (!v.is_string())
              throw InvalidInput("expected a timestamp string, got " + std::string(v.type_name()));
            // Refused out of range or malformed, never wrapped (see time.hpp).
            return format_timestamp(timestamp_from_text(v.get_ref<const std::string&>()));
          },
          [](const std::string& value) { return "(" + value + ")::timestamptz"; }};
}

Converter unix_timestamp() {
  return {
      [](const json& v, const ConvertContext&) -> json { return from_unix(number_of(v, "unix timestamp")); },
      [](const std::string& value) { return "to_timestamp((" + value + ")::double precision)"; }};
}

Converter unix_timestamp_ms() {
  return {[](const json& v, const ConvertContext&) -> json {
            return from_unix(number_of(v, "unix timestamp") / 1000.0);
          },
          [](const std::string& value) { return "to_timestamp((" + value + ")::double precision / 1000)"; }};
}

Converter to_integer() {
  return {[](const json& v, const ConvertContext&) -> json {
            if (v.is_number_integer()) return v;
            if (v.is_number_float()) {
              const double d = v.get<double>();
              if (std::floor(d) == d && std::fabs(d) < 9.2e18) return static_cast<std::int64_t>(d);
              throw InvalidInput("not an integer: " + v.dump());
            }
            if (!v.is_string()) throw InvalidInput("not an integer: " + v.dump().substr(0, 64));
            std::string s = trim(v.get<std::string>());
            while (s.size() >= 2 &&
                   ((s.front() == '"' && s.back() == '"') || (s.front() == '\'' && s.back() == '\''))) {
              s = trim(s.substr(1, s.size() - 2));
            }
            std::size_t pos = 0;
            long long n = 0;
            try {
              n = std::stoll(s, &pos);
            } catch (const std::exception&) {
              pos = 0;
            }
            if (s.empty() || pos != s.size()) throw InvalidInput("not an integer: '" + s.substr(0, 64) + "'");
            return n;
          },
          [](const std::string& value) { return "(trim(both '\"'' ' from " + value + "))::bigint"; }};
}

Converter comma_separated() {
  return {[](const json& v, const ConvertContext&) -> json {
            if (v.is_array()) return v;
            if (!v.is_string()) throw InvalidInput("expected a comma-separated string");
            json out = json::array();
            const auto& s = v.get_ref<const std::string&>();
            std::size_t start = 0;
            while (start <= s.size()) {
              auto end = s.find(',', start);
              if (end == std::string::npos) end = s.size();
              std::string part = trim(s.substr(start, end - start));
              if (!part.empty()) out.push_back(std::move(part));
              start = end + 1;
            }
            return out;
          },
          [](const std::string& value) {
            return "array_remove(regexp_split_to_array(trim(" + value + "), '\\s*,\\s*'), '')";
          }};
}

namespace {

// libstdc++'s default (backtracking) matcher recurses once per character a
// repetition consumes, so a long value overflows the stack. Its breadth-first
// matcher walks the input iteratively (patterns with back-references are then
// refused when the converter is made).
constexpr std::regex::flag_type regex_flags() {
#ifdef __GLIBCXX__
  return std::regex::ECMAScript | std::regex_constants::__polynomial;
#else
  return std::regex::ECMAScript;
#endif
}

}  // namespace

Converter regex_capture(const std::string& pattern, int group) {
  auto re = std::make_shared<const std::regex>(pattern, regex_flags());
  return {[re, group](const json& v, const ConvertContext&) -> json {
            if (!v.is_string()) return nullptr;
            std::smatch m;
            const auto& s = v.get_ref<const std::string&>();
            if (!std::regex_search(s, m, *re) || group < 0 || static_cast<std::size_t>(group) >= m.size() ||
                !m[static_cast<std::size_t>(group)].matched) {
              return nullptr;
            }
            return m[static_cast<std::size_t>(group)].str();
          },
          [pattern, group](const std::string& value) {
            return "(regexp_match(" + value + ", " + sql_literal(pattern) + "))[" + std::to_string(group) +
                   "]";
          }};
}

Converter date() {
  return {[](const json& v, const ConvertContext&) -> json {
            if (!v.is_string()) throw InvalidInput("expected a date string");
            // A date alone as `::date` reads it, a timestamp as its UTC date
            // (as the SQL form below); years of 5+ digits and BC kept whole.
            return date_from_text(v.get_ref<const std::string&>());
          },
          [](const std::string& value) { return "((" + value + ")::timestamptz AT TIME ZONE 'UTC')::date"; }};
}

}  // namespace webhookdb::converters
