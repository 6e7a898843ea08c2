#include "webhookdb/pg/scheduler.hpp"

#include <algorithm>

#include "pg/queue_text.hpp"
#include "pg/sql.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/service_integration.hpp"

namespace webhookdb::pg {
namespace {

using namespace detail;  // NOLINT(google-build-using-namespace)

constexpr const char* kComponent = "scheduler";
constexpr std::size_t kMaxErrorBytes = 2000;
constexpr std::int64_t kPruneBatchRows = 10'000;
// A timestamptz from microseconds since the epoch.
std::string at_micros(const std::string& param) {
  return "('epoch'::timestamptz + " + param + "::bigint * interval '1 microsecond')";
}

// Floor division (b > 0).
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

const std::string& schedule_columns() {
  static const std::string cols =
      "id, service_integration_id, name, incremental, criteria::text AS criteria, interval_us, offset_us, "
      "enabled, " +
      micros("next_run_at") + " AS next_run_at, " + micros("last_run_at") + " AS last_run_at, last_job_id, " +
      micros("last_tick_at") + " AS last_tick_at, last_error, " + micros("last_error_at") +
      " AS last_error_at, fired_count, coalesced_count, missed_count";
  return cols;
}

Schedule schedule_from(const QueryResult& r, std::size_t i) {
  Schedule s;
  s.id = to_i64(r.at(i, "id"));
  s.service_integration_id = to_i64(r.at(i, "service_integration_id"));
  s.name = r.at(i, "name").value_or("");
  s.incremental = r.at(i, "incremental").value_or("f") == "t";
  s.criteria = nlohmann::json::parse(r.at(i, "criteria").value_or("{}"));
  s.interval = std::chrono::microseconds(to_i64(r.at(i, "interval_us")));
  s.offset = std::chrono::microseconds(to_i64(r.at(i, "offset_us")));
  s.enabled = r.at(i, "enabled").value_or("f") == "t";
  s.next_run_at = to_opt_ts(r.at(i, "next_run_at")).value_or(Timestamp{});
  s.last_run_at = to_opt_ts(r.at(i, "last_run_at"));
  if (const auto& v = r.at(i, "last_job_id")) s.last_job_id = std::stoll(*v);
  s.last_tick_at = to_opt_ts(r.at(i, "last_tick_at"));
  s.last_error = r.at(i, "last_error").value_or("");
  s.last_error_at = to_opt_ts(r.at(i, "last_error_at"));
  s.fired_count = to_i64(r.at(i, "fired_count"));
  s.coalesced_count = to_i64(r.at(i, "coalesced_count"));
  s.missed_count = to_i64(r.at(i, "missed_count"));
  return s;
}

// splitmix64 finaliser: spreads consecutive ids over the whole range.
std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31U);
}

// What one firing transaction did.
enum class Fired { nothing_due, fired, coalesced };
struct Firing {
  Fired fired = Fired::nothing_due;
  std::int64_t schedule_id = 0;  // 0: none was due
  std::size_t missed = 0;
};

}  // namespace

struct PgScheduler::Impl {
  std::shared_ptr<ConnectionPool> pool;
  PgSchedulerOptions options;
  std::string schedules;  // quoted, qualified
  std::string ticks;
  std::string jobs;
  std::string queue;
  std::string channel;

  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
  std::thread thread;

  void log(LogLevel level, const std::string& message) const {
    if (options.logger) options.logger->log(level, message);
  }

  // The tick a firing handles: the schedule's row, read under its lock.
  struct Tick {
    std::string id, integration, incremental, criteria;
    std::int64_t at = 0, next = 0, missed = 0;
  };

