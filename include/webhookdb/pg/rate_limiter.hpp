#pragma once
// The quota governor shared through PostgreSQL (issue 19): every worker
// process, on every machine, draws from one token bucket per quota key.
//
//   auto limiter = std::make_shared<pg::PgRateLimiter>(pool);
//   ReplicatorContext context{.http = curl, .rate_limiter = limiter, ...};
//
// Design. The bucket of each key is one row of <schema>.webhookdb_rate_limits
// holding the whole QuotaState (rate, burst, tokens, pause, AIMD and window
// memory); the policy is quota:: of rate_limiter.hpp, applied in C++
// between a read and a write guarded by a version column (optimistic: no
// row lock held across round trips; a conflicting writer reads again), so
// the memory and PostgreSQL limiters cannot drift apart.
//
// A process does not visit the row for every request: it leases a small
// batch of permits (rate x lease_batch_seconds, between 1 and
// max_lease_batch; 5 at 200/s) and hands them to its threads from memory. A
// leased permit was taken from the shared bucket, so the fleet never spends
// more than burst + rate x elapsed, whatever the number of processes; a
// lease unused after lease_ttl is dropped, never returned (a dead or idle
// process cannot hoard the budget, and a stale permit cannot spill into a
// later window). At 200 permits/s that is about 40 short transactions a
// second on the row for the whole fleet, whether it runs 1 or 8 workers,
// so the row lock is held a few percent of the time and there is no
// hot-row collapse. Responses are folded into the row only when they say
// something new: a "slow down" (429, secondary 403, nothing remaining)
// always, advertised headers at most every observe_interval per process.
//
// Lanes across processes. Within a process a waiting higher lane goes first
// (as in MemoryRateLimiter); across processes a waiter of the webhook or
// incremental lane stamps its lane's demand on the key's row (demand_until,
// now + lane_demand_ttl) in the same write that leases its permits, and a
// process leasing for a lower lane reads the stamps in the same read: while
// a higher lane's demand is recent it takes only permits the bucket already
// holds beyond one lease of the higher lane, never reserves ahead, and when
// there is nothing to spare looks again after lower_lane_poll. The higher
// lane still reserves ahead, so it queues only behind reservations made
// before its demand was seen (at most max_reservation), and a full backfill
// takes what the incremental syncs leave. No statement is added: the stamps are columns of
// the same row.
//
// Time is the injected Clock of each process (the system clock by default):
// keep the workers' clocks in sync (NTP); a clock behind another's never
// earns tokens twice (updated only moves forward).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/migrations.hpp"
#include "webhookdb/rate_limiter.hpp"

namespace webhookdb::pg {

struct PgRateLimiterOptions {
  std::shared_ptr<Clock> clock;
  std::shared_ptr<Sleeper> sleeper;
  GovernorOptions governor;
  // A lease is about this much of the rate (at least one permit).
  double lease_batch_seconds = 0.025;
  std::size_t max_lease_batch = 32;
  // While a key is open (no limit known), leases are this big.
  std::size_t open_lease_batch = 64;
  // A lease may reserve permits the bucket earns up to this far ahead; the
  // process sleeps until then (quota::reserve), instead of polling the row.
  std::chrono::milliseconds max_reservation{250};
  // Permits of a lease not used by then are dropped.
  std::chrono::milliseconds lease_ttl{200};
  // Advertised headers are written to the row at most this often per key
  // and process; "slow down" signals always are.
  std::chrono::milliseconds observe_interval{250};
  // A higher lane's demand stamped on the row lasts this long: longer than
  // the time a busy higher-lane user goes between leases (a lease of 5
  // permits is 5 pages of an incremental backfill).
  std::chrono::milliseconds lane_demand_ttl{1000};
  // While a higher lane's demand is recent, a lower lane that found no
  // permit in the bucket looks again after this long.
  std::chrono::milliseconds lower_lane_poll{50};
  // Run the migration in the constructor.
  bool migrate = true;
};

// What the row of a key holds (tests, metrics, an admin view).
struct PgQuotaRow {
  QuotaState state;
  // Permits drawn from the bucket so far, and the leases that drew them.
  std::int64_t granted = 0;
  std::int64_t leases = 0;
  // Until when a process waiting in each lane has stamped its demand
  // (webhook, incremental; the full lane's is never stamped).
  std::array<Timestamp, kQuotaLanes> demand_until{};
};

class WEBHOOKDB_EXPORT PgRateLimiter final : public RateLimiter {
 public:
  explicit PgRateLimiter(std::shared_ptr<ConnectionPool> pool, PgRateLimiterOptions options = {});
  void acquire(const std::string& key, QuotaLane lane, const CancellationToken& cancel) override;
  void observe(const std::string& key, const QuotaSignal& signal) override;
  void declare(const std::string& key, const RateLimit& limit) override;

  void migrate();
  [[nodiscard]] static const std::vector<Migration>& migrations();
  // The row of `key`, or nullopt when no process has used it yet.
  [[nodiscard]] std::optional<PgQuotaRow> row(const std::string& key);
  // Updates of the table by this process (leases, observations,
  // declarations), and the statements they took (a read and a versioned
  // write each, more on a conflict).
  [[nodiscard]] std::uint64_t transactions() const;
  [[nodiscard]] std::uint64_t statements() const;
  // Their total wall time, round trips included (an upper bound of the
  // database time they cost).
  [[nodiscard]] std::chrono::microseconds transaction_time() const;

 private:
  struct Local {
    double permits = 0;
    Timestamp expires{};
    QuotaState shadow;  // the row as this process last saw it
    Timestamp last_observe_write{};
    bool seen = false;  // shadow has been read from the row
    int waiting[kQuotaLanes] = {0, 0, 0};
  };
  // Runs `change` on the key's state in one transaction (the row created
  // when missing) and returns the state written.
  QuotaState update(const std::string& key, const std::function<void(QuotaState&, PgQuotaRow&)>& change);
  [[nodiscard]] double lease_size(const Local& local) const;
  [[nodiscard]] double lease_batch(const QuotaState& state) const;
  // A lower lane's take while a higher lane's demand is recent.
  [[nodiscard]] quota::Take spare(QuotaState& state, double want, Timestamp now) const;
  // The policy of one lease for `lane` (the class comment's lanes), applied
  // to the row read.
  [[nodiscard]] quota::Take lease(QuotaState& state, PgQuotaRow& row, QuotaLane lane, double want,
                                  Timestamp now) const;

  std::shared_ptr<ConnectionPool> pool_;
  PgRateLimiterOptions options_;
  std::string table_;
  std::string select_sql_, write_sql_, select_name_, write_name_;
  mutable std::mutex mutex_;
  std::map<std::string, Local, std::less<>> local_;
  std::uint64_t transactions_ = 0;
  std::uint64_t statements_ = 0;
  std::chrono::microseconds transaction_time_{0};
};

}  // namespace webhookdb::pg
