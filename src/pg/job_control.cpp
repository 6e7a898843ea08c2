#include "webhookdb/pg/job_control.hpp"

#include <algorithm>

#include "pg/job_queue_sql.hpp"
#include "pg/listener.hpp"
#include "pg/queue_text.hpp"
#include "pg/sql.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb::pg {
namespace {

using detail::micros;
using detail::to_i64;
using detail::to_int;
using detail::to_opt_ts;

constexpr const char* kControlComponent = "job_control";
// complete() with up to this many progress reports (backfillers) runs as a
// prepared statement, one per count; more, as a plain one.
constexpr std::size_t kPreparedCompleteRows = 8;

std::uint64_t control_u64(const std::optional<std::string>& v) {
  return v ? static_cast<std::uint64_t>(std::max<long long>(0, std::stoll(*v))) : 0U;
}

std::optional<std::int64_t> control_opt_i64(const std::optional<std::string>& v) {
  if (!v) return std::nullopt;
  return std::stoll(*v);
}

// A text[] literal of lease tokens (hex only: nothing to quote).
std::string cancel_token_array(const std::vector<Lease>& leases) {
  std::string out = "{";
  for (const auto& lease : leases) {
    const bool hex =
        !lease.token.empty() && lease.token.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!hex) continue;
    if (out.size() > 1) out += ',';
    out += lease.token;
  }
  return out + "}";
}

double control_per_second(std::uint64_t n, std::chrono::milliseconds elapsed) {
  if (elapsed.count() <= 0) return 0.0;
  return static_cast<double>(n) * 1000.0 / static_cast<double>(elapsed.count());
}

}  // namespace

std::string_view to_string(CancelResult result) noexcept {
  switch (result) {
    case CancelResult::cancelled:
      return "cancelled";
    case CancelResult::requested:
      return "requested";
    case CancelResult::not_running:
      return "not_running";
    case CancelResult::not_found:
      return "not_found";
  }
  return "unknown";
}

double JobSummary::rows_per_second() const noexcept {
  return control_per_second(rows_written, elapsed);
}
double JobSummary::pages_per_second() const noexcept {
  return control_per_second(pages, elapsed);
}

struct PgJobControl::Impl {
  std::shared_ptr<PgJobQueue> queue;
  PgJobControlOptions options;
  std::string queue_table;
  std::string jobs_table;
  std::string integrations_table;
  std::string progress_table;
  std::string cancels_table;
  std::string channel;
  std::mutex listener_mutex;
  std::unique_ptr<Listener> listener;

  ConnectionPool& pool() const { return queue->pool(); }

  // Every job listing: jobs, their integration, queue row, cancel request and
  // progress. Parameters: $1 state, $2 integration id, $3 job id, $4 limit,
  // $5 incremental, $6 criteria (jsonb), $7 unfinished only; NULL: any.
  std::string jobs_sql() const {
    return "SELECT j.id, j.opaque_id, j.service_integration_id, i.opaque_id AS integration, i.service_name, "
           "j.parent_job_id, j.incremental, j.criteria::text AS criteria, "
           "coalesce(q.state, 'unqueued') AS state, coalesce(q.attempts, 0) AS attempts, q.retries_left, "
           "q.lease_owner, " +
           micros("q.lease_expires_at") + " AS lease_expires_at, " + micros("q.run_at") +
           " AS run_at, coalesce(q.last_error, j.error) AS last_error, "
           "(c.job_id IS NOT NULL AND c.lease_token = q.lease_token) AS cancel_requested, " +
           micros("j.created_at") + " AS created_at, " + micros("j.started_at") + " AS started_at, " +
           micros("j.finished_at") +
           " AS finished_at, p.pages, p.items, p.rows_written, p.retries, p.bytes, " + "p.elapsed_ms, " +
           micros("p.updated_at") + " AS progress_at FROM " + jobs_table + " j JOIN " + integrations_table +
           " i ON i.id = j.service_integration_id LEFT JOIN " + queue_table +
           " q ON q.job_id = j.id LEFT JOIN " + cancels_table +
           " c ON c.job_id = j.id LEFT JOIN LATERAL (SELECT sum(pages) AS pages, sum(items) AS items, "
           "sum(rows_written) AS rows_written, sum(retries) AS retries, sum(bytes) AS bytes, "
           "max(elapsed_ms) AS elapsed_ms, max(updated_at) AS updated_at FROM " +
           progress_table +
           " WHERE job_id = j.id) p ON true "
           "WHERE ($1::text IS NULL OR coalesce(q.state, 'unqueued') = $1::text) "
           "AND ($2::bigint IS NULL OR j.service_integration_id = $2::bigint) "
           "AND ($3::bigint IS NULL OR j.id = $3::bigint) "
           "AND ($5::boolean IS NULL OR j.incremental = $5::boolean) "
           "AND ($6::jsonb IS NULL OR j.criteria = $6::jsonb) "
           "AND (NOT coalesce($7::boolean, false) OR j.finished_at IS NULL) "
           "ORDER BY j.id DESC LIMIT $4::bigint";
  }

