// PgRateLimiter: one token bucket row per quota key, leased in small batches
// (the design is in the header).
#include "webhookdb/pg/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

#include "pg/pool_impl.hpp"
#include "pg/sql.hpp"

namespace webhookdb::pg {
namespace {

constexpr const char* kRateLimitsComponent = "rate_limits";
constexpr int kMaxQuotaAttempts = 50;
using std::chrono::milliseconds;

long long quota_micros(Timestamp t) { return static_cast<long long>(t.time_since_epoch().count()); }
Timestamp quota_from_micros(long long us) { return Timestamp(std::chrono::microseconds(us)); }

const char* const kQuotaColumns =
    "mode, rate, burst, tokens, updated_us, paused_until_us, last_decrease_us, window_ms, last_reset_at_us,"
    " count_since_us, recent_count, recent_rate, granted, leases, webhook_demand_us, incremental_demand_us";

PgQuotaRow read_quota_row(const pqxx::row& r) {
  PgQuotaRow row;
  QuotaState& s = row.state;
  s.mode = static_cast<QuotaMode>(r["mode"].as<int>());
  s.rate = r["rate"].as<double>();
  s.burst = r["burst"].as<double>();
  s.tokens = r["tokens"].as<double>();
  s.updated = quota_from_micros(r["updated_us"].as<long long>());
  s.paused_until = quota_from_micros(r["paused_until_us"].as<long long>());
  s.last_decrease = quota_from_micros(r["last_decrease_us"].as<long long>());
  s.window = milliseconds(r["window_ms"].as<long long>());
  s.last_reset_at = quota_from_micros(r["last_reset_at_us"].as<long long>());
  s.count_since = quota_from_micros(r["count_since_us"].as<long long>());
  s.count = r["recent_count"].as<double>();
  s.recent_rate = r["recent_rate"].as<double>();
  row.granted = r["granted"].as<long long>();
  row.leases = r["leases"].as<long long>();
  row.demand_until[static_cast<std::size_t>(QuotaLane::webhook)] =
      quota_from_micros(r["webhook_demand_us"].as<long long>());
  row.demand_until[static_cast<std::size_t>(QuotaLane::incremental)] =
      quota_from_micros(r["incremental_demand_us"].as<long long>());
  return row;
}

}  // namespace

PgRateLimiter::PgRateLimiter(std::shared_ptr<ConnectionPool> pool, PgRateLimiterOptions options)
    : pool_(std::move(pool)), options_(std::move(options)) {
  if (!pool_) throw InvalidPrecondition("PgRateLimiter needs a connection pool");
  options_.governor.validate("PgRateLimiter");
  if (!(options_.lease_batch_seconds > 0) || options_.max_lease_batch == 0 || options_.open_lease_batch == 0 ||
      options_.lease_ttl.count() <= 0 || options_.max_reservation.count() < 0) {
    throw InvalidPrecondition(
        "PgRateLimiter needs a positive lease_batch_seconds, max_lease_batch, open_lease_batch and lease_ttl");
  }
  if (options_.lane_demand_ttl.count() <= 0 || options_.lower_lane_poll.count() <= 0) {
    throw InvalidPrecondition("PgRateLimiter needs a positive lane_demand_ttl and lower_lane_poll");
  }
  if (!options_.clock) options_.clock = system_clock();
  if (!options_.sleeper) options_.sleeper = real_sleeper();
  table_ = sql::qualified(pool_->config().schema, "webhookdb_rate_limits");
  select_sql_ = std::string("SELECT ") + kQuotaColumns + ", version FROM " + table_ + " WHERE quota_key = $1";
  write_sql_ = "UPDATE " + table_ +
               " SET mode = $2, rate = $3, burst = $4, tokens = $5, updated_us = $6, paused_until_us = $7,"
               " last_decrease_us = $8, window_ms = $9, last_reset_at_us = $10, count_since_us = $11,"
               " recent_count = $12, recent_rate = $13, granted = $14, leases = $15, webhook_demand_us = $16,"
               " incremental_demand_us = $17, version = version + 1"
               " WHERE quota_key = $1 AND version = $18";
  // Per table: a pool may serve limiters of several schemas.
  const auto suffix = std::to_string(std::hash<std::string>{}(table_) % 1'000'000'007ULL);
  select_name_ = "webhookdb_rate_limit_read_" + suffix;
  write_name_ = "webhookdb_rate_limit_write_" + suffix;
  if (options_.migrate) migrate();
}

const std::vector<Migration>& PgRateLimiter::migrations() {
  // Times are microseconds since the epoch (the policy's own unit, no
  // parsing on the hot path); 0 is "never".
  static const std::vector<Migration> steps = {
      {1, "create webhookdb_rate_limits",
       R"SQL(
CREATE TABLE IF NOT EXISTS {schema}.webhookdb_rate_limits (
  quota_key text PRIMARY KEY,
  mode smallint NOT NULL DEFAULT 0,
  rate double precision NOT NULL DEFAULT 0,
  burst double precision NOT NULL DEFAULT 1,
  tokens double precision NOT NULL DEFAULT 0,
  updated_us bigint NOT NULL DEFAULT 0,
  paused_until_us bigint NOT NULL DEFAULT 0,
  last_decrease_us bigint NOT NULL DEFAULT 0,
  window_ms bigint NOT NULL DEFAULT 0,
  last_reset_at_us bigint NOT NULL DEFAULT 0,
  count_since_us bigint NOT NULL DEFAULT 0,
  recent_count double precision NOT NULL DEFAULT 0,
  recent_rate double precision NOT NULL DEFAULT 0,
  granted bigint NOT NULL DEFAULT 0,
  leases bigint NOT NULL DEFAULT 0,
  version bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);
)SQL"},
      // Lanes across processes: until when a waiter of the webhook and of the
      // incremental lane wants permits (the header says how they are used).
      {2, "webhookdb_rate_limits: demand of the higher lanes",
       R"SQL(
ALTER TABLE {schema}.webhookdb_rate_limits
  ADD COLUMN IF NOT EXISTS webhook_demand_us bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS incremental_demand_us bigint NOT NULL DEFAULT 0;
)SQL"},
  };
  return steps;
}

void PgRateLimiter::migrate() { pg::migrate(*pool_, kRateLimitsComponent, migrations()); }

QuotaState PgRateLimiter::update(const std::string& key,
                                 const std::function<void(QuotaState&, PgQuotaRow&)>& change) {
  // Optimistic: read, apply the policy here, write back only if nobody wrote
  // in between (version), else read again. Two prepared autocommit
  // statements on one connection and no row lock held across round trips:
  // at ~40 writes a second per key conflicts are rare, and a slow process
  // never makes the others queue behind its lock. (The first version, SELECT
  // ... FOR UPDATE in a transaction with unprepared statements, took 4 round
  // trips and about twice the server CPU per lease.)
  const auto started = std::chrono::steady_clock::now();
  PgQuotaRow row;
  std::uint64_t statements = 0;
  pool_->impl().autocommit("updating a quota key's row in " + table_, [&](pqxx::nontransaction& tx) {
    tx.conn().prepare(select_name_, select_sql_);
    tx.conn().prepare(write_name_, write_sql_);
    for (int attempt = 0;; ++attempt) {
      if (attempt == kMaxQuotaAttempts) {
        throw StoreError("rate limiter: the row of a quota key kept changing under " +
                             std::to_string(kMaxQuotaAttempts) + " attempts to update it in " + table_,
                         true);
      }
      const pqxx::result current = tx.exec_prepared(select_name_, key);
      ++statements;
      if (current.empty()) {
        tx.exec_params("INSERT INTO " + table_ + " (quota_key) VALUES ($1) ON CONFLICT DO NOTHING", key);
        ++statements;
        continue;
      }
      row = read_quota_row(current[0]);
      const auto version = current[0]["version"].as<long long>();
      change(row.state, row);
      const QuotaState& q = row.state;
      ++statements;
      const pqxx::result written = tx.exec_prepared(
          write_name_, key, static_cast<int>(q.mode), q.rate, q.burst, q.tokens, quota_micros(q.updated),
          quota_micros(q.paused_until), quota_micros(q.last_decrease), static_cast<long long>(q.window.count()),
          quota_micros(q.last_reset_at), quota_micros(q.count_since), q.count, q.recent_rate,
          static_cast<long long>(row.granted), static_cast<long long>(row.leases),
          quota_micros(row.demand_until[static_cast<std::size_t>(QuotaLane::webhook)]),
          quota_micros(row.demand_until[static_cast<std::size_t>(QuotaLane::incremental)]), version);
      if (written.affected_rows() == 1) return;
    }
  });
  const auto took = std::chrono::steady_clock::now() - started;
  const std::lock_guard lock(mutex_);
  ++transactions_;
  statements_ += statements;
  transaction_time_ += std::chrono::duration_cast<std::chrono::microseconds>(took);
  local_[key].shadow = row.state;
  local_[key].seen = true;
  return row.state;
}

quota::Take PgRateLimiter::lease(QuotaState& state, PgQuotaRow& row, QuotaLane lane, double want,
                                 Timestamp now) const {
  const auto index = static_cast<std::size_t>(lane);
  const auto higher = row.demand_until.begin() + static_cast<std::ptrdiff_t>(index);
  const bool higher_demand =
      std::any_of(row.demand_until.begin(), higher, [now](Timestamp until) { return until > now; });
  if (lane != QuotaLane::full) {
    row.demand_until[index] = std::max(row.demand_until[index], now + options_.lane_demand_ttl);
  }
  quota::Take taken;
  if (higher_demand) {
    taken = spare(state, want, now);
  } else {
    // (Reserving less far ahead in the lower lanes would shorten a higher
    // lane's first wait, but at 100 ms instead of 250 the leases of 8
    // full-lane limiters at 200/s shrank from 4.8 to 2.7 permits and the
    // server CPU per permit rose from about 120-180 us to 200 us.)
    taken = quota::reserve(state, want, now, options_.max_reservation, options_.governor);
  }
  if (taken.granted >= 1) {
    row.granted += static_cast<std::int64_t>(taken.granted);
    ++row.leases;
  }
  return taken;
}

quota::Take PgRateLimiter::spare(QuotaState& state, double want, Timestamp now) const {
  quota::refill(state, now, options_.governor);
  if (now < state.paused_until) {
    return {0, std::max(options_.lower_lane_poll, std::chrono::ceil<milliseconds>(state.paused_until - now))};
  }
  if (state.mode == QuotaMode::open) return quota::take(state, want, now, options_.governor);
  // Only what the bucket holds beyond one lease of the higher lane, so that
  // its next lease finds its permits there instead of reserving behind ours.
  const double keep = std::min(lease_batch(state), std::max(0.0, state.burst - 1.0));
  const double spare = std::floor(state.tokens - keep);
  if (spare < 1) return {0, options_.lower_lane_poll};
  return quota::take(state, std::min(want, spare), now, options_.governor);
}

double PgRateLimiter::lease_batch(const QuotaState& state) const {
  if (state.mode == QuotaMode::open) return static_cast<double>(options_.open_lease_batch);
  const double batch = std::floor(state.rate * options_.lease_batch_seconds);
  return std::clamp(batch, 1.0, static_cast<double>(options_.max_lease_batch));
}

double PgRateLimiter::lease_size(const Local& local) const {
  const QuotaState& shadow = local.shadow;
  // Nothing read yet: one permit, so that a first lease of an open-sized
  // batch cannot land on a key that is limited.
  if (!local.seen) return 1.0;
  return lease_batch(shadow);
}

void PgRateLimiter::acquire(const std::string& key, QuotaLane lane, const CancellationToken& cancel) {
  const auto index = static_cast<std::size_t>(lane);
  {
    const std::lock_guard lock(mutex_);
    ++local_[key].waiting[index];
  }
  struct Leave {
    PgRateLimiter& self;
    const std::string& key;
    std::size_t index;
    ~Leave() {
      const std::lock_guard lock(self.mutex_);
      --self.local_[key].waiting[index];
    }
  } leave{*this, key, index};
  for (;;) {
    cancel.throw_if_cancelled();
    double want = 1;
    bool yield = false;
    {
      const std::lock_guard lock(mutex_);
      Local& local = local_[key];
      const Timestamp now = options_.clock->now();
      if (now >= local.expires) local.permits = 0;
      // Lanes order the threads of this process (not across processes).
      yield = std::any_of(local.waiting, local.waiting + index, [](int waiting) { return waiting > 0; });
      if (!yield && local.permits >= 1 && now >= local.shadow.paused_until) {
        local.permits -= 1;
        return;
      }
      want = lease_size(local);
    }
    if (yield) {
      options_.sleeper->sleep_for(milliseconds(1), cancel);
      continue;
    }
    const Timestamp now = options_.clock->now();
    quota::Take taken;
    (void)update(key, [&](QuotaState& state, PgQuotaRow& row) { taken = lease(state, row, lane, want, now); });
    if (taken.wait.count() > 0) options_.sleeper->sleep_for(taken.wait, cancel);
    if (taken.granted < 1) continue;
    const std::lock_guard lock(mutex_);
    Local& local = local_[key];
    local.permits += taken.granted - 1;
    local.expires = options_.clock->now() + options_.lease_ttl;
    return;
  }
}

void PgRateLimiter::observe(const std::string& key, const QuotaSignal& signal) {
  if (!signal.limited && !signal.advertised()) return;
  const Timestamp now = options_.clock->now();
  const bool exhausted = signal.remaining && *signal.remaining <= 0;
  {
    const std::lock_guard lock(mutex_);
    Local& local = local_[key];
    if (!signal.limited && !exhausted && now - local.last_observe_write < options_.observe_interval) return;
    local.last_observe_write = now;
    if (signal.limited || exhausted) local.permits = 0;  // this process stops at once, before the write
  }
  (void)update(key, [&](QuotaState& state, PgQuotaRow&) { quota::observe(state, signal, now, options_.governor); });
}

void PgRateLimiter::declare(const std::string& key, const RateLimit& limit) {
  if (limit.per_second <= 0) return;
  const Timestamp now = options_.clock->now();
  (void)update(key, [&](QuotaState& state, PgQuotaRow&) { quota::declare(state, limit, now, options_.governor); });
}

std::optional<PgQuotaRow> PgRateLimiter::row(const std::string& key) {
  return pool_->impl().autocommit("reading a quota key's row", [&](pqxx::nontransaction& tx) -> std::optional<PgQuotaRow> {
    const pqxx::result r =
        tx.exec_params(std::string("SELECT ") + kQuotaColumns + " FROM " + table_ + " WHERE quota_key = $1", key);
    if (r.empty()) return std::nullopt;
    return read_quota_row(r[0]);
  });
}

std::uint64_t PgRateLimiter::transactions() const {
  const std::lock_guard lock(mutex_);
  return transactions_;
}

std::uint64_t PgRateLimiter::statements() const {
  const std::lock_guard lock(mutex_);
  return statements_;
}

std::chrono::microseconds PgRateLimiter::transaction_time() const {
  const std::lock_guard lock(mutex_);
  return transaction_time_;
}

}  // namespace webhookdb::pg
