// parse_quota_signal: every rate-limit header form folded into a QuotaSignal.
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "webhookdb/codec.hpp"
#include "webhookdb/rate_limiter.hpp"
#include "webhookdb/retry_after.hpp"

namespace webhookdb {
namespace {

using codec::trim;
using std::chrono::milliseconds;

// Counts and seconds above this are broken headers, not plans (a year of
// seconds; an epoch in milliseconds is recognised before this applies).
constexpr double kMaxValue = 1e13;
// X-RateLimit-Reset above this is an instant (epoch seconds), below it a
// number of seconds from now: 1e9 s is 2001-09-09, and no window is 31 years.
constexpr double kEpochSeconds = 1e9;
constexpr double kEpochMillis = 1e12;

std::optional<double> number(std::string_view text) {
  text = trim(text);
  if (text.empty() || text.size() > 32) return std::nullopt;
  const std::string copy(text);
  char* end = nullptr;
  const double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(value) || value < 0 || value > kMaxValue) {
    return std::nullopt;
  }
  return value;
}

std::optional<double> header_number(const Headers& headers, std::string_view name) {
  const auto value = find_header(headers, name);
  if (!value) return std::nullopt;
  // "10, 10;w=1" (an early IETF draft): the first item is the current one.
  const std::string_view text(*value);
  const auto first = text.substr(0, text.find_first_of(",;"));
  return number(first);
}

milliseconds seconds_to_ms(double seconds) {
  return milliseconds(static_cast<std::int64_t>(std::ceil(seconds * 1000.0)));
}

// "1700000000" (epoch seconds), "1700000000000" (epoch ms) or "30" (seconds
// from now) as the wait until the reset.
milliseconds reset_from(double value, Timestamp now) {
  if (value >= kEpochSeconds) {
    const double epoch_seconds = value >= kEpochMillis ? value / 1000.0 : value;
    const Timestamp at = timestamp_from_unix_seconds(epoch_seconds);
    if (at <= now) return milliseconds(0);
    return std::chrono::ceil<milliseconds>(at - now);
  }
  return seconds_to_ms(value);
}

// One item of a structured-field list: `"name";q=100;w=60` or `limit=100`.
struct Item {
  std::string bare;  // the item itself (unquoted), empty for a dictionary member
  std::vector<std::pair<std::string, std::string>> params;

  [[nodiscard]] std::optional<double> param(std::string_view name) const {
    for (const auto& [key, value] : params) {
      if (codec::iequals(key, name)) return number(value);
    }
    return std::nullopt;
  }
};

std::vector<std::string_view> split_outside_quotes(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '"') quoted = !quoted;
    if (text[i] == separator && !quoted) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(text.substr(start));
  return parts;
}

std::string unquote(std::string_view text) {
  text = trim(text);
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
  return std::string(text);
}

std::vector<Item> parse_list(std::string_view text) {
  std::vector<Item> items;
  for (const auto part : split_outside_quotes(text, ',')) {
    if (trim(part).empty()) continue;
    Item item;
    const auto members = split_outside_quotes(part, ';');
    for (std::size_t i = 0; i < members.size(); ++i) {
      const auto member = trim(members[i]);
      const auto eq = member.find('=');
      if (eq == std::string_view::npos) {
        if (i == 0) item.bare = unquote(member);
        continue;
      }
      item.params.emplace_back(std::string(trim(member.substr(0, eq))), unquote(member.substr(eq + 1)));
    }
    items.push_back(std::move(item));
  }
  return items;
}

// One policy's figures before they are folded into the signal.
struct Policy {
  std::string name;
  std::optional<double> limit;
  std::optional<double> remaining;
  std::optional<milliseconds> reset_in;
  std::optional<milliseconds> window;
};

// RateLimit-Policy: `100;w=60` (bare quota) or `"name";q=100;w=60`.
std::vector<Policy> policies(const Headers& headers) {
  std::vector<Policy> out;
  for (const auto& value : find_headers(headers, "RateLimit-Policy")) {
    for (const auto& item : parse_list(value)) {
      Policy policy;
      policy.limit = item.param("q");
      if (!policy.limit) {
        policy.limit = number(item.bare);
      } else {
        policy.name = item.bare;
      }
      if (const auto w = item.param("w")) policy.window = seconds_to_ms(*w);
      if (policy.limit) out.push_back(std::move(policy));
    }
  }
  return out;
}

