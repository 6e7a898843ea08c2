#include "webhookdb/time.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb {
namespace {

constexpr std::int64_t kUsPerSecond = 1'000'000;
constexpr std::int64_t kUsPerDay = 86'400 * kUsPerSecond;
// PostgreSQL refuses offsets past 15:59:59 ("time zone displacement out of range").
constexpr std::int64_t kMaxOffsetSeconds = (15 * 60 + 59) * 60 + 59;

// Civil dates in 64 bits (H. Hinnant's days_from_civil / civil_from_days):
// std::chrono::year, like date::year, wraps past 32767, which is how year
// 70000 became 4464. Proleptic Gregorian, astronomical years (0 is 1 BC),
// 400-year eras of 146097 days, years starting in March.
struct Civil {
  std::int64_t year;
  std::int64_t month;
  std::int64_t day;
};

constexpr std::int64_t days_from_civil(std::int64_t y, std::int64_t m, std::int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146'097 + doe - 719'468;
}

constexpr Civil civil_from_days(std::int64_t days) {
  const std::int64_t z = days + 719'468;
  const std::int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  const std::int64_t doe = z - era * 146'097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  return {yoe + era * 400 + (month <= 2 ? 1 : 0), month, doy - (153 * mp + 2) / 5 + 1};
}

// `date`'s range: 4714-11-24 BC (Julian day 0) to 5874897-12-31.
constexpr std::int64_t kFirstDateDay = days_from_civil(-4713, 11, 24);
constexpr std::int64_t kLastDateDay = days_from_civil(5'874'897, 12, 31);
static_assert(kFirstDateDay * kUsPerDay == kFirstTimestamp.time_since_epoch().count());

constexpr bool is_leap(std::int64_t y) {
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

constexpr std::int64_t days_in_month(std::int64_t y, std::int64_t m) {
  constexpr std::array<std::int64_t, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[static_cast<std::size_t>(m - 1)];
}

enum class Status { ok, malformed, out_of_range };

// What the text says, before it is checked and turned into an instant.
struct Fields {
  std::int64_t year = 0;  // as written (BC not applied)
  std::int64_t month = 0;
  std::int64_t day = 0;
  bool bc = false;
  bool has_time = false;
  std::int64_t hour = 0;
  std::int64_t minute = 0;
  std::int64_t second = 0;
  std::int64_t micros = 0;          // the rounded fraction, 0..1'000'000
  std::int64_t offset_seconds = 0;  // east of UTC
};

// A tiny cursor over the text; every parse step returns false on mismatch.
struct Cursor {
  std::string_view s;
  std::size_t i = 0;

  [[nodiscard]] bool done() const { return i >= s.size(); }
  [[nodiscard]] char peek() const { return done() ? '\0' : s[i]; }
  [[nodiscard]] bool at_digit() const { return std::isdigit(static_cast<unsigned char>(peek())) != 0; }
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
  // min_n..max_n digits, and no digit right after them.
  // NOLINTNEXTLINE(bugprone-easily-swappable-parameters): a range: min then max
  bool digits(int min_n, int max_n, std::int64_t& out) {
    int n = 0;
    out = 0;
    while (n < max_n && at_digit()) {
      out = out * 10 + (s[i] - '0');
      ++i;
      ++n;
    }
    return n >= min_n && !at_digit();
  }
  bool word(std::string& out) {
    out.clear();
    while (!done() && std::isalpha(static_cast<unsigned char>(s[i])) != 0) {
      out += codec::ascii_lower(s[i++]);
    }
    return !out.empty();
  }
};

// 1..12 for a month's abbreviation or full name (lower case), else 0.
int month_from_name(std::string_view name) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "january", "february", "march",     "april",   "may",      "june",
      "july",    "august",   "september", "october", "november", "december"};
  for (std::size_t m = 0; m < kMonths.size(); ++m) {
    if (name == kMonths[m] || name == kMonths[m].substr(0, 3)) return static_cast<int>(m) + 1;
  }
  return 0;
}

