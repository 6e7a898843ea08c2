#include "webhookdb/replicator.hpp"

#include <algorithm>
#include <set>

#include "webhookdb/errors.hpp"
#include "webhookdb/oauth2.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/job_runner.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/json_text.hpp"
#include "webhookdb/parallel_executor.hpp"
#include "webhookdb/registry.hpp"

namespace webhookdb {
namespace {

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

// Runs `f` when the scope ends, however it ends.
template <class F>
class ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ~ScopeExit() { f_(); }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;

 private:
  F f_;
};

// The remote key for messages: never throws (invalid UTF-8 shows as U+FFFD), shortened.
std::string key_text(const nlohmann::json& key) {
  return key.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).substr(0, 100);
}

// jsonb and text columns take only UTF-8: find the bad string before the
// store does, so the error names the row and the place, and nothing of the
// batch is written.
void check_utf8(const TableSpec& spec, const Row& row) {
  const auto fail = [&](const std::string& place) {
    throw InvalidInput("invalid UTF-8 in " + place, "remote key " + key_text(row.key));
  };
  if (find_invalid_utf8(row.key)) fail("the remote key '" + spec.remote_key.name + "'");
  for (std::size_t i = 0; i < row.values.size() && i < spec.columns.size(); ++i) {
    if (auto path = find_invalid_utf8(row.values[i])) {
      fail("column '" + spec.columns[i].name + "'" + (path->empty() ? "" : " at " + *path));
    }
  }
  if (auto path = find_invalid_utf8(row.data)) fail("data" + (path->empty() ? "" : " at " + *path));
  if (auto path = find_invalid_utf8(row.enrichment)) fail("enrichment" + (path->empty() ? "" : " at " + *path));
}

// The column a deletion's time goes in. Written by make_row, never dug from
// the resource ("deleted_at" in a resource is the source's, not ours), and
// null when ensure_all_columns adds it to a table that has rows.
Column deleted_at_column() {
  return Column(kDeletedAtColumn, ColumnType::timestamptz)
      .key(std::vector<std::string>{"webhookdb: written by the replicator"})
      .optional()
      .convert(Converter{[](const nlohmann::json&, const ConvertContext&) { return nlohmann::json(nullptr); },
                         [](const std::string&) { return std::string("NULL::timestamptz"); }})
      .indexed_not_null();
}

}  // namespace

std::optional<Timestamp> incremental_since(const std::optional<Timestamp>& last_backfilled_at,
                                           const BackfillOptions& options) {
  if (!last_backfilled_at) return std::nullopt;
  // Never before the first instant a timestamptz holds (a lookback of years
  // on an early mark would otherwise leave the range PostgreSQL accepts).
  Timestamp since = *last_backfilled_at - options.incremental_lookback;
  if (*last_backfilled_at - kFirstTimestamp < options.incremental_lookback) since = kFirstTimestamp;
  // floor, not duration_cast: before 1970 the latter rounds toward zero (up).
  return std::chrono::floor<std::chrono::seconds>(since);
}

Replicator::Replicator(const Descriptor& descriptor, const ServiceIntegration& integration,
                       const ReplicatorContext& context)
    : descriptor_(descriptor), integration_(integration), context_(context) {
  if (!context_.clock) context_.clock = system_clock();
  if (!context_.sleeper) context_.sleeper = real_sleeper();
  if (!context_.logger) context_.logger = std::make_shared<NullLogger>();
  if (context_.rate_limiter && context_.http) {
    // Resolved on the first request: the options are a virtual hook, not
    // callable from this constructor.
    quota_client_ = std::make_shared<RateLimitedHttpClient>(
        context_.http, context_.rate_limiter, [this] { return quota_binding(); }, context_.clock);
    context_.http = quota_client_;
  }
  // Every request names its integration, so one shared client (CredentialAuth,
  // webhookdb/http_auth.hpp) sends each integration's own credentials.
  if (context_.http && integration_.id != 0) context_.http = for_integration(context_.http, integration_.id);
}

Replicator::~Replicator() {
  if (quota_client_) quota_client_->detach();
}

