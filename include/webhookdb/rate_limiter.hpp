#pragma once
// The quota governor (issue 19): a RateLimiter is consulted before every
// request a replicator makes (backfill pages, enrichment fetches) and told
// what each response said about the quota. Requests are grouped by a quota
// key: the replicator's service plus a hash of its credential (never the
// credential), or a key the replicator names when several integrations share
// one token. The limit a key is held to comes, in order of preference, from
// what the API advertises (X-RateLimit-*, IETF RateLimit-*), from a static
// limit the replicator declares (BackfillOptions::rate_limit), or, with
// neither, from AIMD: unlimited until the first 429, then back off by a
// factor and probe upward slowly.
//
//   auto limiter = std::make_shared<MemoryRateLimiter>();
//   ReplicatorContext context{.http = curl, .rate_limiter = limiter, ...};
//   // every context().http request of a replicator built on it now waits
//   // for a permit and feeds the response's rate-limit headers back.
//
// Implementations: MemoryRateLimiter (one process, here) and
// pg::PgRateLimiter (webhookdb/pg/rate_limiter.hpp: every worker process
// draws from one budget per key).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/clock.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {

// Whose request it is, highest priority first: a full backfill never starves
// the incremental syncs and webhook enrichments sharing its quota.
enum class QuotaLane { webhook = 0, incremental = 1, full = 2 };
inline constexpr int kQuotaLanes = 3;

// A static limit: `per_second` permits a second on average, at most `burst`
// at once (0: one second's worth).
struct RateLimit {
  double per_second = 0;
  double burst = 0;
};

// A replicator's quota settings (BackfillOptions::rate_limit).
struct WEBHOOKDB_EXPORT RateLimitOptions {
  // Names a quota shared by several integrations (one token used for many
  // repositories). Empty: default_quota_key(service, credential).
  std::string quota_key;
  // For APIs that advertise nothing. per_second 0: none declared (the
  // governor reads the headers, or adapts).
  RateLimit limit;

  // Throws BrokenSpecification naming `owner` for a negative or non-finite
  // rate or burst.
  void validate(const std::string& owner) const;
};

// "<service>:<first 16 hex digits of SHA-256 of the credential>"; the
// credential itself never appears. A blank credential gives "<service>:-".
[[nodiscard]] WEBHOOKDB_EXPORT std::string default_quota_key(std::string_view service,
                                                             std::string_view credential);

// What one response said about the quota. Every header form is folded into
// these fields by parse_quota_signal.
struct QuotaSignal {
  int status = 0;
  // The response means "slow down": 429; 503 with Retry-After; 403 with
  // Retry-After or a remaining count of 0 (GitHub's secondary and primary
  // limits).
  bool limited = false;
  std::optional<std::chrono::milliseconds> retry_after;
  // Requests allowed per window, left in this window, and time until the
  // window resets (all as advertised).
  std::optional<double> limit;
  std::optional<double> remaining;
  std::optional<std::chrono::milliseconds> reset_in;
  // The window's length when the server says it (RateLimit-Policy's w=).
  std::optional<std::chrono::milliseconds> window;

  [[nodiscard]] bool advertised() const noexcept { return limit.has_value() || remaining.has_value(); }
};

// Reads X-RateLimit-Limit/-Remaining/-Used/-Reset (reset as epoch seconds or
// milliseconds, or as seconds from now), X-RateLimit-Reset-After,
// RateLimit-Limit/-Remaining/-Reset, RateLimit-Policy ("100;w=60" or
// '"name";q=100;w=60') and RateLimit ("limit=100, remaining=5, reset=30" or
// '"name";r=5;t=30'), and Retry-After (seconds or HTTP date). Malformed
// values are ignored, never an error: the response is the API's, not ours.
// With several policies the most constrained (least remaining) wins.
[[nodiscard]] WEBHOOKDB_EXPORT QuotaSignal parse_quota_signal(int status, const Headers& headers,
                                                              Timestamp now);