bool is_day_name(std::string_view name) {
  static constexpr std::array<std::string_view, 7> kDays = {"sunday",   "monday", "tuesday", "wednesday",
                                                            "thursday", "friday", "saturday"};
  for (auto d : kDays) {
    if (name == d || name == d.substr(0, 3)) return true;
  }
  return false;
}

// +H, +HH, +HHMM, +HH:MM, +HH:MM:SS (the sign already read). Field limits
// are checked with the rest, in to_instant.
bool parse_numeric_offset(Cursor& c, bool negative, Fields& f, Status& status) {
  std::int64_t hh = 0;
  std::int64_t mm = 0;
  std::int64_t ss = 0;
  const std::size_t start = c.i;
  if (!c.digits(1, 4, hh)) return false;
  if (c.i - start == 4) {  // +HHMM
    mm = hh % 100;
    hh /= 100;
  } else if (c.i - start == 3) {
    return false;
  } else if (c.accept(':')) {
    if (!c.digits(2, 2, mm)) return false;
    if (c.accept(':') && !c.digits(2, 2, ss)) return false;
  }
  if (mm > 59 || ss > 59 || (hh * 60 + mm) * 60 + ss > kMaxOffsetSeconds) status = Status::out_of_range;
  f.offset_seconds = ((hh * 60 + mm) * 60 + ss) * (negative ? -1 : 1);
  return true;
}

// Z, +offset, UTC, GMT, UT, the US zones of RFC 2822, or the era "BC".
bool parse_zone(Cursor& c, Fields& f, Status& status) {
  if (c.accept('Z') || c.accept('z')) return true;
  if (c.peek() == '+' || c.peek() == '-') {
    const bool negative = c.peek() == '-';
    ++c.i;
    return parse_numeric_offset(c, negative, f, status);
  }
  std::string zone;
  if (!c.word(zone)) return false;
  static constexpr std::array<std::pair<std::string_view, int>, 11> kZones = {{{"utc", 0},
                                                                               {"gmt", 0},
                                                                               {"ut", 0},
                                                                               {"est", -5},
                                                                               {"edt", -4},
                                                                               {"cst", -6},
                                                                               {"cdt", -5},
                                                                               {"mst", -7},
                                                                               {"mdt", -6},
                                                                               {"pst", -8},
                                                                               {"pdt", -7}}};
  if (zone == "bc") {
    f.bc = true;
    return true;
  }
  for (const auto& [name, hours] : kZones) {
    if (zone == name) {
      f.offset_seconds = hours * 3600;
      return true;
    }
  }
  return false;
}

// ".fff": PostgreSQL reads the fraction with strtod and rounds it with
// rint(frac * 1e6) (ParseFractionalSecond); the same double operations give
// the same microseconds (0.0000005 -> 0, 0.0000015 -> 2, 0.9999995 -> 1e6).
bool parse_fraction(Cursor& c, std::int64_t& micros) {
  const std::size_t start = c.i;
  while (c.at_digit()) ++c.i;
  const std::size_t n = c.i - start;
  if (n == 0 || n > 64) return false;  // PostgreSQL takes "00:00:00." as 0; refusing is allowed
  std::string text = "0.";
  text.append(c.s.substr(start, n));
  double frac = 0;
  const auto res = std::from_chars(text.data(), text.data() + text.size(), frac);
  if (res.ec != std::errc{}) return false;
  micros = static_cast<std::int64_t>(std::rint(frac * 1e6));
  return true;
}

bool parse_clock(Cursor& c, Fields& f) {
  f.has_time = true;
  if (!c.digits(2, 2, f.hour) || !c.accept(':') || !c.digits(2, 2, f.minute)) return false;
  if (c.accept(':')) {
    if (!c.digits(2, 2, f.second)) return false;
    // PostgreSQL refuses a decimal comma.
    if (c.accept('.') && !parse_fraction(c, f.micros)) return false;
  }
  return true;
}

