#pragma once
// The operators' side of a PgJobQueue: cancel a job wherever it runs, see the
// progress of jobs running on any machine, and the overview the `webhookdb`
// admin CLI prints (integrations and jobs with their queue state).
//
//   auto queue = std::make_shared<pg::PgJobQueue>(pool);
//   pg::PgJobControl control(queue);
//   control.request_cancel(job_id, "alice");  // queued: cancelled now; running: its holder stops
//   for (const auto& job : control.jobs({})) std::cout << job.job_id << " " << job.state << "\n";
//
// Cancel. A queued job becomes 'cancelled' at once. A running job gets a
// request row naming the lease token of the run to stop, and a NOTIFY on
// channel() in the same transaction; the worker holding it (watch_cancels,
// which webhookdb::jobs::Worker starts) cancels that run, which stops at its
// next page boundary, in-flight request aborted, keeping its checkpoints, and
// finish_cancelled() ends it as 'cancelled'. enqueue() of the same job runs
// it again from its checkpoints. A request names one run (its token), so it
// never stops a later run of the same job.
//
// Progress. PgProgressSink writes what a backfiller reports to its
// ProgressSink into <schema>.webhookdb_job_progress, one row per job and
// backfiller, at most once per interval per backfiller plus its last report.
//
// Tables of component "job_control" (own migrations); the queue's table and
// PgJobStore's tables are read and, for cancels, the queue's row written.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"
#include "webhookdb/logger.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb::pg {

class Listener;

enum class CancelResult {
  cancelled,    // it was queued (or its holder's lease had expired): cancelled now
  requested,    // it is running: its holder was asked to stop
  not_running,  // done, failed or already cancelled: nothing to stop
  not_found,    // no queue row for this job
};
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view to_string(CancelResult result) noexcept;

// One backfiller's counters in one job, as last persisted.
struct PersistedProgress {
  std::int64_t job_id = 0;
  std::string backfiller;
  std::string owner;  // the worker that reported it
  std::uint64_t pages = 0;
  std::uint64_t items = 0;
  std::uint64_t rows_written = 0;
  std::uint64_t retries = 0;
  std::uint64_t bytes = 0;
  std::chrono::milliseconds elapsed{0};
  bool done = false;
  Timestamp updated_at{};  // database time
};

// An integration as operators see it: no key, secret or token.
struct IntegrationSummary {
  std::int64_t id = 0;
  std::string opaque_id;
  std::string service_name;
  std::string table_name;
  std::string api_url;
  std::optional<std::int64_t> depends_on;
  std::optional<Timestamp> last_backfilled_at;
  bool has_backfill_credentials = false;
};

// A job with its queue row and its progress (summed over its backfillers).
struct WEBHOOKDB_EXPORT JobSummary {
  std::int64_t job_id = 0;
  std::string opaque_id;
  std::int64_t integration_id = 0;
  std::string integration;  // opaque id
  std::string service_name;
  std::optional<std::int64_t> parent_job_id;
  bool incremental = false;
  nlohmann::json criteria;
  // The queue's state, or "unqueued" when the queue has no row for it.
  std::string state;
  int attempts = 0;
  std::optional<int> retries_left;
  std::string lease_owner;
  std::optional<Timestamp> lease_expires_at;
  std::optional<Timestamp> run_at;
  std::string last_error;
  bool cancel_requested = false;
  Timestamp created_at{};
  std::optional<Timestamp> started_at;
  std::optional<Timestamp> finished_at;
  // Summed over the backfillers of the latest run that reported.
  std::uint64_t pages = 0;
  std::uint64_t items = 0;
  std::uint64_t rows_written = 0;
  std::uint64_t retries = 0;
  std::uint64_t bytes = 0;
  std::chrono::milliseconds elapsed{0};  // the longest backfiller's
  std::optional<Timestamp> progress_at;
  [[nodiscard]] double rows_per_second() const noexcept;
  [[nodiscard]] double pages_per_second() const noexcept;
};

struct JobFilter {
  std::optional<std::string> state;  // queue state, or "unqueued"
  std::optional<std::int64_t> integration_id;
  std::size_t limit = 100;  // newest first
};

struct PgJobControlOptions {
  std::shared_ptr<Logger> logger;
  // Run the migration in the constructor.
  bool migrate = true;
};