QuotaBinding Replicator::quota_binding() const {
  const RateLimitOptions& options = cached_backfill_options().rate_limit;
  QuotaBinding binding;
  binding.limit = options.limit;
  // The credential is hashed, never used as it is: the key is stored in
  // PostgreSQL by the shared limiter and shown in metrics.
  binding.key = options.quota_key.empty()
                    ? default_quota_key(descriptor_.name, integration_.backfill_key + "\n" + integration_.backfill_secret)
                    : options.quota_key;
  return binding;
}

const TableSpec& Replicator::table_spec() const {
  std::call_once(spec_once_, [this] {
    auto spec = std::make_unique<TableSpec>(build_table_spec());
    spec->validate();
    spec_ = std::move(spec);
  });
  return *spec_;
}

TableSpec Replicator::build_table_spec() const {
  TableSpec spec;
  spec.table = integration_.table_name;
  spec.opaque_id = integration_.opaque_id;
  spec.remote_key = remote_key_column();
  spec.columns = denormalized_columns();
  // The enrichment column exists when a column reads from it: nothing else
  // would tell table creation that fetch_enrichment is overridden.
  spec.enrichment = std::any_of(spec.columns.begin(), spec.columns.end(),
                                [](const Column& column) { return column.from_enrichment; });
  spec.extra_indexes = extra_indexes();
  spec.update_rule = update_rule();
  deletes_ = delete_options();
  spec.deletes = deletes_.mode;
  if (spec.deletes != DeleteMode::none) spec.columns.push_back(deleted_at_column());
  return spec;
}

Deletion Replicator::deletion(const Payload& payload) const { return deletion_by_convention(payload); }

const DeleteOptions& Replicator::deletes() const {
  (void)table_spec();
  return deletes_;
}

std::optional<SweepReport> Replicator::last_sweep() const {
  std::lock_guard lock(sweep_mutex_);
  return last_sweep_;
}

const BackfillOptions& Replicator::cached_backfill_options() const {
  std::call_once(options_once_, [this] {
    auto options = std::make_unique<BackfillOptions>(backfill_options());
    options->validate("replicator " + descriptor_.name);
    options_ = std::move(options);
  });
  return *options_;
}

ReplicaStore& Replicator::replica() const {
  if (!context_.replica) throw InvalidPrecondition("replicator " + descriptor_.name + " has no replica store");
  return *context_.replica;
}

BackfillPage Replicator::fetch_backfill_page(const std::string& /*token*/, const std::optional<Timestamp>& /*last*/,
                                             const CancellationToken& /*cancel*/) {
  throw InvariantViolation("replicator " + descriptor_.name + " does not implement fetch_backfill_page");
}

void Replicator::on_dependency_webhook_upsert(Replicator& /*dependency*/, const Row& /*row*/, bool /*changed*/) {}

bool Replicator::on_backfill_error(const std::exception& /*error*/) { return false; }

WebhookResponse Replicator::verify_webhook(const WebhookRequest& /*request*/) { return WebhookResponse::ok(202); }

WebhookResponse Replicator::webhook_response(const WebhookRequest& request) {
  if (integration_.skip_webhook_verification) return WebhookResponse::ok(201, "skipped verification");
  return verify_webhook(request);
}

BackfillPage Replicator::fetch_window_page(const WindowPageRequest& request) {
  throw InvalidPrecondition("replicator " + descriptor_.name + " cannot fetch a backfill window (" +
                            std::string(to_string(request.window.axis)) +
                            " axis): it does not override fetch_window_page");
}

std::vector<BackfillPartition> Replicator::backfill_partitions(const nlohmann::json& /*criteria*/) const { return {}; }

BackfillPage Replicator::fetch_partition_page(const BackfillPartition& /*partition*/, const std::string& token,
                                             const std::optional<Timestamp>& last_backfilled,
                                             const CancellationToken& cancel) {
  return fetch_backfill_page(token, last_backfilled, cancel);
}