// After the clock: [spaces] [zone] [spaces] [BC] [spaces], then the end.
bool parse_tail(Cursor& c, Fields& f, Status& status) {
  c.skip_spaces();
  if (!c.done() && !parse_zone(c, f, status)) return false;
  c.skip_spaces();
  if (!c.done() && !f.bc) {
    std::string era;
    if (!c.word(era) || era != "bc") return false;
    f.bc = true;
    c.skip_spaces();
  }
  return c.done();
}

// YYYY-MM-DD[(T|t| )HH:MM[:SS[.f]][zone]][ BC], years of 4 to 7 digits.
bool parse_iso(std::string_view text, Fields& f, Status& status) {
  Cursor c{text};
  if (!c.digits(4, 7, f.year) || !c.accept('-') || !c.digits(2, 2, f.month) || !c.accept('-') ||
      !c.digits(2, 2, f.day)) {
    return false;
  }
  if (c.done()) return true;
  if (c.accept('T') || c.accept('t')) {
    return parse_clock(c, f) && parse_tail(c, f, status);
  }
  if (!c.accept(' ')) return false;
  if (std::isdigit(static_cast<unsigned char>(c.peek())) == 0) {  // "2020-01-01 BC"
    return parse_tail(c, f, status) && f.bc && f.offset_seconds == 0;
  }
  return parse_clock(c, f) && parse_tail(c, f, status);
}

// [Day,] DD Mon YYYY HH:MM[:SS] zone  (RFC 2822 and IMF-fixdate)
// [Dayname,] DD-Mon-YY HH:MM:SS GMT   (RFC 850)
// HTTP dates only: the RFC 850 form and two-digit years. PostgreSQL refuses
// the first and reads "Thu, 30 Jul 16 ..." as 2030-07-16.
enum class Rfc850 { refused, accepted };

bool parse_rfc2822(std::string_view text, Rfc850 rfc850, Fields& f, Status& status) {
  Cursor c{text};
  std::string w;
  if (c.word(w)) {
    if (!is_day_name(w) || !c.accept(',')) return false;
  }
  c.skip_spaces();
  if (!c.digits(1, 2, f.day)) return false;
  const bool dashed = rfc850 == Rfc850::accepted && c.accept('-');
  if (!dashed) c.skip_spaces();
  if (!c.word(w) || (f.month = month_from_name(w)) == 0) return false;
  if (dashed) {
    if (!c.accept('-')) return false;
  } else {
    c.skip_spaces();
  }
  const std::size_t year_start = c.i;
  if (!c.digits(rfc850 == Rfc850::accepted ? 2 : 4, 4, f.year)) return false;
  // Two-digit years: 70..99 are 19xx, 00..69 are 20xx (PostgreSQL's rule too).
  if (c.i - year_start == 2) f.year += f.year < 70 ? 2000 : 1900;
  c.skip_spaces();
  if (!parse_clock(c, f)) return false;
  c.skip_spaces();
  if (!c.done() && !parse_zone(c, f, status)) return false;
  c.skip_spaces();
  return c.done() && !f.bc;
}

// Sun Nov  6 08:49:37 1994
bool parse_asctime(std::string_view text, Fields& f) {
  Cursor c{text};
  std::string w;
  if (!c.word(w) || !is_day_name(w)) return false;
  c.skip_spaces();
  if (!c.word(w) || (f.month = month_from_name(w)) == 0) return false;
  c.skip_spaces();
  if (!c.digits(1, 2, f.day)) return false;
  c.skip_spaces();
  if (!parse_clock(c, f)) return false;
  c.skip_spaces();
  if (!c.digits(4, 4, f.year)) return false;
  c.skip_spaces();
  return c.done();
}

// The day (since 1970) of the written date, after the checks PostgreSQL
// makes: no year 0, a real month and day of month.
Status day_of(const Fields& f, std::int64_t& day) {
  if (f.year == 0 || f.month < 1 || f.month > 12) return Status::out_of_range;
  const std::int64_t year = f.bc ? 1 - f.year : f.year;
  if (f.day < 1 || f.day > days_in_month(year, f.month)) return Status::out_of_range;
  day = days_from_civil(year, f.month, f.day);
  return Status::ok;
}