  static JobSummary job_from(const QueryResult& r, std::size_t i) {
    JobSummary j;
    j.job_id = to_i64(r.at(i, "id"));
    j.opaque_id = r.at(i, "opaque_id").value_or("");
    j.integration_id = to_i64(r.at(i, "service_integration_id"));
    j.integration = r.at(i, "integration").value_or("");
    j.service_name = r.at(i, "service_name").value_or("");
    j.parent_job_id = control_opt_i64(r.at(i, "parent_job_id"));
    j.incremental = r.at(i, "incremental").value_or("f") == "t";
    j.criteria = nlohmann::json::parse(r.at(i, "criteria").value_or("{}"));
    j.state = r.at(i, "state").value_or("");
    j.attempts = to_int(r.at(i, "attempts"));
    if (const auto& v = r.at(i, "retries_left")) j.retries_left = std::stoi(*v);
    j.lease_owner = r.at(i, "lease_owner").value_or("");
    j.lease_expires_at = to_opt_ts(r.at(i, "lease_expires_at"));
    j.run_at = to_opt_ts(r.at(i, "run_at"));
    j.last_error = r.at(i, "last_error").value_or("");
    j.cancel_requested = r.at(i, "cancel_requested").value_or("f") == "t";
    j.created_at = to_opt_ts(r.at(i, "created_at")).value_or(Timestamp{});
    j.started_at = to_opt_ts(r.at(i, "started_at"));
    j.finished_at = to_opt_ts(r.at(i, "finished_at"));
    j.pages = control_u64(r.at(i, "pages"));
    j.items = control_u64(r.at(i, "items"));
    j.rows_written = control_u64(r.at(i, "rows_written"));
    j.retries = control_u64(r.at(i, "retries"));
    j.bytes = control_u64(r.at(i, "bytes"));
    j.elapsed = std::chrono::milliseconds(to_i64(r.at(i, "elapsed_ms")));
    j.progress_at = to_opt_ts(r.at(i, "progress_at"));
    return j;
  }

  std::vector<JobSummary> select_jobs(const std::vector<Param>& params) {
    const auto r = pool().exec(jobs_sql(), params);
    std::vector<JobSummary> out;
    out.reserve(r.rows.size());
    for (std::size_t i = 0; i < r.rows.size(); ++i) out.push_back(job_from(r, i));
    return out;
  }

  std::string integrations_sql(const std::string& where) const {
    return "SELECT id, opaque_id, service_name, table_name, api_url, depends_on_id, " +
           micros("last_backfilled_at") +
           " AS last_backfilled_at, (backfill_key <> '' OR backfill_secret <> '') AS has_credentials FROM " +
           integrations_table + " " + where + " ORDER BY id";
  }

  static IntegrationSummary integration_from(const QueryResult& r, std::size_t i) {
    IntegrationSummary s;
    s.id = to_i64(r.at(i, "id"));
    s.opaque_id = r.at(i, "opaque_id").value_or("");
    s.service_name = r.at(i, "service_name").value_or("");
    s.table_name = r.at(i, "table_name").value_or("");
    s.api_url = r.at(i, "api_url").value_or("");
    s.depends_on = control_opt_i64(r.at(i, "depends_on_id"));
    s.last_backfilled_at = to_opt_ts(r.at(i, "last_backfilled_at"));
    s.has_backfill_credentials = r.at(i, "has_credentials").value_or("f") == "t";
    return s;
  }
};