std::vector<std::unique_ptr<Backfiller>> Replicator::backfillers(const nlohmann::json& criteria) {
  std::vector<std::unique_ptr<Backfiller>> out;
  auto partitions = backfill_partitions(criteria);
  if (partitions.empty()) {
    out.push_back(std::make_unique<ServiceBackfiller>(*this));
    return out;
  }
  std::set<std::string> keys;
  for (auto& partition : partitions) {
    if (partition.key.empty() || !keys.insert(partition.key).second) {
      throw BrokenSpecification(descriptor_.name + ": backfill partitions need unique, non-empty keys");
    }
    out.push_back(std::make_unique<ServiceBackfiller>(*this, std::move(partition)));
  }
  return out;
}

// --- payload -> row ---

namespace {
// The request row_for(json&&) wraps a backfill item in, while the hooks run
// on this thread: the base resource_and_event hands its item back by move.
thread_local const WebhookRequest* backfill_item_request = nullptr;

class BackfillItemScope {
 public:
  explicit BackfillItemScope(const WebhookRequest& request) : previous_(backfill_item_request) {
    backfill_item_request = &request;
  }
  ~BackfillItemScope() { backfill_item_request = previous_; }
  BackfillItemScope(const BackfillItemScope&) = delete;
  BackfillItemScope& operator=(const BackfillItemScope&) = delete;

 private:
  const WebhookRequest* previous_;
};
}  // namespace

std::pair<nlohmann::json, nlohmann::json> Replicator::resource_and_event(const WebhookRequest& request) const {
  if (&request == backfill_item_request) {
    // A backfill item (row_for(json&&) owns the request, which is not const):
    // moved, not copied, and not walked again for its depth (its page was
    // parsed within the limits).
    return {std::move(const_cast<WebhookRequest&>(request).json), nullptr};  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  }
  const std::string where = "webhook body for " + descriptor_.name;
  if (!request.json.is_null()) {
    check_json_depth(request.json, context_.json_limits.max_depth, where);
    return {request.json, nullptr};
  }
  return {parse_json_limited(request.body, context_.json_limits, where), nullptr};
}

std::optional<nlohmann::json> Replicator::fetch_enrichment(const Payload& /*payload*/) const { return std::nullopt; }

std::optional<nlohmann::json> Replicator::resource_to_data(const Payload& /*payload*/) const { return std::nullopt; }

std::optional<Row> Replicator::prepare_for_insert(const Payload& payload) const {
  const TableSpec& spec = table_spec();
  const ConvertContext ctx{payload.resource, payload.event, payload.enrichment, {}};
  Row row;
  {
    ConvertContext key_ctx = ctx;
    key_ctx.column = spec.remote_key.name;
    row.key = spec.remote_key.value_from(key_ctx);
    if (row.key.is_null()) {
      throw InvalidInput("remote key is null", "column '" + spec.remote_key.name + "' of " + descriptor_.name);
    }
  }
  row.values.reserve(spec.columns.size());
  for (const auto& col : spec.columns) {
    ConvertContext col_ctx = ctx;
    col_ctx.column = col.name;
    try {
      row.values.push_back(col.value_from(col_ctx));
    } catch (const InvalidInput& e) {
      const std::string key = "remote key " + key_text(row.key);
      throw InvalidInput(e.message(), e.where().empty() ? key : e.where() + ", " + key);
    }
  }
  if (spec.enrichment) row.enrichment = payload.enrichment != nullptr ? *payload.enrichment : nlohmann::json(nullptr);
  return row;
}

// `resource` is payload.resource; passed apart so the backfill path can move it into Row::data.
template <class Resource>
std::optional<Row> Replicator::make_row(Resource&& resource, const Payload& payload) const {
  if (!resource.is_object()) {
    throw InvalidInput("resource must be a JSON object, got " + std::string(resource.type_name()), descriptor_.name);
  }
  Payload full = payload;
  full.enrichment = nullptr;
  nlohmann::json enrichment;
  if (table_spec().enrichment) {
    if (auto fetched = fetch_enrichment(full)) enrichment = std::move(*fetched);
    full.enrichment = &enrichment;
  }
  auto row = prepare_for_insert(full);
  if (row && table_spec().deletes != DeleteMode::none) mark_deletion(*row, full);
  if (!row || !row->data.is_null()) return row;
  if (auto data = resource_to_data(full)) {
    row->data = std::move(*data);
  } else {
    row->data = std::forward<Resource>(resource);
  }
  return row;
}

