#include "webhookdb/time.hpp"

#include <array>
#include <cctype>
#include <cstdio>
#include <string>

namespace webhookdb {
namespace {

using namespace std::chrono;

// A tiny cursor over the text; every parse step returns false on mismatch.
struct Cursor {
  std::string_view s;
  std::size_t i = 0;

  [[nodiscard]] bool done() const { return i >= s.size(); }
  [[nodiscard]] char peek() const { return done() ? '\0' : s[i]; }
  bool accept(char c) {
    if (peek() == c) {
      ++i;
      return true;
    }
    return false;
  }
  void skip_spaces() {
    while (!done() && std::isspace(static_cast<unsigned char>(s[i])) != 0) ++i;
  }
  // Exactly n digits (min..max when a range is given).
  bool digits(int min_n, int max_n, long long& out) {
    int n = 0;
    out = 0;
    while (n < max_n && !done() && std::isdigit(static_cast<unsigned char>(s[i])) != 0) {
      out = out * 10 + (s[i] - '0');
      ++i;
      ++n;
    }
    return n >= min_n;
  }
  bool word(std::string& out) {
    out.clear();
    while (!done() && std::isalpha(static_cast<unsigned char>(s[i])) != 0) out += s[i++];
    return !out.empty();
  }
};

int month_from_name(std::string_view name) {
  static constexpr std::array<std::string_view, 12> months = {"jan", "feb", "mar", "apr", "may", "jun",
                                                              "jul", "aug", "sep", "oct", "nov", "dec"};
  if (name.size() < 3) return 0;
  std::string lower;
  for (std::size_t k = 0; k < 3; ++k) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(name[k])));
  for (std::size_t m = 0; m < months.size(); ++m) {
    if (months[m] == lower) return static_cast<int>(m) + 1;
  }
  return 0;
}

std::optional<Timestamp> make_time(long long y, long long mo, long long d, long long h, long long mi, long long sec,
                                   long long micros, long long offset_minutes) {
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || sec > 60) return std::nullopt;
  const year_month_day ymd{year{static_cast<int>(y)}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  if (sec == 60) sec = 59;  // leap second: clamp
  const auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + microseconds{micros} - minutes{offset_minutes};
  return time_point_cast<microseconds>(t);
}

// Z, UTC, GMT, UT, +HH, +HHMM, +HH:MM, or the US zones of RFC 2822.
bool parse_zone(Cursor& c, long long& offset_minutes) {
  offset_minutes = 0;
  if (c.accept('Z') || c.accept('z')) return true;
  if (c.peek() == '+' || c.peek() == '-') {
    const bool negative = c.peek() == '-';
    ++c.i;
    long long hh = 0;
    long long mm = 0;
    if (!c.digits(2, 2, hh)) return false;
    c.accept(':');
    if (!c.done() && std::isdigit(static_cast<unsigned char>(c.peek())) != 0) {
      if (!c.digits(2, 2, mm)) return false;
    }
    offset_minutes = (hh * 60 + mm) * (negative ? -1 : 1);
    return true;
  }
  std::string zone;
  if (!c.word(zone)) return false;
  for (auto& ch : zone) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (zone == "UTC" || zone == "GMT" || zone == "UT") return true;
  if (zone == "EST") offset_minutes = -5 * 60;
  else if (zone == "EDT") offset_minutes = -4 * 60;
  else if (zone == "CST") offset_minutes = -6 * 60;
  else if (zone == "CDT") offset_minutes = -5 * 60;
  else if (zone == "MST") offset_minutes = -7 * 60;
  else if (zone == "MDT") offset_minutes = -6 * 60;
  else if (zone == "PST") offset_minutes = -8 * 60;
  else if (zone == "PDT") offset_minutes = -7 * 60;
  else return false;
  return true;
}

bool parse_clock(Cursor& c, long long& h, long long& mi, long long& sec, long long& micros) {
  sec = 0;
  micros = 0;
  if (!c.digits(2, 2, h) || !c.accept(':') || !c.digits(2, 2, mi)) return false;
  if (c.accept(':')) {
    if (!c.digits(2, 2, sec)) return false;
    if (c.accept('.') || c.accept(',')) {
      long long frac = 0;
      const std::size_t start = c.i;
      if (!c.digits(1, 9, frac)) return false;
      auto n = static_cast<int>(c.i - start);
      while (n < 6) {
        frac *= 10;
        ++n;
      }
      while (n > 6) {
        frac /= 10;
        --n;
      }
      micros = frac;
      // Extra precision, skipped: read as a number, 30 digits overflow.
      for (int extra = 0; extra < 30 && std::isdigit(static_cast<unsigned char>(c.peek())) != 0; ++extra) ++c.i;
    }
  }
  return true;
}

std::optional<Timestamp> parse_iso(std::string_view text) {
  Cursor c{text};
  long long y = 0;
  long long mo = 0;
  long long d = 0;
  const bool negative_year = c.accept('-');
  if (!c.digits(4, 6, y) || !c.accept('-') || !c.digits(2, 2, mo) || !c.accept('-') || !c.digits(2, 2, d)) {
    return std::nullopt;
  }
  if (negative_year) y = -y;
  if (c.done()) return make_time(y, mo, d, 0, 0, 0, 0, 0);
  if (!c.accept('T') && !c.accept('t') && !c.accept(' ')) return std::nullopt;
  long long h = 0;
  long long mi = 0;
  long long sec = 0;
  long long micros = 0;
  if (!parse_clock(c, h, mi, sec, micros)) return std::nullopt;
  c.skip_spaces();
  long long offset = 0;
  if (!c.done() && !parse_zone(c, offset)) return std::nullopt;
  c.skip_spaces();
  if (!c.done()) return std::nullopt;
  return make_time(y, mo, d, h, mi, sec, micros, offset);
}