// The instant, checked as PostgreSQL checks it: hours up to 24:00:00, seconds
// up to 60 with no fraction past them, then the range of the instant.
Status to_instant(const Fields& f, Timestamp& out) {
  std::int64_t day = 0;
  if (const Status s = day_of(f, day); s != Status::ok) return s;
  const std::int64_t in_minute = f.second * kUsPerSecond + f.micros;
  if (f.hour > 24 || f.minute > 59 || in_minute > 60 * kUsPerSecond ||
      (f.hour == 24 && (f.minute > 0 || in_minute > 0))) {
    return Status::out_of_range;
  }
  // Past the last day a Timestamp holds, the products below would overflow.
  if (day < kFirstDateDay - 1 || day > Timestamp::max().time_since_epoch().count() / kUsPerDay + 1) {
    return Status::out_of_range;
  }
  const std::int64_t in_day = (f.hour * 60 + f.minute) * 60 * kUsPerSecond + in_minute;
  std::int64_t us = 0;
  if (__builtin_mul_overflow(day, kUsPerDay, &us) || __builtin_add_overflow(us, in_day, &us) ||
      __builtin_sub_overflow(us, f.offset_seconds * kUsPerSecond, &us)) {
    return Status::out_of_range;
  }
  out = Timestamp{std::chrono::microseconds{us}};
  return out < kFirstTimestamp ? Status::out_of_range : Status::ok;
}

using codec::trim;

// The fields of the first form that reads the whole text.
Status parse_fields(std::string_view text, Rfc850 rfc850, Fields& f) {
  text = trim(text);
  Status status = Status::ok;
  if (f = Fields{}; parse_iso(text, f, status)) return status;
  status = Status::ok;
  if (f = Fields{}; parse_rfc2822(text, rfc850, f, status)) return status;
  if (f = Fields{}; parse_asctime(text, f)) return Status::ok;
  return Status::malformed;
}

Status parse_instant(std::string_view text, Rfc850 rfc850, Timestamp& out) {
  Fields f;
  const Status s = parse_fields(text, rfc850, f);
  if (s != Status::ok) return s;
  if (!f.has_time && f.offset_seconds != 0) return Status::malformed;
  return to_instant(f, out);
}

std::string excerpt(std::string_view text) {
  return std::string(text.substr(0, 64));
}

[[noreturn]] void refuse(Status s, std::string_view what, std::string_view text) {
  if (s == Status::out_of_range) {
    throw InvalidInput(std::string(what) + " out of range (PostgreSQL's " +
                       (what == "date"
                            ? "date holds 4714-11-24 BC to 5874897-12-31"
                            : "timestamptz holds 4714-11-24 BC to 294276-12-31, ours to 294247-01-10") +
                       "; fields: hours to 24:00:00, offsets to 15:59:59): '" + excerpt(text) + "'");
  }
  throw InvalidInput("not a " + std::string(what) + ": '" + excerpt(text) + "'");
}

// Writes `value` in decimal, zero-padded to `width`. By hand: this runs for
// every timestamp column of every row, and snprintf costs more than the rest
// of the row's conversion.
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): value, then field width, as printf
void put(std::string& out, std::int64_t value, int width) {
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0 && n < 20);
  for (int i = n; i < width; ++i) out += '0';
  while (n > 0) out += digits[--n];
}

// YYYY-MM-DD of an astronomical year > 0 (BC years are written by the caller).
void put_date(std::string& out, const Civil& c) {
  put(out, c.year > 0 ? c.year : 1 - c.year, 4);
  out += '-';
  put(out, c.month, 2);
  out += '-';
  put(out, c.day, 2);
}

std::string format_date(std::int64_t day) {
  const Civil c = civil_from_days(day);
  std::string out;
  put_date(out, c);
  if (c.year <= 0) out += " BC";
  return out;
}

}  // namespace