void Replicator::mark_deletion(Row& row, const Payload& payload) const {
  const TableSpec& spec = table_spec();
  // An override of prepare_for_insert that builds the values itself does not
  // know the column the replicator appended.
  if (row.values.size() + 1 == spec.columns.size()) row.values.emplace_back(nullptr);
  if (row.values.size() != spec.columns.size()) return;  // the store names the mismatch
  row.values.back() = deletion(payload) == Deletion::deleted ? nlohmann::json(format_timestamp(context_.clock->now()))
                                                             : nlohmann::json(nullptr);
}

std::optional<Row> Replicator::row_for(const Payload& payload) const { return make_row(payload.resource, payload); }

std::optional<Row> Replicator::row_for(nlohmann::json&& resource) const {
  // As in WebhookDB, a backfill item goes through resource_and_event like a
  // webhook body, so an override that unwraps or skips applies to both.
  WebhookRequest request;
  request.json = std::move(resource);
  std::pair<nlohmann::json, nlohmann::json> resource_event;
  try {
    const BackfillItemScope scope(request);
    resource_event = resource_and_event(request);
  } catch (const nlohmann::json::parse_error&) {
    // An override written for webhooks only, parsing the raw body itself.
    throw InvalidPostcondition("resource_and_event of " + descriptor_.name +
                               " could not read a backfill item: backfill items come parsed, in "
                               "WebhookRequest::json, with an empty body; parse through "
                               "Replicator::resource_and_event(request) or read request.json when it is set");
  }
  auto& [item, event] = resource_event;
  if (item.is_null()) return std::nullopt;
  if (item.is_array()) {
    throw InvalidPostcondition("resource_and_event of " + descriptor_.name +
                               " returned an array of resources for one backfill item; a backfill page lists "
                               "each resource as an item of its own");
  }
  const Payload payload{.resource = item, .event = event.is_null() ? nullptr : &event};
  return make_row(std::move(item), payload);
}

UpsertResult Replicator::write_rows(std::span<const Row> rows, const UpsertOptions& options) {
  check_rows(rows);
  return write_checked_rows(rows, options);
}

void Replicator::check_rows(std::span<const Row> rows) const {
  const TableSpec& spec = table_spec();
  for (const Row& row : rows) check_utf8(spec, row);
}

UpsertResult Replicator::write_checked_rows(std::span<const Row> rows, const UpsertOptions& options) {
  std::optional<UpsertOptions> without_checkpoint;
  if (options.checkpoint) {
    std::lock_guard lock(run_mutex_);
    if (backfilling_ && first_run_checkpoints_ != FirstRunCheckpoints::off) {
      if (options.checkpoint->finished) {
        // A crash before the job's end re-runs its one page: no checkpoint
        // needed. Nor a commit that waits for the disk, when the job's end
        // is written (JobStore::update_job) and makes these rows durable.
        without_checkpoint = options;
        without_checkpoint->checkpoint.reset();
        without_checkpoint->durable_later = context_.jobs != nullptr;
        if (first_run_checkpoints_ == FirstRunCheckpoints::none) {
          first_run_checkpoints_ = FirstRunCheckpoints::final_left_out;
        }
      } else {
        first_run_checkpoints_ = FirstRunCheckpoints::written;
      }
    }
  }
  UpsertResult result = replica().upsert(table_spec(), rows, without_checkpoint ? *without_checkpoint : options);
  notify_dependents(rows, result);
  return result;
}

void Replicator::notify_dependents(std::span<const Row> rows, const UpsertResult& result) {
  if (!context_.jobs || !context_.registry || rows.empty() || integration_.id == 0) return;
  std::optional<std::vector<ServiceIntegration>> cached;
  {
    std::lock_guard lock(run_mutex_);
    if (backfilling_) cached = backfill_dependents_;
  }
  const std::vector<ServiceIntegration> dependents =
      cached ? std::move(*cached) : context_.jobs->dependents_of(integration_.id);
  if (!cached) {
    std::lock_guard lock(run_mutex_);
    if (backfilling_) backfill_dependents_ = dependents;
  }
  for (const auto& integration : dependents) {
    auto dependent = context_.registry->make(integration, context_);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const bool changed = i < result.changed.size() && result.changed[i];
      dependent->on_dependency_webhook_upsert(*this, rows[i], changed);
    }
  }
}

