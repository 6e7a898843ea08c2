// The quota governor's policy (quota::), the in-process limiter and the
// HttpClient decorator. Header parsing is in rate_limit_headers.cpp.
#include "webhookdb/rate_limiter.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "webhookdb/codec.hpp"

namespace webhookdb {
namespace {

using std::chrono::milliseconds;

double seconds_between(Timestamp from, Timestamp to) {
  if (to <= from) return 0.0;
  return std::chrono::duration<double>(to - from).count();
}

milliseconds ceil_ms(double seconds) {
  return milliseconds(static_cast<std::int64_t>(std::ceil(std::max(seconds, 0.0) * 1000.0)));
}

bool finite_non_negative(double x) { return std::isfinite(x) && x >= 0; }

void set_rate(QuotaState& state, double rate, const GovernorOptions& options) {
  state.rate = std::max(rate, options.min_rate);
  state.burst = std::max(1.0, state.rate * options.burst_seconds);
  state.tokens = std::min(state.tokens, state.burst);
}

// Nothing is earned while paused; when the pause ends one request may go at
// once (the probe whose answer says what the quota is now).
void pause_until(QuotaState& state, Timestamp until) {
  state.paused_until = std::max(state.paused_until, until);
  // (Below zero stays: permits reserved ahead are still owed.)
  if (state.tokens >= 0) state.tokens = 1.0;
  state.updated = std::max(state.updated, state.paused_until);
}

// The rate that was being granted: the last full period (a second or
// more), or the permits of the current one if more. Not count / elapsed: 20
// permits in the 40 ms before the first 429 of a 20-a-second quota are 20
// a second, not 500.
double recent_rate(const QuotaState& state, Timestamp /*now*/) { return std::max(state.recent_rate, state.count); }

void count_granted(QuotaState& state, double granted, Timestamp now) {
  if (state.count_since == Timestamp{}) state.count_since = now;
  const double elapsed = seconds_between(state.count_since, now);
  if (elapsed >= 1.0) {
    state.recent_rate = state.count / elapsed;
    state.count = 0;
    state.count_since = now;
  }
  state.count += granted;
}

// Learns the window from the reset instant moving by a whole window at once
// (X-RateLimit-Reset as an epoch). A reset given in seconds from now moves
// smoothly with the clock and teaches nothing: jumps under 900 ms are noise.
void learn_window(QuotaState& state, milliseconds reset_in, Timestamp now) {
  const Timestamp reset_at = now + reset_in;
  if (state.last_reset_at != Timestamp{} && reset_at > state.last_reset_at) {
    const auto jump = std::chrono::duration_cast<milliseconds>(reset_at - state.last_reset_at);
    if (jump >= milliseconds(900)) state.window = jump;
  }
  if (reset_at > state.last_reset_at) state.last_reset_at = reset_at;
}

void observe_advertised(QuotaState& state, const QuotaSignal& signal, Timestamp now, const GovernorOptions& options) {
  if (signal.reset_in) learn_window(state, *signal.reset_in, now);
  const milliseconds window = signal.window.value_or(state.window);
  double pace = -1;
  if (signal.limit && window > milliseconds(0)) {
    pace = *signal.limit / std::chrono::duration<double>(window).count();
  } else if (signal.remaining && *signal.remaining > 0 && signal.reset_in) {
    // Nothing remaining says when, not how fast: the pause below.
    pace = *signal.remaining / std::max(std::chrono::duration<double>(*signal.reset_in).count(), 1.0);
  }
  if (pace >= 0) {
    state.mode = QuotaMode::advertised;
    set_rate(state, pace * options.advertised_margin, options);
  }
  if (signal.remaining && *signal.remaining <= 0 && signal.reset_in) {
    pause_until(state, now + *signal.reset_in);
    return;
  }
  if (state.mode != QuotaMode::advertised || !signal.remaining) return;
  state.tokens = std::min(state.tokens, *signal.remaining);
}

void observe_limited(QuotaState& state, const QuotaSignal& signal, Timestamp now, const GovernorOptions& options) {
  std::optional<milliseconds> wait = signal.retry_after;
  if (!wait && signal.remaining && *signal.remaining <= 0 && signal.reset_in) wait = signal.reset_in;
  pause_until(state, now + wait.value_or(options.default_pause));
  if (state.mode == QuotaMode::open) {
    // Start from what was being granted when the API said stop.
    state.mode = QuotaMode::aimd;
    set_rate(state, std::max(recent_rate(state, now) * options.decrease, options.initial_aimd_rate), options);
    state.last_decrease = now;
  } else if (state.mode == QuotaMode::aimd && now - state.last_decrease >= options.decrease_cooldown) {
    set_rate(state, state.rate * options.decrease, options);
    state.last_decrease = now;
  }
}

}  // namespace

void RateLimitOptions::validate(const std::string& owner) const {
  if (!finite_non_negative(limit.per_second) || !finite_non_negative(limit.burst)) {
    throw BrokenSpecification(owner + ": rate_limit.limit needs a finite, non-negative per_second and burst");
  }
  if (limit.per_second == 0 && limit.burst > 0) {
    throw BrokenSpecification(owner + ": rate_limit.limit has a burst but no per_second");
  }
}

void GovernorOptions::validate(const std::string& owner) const {
  const bool fractions = decrease > 0 && decrease < 1 && advertised_margin > 0 && advertised_margin <= 1;
  const bool rates = finite_non_negative(increase_fraction_per_second) &&
                     finite_non_negative(min_increase_per_second) && min_rate > 0 && std::isfinite(min_rate) &&
                     burst_seconds > 0 && std::isfinite(burst_seconds);
  if (!fractions || !rates || decrease_cooldown.count() < 0 || default_pause.count() < 0) {
    throw BrokenSpecification(owner + ": governor options out of range (decrease and advertised_margin in (0, 1], "
                                      "rates and burst_seconds positive, durations non-negative)");
  }
}

// The service, then what identifies its credential: the order of the key it makes.
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters)
std::string default_quota_key(std::string_view service, std::string_view credential) {
  if (codec::trim(credential).empty()) return std::string(service) + ":-";
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  EVP_Digest(credential.data(), credential.size(), digest.data(), &length, EVP_sha256(), nullptr);
  const std::string hex = codec::hex_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), length));
  return std::string(service) + ":" + hex.substr(0, 16);
}