PgJobControl::PgJobControl(std::shared_ptr<PgJobQueue> queue, PgJobControlOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (!queue) throw InvalidPrecondition("PgJobControl needs a PgJobQueue");
  if (!options.logger) options.logger = std::make_shared<NullLogger>();
  impl_->queue = std::move(queue);
  impl_->options = std::move(options);
  const std::string& schema = impl_->pool().config().schema;
  impl_->queue_table = sql::qualified(schema, "webhookdb_job_queue");
  impl_->jobs_table = sql::qualified(schema, "webhookdb_backfill_jobs");
  impl_->integrations_table = sql::qualified(schema, "webhookdb_service_integrations");
  impl_->progress_table = sql::qualified(schema, "webhookdb_job_progress");
  impl_->cancels_table = sql::qualified(schema, "webhookdb_job_cancels");
  impl_->channel = detail::notify_channel("webhookdb_job_cancel", schema);
  if (impl_->options.migrate) migrate();
}

PgJobControl::~PgJobControl() {
  stop_watching();
}

const std::vector<Migration>& PgJobControl::migrations() {
  static const std::vector<Migration> steps = {
      {1, "job progress and cancel requests",
       R"SQL(
CREATE TABLE IF NOT EXISTS {schema}.webhookdb_job_progress (
  job_id bigint NOT NULL,
  backfiller text NOT NULL,
  owner text NOT NULL DEFAULT '',
  pages bigint NOT NULL DEFAULT 0,
  items bigint NOT NULL DEFAULT 0,
  rows_written bigint NOT NULL DEFAULT 0,
  retries bigint NOT NULL DEFAULT 0,
  bytes bigint NOT NULL DEFAULT 0,
  elapsed_ms bigint NOT NULL DEFAULT 0,
  done boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (job_id, backfiller)
);
CREATE TABLE IF NOT EXISTS {schema}.webhookdb_job_cancels (
  job_id bigint PRIMARY KEY,
  lease_token text NOT NULL,
  requested_by text NOT NULL DEFAULT '',
  requested_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS webhookdb_job_cancels_token_idx ON {schema}.webhookdb_job_cancels (lease_token);
)SQL"},
  };
  return steps;
}

void PgJobControl::migrate() {
  pg::migrate(impl_->pool(), kControlComponent, migrations());
}

const std::string& PgJobControl::channel() const noexcept {
  return impl_->channel;
}

CancelResult PgJobControl::request_cancel(std::int64_t job_id, const std::string& requested_by) {
  CancelResult result = CancelResult::not_found;
  const std::string id = std::to_string(job_id);
  impl_->pool().transaction(
      [&](Session& s) {
        const auto row =
            s.exec("SELECT state, lease_token, lease_expires_at < clock_timestamp() AS expired FROM " +
                       impl_->queue_table + " WHERE job_id = $1::bigint FOR UPDATE",
                   {id});
        if (row.empty()) {
          result = CancelResult::not_found;
          return;
        }
        const std::string state = row.at(0, "state").value_or("");
        // A running job whose lease expired has no live holder to notify (its
        // worker died): it is cancelled here, as a queued one; a holder that
        // was only paused finds its lease gone and stops at its next call.
        const bool expired = row.at(0, "expired").value_or("f") == "t";
        if (state == "queued" || (state == "running" && expired)) {
          s.exec("UPDATE " + impl_->queue_table +
                     " SET state = 'cancelled', lease_owner = NULL, lease_token = NULL, lease_expires_at = "
                     "NULL, "
                     "finished_at = clock_timestamp(), updated_at = clock_timestamp() "
                     "WHERE job_id = $1::bigint",
                 {id});
          result = CancelResult::cancelled;
        } else if (state == "running" && row.at(0, "lease_token")) {
          // The NOTIFY is delivered at COMMIT, so the holder sees the row.
          s.exec(
              "INSERT INTO " + impl_->cancels_table +
                  " (job_id, lease_token, requested_by) VALUES ($1::bigint, $2, $3) ON CONFLICT (job_id) DO "
                  "UPDATE SET lease_token = EXCLUDED.lease_token, requested_by = EXCLUDED.requested_by, "
                  "requested_at = clock_timestamp()",
              {id, *row.at(0, "lease_token"), requested_by});
          s.exec("SELECT pg_notify($1, $2)", {impl_->channel, id});
          result = CancelResult::requested;
        } else {
          result = CancelResult::not_running;
        }
      },
      1);
  impl_->options.logger->log(
      LogLevel::info, "job " + id + ": cancel by " + requested_by + ": " + std::string(to_string(result)));
  return result;
}

std::vector<IntegrationSummary> PgJobControl::integrations() {
  const auto r = impl_->pool().exec(impl_->integrations_sql(""));
  std::vector<IntegrationSummary> out;
  for (std::size_t i = 0; i < r.rows.size(); ++i) out.push_back(Impl::integration_from(r, i));
  return out;
}

std::optional<IntegrationSummary> PgJobControl::integration(const std::string& id_or_opaque_id) {
  const bool numeric = !id_or_opaque_id.empty() && id_or_opaque_id.size() < 19 &&
                       id_or_opaque_id.find_first_not_of("0123456789") == std::string::npos;
  const auto r = numeric
                     ? impl_->pool().exec(impl_->integrations_sql("WHERE id = $1::bigint"), {id_or_opaque_id})
                     : impl_->pool().exec(impl_->integrations_sql("WHERE opaque_id = $1"), {id_or_opaque_id});
  if (r.empty()) return std::nullopt;
  return Impl::integration_from(r, 0);
}

std::vector<JobSummary> PgJobControl::jobs(const JobFilter& filter) {
  return impl_->select_jobs({filter.state ? Param(*filter.state) : Param(),
                             filter.integration_id ? Param(std::to_string(*filter.integration_id)) : Param(),
                             Param(), std::to_string(filter.limit), Param(), Param(), Param()});
}

std::optional<JobSummary> PgJobControl::job(std::int64_t job_id) {
  auto all = impl_->select_jobs({Param(), Param(), std::to_string(job_id), "1", Param(), Param(), Param()});
  if (all.empty()) return std::nullopt;
  return all.front();
}

std::optional<JobSummary> PgJobControl::unfinished_job(std::int64_t integration_id, bool incremental,
                                                       const nlohmann::json& criteria) {
  const nlohmann::json c = criteria.is_null() ? nlohmann::json::object() : criteria;
  auto all = impl_->select_jobs({Param(), std::to_string(integration_id), Param(), "1",
                                 incremental ? "true" : "false", c.dump(), "true"});
  if (all.empty()) return std::nullopt;
  return all.front();
}

std::vector<PersistedProgress> PgJobControl::progress(std::int64_t job_id) {
  const auto r = impl_->pool().exec(
      "SELECT job_id, backfiller, owner, pages, items, rows_written, retries, bytes, elapsed_ms, done, " +
          micros("updated_at") + " AS updated_at FROM " + impl_->progress_table +
          " WHERE job_id = $1::bigint ORDER BY backfiller",
      {std::to_string(job_id)});
  std::vector<PersistedProgress> out;
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    PersistedProgress p;
    p.job_id = to_i64(r.at(i, "job_id"));
    p.backfiller = r.at(i, "backfiller").value_or("");
    p.owner = r.at(i, "owner").value_or("");
    p.pages = control_u64(r.at(i, "pages"));
    p.items = control_u64(r.at(i, "items"));
    p.rows_written = control_u64(r.at(i, "rows_written"));
    p.retries = control_u64(r.at(i, "retries"));
    p.bytes = control_u64(r.at(i, "bytes"));
    p.elapsed = std::chrono::milliseconds(to_i64(r.at(i, "elapsed_ms")));
    p.done = r.at(i, "done").value_or("f") == "t";
    p.updated_at = to_opt_ts(r.at(i, "updated_at")).value_or(Timestamp{});
    out.push_back(std::move(p));
  }
  return out;
}