std::vector<Row> Replicator::rows_for_webhook(const WebhookRequest& request) const {
  auto [resource, event] = resource_and_event(request);
  const nlohmann::json* event_ptr = event.is_null() ? nullptr : &event;
  std::vector<Row> rows;
  if (resource.is_null()) return rows;
  const std::string topic = descriptor_.webhook_topic.of(request, event_ptr);
  if (resource.is_array()) {
    if (event_ptr != nullptr) {
      throw InvalidPostcondition("resource_and_event returned an array of resources with a non-null event");
    }
    for (const auto& item : resource) {
      if (auto row = row_for(Payload{.resource = item, .request = &request, .topic = topic})) {
        rows.push_back(std::move(*row));
      }
    }
  } else if (auto row = row_for(
                 Payload{.resource = resource, .event = event_ptr, .request = &request, .topic = topic})) {
    rows.push_back(std::move(*row));
  }
  check_rows(rows);
  return rows;
}

std::vector<Row> Replicator::rows_for_webhook_body(const nlohmann::json& body) const {
  return rows_for_webhook(WebhookRequest::from_json(body, context_.json_limits.max_depth));
}

UpsertedRows Replicator::upsert_webhook(const WebhookRequest& request) {
  return write_checked_webhook_rows(rows_for_webhook(request));
}

UpsertedRows Replicator::upsert_webhook_body(const nlohmann::json& body) {
  return upsert_webhook(WebhookRequest::from_json(body, context_.json_limits.max_depth));
}

UpsertedRows Replicator::write_webhook_rows(std::vector<Row> rows) {
  check_rows(rows);
  return write_checked_webhook_rows(std::move(rows));
}

UpsertedRows Replicator::write_checked_webhook_rows(std::vector<Row> rows) {
  UpsertedRows out;
  if (!rows.empty()) {
    UpsertOptions options;
    options.apply_update_rule = true;
    options.method = rows.size() > 1 ? WriteMethod::automatic : WriteMethod::single_row;
    out.changed = write_checked_rows(rows, options).changed;
  }
  // A store that reports fewer flags than rows wrote nothing it can vouch for.
  out.changed.resize(rows.size(), false);
  out.rows = std::move(rows);
  return out;
}

void Replicator::create_table() { replica().create_table(table_spec()); }
void Replicator::ensure_all_columns() { replica().ensure_all_columns(table_spec()); }

CredentialsVerification Replicator::verify_backfill_credentials() {
  CredentialsVerification result;
  try {
    auto page = fetch_backfill_page("", std::nullopt, CancellationToken{});
    (void)page;
    result.verified = true;
  } catch (const HttpError& e) {
    result.status = e.status();
    result.message = e.what();
  } catch (const HttpBaseError& e) {
    result.message = e.what();
  } catch (const oauth2::ReauthorizationRequired& e) {
    // No credential could be sent at all (an OAuth2 grant refused for good,
    // a token endpoint that gives no token, no key): nothing was verified.
    result.message = e.what();
  } catch (const oauth2::TokenEndpointError& e) {
    result.message = e.what();
  } catch (const CredentialsMissing& e) {
    result.message = e.what();
  } catch (const std::exception& e) {
    // The credentials got us an answer; its shape is another matter.
    result.verified = true;
    result.message = e.what();
  }
  return result;
}

// --- the sweep (deletes.hpp) ---

BackfillRuntime Replicator::job_runtime(const BackfillJob& job, const std::optional<BackfillWindow>& window,
                                        SeenMarks seen) const {
  BackfillRuntime runtime;
  runtime.sleeper = context_.sleeper;
  runtime.logger = context_.logger;
  runtime.progress = context_.progress;
  runtime.job_id = job.id;
  runtime.integration = integration_.opaque_id;
  runtime.checkpoints = job.id != 0 && context_.replica != nullptr;
  runtime.window = window;
  runtime.seen = seen;
  runtime.concurrent_pages = static_cast<std::size_t>(cached_backfill_options().concurrent_pages);
  return runtime;
}