class WEBHOOKDB_EXPORT PgJobControl {
 public:
  // Shares the queue's pool and schema.
  explicit PgJobControl(std::shared_ptr<PgJobQueue> queue, PgJobControlOptions options = {});
  ~PgJobControl();
  PgJobControl(const PgJobControl&) = delete;
  PgJobControl& operator=(const PgJobControl&) = delete;

  void migrate();
  [[nodiscard]] static const std::vector<Migration>& migrations();
  // The NOTIFY channel of cancel requests.
  [[nodiscard]] const std::string& channel() const noexcept;

  // --- Operators ---
  CancelResult request_cancel(std::int64_t job_id, const std::string& requested_by);
  [[nodiscard]] std::vector<IntegrationSummary> integrations();
  [[nodiscard]] std::optional<IntegrationSummary> integration(const std::string& id_or_opaque_id);
  [[nodiscard]] std::vector<JobSummary> jobs(const JobFilter& filter);
  [[nodiscard]] std::optional<JobSummary> job(std::int64_t job_id);
  [[nodiscard]] std::vector<PersistedProgress> progress(std::int64_t job_id);
  // An unfinished job of the integration with this kind and criteria (the
  // newest), so that a backfill asked again resumes it instead of starting over.
  [[nodiscard]] std::optional<JobSummary> unfinished_job(std::int64_t integration_id, bool incremental,
                                                         const nlohmann::json& criteria);

  // --- Workers ---
  // Calls `on_request` (on a listener thread; it must not block long) for
  // every cancel request and after every (re)connect of the listener.
  void watch_cancels(std::function<void()> on_request);
  // Stops the listener (joins its thread): `on_request` is not called after.
  void stop_watching();
  // The jobs among `running` whose run (lease token) is asked to stop.
  [[nodiscard]] std::vector<std::int64_t> cancel_requested(const std::vector<Lease>& running);
  // The run stopped on request: 'cancelled', lease cleared (the request row stays).
  // False when the lease was lost meanwhile.
  bool finish_cancelled(const Lease& lease);
  void record_progress(const BackfillProgress& progress, const std::string& owner);
  // PgJobQueue::complete, with `progress` (final reports held back by a
  // PgProgressSink, take_held) written in the same statement when the lease
  // is still held: one commit for both. False when the lease was lost.
  bool complete(const Lease& lease, const std::vector<BackfillProgress>& progress, const std::string& owner);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A ProgressSink that persists through PgJobControl::record_progress (at
// most once per `interval` per job and backfiller, and its final report),
// then hands every report to `next` (may be null). A failed write is logged
// and never fails the backfill.
class WEBHOOKDB_EXPORT PgProgressSink final : public ProgressSink {
 public:
  PgProgressSink(std::shared_ptr<PgJobControl> control, std::string owner, std::shared_ptr<ProgressSink> next,
                 std::chrono::milliseconds interval = std::chrono::seconds(1),
                 std::shared_ptr<Logger> logger = nullptr);
  void on_progress(const BackfillProgress& progress) override;

  // Holding (off by default; webhookdb-worker turns it on): a backfiller's
  // final report is held instead of written, until take_held
  // (PgJobControl::complete writes it with the job's end: no commit of its
  // own) or flush_held; a held report is written anyway with the next report
  // of its job that comes an interval later (other backfillers still run).
  void hold_short_final_reports(bool hold);
  [[nodiscard]] std::vector<BackfillProgress> take_held(std::int64_t job_id);
  void flush_held(std::int64_t job_id);

 private:
  void write(const BackfillProgress& progress);
  struct Held {
    BackfillProgress progress;
    std::chrono::steady_clock::time_point at;
  };
  bool hold_ = false;
  // job -> its held final reports (one per backfiller).
  std::map<std::int64_t, std::vector<Held>> held_;
  std::shared_ptr<PgJobControl> control_;
  std::string owner_;
  std::shared_ptr<ProgressSink> next_;
  std::chrono::milliseconds interval_;
  std::shared_ptr<Logger> logger_;
  std::mutex mutex_;
  // (job, backfiller) -> when it was last written.
  std::map<std::pair<std::int64_t, std::string>, std::chrono::steady_clock::time_point> written_;
  int failures_ = 0;
};

}  // namespace webhookdb::pg
