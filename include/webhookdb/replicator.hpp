#pragma once
// Per-service logic. Subclass once per external resource: declare the columns
// and the update rule, fetch pages, verify webhooks. The public entry points
// (backfill, upsert_webhook, ...) are non-virtual and own the algorithm; the
// hooks a subclass overrides are protected (the backfillers reach the few
// they call through internal::ReplicatorGate), and tuning is data
// (BackfillOptions), not a row of virtual functions.
//
//   class Charges : public Replicator {
//    protected:
//     Column remote_key_column() const override { return Column("id", ColumnType::text); }
//     std::vector<Column> denormalized_columns() const override {
//       return {Column("amount", ColumnType::bigint)};
//     }
//     UpdateRule update_rule() const override { return UpdateRule::always(); }
//     BackfillOptions backfill_options() const override { return {.batch_size = 500}; }
//     BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& since,
//                                      const CancellationToken& cancel) override;
//   };

#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/backfill_job.hpp"
#include "webhookdb/backfill_options.hpp"
#include "webhookdb/backfill_window.hpp"
#include "webhookdb/backfiller.hpp"
#include "webhookdb/clock.hpp"
#include "webhookdb/deletes.hpp"
#include "webhookdb/descriptor.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/job_queue.hpp"
#include "webhookdb/job_store.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/logger.hpp"
#include "webhookdb/payload.hpp"
#include "webhookdb/rate_limiter.hpp"
#include "webhookdb/replica_store.hpp"
#include "webhookdb/retry_policy.hpp"
#include "webhookdb/service_backfiller.hpp"
#include "webhookdb/service_integration.hpp"
#include "webhookdb/table_spec.hpp"
#include "webhookdb/webhook.hpp"

namespace webhookdb {

class Registry;
namespace internal {
class ReplicatorGate;
}

// The ports a replicator works through. Null members get defaults where one
// makes sense (system clock, real sleeper, null logger); a missing store is
// an InvalidPrecondition when it is needed.
struct ReplicatorContext {
  std::shared_ptr<HttpClient> http;
  std::shared_ptr<ReplicaStore> replica;
  std::shared_ptr<JobStore> jobs;
  std::shared_ptr<JobQueue> queue;
  std::shared_ptr<Clock> clock;
  std::shared_ptr<Sleeper> sleeper;
  std::shared_ptr<Logger> logger;
  std::shared_ptr<ProgressSink> progress;
  // Needed to notify dependents of webhook upserts.
  std::shared_ptr<const Registry> registry;
  // Size and nesting limits for webhook bodies (text and parsed). Deeper
  // documents are refused up front: copying or serializing them recurses.
  JsonLimits json_limits;
  // The quota governor (rate_limiter.hpp). When set, the replicator wraps
  // `http` in a RateLimitedHttpClient: every request it makes (pages,
  // enrichment) waits for a permit of its quota key and feeds the response's
  // rate-limit headers back. Null: requests go out unmetered.
  std::shared_ptr<RateLimiter> rate_limiter;
};

// What upsert_webhook did: the rows made from the request and, per row,
// whether the store inserted or updated it. An older webhook that the update
// rule refused is in `rows` with changed false: nothing was written for it.
struct UpsertedRows {
  std::vector<Row> rows;
  // One flag per row, in the same order.
  std::vector<bool> changed;

