#include "webhookdb/pg/job_queue.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>

#include "pg/listener.hpp"
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
  }
  return "unknown";
}

struct PgJobQueue::Impl {
  std::shared_ptr<pg::ConnectionPool> pool;
  PgJobQueueOptions options;
  std::string table;  // "schema".webhookdb_job_queue, quoted
  std::string channel;

  mutable std::mutex wake_mutex;
  std::condition_variable wake_cv;
  std::atomic<std::uint64_t> generation{0};

  std::mutex listener_mutex;
  std::unique_ptr<Listener> listener;

  void bump() {
    {
      std::lock_guard lock(wake_mutex);
      generation.fetch_add(1, std::memory_order_acq_rel);
    }
    wake_cv.notify_all();
  }

  void log(LogLevel level, const std::string& message) const {
    if (options.logger) options.logger->log(level, message);
  }

  // One transaction; a lost connection before COMMIT runs `fn` again on a
  // fresh one (every statement here is safe to repeat: they are guarded by
  // state and lease owner).
  QueryResult tx(const std::string& sql, const std::vector<Param>& params) {
    QueryResult out;
    pool->transaction([&](Session& s) { out = s.exec(sql, params); }, 1);
    return out;
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
  if (!options.clock) options.clock = system_clock();
  if (!options.logger) options.logger = std::make_shared<NullLogger>();
  impl_->pool = std::move(pool);
  impl_->options = std::move(options);
  const auto& schema = impl_->pool->config().schema;
  impl_->channel = channel_for(schema);
  if (impl_->options.migrate) migrate();
  impl_->table = pg::sql::qualified(schema, "webhookdb_job_queue");
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
  // A queued job keeps the earlier due time (NULL, "now", is the earliest).
  const std::string sql = "INSERT INTO " + t +
                          " AS q (job_id, state, run_at) VALUES ($1::bigint, 'queued', $2::timestamptz) "
                          "ON CONFLICT (job_id) DO UPDATE SET "
                          "  run_at = CASE WHEN q.state <> 'queued' THEN EXCLUDED.run_at "
                          "                WHEN q.run_at IS NULL OR EXCLUDED.run_at IS NULL THEN NULL "
                          "                ELSE least(q.run_at, EXCLUDED.run_at) END, "
                          "  attempts = CASE WHEN q.state = 'queued' THEN q.attempts ELSE 0 END, "
                          "  retries_left = CASE WHEN q.state = 'queued' THEN q.retries_left ELSE NULL END, "
                          "  finished_at = NULL, state = 'queued', updated_at = clock_timestamp() "
                          "WHERE q.state <> 'running' "
                          "RETURNING job_id";
  bool queued = false;
  impl_->pool->transaction(
      [&](Session& s) {
        const Param at = run_at ? Param(format_timestamp(*run_at)) : Param();
        queued = !s.exec(sql, {std::to_string(job_id), at}).empty();
        // Delivered at COMMIT, so a woken worker sees the row.
        s.exec("SELECT pg_notify($1, $2)", {impl_->channel, std::to_string(job_id)});
      },
      1);
  if (!queued)
    impl_->log(LogLevel::debug, "job " + std::to_string(job_id) + " is running: enqueue left it alone");
  impl_->bump();
}

bool PgJobQueue::enqueue_if_absent(std::int64_t job_id) {
  const std::string sql =
      "INSERT INTO " + impl_->table +
      " (job_id, state) VALUES ($1::bigint, 'queued') ON CONFLICT (job_id) DO NOTHING RETURNING job_id";
  bool queued = false;
  impl_->pool->transaction(
      [&](Session& s) {
        queued = !s.exec(sql, {std::to_string(job_id)}).empty();
        if (queued) s.exec("SELECT pg_notify($1, $2)", {impl_->channel, std::to_string(job_id)});
      },
      1);
  if (queued) impl_->bump();
  return queued;
}

// --- worker side ---

std::optional<Lease> PgJobQueue::take(const std::string& owner) {
  if (owner.empty()) throw InvalidPrecondition("PgJobQueue::take needs an owner");
  const std::string& t = impl_->table;
  const std::string now = format_timestamp(impl_->options.clock->now());
  const std::string lease = ms_param(impl_->options.lease);
  const std::string token = new_lease_token();
  std::optional<Lease> out;
  impl_->pool->transaction(
      [&](Session& s) {
        out.reset();
        if (impl_->options.max_attempts > 0) {
          auto reaped = s.exec(
              "UPDATE " + t +
                  " SET state = 'failed', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
                  "  last_error = 'lease expired on attempt ' || attempts || ' of ' || $1::int || "
                  "    ': its worker was lost every time (last: ' || coalesce(lease_owner, '?') || ')', "
                  "  finished_at = clock_timestamp(), updated_at = clock_timestamp() "
                  "WHERE state = 'running' AND lease_expires_at < clock_timestamp() AND attempts >= $1::int "
                  "RETURNING job_id",
              {std::to_string(impl_->options.max_attempts)});
          for (const auto& row : reaped.rows) {
            impl_->log(LogLevel::error, "job " + row[0].value_or("?") + " failed: its lease expired " +
                                            std::to_string(impl_->options.max_attempts) + " times");
          }
        }
        auto r = s.exec(
            "WITH candidate AS ("
            "  SELECT job_id, state AS prev_state, lease_owner AS prev_owner, lease_token AS prev_token "
            "FROM " +
                t +
                "  WHERE (state = 'queued' AND (run_at IS NULL OR run_at <= $2::timestamptz))"
                "     OR (state = 'running' AND lease_expires_at < clock_timestamp())"
                "  ORDER BY run_at ASC NULLS FIRST, job_id"
                "  LIMIT 1 FOR UPDATE SKIP LOCKED) "
                "UPDATE " +
                t +
                " AS q SET state = 'running', attempts = q.attempts + 1, lease_owner = $1, "
                "  lease_token = $4, lease_expires_at = clock_timestamp() + $3::bigint * interval '1 "
                "millisecond', "
                "  updated_at = clock_timestamp() "
                "FROM candidate WHERE q.job_id = candidate.job_id "
                "RETURNING q.job_id, q.attempts, q.retries_left, candidate.prev_state, candidate.prev_owner, "
                "  candidate.prev_token",
            {owner, now, lease, token});
        if (r.empty()) return;
        Lease l;
        l.job_id = to_i64(r.at(0, "job_id"));
        l.attempt = to_int(r.at(0, "attempts"));
        l.retries_left = to_opt_int(r.at(0, "retries_left"));
        l.recovered = r.at(0, "prev_state").value_or("") == "running";
        l.previous_owner = l.recovered ? r.at(0, "prev_owner").value_or("") : "";
        l.previous_token = l.recovered ? r.at(0, "prev_token").value_or("") : "";
        l.owner = owner;
        l.token = token;
        out = l;
      },
      1);
  if (out && out->recovered) {
    impl_->log(LogLevel::warn, "job " + std::to_string(out->job_id) + ": lease of " + out->previous_owner +
                                   " expired, taken over by " + owner + " (attempt " +
                                   std::to_string(out->attempt) + ")");
  }
  return out;
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
  auto r =
      impl_->tx("UPDATE " + impl_->table +
                    " SET state = 'done', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
                    "finished_at = clock_timestamp(), updated_at = clock_timestamp() "
                    "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING job_id",
                {std::to_string(lease.job_id), lease.token});
  return !r.empty();
}

bool PgJobQueue::release(const Lease& lease, std::optional<Timestamp> run_at) {
  require_token(lease, "release");
  bool released = false;
  impl_->pool->transaction(
      [&](Session& s) {
        released =
            !s.exec(
                  "UPDATE " + impl_->table +
                      " SET state = 'queued', run_at = $3::timestamptz, lease_owner = NULL, "
                      "lease_token = NULL, lease_expires_at = NULL, updated_at = clock_timestamp() "
                      "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING job_id",
                  {std::to_string(lease.job_id), lease.token,
                   run_at ? Param(format_timestamp(*run_at)) : Param()})
                 .empty();
        if (released) s.exec("SELECT pg_notify($1, $2)", {impl_->channel, std::to_string(lease.job_id)});
      },
      1);
  return released;
}

bool PgJobQueue::postpone(const Lease& lease, Timestamp run_at) {
  require_token(lease, "postpone");
  bool postponed = false;
  impl_->pool->transaction(
      [&](Session& s) {
        postponed =
            !s.exec(
                  "UPDATE " + impl_->table +
                      " SET state = 'queued', run_at = $3::timestamptz, attempts = greatest(attempts - 1, "
                      "0), "
                      "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
                      "updated_at = clock_timestamp() "
                      "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING job_id",
                  {std::to_string(lease.job_id), lease.token, format_timestamp(run_at)})
                 .empty();
        if (postponed) s.exec("SELECT pg_notify($1, $2)", {impl_->channel, std::to_string(lease.job_id)});
      },
      1);
  return postponed;
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
  const Timestamp run_at =
      impl_->options.clock->now() + std::chrono::duration_cast<std::chrono::microseconds>(backoff);
  // Every right-hand side sees the row as it was, so `budget` is the same in each.
  const std::string budget = "coalesce(retries_left, $3::int)";
  auto r = impl_->tx(
      "UPDATE " + impl_->table + " SET " + "state = CASE WHEN " + budget +
          " > 0 THEN 'queued' ELSE 'failed' END, " + "run_at = CASE WHEN " + budget +
          " > 0 THEN $4::timestamptz ELSE run_at END, " + "retries_left = greatest(" + budget + " - 1, 0), " +
          "finished_at = CASE WHEN " + budget + " > 0 THEN NULL ELSE clock_timestamp() END, " +
          "last_error = $5, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
          "updated_at = clock_timestamp() "
          "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING state",
      {std::to_string(lease.job_id), lease.token, std::to_string(std::max(0, retries)),
       format_timestamp(run_at), clean_error(error, impl_->options.max_error_bytes)});
  if (r.empty()) return RetryDecision::lease_lost;
  return r.at(0, "state").value_or("") == "queued" ? RetryDecision::retried : RetryDecision::failed;
}

bool PgJobQueue::fail(const Lease& lease, const std::string& error) {
  require_token(lease, "fail");
  auto r = impl_->tx(
      "UPDATE " + impl_->table +
          " SET state = 'failed', last_error = $3, lease_owner = NULL, lease_token = NULL, "
          "lease_expires_at = NULL, finished_at = clock_timestamp(), updated_at = clock_timestamp() "
          "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING job_id",
      {std::to_string(lease.job_id), lease.token, clean_error(error, impl_->options.max_error_bytes)});
  return !r.empty();
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
  {
    std::lock_guard lock(impl_->listener_mutex);
    if (!impl_->listener) {
      Impl* impl = impl_.get();
      impl_->listener = std::make_unique<Listener>(impl_->pool->config().url, impl_->channel,
                                                   impl_->options.logger, [impl] { impl->bump(); });
    }
  }
  Impl* impl = impl_.get();
  const auto subscription = cancel.subscribe([impl] {
    std::lock_guard lock(impl->wake_mutex);
    impl->wake_cv.notify_all();
  });
  bool woken = false;
  {
    std::unique_lock lock(impl_->wake_mutex);
    impl_->wake_cv.wait_for(lock, max_wait, [&] {
      return impl->generation.load(std::memory_order_acquire) != seen || cancel.cancelled();
    });
    woken = impl->generation.load(std::memory_order_acquire) != seen;
  }
  cancel.unsubscribe(subscription);
  return woken;
}

std::optional<std::chrono::milliseconds> PgJobQueue::time_until_due() {
  const std::string& t = impl_->table;
  auto r = impl_->tx(
      "SELECT (SELECT count(*) FROM " + t +
          " WHERE state = 'queued' AND run_at IS NULL) AS now_due, "
          "(SELECT (extract(epoch from min(run_at) - $1::timestamptz) * 1000)::bigint FROM " +
          t +
          " WHERE state = 'queued' AND run_at IS NOT NULL) AS run_in, "
          "(SELECT (extract(epoch from min(lease_expires_at) - clock_timestamp()) * 1000)::bigint FROM " +
          t + " WHERE state = 'running') AS lease_in",
      {format_timestamp(impl_->options.clock->now())});
  if (to_i64(r.at(0, "now_due")) > 0) return std::chrono::milliseconds(0);
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
                        "finished_at = NULL, updated_at = clock_timestamp() "
                        "WHERE job_id = $1::bigint AND state = 'failed' RETURNING job_id",
                    {std::to_string(job_id), run_at ? Param(format_timestamp(*run_at)) : Param()})
                 .empty();
        if (queued) s.exec("SELECT pg_notify($1, $2)", {impl_->channel, std::to_string(job_id)});
      },
      1);
  if (queued) {
    impl_->log(LogLevel::info, "failed job " + std::to_string(job_id) + " queued again by an operator");
    impl_->bump();
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