void PgJobControl::watch_cancels(std::function<void()> on_request) {
  std::lock_guard lock(impl_->listener_mutex);
  if (impl_->listener) throw InvalidPrecondition("PgJobControl::watch_cancels called twice");
  impl_->listener = std::make_unique<Listener>(impl_->pool().config().url, impl_->channel,
                                               impl_->options.logger, std::move(on_request));
}

void PgJobControl::stop_watching() {
  std::unique_ptr<Listener> listener;
  {
    std::lock_guard lock(impl_->listener_mutex);
    listener = std::move(impl_->listener);
  }
  listener.reset();
}

std::vector<std::int64_t> PgJobControl::cancel_requested(const std::vector<Lease>& running) {
  const std::string tokens = cancel_token_array(running);
  if (tokens == "{}") return {};
  const auto r = impl_->pool().exec(
      "SELECT job_id FROM " + impl_->cancels_table + " WHERE lease_token = ANY($1::text[]) ORDER BY job_id",
      {tokens});
  std::vector<std::int64_t> ids;
  for (const auto& row : r.rows) ids.push_back(to_i64(row.at(0)));
  return ids;
}

bool PgJobControl::finish_cancelled(const Lease& lease) {
  // The request row stays (one per job, replaced by the next request; it
  // names this run's token, so it stops no later run): operators see when it
  // was asked and by whom, and finished_at - requested_at is the time it took.
  bool done = false;
  impl_->pool().transaction(
      [&](Session& s) {
        done =
            !s.exec(
                  "UPDATE " + impl_->queue_table +
                      " SET state = 'cancelled', lease_owner = NULL, lease_token = NULL, lease_expires_at = "
                      "NULL, finished_at = clock_timestamp(), updated_at = clock_timestamp() "
                      "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING job_id",
                  {std::to_string(lease.job_id), lease.token})
                 .empty();
      },
      1);
  return done;
}

