#include "webhookdb/pg/job_queue.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <random>

#include "pg/job_queue_sql.hpp"
#include "pg/listener.hpp"
#include "pg/pool_impl.hpp"
#include "pg/queue_text.hpp"
#include "pg/sql.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb::pg {
namespace {

// The helpers shared with the other queue (pg_text.hpp).
using namespace detail;  // NOLINT(google-build-using-namespace)

using pg::Param;
using pg::QueryResult;
using pg::Session;

constexpr const char* kComponent = "job_queue";
// A place in line (`seq`): microseconds of database time.
constexpr const char* kNowMicros = "(extract(epoch from clock_timestamp()) * 1000000)::bigint";

const std::string& entry_columns() {
  static const std::string cols = "job_id, state, " + micros("run_at") +
                                  " AS run_at, attempts, retries_left, " + "lease_owner, " +
                                  micros("lease_expires_at") + " AS lease_expires_at, last_error, " +
                                  micros("enqueued_at") + " AS enqueued_at, " + micros("updated_at") +
                                  " AS updated_at, " + micros("finished_at") + " AS finished_at";
  return cols;
}

std::optional<int> to_opt_int(const std::optional<std::string>& v) {
  if (!v) return std::nullopt;
  return std::stoi(*v);
}

QueueState parse_state(const std::string& s) {
  if (s == "queued") return QueueState::queued;
  if (s == "running") return QueueState::running;
  if (s == "done") return QueueState::done;
  if (s == "failed") return QueueState::failed;
  if (s == "cancelled") return QueueState::cancelled;
  throw InvariantViolation("job queue row has unknown state '" + s + "'");
}

QueueEntry entry_from(const QueryResult& r, std::size_t i) {
  QueueEntry e;
  e.job_id = to_i64(r.at(i, "job_id"));
  e.state = parse_state(r.at(i, "state").value_or(""));
  e.run_at = to_opt_ts(r.at(i, "run_at"));
  e.attempts = to_int(r.at(i, "attempts"));
  e.retries_left = to_opt_int(r.at(i, "retries_left"));
  e.lease_owner = r.at(i, "lease_owner").value_or("");
  e.lease_expires_at = to_opt_ts(r.at(i, "lease_expires_at"));
  e.last_error = r.at(i, "last_error").value_or("");
  e.enqueued_at = to_opt_ts(r.at(i, "enqueued_at")).value_or(Timestamp{});
  e.updated_at = to_opt_ts(r.at(i, "updated_at")).value_or(Timestamp{});
  e.finished_at = to_opt_ts(r.at(i, "finished_at"));
  return e;
}

std::string channel_for(const std::string& schema) {
  return detail::notify_channel("webhookdb_job_queue", schema);
}

std::string ms_param(std::chrono::milliseconds ms) {
  return std::to_string(ms.count());
}

// A text[] literal of tokens (hex only, so nothing needs quoting).
std::string token_array(const std::vector<Lease>& leases) {
  std::string out = "{";
  for (const auto& lease : leases) {
    if (lease.token.empty()) continue;
    if (out.size() > 1) out += ',';
    for (char c : lease.token) {
      const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      if (!hex)
        throw InvalidPrecondition("lease of job " + std::to_string(lease.job_id) + " has a malformed token");
    }
    out += lease.token;
  }
  return out + "}";
}

void require_token(const Lease& lease, const char* what) {
  if (lease.token.empty()) {
    throw InvalidPrecondition(std::string("PgJobQueue::") + what + " needs a lease from take() (job " +
                              std::to_string(lease.job_id) + " has no token)");
  }
}

// The take, in one statement:
// - `reaped`: running rows whose lease expired max_attempts times fail;
// - three probes, each LIMIT 1 FOR UPDATE SKIP LOCKED in the order of its own
//   partial index, so a take reads a few index entries whatever the backlog:
//   expired leases (their jobs were already started), then jobs due now in
//   line order (seq), then delayed jobs now due by run_at. Each probe is a
//   CTE (FOR UPDATE is not allowed in a UNION branch), and CTEs are read on
//   demand: the Append under LIMIT 1 stops at the first probe that finds a
//   row, so the later probes do not run (nor lock anything) then.
// - with `jobs` (the job store's table, when it is in the schema): the reaped
//   jobs are finished there too, with their error, in the same statement.
// Returns the taken row (kind 'taken') and the reaped ones (kind 'reaped').
// One statement in autocommit: one round trip and one commit per take.
std::string take_sql(const std::string& t, const std::string& jobs) {
  const std::string lease_until = "clock_timestamp() + $3::bigint * interval '1 millisecond'";
  const std::string cols =
      "job_id, state AS prev_state, lease_owner AS prev_owner, lease_token AS prev_token";
  return "WITH reaped AS (UPDATE " + t +
         " SET state = 'failed', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
         "  last_error = 'lease expired on attempt ' || attempts || ' of ' || $5::int || "
         "    ': its worker was lost every time (last: ' || coalesce(lease_owner, '?') || ')', "
         "  finished_at = clock_timestamp(), updated_at = clock_timestamp() "
         "WHERE state = 'running' AND lease_expires_at < clock_timestamp() AND attempts >= $5::int "
         "RETURNING job_id, last_error), "
         "expired AS (SELECT " +
         cols + " FROM " + t +
         " WHERE state = 'running' AND lease_expires_at < clock_timestamp() AND attempts < $5::int "
         "ORDER BY lease_expires_at LIMIT 1 FOR UPDATE SKIP LOCKED), "
         "due_now AS (SELECT " +
         cols + " FROM " + t +
         " WHERE state = 'queued' AND run_at IS NULL ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED), "
         "due_later AS (SELECT " +
         cols + " FROM " + t +
         " WHERE state = 'queued' AND run_at IS NOT NULL AND run_at <= $2::timestamptz ORDER BY run_at, seq "
         "LIMIT 1 FOR UPDATE SKIP LOCKED), "
         "candidate AS (SELECT * FROM expired UNION ALL SELECT * FROM due_now UNION ALL "
         "SELECT * FROM due_later LIMIT 1), "
         "taken AS (UPDATE " +
         t +
         " AS q SET state = 'running', attempts = q.attempts + 1, lease_owner = $1, lease_token = $4, "
         "  lease_expires_at = " +
         lease_until +
         ", updated_at = clock_timestamp() "
         "FROM candidate WHERE q.job_id = candidate.job_id "
         "RETURNING q.job_id, q.attempts, q.retries_left, candidate.prev_state, candidate.prev_owner, "
         "  candidate.prev_token) " +
         (jobs.empty()
              ? std::string()
              : ", finished AS (UPDATE " + jobs +
                    " AS j SET finished_at = coalesce(j.finished_at, $2::timestamptz), error = "
                    "reaped.last_error, updated_at = now() FROM reaped WHERE j.id = reaped.job_id) ") +
         "SELECT 'taken' AS kind, job_id, attempts, retries_left, prev_state, prev_owner, prev_token, "
         "  NULL AS error FROM taken "
         "UNION ALL SELECT 'reaped', job_id, NULL, NULL, NULL, NULL, NULL, last_error FROM reaped";
}

}  // namespace