  // The next due schedule not in `skip`, locked (nullopt when none).
  std::optional<Tick> lock_due(Session& s, const std::vector<std::int64_t>& skip) const {
    std::string skip_list = "{";
    for (std::size_t i = 0; i < skip.size(); ++i) skip_list += (i ? "," : "") + std::to_string(skip[i]);
    skip_list += "}";
    const auto r = s.exec(
        "SELECT id, service_integration_id, incremental, criteria::text AS criteria, "
        "interval_us, offset_us, " +
            micros("next_run_at") + " AS tick_us, " + micros("clock_timestamp()") + " AS now_us FROM " +
            schedules +
            " WHERE enabled AND next_run_at <= clock_timestamp() "
            "AND id <> ALL($1::bigint[]) ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        {skip_list});
    if (r.empty()) return std::nullopt;
    Tick t;
    t.id = r.at(0, "id").value_or("0");
    t.integration = r.at(0, "service_integration_id").value_or("0");
    t.incremental = r.at(0, "incremental").value_or("f");
    t.criteria = r.at(0, "criteria").value_or("{}");
    const std::int64_t iv = to_i64(r.at(0, "interval_us"));
    const std::int64_t off = to_i64(r.at(0, "offset_us"));
    const std::int64_t now = to_i64(r.at(0, "now_us"));
    t.at = to_i64(r.at(0, "tick_us"));
    // A firer a few ticks late (a loaded box) handles them in turn; past
    // max_catch_up only the latest is handled and the ones before it are
    // counted missed (the fleet was down).
    const std::int64_t latest = off + floor_div(now - off, iv) * iv;
    if ((latest - t.at) / iv > static_cast<std::int64_t>(options.max_catch_up)) {
      t.missed = (latest - t.at) / iv;
      t.at = latest;
    }
    t.next = t.at + iv;
    return t;
  }

  // A backfill of the tick's kind for its integration is queued or running.
  bool busy(Session& s, const Tick& t) const {
    const auto r = s.exec("SELECT EXISTS (SELECT 1 FROM " + jobs + " j JOIN " + queue +
                              " q ON q.job_id = j.id WHERE j.service_integration_id = $1::bigint "
                              "AND j.incremental = $2::boolean AND j.parent_job_id IS NULL "
                              "AND q.state IN ('queued', 'running'))",
                          {t.integration, t.incremental});
    return r.rows.at(0).at(0).value_or("f") == "t";
  }

  void coalesce(Session& s, const Tick& t) const {
    s.exec("UPDATE " + schedules + " SET next_run_at = " + at_micros("$2") +
               ", last_tick_at = " + at_micros("$3") +
               ", coalesced_count = coalesced_count + 1, missed_count = missed_count + $4::bigint, "
               "updated_at = clock_timestamp() WHERE id = $1::bigint",
           {t.id, std::to_string(t.next), std::to_string(t.at), std::to_string(t.missed)});
    s.exec("INSERT INTO " + ticks + " (schedule_id, tick_at, outcome, missed) VALUES ($1::bigint, " +
               at_micros("$2") + ", 'coalesced', $3::bigint)",
           {t.id, std::to_string(t.at), std::to_string(t.missed)});
  }

  // The job (PgJobStore's table) and its queue row (PgJobQueue's, with its
  // NOTIFY, delivered at COMMIT), then the schedule advanced.
  void enqueue(Session& s, const Tick& t) const {
    const auto job =
        s.exec("INSERT INTO " + jobs +
                   " (opaque_id, service_integration_id, incremental, criteria, created_at) "
                   "VALUES ($1, $2::bigint, $3::boolean, $4::jsonb, clock_timestamp()) RETURNING id",
               {new_opaque_id("bfj"), t.integration, t.incremental, t.criteria});
    const std::string job_id = job.rows.at(0).at(0).value_or("0");
    s.exec("WITH q AS (INSERT INTO " + queue +
               " (job_id, state) VALUES ($1::bigint, 'queued') RETURNING job_id) "
               "SELECT pg_notify($2, job_id::text) FROM q",
           {job_id, channel});
    s.exec("UPDATE " + schedules + " SET next_run_at = " + at_micros("$2") +
               ", last_tick_at = " + at_micros("$3") + ", last_run_at = " + at_micros("$3") +
               ", last_job_id = $4::bigint, fired_count = fired_count + 1, "
               "missed_count = missed_count + $5::bigint, last_error = NULL, last_error_at = NULL, "
               "updated_at = clock_timestamp() WHERE id = $1::bigint",
           {t.id, std::to_string(t.next), std::to_string(t.at), job_id, std::to_string(t.missed)});
    s.exec("INSERT INTO " + ticks + " (schedule_id, tick_at, outcome, job_id, missed) VALUES ($1::bigint, " +
               at_micros("$2") + ", 'fired', $3::bigint, $4::bigint)",
           {t.id, std::to_string(t.at), job_id, std::to_string(t.missed)});
  }

  // One due schedule (not in `skip`), handled in one transaction. `out`
  // names the schedule even when the transaction throws.
  void fire_one(const std::vector<std::int64_t>& skip, Firing& out) {
    pool->transaction(
        [&](Session& s) {
          out = Firing{};
          const auto tick = lock_due(s, skip);
          if (!tick) return;
          out.schedule_id = std::stoll(tick->id);
          out.missed = static_cast<std::size_t>(tick->missed);
          if (busy(s, *tick)) {
            coalesce(s, *tick);
            out.fired = Fired::coalesced;
          } else {
            enqueue(s, *tick);
            out.fired = Fired::fired;
          }
          if (options.before_commit) options.before_commit(out.schedule_id);
        },
        1);
  }

  std::size_t prune_ticks() const {
    const auto hours = options.tick_retention.count();
    if (hours <= 0) return 0;
    // By ctid in batches: each DELETE is its own short transaction, so a
    // firer recording a tick never waits behind a long one.
    const std::string statement = "DELETE FROM " + ticks + " WHERE ctid = ANY(ARRAY(SELECT ctid FROM " + ticks +
                                  " WHERE handled_at < clock_timestamp() - $1::bigint * interval '1 hour' "
                                  "LIMIT $2::bigint))";
    std::size_t pruned = 0;
    while (true) {
      const auto r = pool->exec(statement, {std::to_string(hours), std::to_string(kPruneBatchRows)});
      pruned += r.affected_rows;
      if (r.affected_rows < static_cast<std::size_t>(kPruneBatchRows)) break;
    }
    return pruned;
  }

  // The firing thread's pruning: the first time, then every prune_every.
  void prune_if_due(std::optional<std::chrono::steady_clock::time_point>& pruned_at) const {
    const auto now = std::chrono::steady_clock::now();
    if (pruned_at && now - *pruned_at < options.prune_every) return;
    pruned_at = now;
    try {
      if (const auto n = prune_ticks(); n > 0) {
        log(LogLevel::info, "schedules: pruned " + std::to_string(n) + " ticks older than " +
                                std::to_string(options.tick_retention.count()) + " h");
      }
    } catch (const std::exception& e) {
      log(LogLevel::warn, std::string("schedule ticks could not be pruned: ") + e.what());
    }
  }

  void record_error(std::int64_t id, const std::string& error) {
    try {
      pool->exec(
          "UPDATE " + schedules +
              " SET last_error = $2, last_error_at = clock_timestamp(), updated_at = clock_timestamp() "
              "WHERE id = $1::bigint",
          {std::to_string(id), clean_error(error, kMaxErrorBytes)});
    } catch (const std::exception& e) {
      log(LogLevel::warn, "schedule " + std::to_string(id) + ": could not record its error: " + e.what());
    }
  }
};

PgScheduler::PgScheduler(std::shared_ptr<ConnectionPool> pool, PgSchedulerOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (!pool) throw InvalidPrecondition("PgScheduler needs a connection pool");
  if (options.batch == 0) throw InvalidPrecondition("PgScheduler batch must be at least 1");
  if (options.poll < std::chrono::milliseconds(10)) {
    throw InvalidPrecondition("PgScheduler poll must be at least 10 ms, got " +
                              std::to_string(options.poll.count()) + " ms");
  }
  if (options.tick_retention.count() < 0) throw InvalidPrecondition("PgScheduler tick_retention must not be negative");
  if (options.prune_every < std::chrono::milliseconds(10)) {
    throw InvalidPrecondition("PgScheduler prune_every must be at least 10 ms, got " +
                              std::to_string(options.prune_every.count()) + " ms");
  }
  if (!options.logger) options.logger = std::make_shared<NullLogger>();
  impl_->pool = std::move(pool);
  impl_->options = std::move(options);
  const auto& schema = impl_->pool->config().schema;
  impl_->schedules = sql::qualified(schema, "webhookdb_schedules");
  impl_->ticks = sql::qualified(schema, "webhookdb_schedule_ticks");
  impl_->jobs = sql::qualified(schema, "webhookdb_backfill_jobs");
  impl_->queue = sql::qualified(schema, "webhookdb_job_queue");
  impl_->channel = notify_channel("webhookdb_job_queue", schema);
  if (impl_->options.migrate) migrate();
}

PgScheduler::~PgScheduler() {
  stop();
}

const std::vector<Migration>& PgScheduler::migrations() {
  static const std::vector<Migration> steps = {
      {1, "create webhookdb_schedules",
       R"SQL(
CREATE TABLE IF NOT EXISTS {schema}.webhookdb_schedules (
  id bigserial PRIMARY KEY,
  service_integration_id bigint NOT NULL
    REFERENCES {schema}.webhookdb_service_integrations (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name <> ''),
  incremental boolean NOT NULL,
  criteria jsonb NOT NULL DEFAULT '{}',
  interval_us bigint NOT NULL CHECK (interval_us > 0),
  offset_us bigint NOT NULL CHECK (offset_us >= 0),
  enabled boolean NOT NULL DEFAULT true,
  next_run_at timestamptz NOT NULL,
  last_run_at timestamptz,
  last_job_id bigint,
  last_tick_at timestamptz,
  last_error text,
  last_error_at timestamptz,
  fired_count bigint NOT NULL DEFAULT 0,
  coalesced_count bigint NOT NULL DEFAULT 0,
  missed_count bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  UNIQUE (service_integration_id, name)
);
CREATE INDEX IF NOT EXISTS webhookdb_schedules_due_idx
  ON {schema}.webhookdb_schedules (next_run_at) WHERE enabled;
CREATE TABLE IF NOT EXISTS {schema}.webhookdb_schedule_ticks (
  schedule_id bigint NOT NULL REFERENCES {schema}.webhookdb_schedules (id) ON DELETE CASCADE,
  tick_at timestamptz NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('fired', 'coalesced')),
  job_id bigint,
  missed bigint NOT NULL DEFAULT 0,
  handled_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (schedule_id, tick_at)
);
)SQL"},
      // Retention: prune_ticks deletes by handled_at.
      {2, "index webhookdb_schedule_ticks by handled_at",
       "CREATE INDEX IF NOT EXISTS webhookdb_schedule_ticks_handled_idx "
       "ON {schema}.webhookdb_schedule_ticks (handled_at)"},
  };
  return steps;
}