bool Replicator::prepare_sweep(const BackfillJob& job, const std::optional<BackfillWindow>& window) {
  {
    std::lock_guard lock(sweep_mutex_);
    last_sweep_.reset();
  }
  const DeleteOptions& d = deletes();
  return !job.incremental && !window && job.id != 0 && context_.replica != nullptr && d.mode != DeleteMode::none &&
         d.sweep == Sweep::after_full_backfill;
}

SweepRun Replicator::sweep_run(const BackfillJob& job) const {
  const DeleteOptions& d = deletes();
  return SweepRun{.job_id = job.id,
                  .margin = d.sweep_margin,
                  .batch_rows = d.sweep_batch_rows,
                  .tombstone_retention = d.tombstone_retention};
}

void Replicator::run_sweep(const BackfillJob& job) {
  const auto started = std::chrono::steady_clock::now();
  const SweepRun run = sweep_run(job);
  SweepReport report;
  report.job_id = job.id;
  report.result = context_.replica->sweep(table_spec(), run);
  context_.replica->end_sweep_run(job.id);
  report.took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
  context_.logger->log(LogLevel::info, "swept " + std::to_string(report.result.swept) + " rows of " +
                                           table_spec().table + " that backfill job " + std::to_string(job.id) +
                                           " did not see, in " + std::to_string(report.result.batches) +
                                           " batches");
  std::lock_guard lock(sweep_mutex_);
  last_sweep_ = report;
}

// --- the backfill contract ---

void Replicator::check_backfillable(const BackfillJob& job) const {
  if (job.service_integration_id != integration_.id) {
    throw InvalidPrecondition("job is for different service integration");
  }
  if (!descriptor_.supports_backfill) throw InvariantViolation("manual backfill not supported");
  // Without a key or secret of its own an integration is backfilled only
  // when the host's client authenticates it (an OAuth2 grant, http_auth.hpp).
  if (blank(integration_.backfill_key) && blank(integration_.backfill_secret) && !integration_.depends_on &&
      !(context_.http && context_.http->authenticates(integration_.id))) {
    throw CredentialsMissing("backfill credentials missing for " + descriptor_.name + " integration " +
                             integration_.opaque_id);
  }
}

void Replicator::reset_run(bool backfilling) {
  std::lock_guard lock(run_mutex_);
  backfilling_ = backfilling;
  backfill_dependents_.reset();
  first_run_checkpoints_ = FirstRunCheckpoints::off;
}

bool Replicator::mark_started(BackfillJob& job) {
  // A job never started before has no checkpoints: they are written only
  // after started_at is committed (below), which nothing sets back to NULL.
  const bool first_run = !job.started_at;
  job.started_at = context_.clock->now();
  // Marked started only if no other run finished it meanwhile (one statement
  // in PgJobStore: the job runner does not read the job again under its lock).
  if (context_.jobs && !context_.jobs->start_job(job)) {
    throw JobFinishedMeanwhile("backfill job " + std::to_string(job.id) +
                               " was finished by another run meanwhile; it is not run again");
  }
  return first_run;
}

void Replicator::finish_backfill(BackfillJob& job, const RunEnd& end) {
  // Only a run that saw everything its listing holds may sweep: every
  // backfiller finished (a failed or cancelled one threw before this).
  if (end.sweeping) run_sweep(job);
  // A window is a range of the past: the incremental mark stays where it is.
  if (job.incremental && !end.windowed) {
    integration_.last_backfilled_at = end.new_last_backfilled;
    if (context_.jobs) context_.jobs->update_integration(integration_);
  }
  job.finished_at = context_.clock->now();
  if (context_.jobs) context_.jobs->update_job(job);
  if (end.clear_checkpoints) context_.replica->clear_checkpoints(job.id);
  if (context_.jobs && context_.queue) enqueue_children(*context_.jobs, *context_.queue, job);
}