std::string_view to_string(QueueState state) noexcept {
  switch (state) {
    case QueueState::queued:
      return "queued";
    case QueueState::running:
      return "running";
    case QueueState::done:
      return "done";
    case QueueState::failed:
      return "failed";
    case QueueState::cancelled:
      return "cancelled";
  }
  return "unknown";
}

struct PgJobQueue::Impl {
  std::shared_ptr<pg::ConnectionPool> pool;
  PgJobQueueOptions options;
  std::string table;       // "schema".webhookdb_job_queue, quoted
  std::string jobs_table;  // "schema".webhookdb_backfill_jobs (PgJobStore's), quoted
  std::string channel;

  // Wake-ups. Each notification (or local enqueue) wakes at most one idle
  // runner: a waiter sleeps until it gets a ticket, and a notification adds a
  // ticket only while some waiter has none (waking every idle runner for one
  // job cost 694 take transactions for 20 enqueues with 32 runners). A
  // (re)connect of the listener wakes them all: what was sent meanwhile is lost.
  mutable std::mutex wake_mutex;
  std::condition_variable wake_cv;
  std::atomic<std::uint64_t> generation{0};
  std::size_t waiters = 0;      // under wake_mutex
  std::size_t tickets = 0;      // under wake_mutex
  std::uint64_t broadcast = 0;  // under wake_mutex: bumped by wake_all

  std::mutex listener_mutex;
  std::unique_ptr<Listener> listener;

  // Whether the job store's table (with its `error` column) is in the schema.
  std::atomic<bool> jobs_table_known{false};

  void wake_one() {
    {
      std::lock_guard lock(wake_mutex);
      generation.fetch_add(1, std::memory_order_acq_rel);
      if (tickets < waiters) ++tickets;
    }
    wake_cv.notify_all();  // the waiters race for the ticket; one wins
  }

  void wake_all() {
    {
      std::lock_guard lock(wake_mutex);
      generation.fetch_add(1, std::memory_order_acq_rel);
      ++broadcast;
    }
    wake_cv.notify_all();
  }

  bool listener_connected() {
    std::lock_guard lock(listener_mutex);
    return listener && listener->connected();
  }

  // A local enqueue wakes a local runner itself only when no NOTIFY will.
  void wake_after_local_enqueue() {
    if (!listener_connected()) wake_one();
  }