std::string format_timestamp(Timestamp t) {
  // Day and time of day by hand, in 64 bits: floor<days>(t) and t - days
  // overflow near the ends of the range.
  const std::int64_t us = t.time_since_epoch().count();
  std::int64_t in_day = us % kUsPerDay;
  std::int64_t day = (us - in_day) / kUsPerDay;
  if (in_day < 0) {
    in_day += kUsPerDay;
    --day;
  }
  const Civil c = civil_from_days(day);
  std::string out;
  out.reserve(31);
  put_date(out, c);
  out += 'T';
  put(out, in_day / 3'600'000'000, 2);
  out += ':';
  put(out, in_day / 60'000'000 % 60, 2);
  out += ':';
  put(out, in_day / kUsPerSecond % 60, 2);
  auto micros = in_day % kUsPerSecond;
  if (micros != 0) {
    int width = 6;
    while (micros % 10 == 0) {
      micros /= 10;
      --width;
    }
    out += '.';
    put(out, micros, width);
  }
  out += 'Z';
  if (c.year <= 0) out += " BC";  // PostgreSQL reads neither year 0 nor "-0001"
  return out;
}

std::optional<Timestamp> parse_timestamp(std::string_view text) {
  Timestamp t;
  if (parse_instant(text, Rfc850::refused, t) != Status::ok) return std::nullopt;
  return t;
}

Timestamp timestamp_from_text(std::string_view text) {
  Timestamp t;
  if (const Status s = parse_instant(text, Rfc850::refused, t); s != Status::ok) refuse(s, "timestamp", text);
  return t;
}

std::string date_from_text(std::string_view text) {
  Fields f;
  Status s = parse_fields(text, Rfc850::refused, f);
  std::int64_t day = 0;
  if (s == Status::ok && f.has_time) {
    Timestamp t;
    s = to_instant(f, t);
    const std::int64_t us = t.time_since_epoch().count();
    day = us / kUsPerDay - (us % kUsPerDay < 0 ? 1 : 0);
  } else if (s == Status::ok) {
    s = f.offset_seconds != 0 ? Status::malformed : day_of(f, day);
    if (s == Status::ok && (day < kFirstDateDay || day > kLastDateDay)) s = Status::out_of_range;
  }
  if (s != Status::ok) refuse(s, "date", text);
  return format_date(day);
}

Timestamp timestamp_from_unix_seconds(double seconds) {
  // PostgreSQL's float8_timestamptz: range check on the seconds, then
  // rint((seconds - 946684800) * 1e6) microseconds after 2000-01-01.
  constexpr double kPgEpoch = 946'684'800.0;
  // Past 9223372036854 s, int64 microseconds since 1970 overflow.
  if (!std::isfinite(seconds) || seconds < -210'866'803'200.0 || seconds >= 9'223'372'036'854.0) {
    throw InvalidInput(
        "unix timestamp out of range (PostgreSQL's timestamptz holds 4714-11-24 BC to 294276-12-31, "
        "ours to 294247-01-10)");
  }
  const auto since_2000 = static_cast<std::int64_t>(std::rint((seconds - kPgEpoch) * 1e6));
  const Timestamp t{std::chrono::microseconds{since_2000 + 946'684'800 * kUsPerSecond}};
  if (t < kFirstTimestamp) throw InvalidInput("unix timestamp out of range: before 4714-11-24 BC");
  return t;
}

std::optional<Timestamp> parse_http_date(std::string_view text) {
  text = trim(text);
  Fields f;
  Status status = Status::ok;
  Timestamp t;
  if (parse_rfc2822(text, Rfc850::accepted, f, status) && status == Status::ok &&
      to_instant(f, t) == Status::ok) {
    return t;
  }
  if (f = Fields{}; parse_asctime(text, f) && to_instant(f, t) == Status::ok) return t;
  return std::nullopt;
}

}  // namespace webhookdb
