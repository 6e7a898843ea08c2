#include "api_server/quota.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace webhookdb::tools {
namespace {

using std::chrono::milliseconds;
using SystemTime = std::chrono::system_clock::time_point;

constexpr std::string_view kModeNames[] = {"github", "ietf", "none", "retry-after", "secondary"};

std::int64_t ceil_seconds(milliseconds d) { return (std::max<std::int64_t>(d.count(), 0) + 999) / 1000; }

std::int64_t epoch_seconds_ceil(SystemTime t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  return (us + 999'999) / 1'000'000;
}

std::string whole(double x) { return std::to_string(static_cast<std::int64_t>(std::floor(std::max(x, 0.0)))); }

}  // namespace

std::optional<QuotaMode> parse_quota_mode(std::string_view name) noexcept {
  for (std::size_t i = 0; i < std::size(kModeNames); ++i) {
    if (name == kModeNames[i]) return static_cast<QuotaMode>(i);
  }
  return std::nullopt;
}

std::optional<QuotaAlgorithm> parse_quota_algorithm(std::string_view name) noexcept {
  if (name == "fixed-window") return QuotaAlgorithm::fixed_window;
  if (name == "token-bucket") return QuotaAlgorithm::token_bucket;
  return std::nullopt;
}

QuotaEnforcer::QuotaEnforcer(QuotaOptions options) : options_(options) {
  if (!(options_.limit > 0) || options_.window.count() <= 0) {
    throw std::invalid_argument("the API server's quota needs a positive limit and window");
  }
}

QuotaEnforcer::Draw QuotaEnforcer::draw(Bucket& bucket, SystemTime now) const {
  Draw d;
  const double limit = options_.limit;
  const auto window_us = std::chrono::duration_cast<std::chrono::microseconds>(options_.window).count();
  if (options_.algorithm == QuotaAlgorithm::fixed_window) {
    // Aligned on the epoch, so X-RateLimit-Reset moves by one window at each reset.
    const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
    const std::int64_t index = now_us / window_us;
    if (index != bucket.window_index) {
      bucket.window_index = index;
      bucket.used = 0;
    }
    d.allowed = bucket.used + 1 <= limit;
    if (d.allowed) bucket.used += 1;
    d.remaining = limit - bucket.used;
    d.reset_at = SystemTime(std::chrono::duration_cast<SystemTime::duration>(
        std::chrono::microseconds((index + 1) * window_us)));
    d.reset_in = std::chrono::ceil<milliseconds>(d.reset_at - now);
    return d;
  }
  const double rate = limit / (static_cast<double>(window_us) / 1e6);
  if (bucket.tokens < 0) {
    bucket.tokens = limit;
    bucket.updated = now;
  }
  const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
  bucket.tokens = std::min(limit, bucket.tokens + rate * std::max(elapsed, 0.0));
  bucket.updated = std::max(bucket.updated, now);
  d.allowed = bucket.tokens >= 1;
  if (d.allowed) bucket.tokens -= 1;
  d.remaining = bucket.tokens;
  // Served: when the bucket is full again. Refused: when one more is allowed.
  const double seconds = d.allowed ? (limit - bucket.tokens) / rate : (1 - bucket.tokens) / rate;
  d.reset_in = milliseconds(static_cast<std::int64_t>(std::ceil(seconds * 1000)));
  d.reset_at = now + d.reset_in;
  return d;
}

QuotaVerdict QuotaEnforcer::verdict(const Draw& d) const {
  QuotaVerdict v;
  v.allowed = d.allowed;
  const std::string retry_after = std::to_string(std::max<std::int64_t>(1, ceil_seconds(d.reset_in)));
  switch (options_.mode) {
    case QuotaMode::github:
      v.headers = {{"X-RateLimit-Limit", whole(options_.limit)},
                   {"X-RateLimit-Remaining", whole(d.remaining)},
                   {"X-RateLimit-Used", whole(options_.limit - d.remaining)},
                   {"X-RateLimit-Reset", std::to_string(epoch_seconds_ceil(d.reset_at))},
                   {"X-RateLimit-Resource", "core"}};
      break;
    case QuotaMode::ietf: {
      const auto window_s = std::max<std::int64_t>(1, ceil_seconds(options_.window));
      v.headers = {{"RateLimit-Policy", "\"default\";q=" + whole(options_.limit) + ";w=" + std::to_string(window_s)},
                   {"RateLimit", "\"default\";r=" + whole(d.remaining) + ";t=" + std::to_string(ceil_seconds(d.reset_in))}};
      if (!d.allowed) v.headers.emplace_back("Retry-After", retry_after);
      break;
    }
    case QuotaMode::retry_after:
      if (!d.allowed) v.headers.emplace_back("Retry-After", retry_after);
      break;
    case QuotaMode::secondary:
      if (!d.allowed) v.headers.emplace_back("Retry-After", retry_after);
      break;
    case QuotaMode::none:
      break;
  }
  if (!d.allowed) {
    const bool secondary = options_.mode == QuotaMode::secondary;
    v.status = secondary ? 403 : 429;
    v.body = nlohmann::json{{"message", secondary ? "You have exceeded a secondary rate limit. Please wait a few "
                                                    "minutes before you try again."
                                                  : "API rate limit exceeded"}}
                 .dump();
  }
  return v;
}

QuotaVerdict QuotaEnforcer::admit(std::string_view api_key) {
  const std::lock_guard lock(mutex_);
  auto it = keys_.find(api_key);
  if (it == keys_.end()) it = keys_.emplace(std::string(api_key), Bucket{}).first;
  const Draw d = draw(it->second, std::chrono::system_clock::now());
  if (d.allowed) {
    ++counts_.served;
  } else {
    ++counts_.refused;
  }
  return verdict(d);
}

std::optional<std::string> QuotaEnforcer::handle(std::string_view path) const {
  if (path != "/quota/stats") return std::nullopt;
  const std::lock_guard lock(mutex_);
  return nlohmann::json{{"served", counts_.served},
                        {"refused", counts_.refused},
                        {"keys", keys_.size()},
                        {"limit", options_.limit},
                        {"window_ms", options_.window.count()},
                        {"mode", std::string(kModeNames[static_cast<std::size_t>(options_.mode)])},
                        {"algorithm", options_.algorithm == QuotaAlgorithm::fixed_window ? "fixed-window"
                                                                                         : "token-bucket"}}
      .dump();
}

QuotaCounts QuotaEnforcer::totals() const {
  const std::lock_guard lock(mutex_);
  return counts_;
}

void QuotaEnforcer::reset_counts() {
  const std::lock_guard lock(mutex_);
  counts_ = {};
}

}  // namespace webhookdb::tools