void PgScheduler::migrate() {
  pg::migrate(*impl_->pool, kComponent, migrations());
}

std::chrono::microseconds PgScheduler::jitter_offset(std::int64_t service_integration_id,
                                                     const std::string& name,
                                                     std::chrono::microseconds jitter) {
  if (jitter.count() <= 0) return std::chrono::microseconds(0);
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over the name
  for (const char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  h = mix(h ^ mix(static_cast<std::uint64_t>(service_integration_id)));
  return std::chrono::microseconds(static_cast<std::int64_t>(h % static_cast<std::uint64_t>(jitter.count())));
}

Schedule PgScheduler::upsert_schedule(const ScheduleSpec& spec) {
  if (spec.name.empty()) throw InvalidPrecondition("a schedule needs a name");
  if (spec.interval < std::chrono::milliseconds(1)) {
    throw InvalidPrecondition("schedule '" + sql::printable(spec.name) +
                              "' needs an interval of at least 1 ms");
  }
  if (!spec.criteria.is_object()) {
    throw InvalidPrecondition("schedule '" + sql::printable(spec.name) + "': criteria must be a JSON object");
  }
  const auto iv = std::chrono::duration_cast<std::chrono::microseconds>(spec.interval);
  const auto jitter =
      spec.jitter ? std::min(std::chrono::duration_cast<std::chrono::microseconds>(*spec.jitter), iv) : iv;
  const auto phase = std::chrono::duration_cast<std::chrono::microseconds>(spec.phase);
  std::int64_t offset =
      (phase + jitter_offset(spec.service_integration_id, spec.name, jitter)).count() % iv.count();
  if (offset < 0) offset += iv.count();
  const std::string first_tick = "(" + std::to_string(offset) + " + ((" + micros("clock_timestamp()") +
                                 " - " + std::to_string(offset) + ") / $5::bigint + 1) * $5::bigint)";
  try {
    const auto r = impl_->pool->exec(
        "INSERT INTO " + impl_->schedules +
            " AS s (service_integration_id, name, incremental, criteria, interval_us, offset_us, enabled, "
            "next_run_at) VALUES ($1::bigint, $2, $3::boolean, $4::jsonb, $5::bigint, $6::bigint, "
            "$7::boolean, " +
            at_micros(first_tick) +
            ") ON CONFLICT (service_integration_id, name) DO UPDATE SET incremental = EXCLUDED.incremental, "
            "criteria = EXCLUDED.criteria, enabled = EXCLUDED.enabled, "
            // Same ticks: the next one is kept (a due tick is not skipped).
            "next_run_at = CASE WHEN s.interval_us = EXCLUDED.interval_us AND s.offset_us = "
            "EXCLUDED.offset_us "
            "  THEN s.next_run_at ELSE EXCLUDED.next_run_at END, "
            "interval_us = EXCLUDED.interval_us, offset_us = EXCLUDED.offset_us, updated_at = "
            "clock_timestamp() "
            "RETURNING " +
            schedule_columns(),
        {std::to_string(spec.service_integration_id), spec.name, spec.incremental ? "t" : "f",
         spec.criteria.dump(), std::to_string(iv.count()), std::to_string(offset), spec.enabled ? "t" : "f"});
    return schedule_from(r, 0);
  } catch (const StoreError& e) {
    const std::string what = e.what();
    if (what.find("foreign key") != std::string::npos || what.find("violates") != std::string::npos) {
      throw InvalidPrecondition("cannot schedule '" + sql::printable(spec.name) + "': integration " +
                                std::to_string(spec.service_integration_id) + " does not exist");
    }
    throw;
  }
}

bool PgScheduler::delete_schedule(std::int64_t service_integration_id, const std::string& name) {
  const auto r = impl_->pool->exec(
      "DELETE FROM " + impl_->schedules + " WHERE service_integration_id = $1::bigint AND name = $2",
      {std::to_string(service_integration_id), name});
  return r.affected_rows > 0;
}

std::optional<Schedule> PgScheduler::find(std::int64_t service_integration_id, const std::string& name) {
  const auto r = impl_->pool->exec("SELECT " + schedule_columns() + " FROM " + impl_->schedules +
                                       " WHERE service_integration_id = $1::bigint AND name = $2",
                                   {std::to_string(service_integration_id), name});
  if (r.empty()) return std::nullopt;
  return schedule_from(r, 0);
}

std::vector<Schedule> PgScheduler::list(std::int64_t service_integration_id) {
  const auto r =
      impl_->pool->exec("SELECT " + schedule_columns() + " FROM " + impl_->schedules +
                            " WHERE $1::bigint = 0 OR service_integration_id = $1::bigint ORDER BY id",
                        {std::to_string(service_integration_id)});
  std::vector<Schedule> out;
  out.reserve(r.rows.size());
  for (std::size_t i = 0; i < r.rows.size(); ++i) out.push_back(schedule_from(r, i));
  return out;
}

FireResult PgScheduler::fire_due() {
  FireResult result;
  std::vector<std::int64_t> failed_ids;
  for (std::size_t n = 0; n < impl_->options.batch; ++n) {
    Firing f;
    try {
      impl_->fire_one(failed_ids, f);
    } catch (const std::exception& e) {
      const std::int64_t id = f.schedule_id;
      if (id == 0) throw;  // not even the due schedule could be read
      ++result.failed;
      failed_ids.push_back(id);
      impl_->log(LogLevel::error, "schedule " + std::to_string(id) + " could not fire: " + e.what());
      impl_->record_error(id, e.what());
      continue;
    }
    if (f.fired == Fired::nothing_due) break;
    result.missed += f.missed;
    if (f.fired == Fired::fired) ++result.fired;
    if (f.fired == Fired::coalesced) ++result.coalesced;
  }
  return result;
}

std::size_t PgScheduler::prune_ticks() {
  return impl_->prune_ticks();
}

void PgScheduler::start() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->thread.joinable()) return;
  impl_->stopping = false;
  impl_->thread = std::thread([this] {
    std::unique_lock lk(impl_->mutex);
    std::optional<std::chrono::steady_clock::time_point> pruned_at;
    while (!impl_->stopping) {
      lk.unlock();
      impl_->prune_if_due(pruned_at);
      try {
        const auto r = fire_due();
        if (r.fired + r.coalesced + r.missed + r.failed > 0) {
          impl_->log(LogLevel::debug, "schedules: " + std::to_string(r.fired) + " fired, " +
                                          std::to_string(r.coalesced) + " coalesced, " +
                                          std::to_string(r.missed) + " missed, " + std::to_string(r.failed) +
                                          " failed");
        }
      } catch (const std::exception& e) {
        impl_->log(LogLevel::error, std::string("schedules could not be fired: ") + e.what());
      }
      lk.lock();
      impl_->cv.wait_for(lk, impl_->options.poll, [this] { return impl_->stopping; });
    }
  });
}

void PgScheduler::stop() {
  std::thread t;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    t = std::move(impl_->thread);
  }
  impl_->cv.notify_all();
  if (t.joinable()) t.join();
}

}  // namespace webhookdb::pg
