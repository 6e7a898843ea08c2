#pragma once
// Recurring syncs (issue 20 item 5): schedules stored in PostgreSQL, per
// integration, fired by any number of workers.
//
// One row per schedule in <schema>.webhookdb_schedules (component
// "scheduler", its own migration), and one row per tick handled in
// webhookdb_schedule_ticks (primary key (schedule_id, tick_at): a tick can be
// recorded once only).
//
// Ticks. A schedule of interval I fires at the instants
//   epoch + offset + k * I   (k integer),
// where offset = phase + jitter_offset (mod I), and jitter_offset is a
// deterministic hash of (integration id, schedule name) in [0, jitter): a
// thousand integrations with a 15-minute schedule spread over the 15 minutes
// instead of firing in the same second, and each keeps its own time from one
// run to the next (a nightly full backfill at phase 02:00 with a 1 h jitter
// runs at the same minute between 02:00 and 03:00 every night).
//
// Firing (fire_due): each due schedule is handled in ONE transaction:
//   SELECT ... WHERE next_run_at <= now() FOR UPDATE SKIP LOCKED LIMIT 1,
//   then either insert the backfill job (PgJobStore's table) and queue it
//   (PgJobQueue's table, with its NOTIFY), or count the tick coalesced,
//   record the tick, and advance next_run_at; COMMIT.
// So a tick is fired exactly once by any number of firers: two firers never
// hold one schedule row (the row lock), the job and the advanced next_run_at
// commit together, and a firer that dies before COMMIT leaves the schedule
// due for the next firer with nothing enqueued. (PgJobQueue::enqueue commits
// on its own connection, so the scheduler writes the queue row with the same
// statement inside its own transaction instead.)
//
// Coalescing: a tick finding a backfill of the same kind (incremental or
// full) for the integration still queued or running in the job queue enqueues
// nothing; it is counted in coalesced_count.
// Late ticks: a firer up to max_catch_up ticks behind handles each in turn
// (most are then coalesced). Further behind (the fleet was down), only the
// latest due tick is handled; the earlier ones are counted in missed_count.
//
// Times: next_run_at, last_run_at... are the database's clock
// (clock_timestamp()), the one all workers share.
//
// Retention: the ticks table would grow by one row per tick forever (a
// thousand 15-minute schedules: 96,000 rows a day). The firing thread removes
// the ticks handled more than tick_retention ago (default 7 days), at most
// once per prune_every; prune_ticks() does it on demand. The counts and last
// run of each schedule are kept in its row, not derived from the ticks.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"
#include "webhookdb/logger.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/migrations.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb::pg {

// What to create or change (upsert_schedule).
struct WEBHOOKDB_EXPORT ScheduleSpec {
  std::int64_t service_integration_id = 0;
  // Unique per integration: "incremental", "nightly-full"...
  std::string name;
  // The kind of backfill enqueued (and coalesced with).
  bool incremental = true;
  // The job's criteria (a JSON object), e.g. a window.
  nlohmann::json criteria = nlohmann::json::object();
  std::chrono::milliseconds interval{std::chrono::minutes(15)};
  // Ticks are at epoch + phase + hash-offset + k * interval.
  std::chrono::milliseconds phase{0};
  // The spread of the hash offset; nullopt: the whole interval.
  std::optional<std::chrono::milliseconds> jitter;
  bool enabled = true;
};

// What an operator sees of a schedule.
struct Schedule {
  std::int64_t id = 0;
  std::int64_t service_integration_id = 0;
  std::string name;
  bool incremental = true;
  nlohmann::json criteria = nlohmann::json::object();
  std::chrono::microseconds interval{0};
  // phase + jitter offset, modulo the interval.
  std::chrono::microseconds offset{0};
  bool enabled = true;
  Timestamp next_run_at{};
  // The latest tick that enqueued a job, and that job.
  std::optional<Timestamp> last_run_at;
  std::optional<std::int64_t> last_job_id;
  // The latest tick handled (fired or coalesced).
  std::optional<Timestamp> last_tick_at;
  // The latest failure to fire (cleared by the next success).
  std::string last_error;
  std::optional<Timestamp> last_error_at;
  std::int64_t fired_count = 0;
  std::int64_t coalesced_count = 0;
  std::int64_t missed_count = 0;
};

struct FireResult {
  std::size_t fired = 0;
  std::size_t coalesced = 0;
  std::size_t missed = 0;
  std::size_t failed = 0;
};

struct WEBHOOKDB_EXPORT PgSchedulerOptions {
  std::shared_ptr<Logger> logger;
  bool migrate = true;
  // fire_due handles at most this many schedules per call.
  std::size_t batch = 500;
  // The firing thread (start()) looks for due schedules this often.
  std::chrono::milliseconds poll{1'000};
  // A schedule at most this many ticks behind has each handled in turn (a
  // loaded fleet lagging); further behind (the fleet was down), only the
  // latest tick is handled and the earlier ones are counted missed.
  std::size_t max_catch_up = 10;
  // Ticks handled longer ago than this are pruned (see Retention above);
  // zero: kept forever.
  std::chrono::hours tick_retention{24 * 7};
  // How often the firing thread prunes (the first time when it starts).
  std::chrono::milliseconds prune_every{std::chrono::minutes(10)};
  // For tests: called inside each firing transaction after the job is
  // queued and before COMMIT; a throw rolls the tick back.
  std::function<void(std::int64_t schedule_id)> before_commit;
};

class WEBHOOKDB_EXPORT PgScheduler {
 public:
  // Shares the pool of the PgJobStore and PgJobQueue (same schema: the
  // scheduler writes their tables). Run their migrations first.
  explicit PgScheduler(std::shared_ptr<ConnectionPool> pool, PgSchedulerOptions options = {});
  ~PgScheduler();
  PgScheduler(const PgScheduler&) = delete;
  PgScheduler& operator=(const PgScheduler&) = delete;

  void migrate();
  [[nodiscard]] static const std::vector<Migration>& migrations();

  // Creates or replaces the schedule (integration, name); its next run is
  // the first tick after now (kept when interval and offset are unchanged,
  // so a host may upsert its schedules at every start). InvalidPrecondition
  // for an interval under 1 ms, a non-object criteria, an empty name or an
  // unknown integration.
  Schedule upsert_schedule(const ScheduleSpec& spec);
  // False when there was none.
  bool delete_schedule(std::int64_t service_integration_id, const std::string& name);
  [[nodiscard]] std::optional<Schedule> find(std::int64_t service_integration_id, const std::string& name);
  // In id order; 0: every integration.
  [[nodiscard]] std::vector<Schedule> list(std::int64_t service_integration_id = 0);

  // Fires the schedules due now (see above), each in its own transaction.
  FireResult fire_due();

  // Removes the ticks handled more than options.tick_retention ago, in
  // batches of 10,000 rows (each its own transaction); returns how many.
  // 0 when the retention is zero.
  std::size_t prune_ticks();

  // A thread calling fire_due every `poll`, and prune_ticks every
  // `prune_every`, until stop() (errors are logged).
  void start();
  void stop();

  // The deterministic offset in [0, jitter) of a schedule.
  [[nodiscard]] static std::chrono::microseconds jitter_offset(std::int64_t service_integration_id,
                                                               const std::string& name,
                                                               std::chrono::microseconds jitter);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webhookdb::pg