namespace quota {

void refill(QuotaState& state, Timestamp now, const GovernorOptions& options) {
  if (state.updated == Timestamp{}) {
    state.updated = now;
    return;
  }
  const double elapsed = seconds_between(state.updated, now);
  if (elapsed <= 0) return;
  // Probe upward only while the bucket is being drained: an idle key would
  // otherwise grow a rate it never tested.
  if (state.mode == QuotaMode::aimd && state.tokens < 1.0) {
    const double step = std::max(options.min_increase_per_second, state.rate * options.increase_fraction_per_second);
    state.rate += step * elapsed;
    state.burst = std::max(1.0, state.rate * options.burst_seconds);
  }
  if (state.mode != QuotaMode::open) state.tokens = std::min(state.burst, state.tokens + state.rate * elapsed);
  state.updated = now;
}

void declare(QuotaState& state, const RateLimit& limit, Timestamp now, const GovernorOptions& options) {
  if (limit.per_second <= 0 || state.mode == QuotaMode::advertised) return;
  refill(state, now, options);
  const bool fresh = state.mode == QuotaMode::open;
  state.mode = QuotaMode::declared;
  state.rate = limit.per_second;
  state.burst = limit.burst > 0 ? limit.burst : std::max(1.0, limit.per_second);
  state.tokens = fresh ? state.burst : std::min(state.tokens, state.burst);
}

void observe(QuotaState& state, const QuotaSignal& signal, Timestamp now, const GovernorOptions& options) {
  refill(state, now, options);
  if (signal.advertised()) observe_advertised(state, signal, now, options);
  if (signal.limited) observe_limited(state, signal, now, options);
}

Take take(QuotaState& state, double want, Timestamp now, const GovernorOptions& options) {
  refill(state, now, options);
  if (now < state.paused_until) return {0, std::chrono::ceil<milliseconds>(state.paused_until - now)};
  if (state.mode == QuotaMode::open) {
    count_granted(state, want, now);
    return {want, milliseconds(0)};
  }
  if (state.tokens >= 1.0) {
    const double granted = std::min(want, std::floor(state.tokens));
    state.tokens -= granted;
    count_granted(state, granted, now);
    return {granted, milliseconds(0)};
  }
  return {0, std::max(milliseconds(1), ceil_ms((1.0 - state.tokens) / state.rate))};
}

Take reserve(QuotaState& state, double want, Timestamp now, milliseconds max_wait, const GovernorOptions& options) {
  refill(state, now, options);
  if (now < state.paused_until) return {0, std::chrono::ceil<milliseconds>(state.paused_until - now)};
  if (state.mode == QuotaMode::open) {
    count_granted(state, want, now);
    return {want, milliseconds(0)};
  }
  const double horizon = state.rate * std::chrono::duration<double>(max_wait).count();
  const double granted = std::min(want, std::floor(state.tokens + horizon));
  if (granted < 1.0) return {0, std::max(milliseconds(1), ceil_ms((1.0 - state.tokens) / state.rate))};
  state.tokens -= granted;
  count_granted(state, granted, now);
  return {granted, state.tokens >= 0 ? milliseconds(0) : ceil_ms(-state.tokens / state.rate)};
}

}  // namespace quota

// --- MemoryRateLimiter ---