void Replicator::backfill(BackfillJob& job, const CancellationToken& cancel) {
  check_backfillable(job);
  reset_run(true);
  const ScopeExit forget_run([this] { reset_run(false); });
  (void)cached_backfill_options();  // nonsense options fail before the job is marked started
  const std::optional<BackfillWindow> window = backfill_window(job.criteria);  // malformed: refused here too
  const bool sweeping = prepare_sweep(job, window);
  Clock& now = *context_.clock;
  const QuotaLane lane = job.incremental ? QuotaLane::incremental : QuotaLane::full;
  const QuotaLaneScope lane_scope(lane);
  const std::optional<Timestamp> last_backfilled =
      job.incremental ? incremental_since(integration_.last_backfilled_at, cached_backfill_options())
                      : std::optional<Timestamp>{};
  // Taken before any page is fetched: rows changed during the run are caught next time.
  const Timestamp new_last_backfilled = now.now();
  const bool first_run = mark_started(job);

  const bool checkpoints = job.id != 0 && context_.replica != nullptr;
  bool one_page = false;  // the run's one backfiller handled one page
  try {
    // Inside the try: a store that fails here is a backfill error like any other.
    // Before any row is written; a resumed job keeps its first run's mark.
    if (sweeping) context_.replica->begin_sweep_run(table_spec(), sweep_run(job));
    std::map<std::string, Checkpoint> saved;
    if (checkpoints && !first_run) saved = context_.replica->load_checkpoints(job.id);
    auto list = backfillers(job.criteria);
    if (checkpoints && first_run && list.size() == 1) {
      std::lock_guard lock(run_mutex_);
      first_run_checkpoints_ = FirstRunCheckpoints::none;
    }
    std::vector<CancellableTask> tasks;
    tasks.reserve(list.size());
    std::set<std::string> keys;
    for (std::size_t i = 0; i < list.size(); ++i) {
      Backfiller& b = *list[i];
      if (b.checkpoint_key().empty()) b.set_checkpoint_key(std::to_string(i));
      // Two backfillers under one key would resume from each other's tokens.
      if (!keys.insert(b.checkpoint_key()).second) {
        throw InvariantViolation("backfillers(criteria) of " + integration_.opaque_id +
                                 " gave two backfillers the checkpoint key '" + b.checkpoint_key().substr(0, 64) +
                                 "'; each needs its own (set_checkpoint_key)");
      }
      BackfillRuntime runtime = job_runtime(job, window, sweeping ? SeenMarks::every_row : SeenMarks::written);
      if (auto it = saved.find(b.checkpoint_key()); it != saved.end()) {
        if (it->second.finished) continue;  // done in an earlier run of this job
        runtime.start_token = it->second.next_token;
      }
      tasks.push_back([&b, runtime, &last_backfilled, lane](const CancellationToken& token) mutable {
        const QuotaLaneScope task_lane(lane);  // the pool's threads charge the job's lane too
        runtime.cancel = token;
        b.set_runtime(std::move(runtime));
        b.backfill(last_backfilled);
      });
    }
    run_tasks(std::move(tasks), cached_backfill_options().parallel, cancel);
    one_page = list.size() == 1 && list[0]->progress().pages == 1;
  } catch (const std::exception& e) {
    if (on_backfill_error(e)) {
      // The job ends here and is never resumed: no sweep, and its run is forgotten.
      if (sweeping) context_.replica->end_sweep_run(job.id);
      job.finished_at = now.now();
      if (context_.jobs) context_.jobs->update_job(job);
      return;
    }
    throw;
  }

  bool clear = checkpoints;
  {
    // Nothing to delete: a first run of one page whose only checkpoint, the
    // final one, was left out (a page boundary's checkpoint needs a second page).
    std::lock_guard lock(run_mutex_);
    if (one_page && first_run_checkpoints_ == FirstRunCheckpoints::final_left_out) clear = false;
  }
  finish_backfill(job, RunEnd{sweeping, window.has_value(), new_last_backfilled, clear});
}

}  // namespace webhookdb
