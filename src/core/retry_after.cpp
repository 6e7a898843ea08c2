#include "webhookdb/retry_after.hpp"

#include <cctype>
#include <cstdint>

#include "webhookdb/codec.hpp"

namespace webhookdb {
namespace {

using codec::trim;

// A year: anything longer is a broken header, not a plan.
constexpr std::int64_t kMaxSeconds = 366LL * 24 * 3600;

// "120" or "1.5": whole milliseconds, rounded up.
std::optional<std::chrono::milliseconds> parse_delta(std::string_view s) {
  std::int64_t whole = 0;
  std::size_t i = 0;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) != 0; ++i) {
    whole = whole * 10 + (s[i] - '0');
    if (whole > kMaxSeconds) return std::nullopt;
  }
  if (i == 0) return std::nullopt;
  std::int64_t millis = whole * 1000;
  if (i < s.size()) {
    if (s[i] != '.') return std::nullopt;
    ++i;
    const std::size_t fraction_start = i;
    std::int64_t scale = 100;
    bool remainder = false;
    for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) != 0; ++i) {
      if (scale > 0) {
        millis += (s[i] - '0') * scale;
        scale /= 10;
      } else if (s[i] != '0') {
        remainder = true;
      }
    }
    if (i == fraction_start || i != s.size()) return std::nullopt;
    if (remainder) ++millis;
  }
  return std::chrono::milliseconds(millis);
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, Timestamp now) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (std::isdigit(static_cast<unsigned char>(value.front())) != 0) return parse_delta(value);
  const auto date = parse_http_date(value);
  if (!date) return std::nullopt;
  if (*date <= now) return std::chrono::milliseconds(0);
  const auto wait = std::chrono::ceil<std::chrono::milliseconds>(*date - now);
  if (wait > std::chrono::seconds(kMaxSeconds)) return std::nullopt;
  return wait;
}

std::optional<std::chrono::milliseconds> retry_after(const HttpBaseError& error, Timestamp now) {
  const auto* http = dynamic_cast<const HttpError*>(&error);
  if (http == nullptr) return std::nullopt;
  const auto value = http->header("Retry-After");
  if (!value) return std::nullopt;
  return parse_retry_after(*value, now);
}

}  // namespace webhookdb