  [[nodiscard]] std::size_t changed_count() const noexcept {
    std::size_t n = 0;
    for (bool c : changed) n += c ? 1U : 0U;
    return n;
  }
};

// What an incremental backfill asks its pages for: `last_backfilled_at`
// minus options.incremental_lookback, truncated down to the whole second (see
// BackfillOptions::incremental_lookback). nullopt stays nullopt.
[[nodiscard]] WEBHOOKDB_EXPORT std::optional<Timestamp> incremental_since(
    const std::optional<Timestamp>& last_backfilled_at, const BackfillOptions& options);

// What fetch_window_page is asked for: one page of a windowed job.
struct WindowPageRequest {
  const BackfillWindow& window;
  // "" for the window's first page.
  const std::string& token;
  // The incremental mark (incremental_since) of an incremental windowed job, else nullopt.
  const std::optional<Timestamp>& since;
  // The partition being walked, when backfill_partitions() split the job; else null.
  const BackfillPartition* partition;
  const CancellationToken& cancel;
};

// What a sweep after a full backfill did (Replicator::last_sweep()).
struct SweepReport {
  std::int64_t job_id = 0;
  SweepResult result;
  std::chrono::microseconds took{0};
};

struct CredentialsVerification {
  bool verified = false;
  // The HTTP status that made it fail, 0 otherwise.
  int status = 0;
  std::string message;
};

class WEBHOOKDB_EXPORT Replicator {
 public:
  Replicator(const Descriptor& descriptor, const ServiceIntegration& integration,
             const ReplicatorContext& context);
  virtual ~Replicator();
  Replicator(const Replicator&) = delete;
  Replicator& operator=(const Replicator&) = delete;

  [[nodiscard]] const Descriptor& descriptor() const noexcept { return descriptor_; }
  [[nodiscard]] const ServiceIntegration& integration() const noexcept { return integration_; }
  [[nodiscard]] ServiceIntegration& integration() noexcept { return integration_; }
  [[nodiscard]] const ReplicatorContext& context() const noexcept { return context_; }
  [[nodiscard]] Clock& clock() const { return *context_.clock; }
  [[nodiscard]] Logger& logger() const { return *context_.logger; }

  // Built once from the hooks below, validated.
  [[nodiscard]] const TableSpec& table_spec() const;
  // delete_options(), read once with the table spec.
  [[nodiscard]] const DeleteOptions& deletes() const;
  // backfill_options(), validated and cached (BrokenSpecification for nonsense).
  [[nodiscard]] const BackfillOptions& options() const { return cached_backfill_options(); }
  // The sweep of this replicator's last backfill, nullopt when it did not sweep.
  [[nodiscard]] std::optional<SweepReport> last_sweep() const;

  // --- Backfill (DESIGN's contract) ---
  void backfill(BackfillJob& job, const CancellationToken& cancel = CancellationToken{});
  // Fetch the first page: an HTTP error means not verified (with its
  // status); any other error (a shape problem) still means verified.
  [[nodiscard]] CredentialsVerification verify_backfill_credentials();

  // --- Webhooks and rows ---
  // Writes the rows of a request (update rule applied) and says which ones
  // changed. Empty for a skipped resource. An array of resources with a
  // non-null event is an InvalidPostcondition. Dependents are notified of
  // each row.
  UpsertedRows upsert_webhook(const WebhookRequest& request);
  UpsertedRows upsert_webhook_body(const nlohmann::json& body);
  // The rows upsert_webhook would write, checked as the write would check
  // them (conversions, UTF-8); nothing is written.
  [[nodiscard]] std::vector<Row> rows_for_webhook(const WebhookRequest& request) const;
  [[nodiscard]] std::vector<Row> rows_for_webhook_body(const nlohmann::json& body) const;
  // upsert_webhook's write step, for rows from rows_for_webhook (a receiver
  // checks them before answering and writes them later).
  UpsertedRows write_webhook_rows(std::vector<Row> rows);
  // Verification: 201 when the integration skips verification, else the hook.
  [[nodiscard]] WebhookResponse webhook_response(const WebhookRequest& request);
  // The row for a payload, or nullopt when the replicator skips it.
  [[nodiscard]] std::optional<Row> row_for(const Payload& payload) const;
  // The row for a backfill item, or nullopt when the replicator skips it. As
  // in WebhookDB, the item goes through resource_and_event first, like a
  // webhook body (in a request with only `json` set: the base implementation
  // hands the item back by move, so an override must use what it returns,
  // not request.json, after calling it); an array of resources is an
  // InvalidPostcondition. The resource is moved into Row::data, not copied.
  [[nodiscard]] std::optional<Row> row_for(nlohmann::json&& resource) const;
  // Writes rows through the replica store and notifies dependents. A row
  // holding a string that is not valid UTF-8 is an InvalidInput naming its
  // remote key and column, and nothing of the batch is written.
  UpsertResult write_rows(std::span<const Row> rows, const UpsertOptions& options);