[[nodiscard]] WEBHOOKDB_EXPORT QuotaSignal parse_quota_signal(const HttpResponse& response, Timestamp now);

// How the governor adapts. Defaults chosen for the targets: a 0.8
// decrease keeps an AIMD sawtooth between 80% and 100% of an unadvertised
// limit (mean about 90%), and +1%/s (at least 0.5 permit/s each second)
// takes about 20 s to climb back, so a cycle of thousands of requests costs
// a handful of 429s.
struct WEBHOOKDB_EXPORT GovernorOptions {
  double decrease = 0.8;
  double increase_fraction_per_second = 0.01;
  double min_increase_per_second = 0.5;
  double min_rate = 0.1;
  // AIMD starts from the rate granted when the first 429 came, times
  // `decrease`, but never below this (a 429 on the very first request).
  double initial_aimd_rate = 1.0;
  // One decrease per cooldown: the 429s of requests already in flight when
  // the first came back are one signal, not several.
  std::chrono::milliseconds decrease_cooldown{1000};
  // A 429 without Retry-After pauses the key this long.
  std::chrono::milliseconds default_pause{1000};
  // Advertised limits are paced at this fraction of limit/window, so
  // requests in flight and clock drift do not spill into the next window.
  double advertised_margin = 0.98;
  // Burst in seconds of the current rate (at least one permit).
  double burst_seconds = 0.1;

  void validate(const std::string& owner) const;
};

enum class QuotaMode {
  // Nothing known: no wait until the first "slow down".
  open = 0,
  // A static limit declared by the replicator.
  declared = 1,
  // Adapting to 429s (AIMD).
  aimd = 2,
  // Paced by what the API advertises.
  advertised = 3,
};

// One key's bucket and what the governor knows. The policy functions below
// are the whole algorithm; the memory and PostgreSQL limiters only store
// this and apply them under their own lock.
struct QuotaState {
  QuotaMode mode = QuotaMode::open;
  double rate = 0;  // permits per second (not used while open)
  double burst = 1;
  double tokens = 0;
  Timestamp updated{};
  Timestamp paused_until{};
  Timestamp last_decrease{};
  // The window inferred from successive reset instants when the API does
  // not say it (X-RateLimit-Reset moves by one window at each reset).
  std::chrono::milliseconds window{0};
  Timestamp last_reset_at{};
  // Permits granted recently, to start AIMD from the rate that hit the limit.
  Timestamp count_since{};
  double count = 0;
  double recent_rate = 0;
};

namespace quota {
// Adds the tokens earned since `state.updated` (and, under AIMD, the upward
// probe), capped at the burst.
WEBHOOKDB_EXPORT void refill(QuotaState& state, Timestamp now, const GovernorOptions& options);
// A static limit: used unless the API advertises one.
WEBHOOKDB_EXPORT void declare(QuotaState& state, const RateLimit& limit, Timestamp now,
                              const GovernorOptions& options);
// Folds a response's signal into the state.
WEBHOOKDB_EXPORT void observe(QuotaState& state, const QuotaSignal& signal, Timestamp now,
                              const GovernorOptions& options);
// Takes up to `want` permits (all of them while open). Returns how many were
// taken and, when none, how long until one may be.
struct Take {
  double granted = 0;
  std::chrono::milliseconds wait{0};
};
[[nodiscard]] WEBHOOKDB_EXPORT Take take(QuotaState& state, double want, Timestamp now,
                                         const GovernorOptions& options);
// Like take, but reserves: the bucket may go below zero, and the permits
// granted may be used only after `wait` (when the bucket would have earned
// them). One call per batch instead of one poll per waiting request: what
// the PostgreSQL limiter needs so that waiting processes do not hammer the
// row. At most `max_wait` ahead; nothing granted while paused.
[[nodiscard]] WEBHOOKDB_EXPORT Take reserve(QuotaState& state, double want, Timestamp now,
                                            std::chrono::milliseconds max_wait,
                                            const GovernorOptions& options);
}  // namespace quota