void PgJobControl::record_progress(const BackfillProgress& p, const std::string& owner) {
  impl_->pool().exec(
      "INSERT INTO " + impl_->progress_table +
          " AS p (job_id, backfiller, owner, pages, items, rows_written, retries, bytes, elapsed_ms, done) "
          "VALUES ($1::bigint, $2, $3, $4::bigint, $5::bigint, $6::bigint, $7::bigint, $8::bigint, "
          "$9::bigint, "
          "$10::boolean) ON CONFLICT (job_id, backfiller) DO UPDATE SET owner = EXCLUDED.owner, "
          "pages = EXCLUDED.pages, items = EXCLUDED.items, rows_written = EXCLUDED.rows_written, "
          "retries = EXCLUDED.retries, bytes = EXCLUDED.bytes, elapsed_ms = EXCLUDED.elapsed_ms, "
          "done = EXCLUDED.done, updated_at = clock_timestamp()",
      {std::to_string(p.job_id), p.backfiller, owner, std::to_string(p.pages), std::to_string(p.items),
       std::to_string(p.rows_written), std::to_string(p.retries), std::to_string(p.bytes),
       std::to_string(p.elapsed.count()), p.done ? "true" : "false"});
}

bool PgJobControl::complete(const Lease& lease, const std::vector<BackfillProgress>& progress,
                            const std::string& owner) {
  if (progress.empty()) return impl_->queue->complete(lease);
  if (lease.token.empty()) {
    throw InvalidPrecondition("PgJobControl::complete needs a lease from take() (job " +
                              std::to_string(lease.job_id) + " has no token)");
  }
  // The queue's complete and the progress rows in one statement (one
  // commit); the rows only while the lease is held (`c` is not empty).
  std::vector<Param> params{std::to_string(lease.job_id), lease.token, owner};
  std::string rows;
  for (const auto& p : progress) {
    const std::size_t n = params.size();
    const auto arg = [&](std::size_t k, const char* type) { return "$" + std::to_string(n + k) + "::" + type; };
    rows += std::string(rows.empty() ? "" : ", ") + "(" + arg(1, "text") + ", " + arg(2, "bigint") + ", " +
            arg(3, "bigint") + ", " + arg(4, "bigint") + ", " + arg(5, "bigint") + ", " + arg(6, "bigint") + ", " +
            arg(7, "bigint") + ", " + arg(8, "boolean") + ")";
    for (const std::string& v :
         {p.backfiller, std::to_string(p.pages), std::to_string(p.items), std::to_string(p.rows_written),
          std::to_string(p.retries), std::to_string(p.bytes), std::to_string(p.elapsed.count()),
          std::string(p.done ? "true" : "false")}) {
      params.emplace_back(v);
    }
  }
  const std::string sql =
      "WITH c AS (" + detail::complete_update_sql(impl_->queue_table) + "), "
      "p AS (INSERT INTO " + impl_->progress_table +
      " AS p (job_id, backfiller, owner, pages, items, rows_written, retries, bytes, elapsed_ms, done) "
      "SELECT c.job_id, v.backfiller, $3::text, v.pages, v.items, v.rows_written, v.retries, v.bytes, v.elapsed_ms, "
      "v.done FROM c, (VALUES " + rows + ") AS v (backfiller, pages, items, rows_written, retries, bytes, "
      "elapsed_ms, done) "
      "ON CONFLICT (job_id, backfiller) DO UPDATE SET owner = EXCLUDED.owner, "
      "pages = EXCLUDED.pages, items = EXCLUDED.items, rows_written = EXCLUDED.rows_written, "
      "retries = EXCLUDED.retries, bytes = EXCLUDED.bytes, elapsed_ms = EXCLUDED.elapsed_ms, "
      "done = EXCLUDED.done, updated_at = clock_timestamp()) "
      "SELECT job_id FROM c";
  // Guarded by state and lease token: a repeat on a fresh connection after a
  // lost one changes nothing the first did. Prepared (one text per number of
  // backfillers, a few): unprepared, planning it cost the server about as
  // much as running it.
  if (progress.size() <= kPreparedCompleteRows) {
    return !detail::prepared_once(impl_->pool(), detail::job_statement_name("complete_progress", sql), sql, params)
                .empty();
  }
  try {
    return !impl_->pool().exec(sql, params).empty();
  } catch (const StoreError& e) {
    if (!e.retryable()) throw;
    return !impl_->pool().exec(sql, params).empty();
  }
}