  void log(LogLevel level, const std::string& message) const {
    if (options.logger) options.logger->log(level, message);
  }

  std::string take_sql;            // see take_sql(): without the job store's table
  std::string take_sql_with_jobs;  // and with it
  std::string take_name;           // their prepared statements' names
  std::string take_name_with_jobs;
  std::string complete_sql;
  std::string complete_name;
  std::atomic<std::int64_t> jobs_table_asked_ms{-1'000'000};  // steady clock, when last asked and absent

  // Whether the job store's table is in this schema: asked until it is
  // found (at most once a second while it is absent), then remembered.
  bool jobs_table_present() {
    if (jobs_table_known.load(std::memory_order_acquire)) return true;
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    if (now_ms - jobs_table_asked_ms.load(std::memory_order_acquire) < 1'000) return false;
    jobs_table_asked_ms.store(now_ms, std::memory_order_release);
    bool present = false;
    pool->autocommit([&](Session& s) { present = has_jobs_table(s); });
    return present;
  }

  // A running job queued again (due at `run_at`, NULL: now), its place in
  // line `behind` from now; notifies.
  bool requeue(const Lease& lease, const Param& run_at, std::chrono::milliseconds behind) {
    const auto r =
        once("WITH q AS (UPDATE " + table +
                 " SET state = 'queued', run_at = $3::timestamptz, lease_owner = NULL, lease_token = NULL, "
                 "lease_expires_at = NULL, seq = " +
                 std::string(kNowMicros) +
                 " + $4::bigint * 1000, updated_at = clock_timestamp() "
                 "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING job_id) "
                 "SELECT job_id, pg_notify($5, job_id::text) FROM q",
             {std::to_string(lease.job_id), lease.token, run_at, std::to_string(behind.count()), channel});
    return !r.empty();
  }

  // One statement in autocommit: one round trip and one commit, no BEGIN
  // and COMMIT of their own. A connection found lost is tried once more on a
  // fresh one (each statement here is guarded by state and lease token, so a
  // repeat changes nothing that the first did).
  QueryResult once(const std::string& sql, const std::vector<Param>& params) {
    try {
      return pool->exec(sql, params);
    } catch (const StoreError& e) {
      if (!e.retryable()) throw;
      return pool->exec(sql, params);
    }
  }

  // Like once(), as a prepared statement: planned once per connection, not
  // at every call (the take's plan cost 1.1 ms of server CPU, more than
  // running it, 0.7 ms).
  QueryResult prepared_once(const std::string& name, const std::string& sql,
                            const std::vector<Param>& params) {
    return detail::prepared_once(*pool, name, sql, params);
  }

  // One transaction; a lost connection before COMMIT runs `fn` again on a
  // fresh one (every statement here is safe to repeat: they are guarded by
  // state and lease owner).
  QueryResult tx(const std::string& sql, const std::vector<Param>& params) {
    QueryResult out;
    pool->transaction([&](Session& s) { out = s.exec(sql, params); }, 1);
    return out;
  }

  // Whether the job store's table (with its `error` column) is in this
  // schema; asked once, then remembered.
  bool has_jobs_table(Session& s) {
    if (jobs_table_known.load(std::memory_order_acquire)) return true;
    const auto r = s.exec(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'error' "
        "AND NOT attisdropped)",
        {jobs_table});
    if (r.rows.at(0).at(0).value_or("f") != "t") return false;
    jobs_table_known.store(true, std::memory_order_release);
    return true;
  }

  // A job failed for good is finished in the job store's table too, with
  // its error, in the queue's transaction (so the two never disagree). A
  // queue used without a PgJobStore in its schema has no such table.
  void finish_failed_job(Session& s, const std::string& job_id, const std::string& error) {
    if (!has_jobs_table(s)) return;
    s.exec("UPDATE " + jobs_table +
               " SET finished_at = coalesce(finished_at, $2::timestamptz), error = $3, updated_at = now() "
               "WHERE id = $1::bigint",
           {job_id, format_timestamp(options.clock->now()), error});
  }

  // requeue_failed: the job store's row is unfinished again (only when it
  // was finished by a failure: its `error` is set).
  void unfinish_failed_job(Session& s, const std::string& job_id) {
    if (!has_jobs_table(s)) return;
    s.exec("UPDATE " + jobs_table +
               " SET finished_at = NULL, error = NULL, updated_at = now() WHERE id = $1::bigint AND error IS "
               "NOT NULL",
           {job_id});
  }

  // backoff * (1 + u), u uniform in [0, retry_jitter]: never sooner than the
  // backoff, and a fleet's failures spread instead of retrying in lockstep.
  std::chrono::microseconds jittered(std::chrono::microseconds backoff) const {
    if (options.retry_jitter <= 0.0 || backoff.count() <= 0) return backoff;
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uniform_real_distribution<double> u(0.0, options.retry_jitter);
    const double factor = 1.0 + u(rng);
    return std::chrono::microseconds(
        static_cast<std::int64_t>(static_cast<double>(backoff.count()) * factor));
  }
};

PgJobQueue::PgJobQueue(pg::Config config, PgJobQueueOptions options)
    : PgJobQueue(std::make_shared<pg::ConnectionPool>(std::move(config)), std::move(options)) {}

PgJobQueue::PgJobQueue(std::shared_ptr<pg::ConnectionPool> pool, PgJobQueueOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (!pool) throw InvalidPrecondition("PgJobQueue needs a connection pool");
  if (options.lease < std::chrono::milliseconds(100)) {
    throw InvalidPrecondition("PgJobQueue lease must be at least 100 ms, got " +
                              std::to_string(options.lease.count()) + " ms");
  }
  if (!(options.retry_jitter >= 0.0 && options.retry_jitter <= 10.0)) {
    throw InvalidPrecondition("PgJobQueue retry_jitter must be between 0 and 10, got " +
                              std::to_string(options.retry_jitter));
  }
  if (!options.clock) options.clock = system_clock();
  if (!options.logger) options.logger = std::make_shared<NullLogger>();
  impl_->pool = std::move(pool);
  impl_->options = std::move(options);
  const auto& schema = impl_->pool->config().schema;
  impl_->channel = channel_for(schema);
  if (impl_->options.migrate) migrate();
  impl_->table = pg::sql::qualified(schema, "webhookdb_job_queue");
  impl_->jobs_table = pg::sql::qualified(schema, "webhookdb_backfill_jobs");
  impl_->take_sql = take_sql(impl_->table, "");
  impl_->take_sql_with_jobs = take_sql(impl_->table, impl_->jobs_table);
  impl_->complete_sql = complete_update_sql(impl_->table);
  impl_->take_name = job_statement_name("take", impl_->take_sql);
  impl_->take_name_with_jobs = job_statement_name("take", impl_->take_sql_with_jobs);
  impl_->complete_name = job_statement_name("complete", impl_->complete_sql);
}

PgJobQueue::~PgJobQueue() {
  std::unique_ptr<Listener> listener;
  {
    std::lock_guard lock(impl_->listener_mutex);
    listener = std::move(impl_->listener);
  }
  listener.reset();  // joins its thread
}

const std::vector<pg::Migration>& PgJobQueue::migrations() {
  static const std::vector<pg::Migration> steps = {
      {1, "create webhookdb_job_queue",
       R"SQL(
CREATE TABLE IF NOT EXISTS {schema}.webhookdb_job_queue (
  job_id bigint PRIMARY KEY,
  state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
  run_at timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  retries_left integer,
  lease_owner text,
  lease_expires_at timestamptz,
  last_error text,
  enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS webhookdb_job_queue_due_idx
  ON {schema}.webhookdb_job_queue (run_at NULLS FIRST, job_id) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS webhookdb_job_queue_lease_idx
  ON {schema}.webhookdb_job_queue (lease_expires_at) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS webhookdb_job_queue_owner_idx
  ON {schema}.webhookdb_job_queue (lease_owner) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS webhookdb_job_queue_failed_idx
  ON {schema}.webhookdb_job_queue (job_id) WHERE state = 'failed';
)SQL"},
      // Leases are matched by a per-take token, not by the owner's name (a
      // worker restarted under the same name must not act on its
      // predecessor's leases). Rows running under version 1 have no token:
      // their workers cannot renew them any more, so they expire and are
      // taken over.
      {2, "job queue lease tokens",
       R"SQL(
ALTER TABLE {schema}.webhookdb_job_queue ADD COLUMN IF NOT EXISTS lease_token text;
)SQL"},
      // take() probes each kind of due row through its own partial index,
      // in index order, LIMIT 1 (one OR over due jobs and expired leases
      // sorted every queued row: 866 takes/s with 2,000 queued, 47 with
      // 100,000). `seq` is a due-now job's place in line, in microseconds of
      // database time: when it was queued (a job queued again, or released,
      // goes to the back), or for a job that yielded its runner to waiting
      // jobs, a time slice later (see yield_to_waiting).
      {3, "job queue index-ordered takes",
       R"SQL(
ALTER TABLE {schema}.webhookdb_job_queue ADD COLUMN IF NOT EXISTS seq bigint NOT NULL
  DEFAULT (extract(epoch from clock_timestamp()) * 1000000)::bigint;
CREATE INDEX IF NOT EXISTS webhookdb_job_queue_now_idx
  ON {schema}.webhookdb_job_queue (seq) WHERE state = 'queued' AND run_at IS NULL;
CREATE INDEX IF NOT EXISTS webhookdb_job_queue_later_idx
  ON {schema}.webhookdb_job_queue (run_at, seq) WHERE state = 'queued' AND run_at IS NOT NULL;
DROP INDEX IF EXISTS {schema}.webhookdb_job_queue_due_idx;
DROP INDEX IF EXISTS {schema}.webhookdb_job_queue_owner_idx;
)SQL"},
      // An operator's cancel (PgJobControl, job_control.hpp) ends a job as
      // 'cancelled': neither failed nor done, and queued again by enqueue().
      {4, "job queue cancelled state",
       R"SQL(
ALTER TABLE {schema}.webhookdb_job_queue DROP CONSTRAINT IF EXISTS webhookdb_job_queue_state_check;
ALTER TABLE {schema}.webhookdb_job_queue ADD CONSTRAINT webhookdb_job_queue_state_check
  CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled'));
)SQL"},
  };
  return steps;
}

void PgJobQueue::migrate() {
  pg::migrate(*impl_->pool, kComponent, migrations());
}

const PgJobQueueOptions& PgJobQueue::options() const noexcept {
  return impl_->options;
}
pg::ConnectionPool& PgJobQueue::pool() const noexcept {
  return *impl_->pool;
}
const std::string& PgJobQueue::channel() const noexcept {
  return impl_->channel;
}

// --- enqueue ---

void PgJobQueue::enqueue(std::int64_t job_id, std::optional<Timestamp> run_at) {
  const std::string& t = impl_->table;
  // A queued job keeps the earlier due time (NULL, "now", is the earliest)
  // and its place in line; a job queued again goes to the back. One
  // statement, one commit: the NOTIFY is delivered at its commit, so a woken
  // worker sees the row.
  const std::string sql = "WITH q AS (INSERT INTO " + t +
                          " AS q (job_id, state, run_at) VALUES ($1::bigint, 'queued', $2::timestamptz) "
                          "ON CONFLICT (job_id) DO UPDATE SET "
                          "  run_at = CASE WHEN q.state <> 'queued' THEN EXCLUDED.run_at "
                          "                WHEN q.run_at IS NULL OR EXCLUDED.run_at IS NULL THEN NULL "
                          "                ELSE least(q.run_at, EXCLUDED.run_at) END, "
                          "  seq = CASE WHEN q.state = 'queued' THEN q.seq ELSE EXCLUDED.seq END, "
                          "  attempts = CASE WHEN q.state = 'queued' THEN q.attempts ELSE 0 END, "
                          "  retries_left = CASE WHEN q.state = 'queued' THEN q.retries_left ELSE NULL END, "
                          "  finished_at = NULL, state = 'queued', updated_at = clock_timestamp() "
                          "WHERE q.state <> 'running' "
                          "RETURNING job_id) "
                          "SELECT job_id, pg_notify($3, job_id::text) FROM q";
  const Param at = run_at ? Param(format_timestamp(*run_at)) : Param();
  const bool queued = !impl_->once(sql, {std::to_string(job_id), at, impl_->channel}).empty();
  if (!queued) {
    impl_->log(LogLevel::debug, "job " + std::to_string(job_id) + " is running: enqueue left it alone");
    return;
  }
  impl_->wake_after_local_enqueue();
}

bool PgJobQueue::enqueue_if_absent(std::int64_t job_id) {
  const std::string sql = "WITH q AS (INSERT INTO " + impl_->table +
                          " (job_id, state) VALUES ($1::bigint, 'queued') ON CONFLICT (job_id) DO NOTHING "
                          "RETURNING job_id) SELECT job_id, pg_notify($2, job_id::text) FROM q";
  const bool queued = !impl_->once(sql, {std::to_string(job_id), impl_->channel}).empty();
  if (queued) impl_->wake_after_local_enqueue();
  return queued;
}

// --- worker side ---

std::optional<Lease> PgJobQueue::take(const std::string& owner) {
  if (owner.empty()) throw InvalidPrecondition("PgJobQueue::take needs an owner");
  static constexpr int kNoLimit = 2'147'483'647;
  const int max_attempts = impl_->options.max_attempts > 0 ? impl_->options.max_attempts : kNoLimit;
  const std::string now = format_timestamp(impl_->options.clock->now());
  const std::string token = new_lease_token();
  const std::vector<Param> params{owner, now, ms_param(impl_->options.lease), token,
                                  std::to_string(max_attempts)};
  // One statement in autocommit (no BEGIN and COMMIT round trips). A
  // connection lost before the answer is tried once more on a fresh one: if
  // the first one had taken a job, that lease expires unrenewed and the job
  // is taken again, as after a crash.
  const bool with_jobs = impl_->jobs_table_present();
  std::optional<Lease> out;
  std::vector<std::pair<std::string, std::string>> reaped;
  const auto r = with_jobs
                     ? impl_->prepared_once(impl_->take_name_with_jobs, impl_->take_sql_with_jobs, params)
                     : impl_->prepared_once(impl_->take_name, impl_->take_sql, params);
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    if (r.at(i, "kind").value_or("") == "reaped") {
      reaped.emplace_back(r.at(i, "job_id").value_or("?"), r.at(i, "error").value_or(""));
      continue;
    }
    Lease l;
    l.job_id = to_i64(r.at(i, "job_id"));
    l.attempt = to_int(r.at(i, "attempts"));
    l.retries_left = to_opt_int(r.at(i, "retries_left"));
    l.recovered = r.at(i, "prev_state").value_or("") == "running";
    l.previous_owner = l.recovered ? r.at(i, "prev_owner").value_or("") : "";
    l.previous_token = l.recovered ? r.at(i, "prev_token").value_or("") : "";
    l.owner = owner;
    l.token = token;
    out = l;
  }
  // The job store's table appeared after the last look: the reaped jobs are
  // finished there now (the statement above did not know the table).
  if (!with_jobs && !reaped.empty()) {
    impl_->pool->transaction(
        [&](Session& s) {
          for (const auto& [id, error] : reaped) impl_->finish_failed_job(s, id, error);
        },
        1);
  }
  for (const auto& [id, error] : reaped) {
    impl_->log(LogLevel::error, "job " + id + " failed: its lease expired " +
                                    std::to_string(impl_->options.max_attempts) + " times");
  }
  if (out && out->recovered) {
    impl_->log(LogLevel::warn, "job " + std::to_string(out->job_id) + ": lease of " + out->previous_owner +
                                   " expired, taken over by " + owner + " (attempt " +
                                   std::to_string(out->attempt) + ")");
  }
  return out;
}

std::size_t PgJobQueue::due_count(std::size_t at_most) {
  if (at_most == 0) return 0;
  const std::string& t = impl_->table;
  const auto r = impl_->once(
      "SELECT count(*) FROM ((SELECT 1 FROM " + t +
          " WHERE state = 'queued' AND run_at IS NULL ORDER BY seq LIMIT $2::bigint) UNION ALL "
          "(SELECT 1 FROM " +
          t +
          " WHERE state = 'queued' AND run_at IS NOT NULL AND run_at <= $1::timestamptz ORDER BY run_at, seq "
          "LIMIT $2::bigint)) AS due",
      {format_timestamp(impl_->options.clock->now()), std::to_string(at_most)});
  return std::min<std::size_t>(at_most, static_cast<std::size_t>(to_i64(r.at(0, "count"))));
}

std::vector<std::int64_t> PgJobQueue::renew(const std::vector<Lease>& leases) {
  const std::string tokens = token_array(leases);
  if (tokens == "{}") return {};
  auto r = impl_->tx(
      "UPDATE " + impl_->table +
          " SET lease_expires_at = clock_timestamp() + $2::bigint * interval '1 millisecond', "
          "updated_at = clock_timestamp() WHERE state = 'running' AND lease_token = ANY($1::text[]) "
          "RETURNING job_id",
      {tokens, ms_param(impl_->options.lease)});
  std::vector<std::int64_t> ids;
  ids.reserve(r.rows.size());
  for (const auto& row : r.rows) ids.push_back(to_i64(row[0]));
  std::sort(ids.begin(), ids.end());
  return ids;
}

bool PgJobQueue::complete(const Lease& lease) {
  require_token(lease, "complete");
  const auto r = impl_->prepared_once(impl_->complete_name, impl_->complete_sql,
                                      {std::to_string(lease.job_id), lease.token});
  return !r.empty();
}

bool PgJobQueue::release(const Lease& lease, std::optional<Timestamp> run_at) {
  require_token(lease, "release");
  // Back of the line: the jobs queued before it run first.
  return impl_->requeue(lease, run_at ? Param(format_timestamp(*run_at)) : Param(),
                        std::chrono::milliseconds(0));
}

bool PgJobQueue::yield_to_waiting(const Lease& lease, std::chrono::milliseconds behind) {
  require_token(lease, "yield_to_waiting");
  if (behind.count() < 0)
    throw InvalidPrecondition("PgJobQueue::yield_to_waiting needs a non-negative delay");
  return impl_->requeue(lease, Param(), behind);
}

bool PgJobQueue::postpone(const Lease& lease, Timestamp run_at) {
  require_token(lease, "postpone");
  const auto r = impl_->once(
      "WITH q AS (UPDATE " + impl_->table +
          " SET state = 'queued', run_at = $3::timestamptz, attempts = greatest(attempts - 1, 0), "
          "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = clock_timestamp() "
          "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING job_id) "
          "SELECT job_id, pg_notify($4, job_id::text) FROM q",
      {std::to_string(lease.job_id), lease.token, format_timestamp(run_at), impl_->channel});
  return !r.empty();
}

bool PgJobQueue::hand_back(const Lease& lease) {
  require_token(lease, "hand_back");
  if (!lease.recovered || lease.previous_token.empty()) {
    throw InvalidPrecondition("PgJobQueue::hand_back needs a lease recovered from another holder (job " +
                              std::to_string(lease.job_id) + ")");
  }
  auto r =
      impl_->tx("UPDATE " + impl_->table +
                    " SET lease_owner = $3, lease_token = $4, attempts = greatest(attempts - 1, 0), "
                    "lease_expires_at = clock_timestamp() + $5::bigint * interval '1 millisecond', "
                    "updated_at = clock_timestamp() "
                    "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING job_id",
                {std::to_string(lease.job_id), lease.token, lease.previous_owner, lease.previous_token,
                 ms_param(impl_->options.lease)});
  return !r.empty();
}

RetryDecision PgJobQueue::retry_or_fail(const Lease& lease, int retries, std::chrono::seconds backoff,
                                        const std::string& error) {
  require_token(lease, "retry_or_fail");
  const Timestamp run_at = impl_->options.clock->now() +
                           impl_->jittered(std::chrono::duration_cast<std::chrono::microseconds>(backoff));
  const std::string message = clean_error(error, impl_->options.max_error_bytes);
  // Every right-hand side sees the row as it was, so `budget` is the same in each.
  const std::string budget = "coalesce(retries_left, $3::int)";
  const std::string sql =
      "UPDATE " + impl_->table + " SET " + "state = CASE WHEN " + budget +
      " > 0 THEN 'queued' ELSE 'failed' END, " + "run_at = CASE WHEN " + budget +
      " > 0 THEN $4::timestamptz ELSE run_at END, " + "retries_left = greatest(" + budget + " - 1, 0), " +
      "finished_at = CASE WHEN " + budget + " > 0 THEN NULL ELSE clock_timestamp() END, " +
      "last_error = $5, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
      "updated_at = clock_timestamp() "
      "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING state";
  std::optional<RetryDecision> decision;
  impl_->pool->transaction(
      [&](Session& s) {
        const auto r = s.exec(sql, {std::to_string(lease.job_id), lease.token,
                                    std::to_string(std::max(0, retries)), format_timestamp(run_at), message});
        if (r.empty()) {
          decision = RetryDecision::lease_lost;
        } else if (r.at(0, "state").value_or("") == "queued") {
          decision = RetryDecision::retried;
        } else {
          decision = RetryDecision::failed;
          impl_->finish_failed_job(s, std::to_string(lease.job_id), message);
        }
      },
      1);
  return *decision;
}

bool PgJobQueue::fail(const Lease& lease, const std::string& error) {
  require_token(lease, "fail");
  const std::string message = clean_error(error, impl_->options.max_error_bytes);
  bool failed = false;
  impl_->pool->transaction(
      [&](Session& s) {
        failed =
            !s.exec(
                  "UPDATE " + impl_->table +
                      " SET state = 'failed', last_error = $3, lease_owner = NULL, lease_token = NULL, "
                      "lease_expires_at = NULL, finished_at = clock_timestamp(), updated_at = "
                      "clock_timestamp() "
                      "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING job_id",
                  {std::to_string(lease.job_id), lease.token, message})
                 .empty();
        if (failed) impl_->finish_failed_job(s, std::to_string(lease.job_id), message);
      },
      1);
  return failed;
}

// --- wake-ups ---

std::uint64_t PgJobQueue::wake_generation() const {
  return impl_->generation.load(std::memory_order_acquire);
}

bool PgJobQueue::listening() const {
  std::lock_guard lock(impl_->listener_mutex);
  return impl_->listener && impl_->listener->connected();
}

bool PgJobQueue::wait_for_work(std::uint64_t seen, std::chrono::milliseconds max_wait,
                               const CancellationToken& cancel) {
  Impl* impl = impl_.get();
  {
    std::lock_guard lock(impl_->listener_mutex);
    if (!impl_->listener) {
      impl_->listener = std::make_unique<Listener>(
          impl_->pool->config().url, impl_->channel, impl_->options.logger, [impl] { impl->wake_one(); },
          [impl] { impl->wake_all(); });
    }
  }
  const auto subscription = cancel.subscribe([impl] {
    std::lock_guard lock(impl->wake_mutex);
    impl->wake_cv.notify_all();
  });
  bool woken = false;
  {
    std::unique_lock lock(impl_->wake_mutex);
    // Something arrived since the caller looked at the queue: look again.
    if (impl_->generation.load(std::memory_order_acquire) != seen) {
      woken = true;
    } else {
      ++impl_->waiters;
      const std::uint64_t broadcast = impl_->broadcast;
      impl_->wake_cv.wait_for(lock, max_wait, [&] {
        return impl->tickets > 0 || impl->broadcast != broadcast || cancel.cancelled();
      });
      if (impl_->tickets > 0) {
        --impl_->tickets;
        woken = true;
      } else {
        woken = impl_->broadcast != broadcast;
      }
      --impl_->waiters;
      // A waiter that timed out as its ticket came leaves no stale ticket behind.
      impl_->tickets = std::min(impl_->tickets, impl_->waiters);
    }
  }
  cancel.unsubscribe(subscription);
  return woken;
}

std::optional<std::chrono::milliseconds> PgJobQueue::time_until_due() {
  const std::string& t = impl_->table;
  // Each part reads the head of one partial index.
  auto r = impl_->once(
      "SELECT EXISTS (SELECT 1 FROM " + t +
          " WHERE state = 'queued' AND run_at IS NULL) AS now_due, "
          "(SELECT (extract(epoch from min(run_at) - $1::timestamptz) * 1000)::bigint FROM " +
          t +
          " WHERE state = 'queued' AND run_at IS NOT NULL) AS run_in, "
          "(SELECT (extract(epoch from min(lease_expires_at) - clock_timestamp()) * 1000)::bigint FROM " +
          t + " WHERE state = 'running') AS lease_in",
      {format_timestamp(impl_->options.clock->now())});
  if (r.at(0, "now_due").value_or("f") == "t") return std::chrono::milliseconds(0);
  std::optional<std::chrono::milliseconds> best;
  for (const char* col : {"run_in", "lease_in"}) {
    if (const auto& v = r.at(0, col)) {
      const auto ms = std::chrono::milliseconds(std::max<std::int64_t>(0, std::stoll(*v)));
      if (!best || ms < *best) best = ms;
    }
  }
  return best;
}

// --- operators ---

std::optional<QueueEntry> PgJobQueue::entry(std::int64_t job_id) {
  auto r =
      impl_->pool->exec("SELECT " + entry_columns() + " FROM " + impl_->table + " WHERE job_id = $1::bigint",
                        {std::to_string(job_id)});
  if (r.empty()) return std::nullopt;
  return entry_from(r, 0);
}

std::vector<QueueEntry> PgJobQueue::entries() {
  auto r = impl_->pool->exec("SELECT " + entry_columns() + " FROM " + impl_->table + " ORDER BY job_id");
  std::vector<QueueEntry> out;
  out.reserve(r.rows.size());
  for (std::size_t i = 0; i < r.rows.size(); ++i) out.push_back(entry_from(r, i));
  return out;
}

std::vector<QueueEntry> PgJobQueue::entries(QueueState state) {
  auto r = impl_->pool->exec(
      "SELECT " + entry_columns() + " FROM " + impl_->table + " WHERE state = $1 ORDER BY job_id",
      {std::string(to_string(state))});
  std::vector<QueueEntry> out;
  out.reserve(r.rows.size());
  for (std::size_t i = 0; i < r.rows.size(); ++i) out.push_back(entry_from(r, i));
  return out;
}

bool PgJobQueue::requeue_failed(std::int64_t job_id, std::optional<Timestamp> run_at) {
  bool queued = false;
  impl_->pool->transaction(
      [&](Session& s) {
        queued =
            !s.exec("UPDATE " + impl_->table +
                        " SET state = 'queued', run_at = $2::timestamptz, attempts = 0, retries_left = NULL, "
                        "seq = " +
                        std::string(kNowMicros) +
                        ", "
                        "finished_at = NULL, updated_at = clock_timestamp() "
                        "WHERE job_id = $1::bigint AND state = 'failed' RETURNING job_id",
                    {std::to_string(job_id), run_at ? Param(format_timestamp(*run_at)) : Param()})
                 .empty();
        if (!queued) return;
        impl_->unfinish_failed_job(s, std::to_string(job_id));
        s.exec("SELECT pg_notify($1, $2)", {impl_->channel, std::to_string(job_id)});
      },
      1);
  if (queued) {
    impl_->log(LogLevel::info, "failed job " + std::to_string(job_id) + " queued again by an operator");
    impl_->wake_after_local_enqueue();
  }
  return queued;
}

std::size_t PgJobQueue::purge_done(Timestamp before) {
  auto r =
      impl_->tx("DELETE FROM " + impl_->table + " WHERE state = 'done' AND finished_at < $1::timestamptz",
                {format_timestamp(before)});
  return r.affected_rows;
}

}  // namespace webhookdb::pg