class WEBHOOKDB_EXPORT RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // Blocks until `key` has a permit for one request, or throws Cancelled.
  virtual void acquire(const std::string& key, QuotaLane lane, const CancellationToken& cancel) = 0;
  // What a response (or an HTTP error's status and headers) said.
  virtual void observe(const std::string& key, const QuotaSignal& signal) = 0;
  // A replicator's static limit for `key`. Idempotent.
  virtual void declare(const std::string& key, const RateLimit& limit) = 0;
};

// One process: a token bucket per key under a mutex; waits through the
// injected Sleeper, so tests under a ManualClock run instantly. Higher lanes
// go first: a request in a lower lane waits while one in a higher lane of
// the same key is waiting.
class WEBHOOKDB_EXPORT MemoryRateLimiter final : public RateLimiter {
 public:
  explicit MemoryRateLimiter(std::shared_ptr<Clock> clock = nullptr, std::shared_ptr<Sleeper> sleeper = nullptr,
                             GovernorOptions options = {});
  void acquire(const std::string& key, QuotaLane lane, const CancellationToken& cancel) override;
  void observe(const std::string& key, const QuotaSignal& signal) override;
  void declare(const std::string& key, const RateLimit& limit) override;

  // A copy of a key's state (tests, metrics).
  [[nodiscard]] QuotaState state(const std::string& key) const;
  // Permits granted so far, all keys.
  [[nodiscard]] std::uint64_t granted() const;

 private:
  struct Entry {
    QuotaState state;
    int waiting[kQuotaLanes] = {0, 0, 0};
  };
  std::shared_ptr<Clock> clock_;
  std::shared_ptr<Sleeper> sleeper_;
  GovernorOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> keys_;
  std::uint64_t granted_ = 0;
};

// Where a request's quota goes: the key and the static limit to declare
// once (the lane is the thread's QuotaLaneScope). Resolved on the first request (a Replicator's options are not
// readable in its constructor).
struct QuotaBinding {
  std::string key;
  RateLimit limit;
};

// The HttpClient decorator that makes every request wait for a permit and
// feeds each response (a 2xx, or an HttpError's status and headers) back to
// the limiter. A Replicator whose context has a rate_limiter wraps its
// context().http in one, so replicators need no change.
class WEBHOOKDB_EXPORT RateLimitedHttpClient final : public HttpClientDecorator {
 public:
  using Resolver = std::function<QuotaBinding()>;
  RateLimitedHttpClient(std::shared_ptr<HttpClient> next, std::shared_ptr<RateLimiter> limiter, Resolver resolve,
                        std::shared_ptr<Clock> clock = nullptr);
  RateLimitedHttpClient(std::shared_ptr<HttpClient> next, std::shared_ptr<RateLimiter> limiter,
                        QuotaBinding binding, std::shared_ptr<Clock> clock = nullptr);
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override;

  // Drops the resolver (its owner is going away); a binding already
  // resolved stays in use, an unresolved one sends without a quota.
  void detach();

 private:
  [[nodiscard]] std::optional<QuotaBinding> binding();

  std::shared_ptr<RateLimiter> limiter_;
  std::shared_ptr<Clock> clock_;
  std::mutex mutex_;
  Resolver resolve_;
  std::optional<QuotaBinding> binding_;
};

// The lane requests on this thread are charged to while a scope lives
// (Replicator::backfill sets incremental or full; the default is webhook).
class WEBHOOKDB_EXPORT QuotaLaneScope {
 public:
  explicit QuotaLaneScope(QuotaLane lane) noexcept;
  ~QuotaLaneScope();
  QuotaLaneScope(const QuotaLaneScope&) = delete;
  QuotaLaneScope& operator=(const QuotaLaneScope&) = delete;
  [[nodiscard]] static QuotaLane current() noexcept;

 private:
  QuotaLane previous_;
};

}  // namespace webhookdb