  void create_table();
  void ensure_all_columns();

 protected:
  // --- Table shape ---
  [[nodiscard]] virtual Column remote_key_column() const = 0;
  // A column declared with .enrichment() gives the table an `enrichment`
  // jsonb column, filled from fetch_enrichment.
  [[nodiscard]] virtual std::vector<Column> denormalized_columns() const = 0;
  [[nodiscard]] virtual UpdateRule update_rule() const = 0;
  [[nodiscard]] virtual std::vector<IndexSpec> extra_indexes() const { return {}; }

  // --- Tuning: called once, validated (BrokenSpecification), cached ---
  [[nodiscard]] virtual BackfillOptions backfill_options() const { return {}; }

  // --- Deletes (deletes.hpp): called once when the table spec is built ---
  [[nodiscard]] virtual DeleteOptions delete_options() const { return {}; }
  // Whether a payload is a deletion; asked only when delete_options().mode
  // is not none. Default: deletion_by_convention(payload).
  [[nodiscard]] virtual Deletion deletion(const Payload& payload) const;

  // --- Payload -> row ---
  // The resource and the event (null when none) of a request; a null
  // resource skips it. Default: the parsed body is the resource. Also called
  // for every backfill item (see row_for), as WebhookDB does: an override that
  // unwraps an envelope should take a bare resource as it is.
  [[nodiscard]] virtual std::pair<nlohmann::json, nlohmann::json> resource_and_event(
      const WebhookRequest& request) const;
  // The enrichment stored with a row. Called only when the table has an
  // enrichment column (a column declared .enrichment()); nullopt (the
  // default) stores null. payload.enrichment is null here.
  [[nodiscard]] virtual std::optional<nlohmann::json> fetch_enrichment(const Payload& payload) const;
  // What goes into the `data` column. nullopt (the default): the resource
  // as it is (moved, not copied, on the backfill path).
  [[nodiscard]] virtual std::optional<nlohmann::json> resource_to_data(const Payload& payload) const;
  // Builds the row's key, values and enrichment from the columns; return
  // nullopt to skip the resource. Row::data is filled afterwards from
  // resource_to_data unless this hook set it.
  [[nodiscard]] virtual std::optional<Row> prepare_for_insert(const Payload& payload) const;

  // --- Backfill ---
  // One page. Runs on a fetch thread when backfill_options().pipelined.
  virtual BackfillPage fetch_backfill_page(const std::string& token,
                                           const std::optional<Timestamp>& last_backfilled,
                                           const CancellationToken& cancel);
  // The page of one partition (see backfill_partitions). Default: ignores the
  // partition and calls the unpartitioned fetch.
  virtual BackfillPage fetch_partition_page(const BackfillPartition& partition, const std::string& token,
                                            const std::optional<Timestamp>& last_backfilled,
                                            const CancellationToken& cancel);
  // One page of a windowed job (backfill_window.hpp): build the request for
  // request.window's range only. Default: InvalidPrecondition (this
  // replicator cannot fetch windows), so a windowed job never silently
  // fetches everything.
  virtual BackfillPage fetch_window_page(const WindowPageRequest& request);
  // Splits a backfill into partitions (time or id ranges). Default: none.
  [[nodiscard]] virtual std::vector<BackfillPartition> backfill_partitions(
      const nlohmann::json& criteria) const;
  // The backfillers for a job. Default: one ServiceBackfiller per partition,
  // or a single one when there are no partitions.
  [[nodiscard]] virtual std::vector<std::unique_ptr<Backfiller>> backfillers(const nlohmann::json& criteria);
  // true: the error is handled, the job finishes without advancing
  // last_backfilled_at or enqueueing children. false: rethrown unchanged.
  virtual bool on_backfill_error(const std::exception& error);

  // --- Webhooks ---
  // Default: 202 (accept).
  [[nodiscard]] virtual WebhookResponse verify_webhook(const WebhookRequest& request);
  // Called on the dependent's replicator after `dependency` upserted `row`.
  virtual void on_dependency_webhook_upsert(Replicator& dependency, const Row& row, bool changed);