MemoryRateLimiter::MemoryRateLimiter(std::shared_ptr<Clock> clock, std::shared_ptr<Sleeper> sleeper,
                                     GovernorOptions options)
    : clock_(clock ? std::move(clock) : system_clock()),
      sleeper_(sleeper ? std::move(sleeper) : real_sleeper()),
      options_(options) {
  options_.validate("MemoryRateLimiter");
}

void MemoryRateLimiter::acquire(const std::string& key, QuotaLane lane, const CancellationToken& cancel) {
  const auto index = static_cast<std::size_t>(lane);
  {
    const std::lock_guard lock(mutex_);
    ++keys_[key].waiting[index];
  }
  struct Leave {
    MemoryRateLimiter& self;
    const std::string& key;
    std::size_t index;
    ~Leave() {
      const std::lock_guard lock(self.mutex_);
      --self.keys_[key].waiting[index];
    }
  } leave{*this, key, index};
  for (;;) {
    cancel.throw_if_cancelled();
    milliseconds wait{1};
    {
      const std::lock_guard lock(mutex_);
      Entry& entry = keys_[key];
      const bool higher_waiting =
          std::any_of(entry.waiting, entry.waiting + index, [](int waiting) { return waiting > 0; });
      const Timestamp now = clock_->now();
      if (!higher_waiting) {
        const auto taken = quota::take(entry.state, 1.0, now, options_);
        if (taken.granted >= 1.0) {
          ++granted_;
          return;
        }
        wait = taken.wait;
      } else if (entry.state.rate > 0) {
        // A higher lane is waiting: let it take the next token first.
        wait = std::max(milliseconds(1), ceil_ms(1.0 / entry.state.rate));
      }
    }
    sleeper_->sleep_for(wait, cancel);
  }
}

void MemoryRateLimiter::observe(const std::string& key, const QuotaSignal& signal) {
  const std::lock_guard lock(mutex_);
  quota::observe(keys_[key].state, signal, clock_->now(), options_);
}

void MemoryRateLimiter::declare(const std::string& key, const RateLimit& limit) {
  const std::lock_guard lock(mutex_);
  quota::declare(keys_[key].state, limit, clock_->now(), options_);
}

QuotaState MemoryRateLimiter::state(const std::string& key) const {
  const std::lock_guard lock(mutex_);
  const auto it = keys_.find(key);
  return it == keys_.end() ? QuotaState{} : it->second.state;
}

std::uint64_t MemoryRateLimiter::granted() const {
  const std::lock_guard lock(mutex_);
  return granted_;
}

// --- RateLimitedHttpClient ---

RateLimitedHttpClient::RateLimitedHttpClient(std::shared_ptr<HttpClient> next, std::shared_ptr<RateLimiter> limiter,
                                             Resolver resolve, std::shared_ptr<Clock> clock)
    : HttpClientDecorator(std::move(next)),
      limiter_(std::move(limiter)),
      clock_(clock ? std::move(clock) : system_clock()),
      resolve_(std::move(resolve)) {
  if (!limiter_) throw InvalidPrecondition("RateLimitedHttpClient needs a rate limiter");
}

RateLimitedHttpClient::RateLimitedHttpClient(std::shared_ptr<HttpClient> next, std::shared_ptr<RateLimiter> limiter,
                                             QuotaBinding binding, std::shared_ptr<Clock> clock)
    : RateLimitedHttpClient(std::move(next), std::move(limiter), Resolver{[binding] { return binding; }},
                            std::move(clock)) {}

std::optional<QuotaBinding> RateLimitedHttpClient::binding() {
  const std::lock_guard lock(mutex_);
  if (!binding_ && resolve_) {
    QuotaBinding resolved = resolve_();
    if (resolved.limit.per_second > 0) limiter_->declare(resolved.key, resolved.limit);
    binding_ = std::move(resolved);
    resolve_ = nullptr;
  }
  return binding_;
}

void RateLimitedHttpClient::detach() {
  const std::lock_guard lock(mutex_);
  resolve_ = nullptr;
}

HttpResponse RateLimitedHttpClient::send(const HttpRequest& request, const CancellationToken& cancel) {
  const auto bound = binding();
  if (!bound) return next().send(request, cancel);
  limiter_->acquire(bound->key, QuotaLaneScope::current(), cancel);
  HttpResponse response;
  try {
    response = next().send(request, cancel);
  } catch (const HttpError& error) {
    limiter_->observe(bound->key, parse_quota_signal(error.status(), error.headers(), clock_->now()));
    throw;
  }
  limiter_->observe(bound->key, parse_quota_signal(response, clock_->now()));
  return response;
}

// --- QuotaLaneScope ---

namespace {
thread_local QuotaLane current_lane = QuotaLane::webhook;
}

QuotaLaneScope::QuotaLaneScope(QuotaLane lane) noexcept : previous_(current_lane) { current_lane = lane; }
QuotaLaneScope::~QuotaLaneScope() { current_lane = previous_; }
QuotaLane QuotaLaneScope::current() noexcept { return current_lane; }

}  // namespace webhookdb