// --- PgProgressSink ---

PgProgressSink::PgProgressSink(std::shared_ptr<PgJobControl> control, std::string owner,
                               std::shared_ptr<ProgressSink> next, std::chrono::milliseconds interval,
                               std::shared_ptr<Logger> logger)
    : control_(std::move(control)),
      owner_(std::move(owner)),
      next_(std::move(next)),
      interval_(interval),
      logger_(logger ? std::move(logger) : std::make_shared<NullLogger>()) {
  if (!control_) throw InvalidPrecondition("PgProgressSink needs a PgJobControl");
  if (interval_.count() <= 0) throw InvalidPrecondition("PgProgressSink interval must be positive");
}

void PgProgressSink::hold_short_final_reports(bool hold) {
  std::lock_guard lock(mutex_);
  hold_ = hold;
}

std::vector<BackfillProgress> PgProgressSink::take_held(std::int64_t job_id) {
  std::vector<BackfillProgress> out;
  std::lock_guard lock(mutex_);
  if (auto it = held_.find(job_id); it != held_.end()) {
    for (auto& h : it->second) out.push_back(std::move(h.progress));
    held_.erase(it);
  }
  return out;
}

void PgProgressSink::flush_held(std::int64_t job_id) {
  for (const auto& p : take_held(job_id)) write(p);
}

void PgProgressSink::write(const BackfillProgress& progress) {
  try {
    control_->record_progress(progress, owner_);
  } catch (const std::exception& e) {
    std::lock_guard lock(mutex_);
    if (failures_++ % 100 == 0) {
      logger_->log(LogLevel::warn, "job " + std::to_string(progress.job_id) +
                                       ": could not persist its progress (" + e.what() + ")");
    }
  }
}

void PgProgressSink::on_progress(const BackfillProgress& progress) {
  if (next_) next_->on_progress(progress);
  if (progress.job_id == 0) return;  // not a job's backfill
  const auto now = std::chrono::steady_clock::now();
  bool write_now = false;
  std::vector<BackfillProgress> overdue;  // held reports of this job an interval old
  {
    std::lock_guard lock(mutex_);
    const auto key = std::make_pair(progress.job_id, progress.backfiller);
    auto it = written_.find(key);
    if (auto h = held_.find(progress.job_id); h != held_.end()) {
      auto& list = h->second;
      for (auto i = list.begin(); i != list.end();) {
        if (now - i->at >= interval_) {
          overdue.push_back(std::move(i->progress));
          i = list.erase(i);
        } else {
          ++i;
        }
      }
      if (list.empty()) held_.erase(h);
    }
    if (progress.done) {
      // The final figures, always (one write per backfiller even for a short
      // job); held, they are written with the job's end (or an interval later).
      if (it != written_.end()) written_.erase(it);
      if (hold_) {
        if (held_.size() > 10'000) held_.clear();  // never taken: the worker is not asking
        auto& list = held_[progress.job_id];
        std::erase_if(list, [&](const Held& x) { return x.progress.backfiller == progress.backfiller; });
        list.push_back(Held{progress, now});
      } else {
        write_now = true;
      }
    } else if (it == written_.end()) {
      // A job shorter than one interval writes only its final report.
      if (written_.size() > 10'000) written_.clear();  // runs that never reported done (cancelled, failed)
      written_.emplace(key, now);
    } else if (now - it->second >= interval_) {
      write_now = true;
      it->second = now;
    }
  }
  for (const auto& p : overdue) write(p);
  if (write_now) write(progress);
}

}  // namespace webhookdb::pg