// RateLimit: `"name";r=5;t=30` (one item per policy) or the older
// dictionary `limit=100, remaining=5, reset=30`.
std::vector<Policy> current(const Headers& headers, const std::vector<Policy>& declared) {
  std::vector<Policy> out;
  for (const auto& value : find_headers(headers, "RateLimit")) {
    const auto items = parse_list(value);
    Policy dictionary;
    bool is_dictionary = false;
    for (const auto& item : items) {
      if (item.bare.empty() && !item.params.empty()) {
        const auto& [key, text] = item.params.front();
        is_dictionary = true;
        if (codec::iequals(key, "limit")) dictionary.limit = number(text);
        if (codec::iequals(key, "remaining")) dictionary.remaining = number(text);
        if (codec::iequals(key, "reset")) {
          if (const auto s = number(text)) dictionary.reset_in = seconds_to_ms(*s);
        }
        continue;
      }
      Policy policy;
      policy.name = item.bare;
      policy.remaining = item.param("r");
      if (const auto t = item.param("t")) policy.reset_in = seconds_to_ms(*t);
      for (const auto& known : declared) {
        if (known.name == policy.name) {
          policy.limit = known.limit;
          policy.window = known.window;
        }
      }
      out.push_back(std::move(policy));
    }
    if (is_dictionary) out.push_back(std::move(dictionary));
  }
  return out;
}

// The most constrained policy: least remaining, then the longest reset.
const Policy* tightest(const std::vector<Policy>& candidates) {
  const Policy* best = nullptr;
  for (const auto& policy : candidates) {
    if (!policy.remaining && !policy.limit) continue;
    if (best == nullptr) {
      best = &policy;
      continue;
    }
    const double a = policy.remaining.value_or(std::numeric_limits<double>::infinity());
    const double b = best->remaining.value_or(std::numeric_limits<double>::infinity());
    if (a < b || (a == b && policy.reset_in.value_or(milliseconds(0)) > best->reset_in.value_or(milliseconds(0)))) {
      best = &policy;
    }
  }
  return best;
}

void read_ietf(const Headers& headers, QuotaSignal& signal) {
  const auto declared = policies(headers);
  auto candidates = current(headers, declared);
  // RateLimit-Limit/-Remaining/-Reset (drafts 00-06), reset in seconds.
  Policy separate;
  separate.limit = header_number(headers, "RateLimit-Limit");
  separate.remaining = header_number(headers, "RateLimit-Remaining");
  if (const auto reset = header_number(headers, "RateLimit-Reset")) separate.reset_in = seconds_to_ms(*reset);
  if (const auto limit_text = find_header(headers, "RateLimit-Limit")) {
    // "10, 10;w=1, 1000;w=3600": the first item is the limit in force, and
    // the policy with the same quota says its window.
    const auto items = parse_list(*limit_text);
    for (const auto& item : items) {
      const auto w = item.param("w");
      if (w && number(item.bare) == separate.limit) {
        separate.window = seconds_to_ms(*w);
        break;
      }
    }
  }
  if (!separate.window && declared.size() == 1) separate.window = declared.front().window;
  if (!separate.limit && declared.size() == 1) separate.limit = declared.front().limit;
  if (separate.limit || separate.remaining) candidates.push_back(separate);
  if (candidates.empty() && declared.size() == 1) candidates.push_back(declared.front());
  const Policy* best = tightest(candidates);
  if (best == nullptr) return;
  signal.limit = best->limit;
  signal.remaining = best->remaining;
  signal.reset_in = best->reset_in;
  signal.window = best->window;
}

// X-RateLimit-Limit/-Remaining/-Used/-Reset/-Reset-After (GitHub, Twitter,
// Discord...): only where the IETF headers said nothing.
void read_x_headers(const Headers& headers, Timestamp now, QuotaSignal& signal) {
  if (!signal.limit) signal.limit = header_number(headers, "X-RateLimit-Limit");
  if (!signal.remaining) {
    signal.remaining = header_number(headers, "X-RateLimit-Remaining");
    const auto used = header_number(headers, "X-RateLimit-Used");
    if (!signal.remaining && used && signal.limit) signal.remaining = std::max(0.0, *signal.limit - *used);
  }
  if (!signal.reset_in) {
    if (const auto after = header_number(headers, "X-RateLimit-Reset-After")) {
      signal.reset_in = seconds_to_ms(*after);
    } else if (const auto reset = header_number(headers, "X-RateLimit-Reset")) {
      signal.reset_in = reset_from(*reset, now);
    }
  }
}

}  // namespace

QuotaSignal parse_quota_signal(int status, const Headers& headers, Timestamp now) {
  QuotaSignal signal;
  signal.status = status;
  if (const auto value = find_header(headers, "Retry-After")) signal.retry_after = parse_retry_after(*value, now);
  read_ietf(headers, signal);
  read_x_headers(headers, now, signal);
  const bool exhausted = signal.remaining && *signal.remaining <= 0;
  signal.limited = status == 429 || (status == 503 && signal.retry_after) ||
                   (status == 403 && (signal.retry_after || exhausted));
  return signal;
}

QuotaSignal parse_quota_signal(const HttpResponse& response, Timestamp now) {
  return parse_quota_signal(response.status, response.headers, now);
}

}  // namespace webhookdb