// [Day,] DD Mon YYYY HH:MM[:SS] zone  (RFC 2822 and IMF-fixdate)
// [Dayname,] DD-Mon-YY HH:MM:SS GMT   (RFC 850)
std::optional<Timestamp> parse_rfc2822(std::string_view text) {
  Cursor c{text};
  c.skip_spaces();
  std::string w;
  const std::size_t save = c.i;
  if (c.word(w)) {
    if (!c.accept(',')) return std::nullopt;
  } else {
    c.i = save;
  }
  c.skip_spaces();
  long long d = 0;
  long long y = 0;
  if (!c.digits(1, 2, d)) return std::nullopt;
  const bool dashed = c.accept('-');
  if (!dashed) c.skip_spaces();
  if (!c.word(w)) return std::nullopt;
  const int mo = month_from_name(w);
  if (mo == 0) return std::nullopt;
  if (dashed) {
    if (!c.accept('-')) return std::nullopt;
  } else {
    c.skip_spaces();
  }
  const std::size_t year_start = c.i;
  if (!c.digits(2, 4, y)) return std::nullopt;
  if (c.i - year_start == 2) y += y < 70 ? 2000 : 1900;
  c.skip_spaces();
  long long h = 0;
  long long mi = 0;
  long long sec = 0;
  long long micros = 0;
  if (!parse_clock(c, h, mi, sec, micros)) return std::nullopt;
  c.skip_spaces();
  long long offset = 0;
  if (!c.done() && !parse_zone(c, offset)) return std::nullopt;
  c.skip_spaces();
  if (!c.done()) return std::nullopt;
  return make_time(y, mo, d, h, mi, sec, micros, offset);
}

// Sun Nov  6 08:49:37 1994
std::optional<Timestamp> parse_asctime(std::string_view text) {
  Cursor c{text};
  std::string w;
  if (!c.word(w)) return std::nullopt;
  c.skip_spaces();
  if (!c.word(w)) return std::nullopt;
  const int mo = month_from_name(w);
  if (mo == 0) return std::nullopt;
  c.skip_spaces();
  long long d = 0;
  long long y = 0;
  long long h = 0;
  long long mi = 0;
  long long sec = 0;
  long long micros = 0;
  if (!c.digits(1, 2, d)) return std::nullopt;
  c.skip_spaces();
  if (!parse_clock(c, h, mi, sec, micros)) return std::nullopt;
  c.skip_spaces();
  if (!c.digits(4, 4, y)) return std::nullopt;
  c.skip_spaces();
  if (!c.done()) return std::nullopt;
  return make_time(y, mo, d, h, mi, sec, micros, 0);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string format_timestamp(Timestamp t) {
  // Day, time of day and civil date by hand, in 64 bits: floor<days>(t) and
  // t - days overflow near the ends of the range, and std::chrono::year
  // wraps past 32767.
  constexpr std::int64_t kDay = 86'400'000'000;
  const std::int64_t us = t.time_since_epoch().count();
  std::int64_t in_day = us % kDay;
  std::int64_t day = (us - in_day) / kDay;
  if (in_day < 0) {
    in_day += kDay;
    --day;
  }
  const hh_mm_ss<microseconds> tod{microseconds{in_day}};
  // Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
  // civil_from_days): 400-year eras of 146097 days, years starting in March.
  const std::int64_t z = day + 719'468;
  const std::int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  const std::int64_t doe = z - era * 146'097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t day_of_month = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = yoe + era * 400 + (month <= 2 ? 1 : 0);
  // Written by hand: this runs for every timestamp column of every row, and
  // snprintf costs more than the rest of the row's conversion.
  std::string out;
  out.reserve(28);
  const auto put = [&out](long long value, int width) {
    char digits[20];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value > 0 && n < 20);
    for (int i = n; i < width; ++i) out += '0';
    while (n > 0) out += digits[--n];
  };
  if (y < 0) out += '-';
  put(y < 0 ? -y : y, y < 0 ? 3 : 4);  // as printf("%04d")
  out += '-';
  put(month, 2);
  out += '-';
  put(day_of_month, 2);
  out += 'T';
  put(tod.hours().count(), 2);
  out += ':';
  put(tod.minutes().count(), 2);
  out += ':';
  put(tod.seconds().count(), 2);
  auto micros = tod.subseconds().count();
  if (micros != 0) {
    int width = 6;
    while (micros % 10 == 0) {
      micros /= 10;
      --width;
    }
    out += '.';
    put(micros, width);
  }
  out += 'Z';
  return out;
}

std::optional<Timestamp> parse_timestamp(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  if (auto t = parse_iso(text)) return t;
  if (auto t = parse_rfc2822(text)) return t;
  return parse_asctime(text);
}

std::optional<Timestamp> parse_http_date(std::string_view text) {
  text = trim(text);
  if (auto t = parse_rfc2822(text)) return t;
  return parse_asctime(text);
}

}  // namespace webhookdb