 private:
  friend class internal::ReplicatorGate;

  [[nodiscard]] TableSpec build_table_spec() const;
  // backfill()'s preconditions: the job's integration, backfill support, credentials.
  void check_backfillable(const BackfillJob& job) const;
  // Forgets the last sweep; whether `job` sweeps when it succeeds: full,
  // unwindowed, with an id, deletes opted in with Sweep::after_full_backfill,
  // and a replica store.
  [[nodiscard]] bool prepare_sweep(const BackfillJob& job, const std::optional<BackfillWindow>& window);
  // The runtime each backfiller of `job` starts from (before its checkpoint and cancel).
  [[nodiscard]] BackfillRuntime job_runtime(const BackfillJob& job, const std::optional<BackfillWindow>& window,
                                            SeenMarks seen) const;
  [[nodiscard]] SweepRun sweep_run(const BackfillJob& job) const;
  // backfill()'s steps: the run's state set and forgotten; the job marked
  // started (true for its first run, which has no checkpoints); and the end
  // of a run that threw nothing (sweep, incremental mark, finished, children).
  void reset_run(bool backfilling);
  [[nodiscard]] bool mark_started(BackfillJob& job);
  struct RunEnd {
    bool sweeping = false;
    bool windowed = false;
    Timestamp new_last_backfilled;
    bool clear_checkpoints = false;
  };
  void finish_backfill(BackfillJob& job, const RunEnd& end);
  void run_sweep(const BackfillJob& job);
  [[nodiscard]] const BackfillOptions& cached_backfill_options() const;
  // Sets the row's kDeletedAtColumn value: now for a deletion, else null.
  void mark_deletion(Row& row, const Payload& payload) const;
  template <class Resource>
  [[nodiscard]] std::optional<Row> make_row(Resource&& resource, const Payload& payload) const;
  // write_rows' first step alone: throws its InvalidInput for the first row
  // holding a string that is not valid UTF-8.
  void check_rows(std::span<const Row> rows) const;
  // write_rows for rows that already passed check_rows (a batched backfiller
  // checks a batch on its page loop while the one before is being written).
  UpsertResult write_checked_rows(std::span<const Row> rows, const UpsertOptions& options);
  UpsertedRows write_checked_webhook_rows(std::vector<Row> rows);
  void notify_dependents(std::span<const Row> rows, const UpsertResult& result);
  [[nodiscard]] ReplicaStore& replica() const;
  // The quota key and static limit of backfill_options().rate_limit.
  [[nodiscard]] QuotaBinding quota_binding() const;

  Descriptor descriptor_;
  ServiceIntegration integration_;
  ReplicatorContext context_;
  mutable std::once_flag spec_once_;
  mutable std::unique_ptr<TableSpec> spec_;
  mutable DeleteOptions deletes_;
  mutable std::mutex sweep_mutex_;
  std::optional<SweepReport> last_sweep_;
  mutable std::once_flag options_once_;
  mutable std::unique_ptr<BackfillOptions> options_;
  // While backfill() runs (all under run_mutex_): the dependents that
  // notify_dependents tells, read once per job instead of once per page.
  std::mutex run_mutex_;
  bool backfilling_ = false;
  std::optional<std::vector<ServiceIntegration>> backfill_dependents_;
  // A first run of a job with one backfiller writes no final "finished"
  // checkpoint with its last rows (a crash before the job's end runs it from
  // its first page again), and one that wrote no other checkpoint either (one
  // page, one batch) has none to delete at its end. write_checked_rows moves
  // it along: off (not such a run), none (no checkpoint yet), final_left_out
  // (only the final one, left out), written (another one was written).
  enum class FirstRunCheckpoints { off, none, final_left_out, written };
  FirstRunCheckpoints first_run_checkpoints_ = FirstRunCheckpoints::off;
  // context_.http when rate limited; detached in the destructor because its
  // resolver reads this replicator's options.
  std::shared_ptr<RateLimitedHttpClient> quota_client_;
};

}  // namespace webhookdb
