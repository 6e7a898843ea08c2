#include "webhookdb/service_backfiller.hpp"

#include "webhookdb/internal/replicator_gate.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb {
namespace {

// Timeouts, connection errors and 5xx: the job system should run the job later.
bool server_side(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const HttpError& e) {
    return e.status() >= 500;
  } catch (const HttpTimeout&) {
    return true;
  } catch (const HttpConnectionError&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

ServiceBackfiller::ServiceBackfiller(Replicator& replicator)
    : BulkBackfiller(replicator), options_(internal::ReplicatorGate(replicator).backfill_options()) {
  set_limits(options_.limits);
}

ServiceBackfiller::ServiceBackfiller(Replicator& replicator, BackfillPartition partition)
    : ServiceBackfiller(replicator) {
  set_checkpoint_key(partition.key);
  partition_ = std::move(partition);
}

std::shared_ptr<const RetryPolicy> ServiceBackfiller::retry_policy() const {
  if (options_.retry_policy) return options_.retry_policy;
  return Backfiller::retry_policy();
}

void ServiceBackfiller::retry_or_die(std::exception_ptr cause) const {
  const std::string what = "server error during backfill of " + replicator().integration().opaque_id + ": " + describe(cause);
  throw RetryOrDie(options_.server_error_retries, options_.server_error_backoff, std::move(cause), what);
}

BackfillPage ServiceBackfiller::fetch_backfill_page(const std::string& token,
                                                    const std::optional<Timestamp>& last_backfilled,
                                                    const CancellationToken& cancel) {
  try {
    internal::ReplicatorGate gate(replicator());
    if (runtime().window) {
      const WindowPageRequest request{*runtime().window, token, last_backfilled,
                                      partition_ ? &*partition_ : nullptr, cancel};
      return gate.fetch_window_page(request);
    }
    if (partition_) return gate.fetch_partition_page(*partition_, token, last_backfilled, cancel);
    return gate.fetch_backfill_page(token, last_backfilled, cancel);
  } catch (const HttpBaseError&) {
    // WebhookDB's behaviour: server-side faults skip the page loop's retries
    // and go straight to the job system. With a polite retry policy the page
    // loop retries them first and give_up() maps them.
    if (!options_.retry_policy && server_side(std::current_exception())) retry_or_die(std::current_exception());
    throw;
  }
}

void ServiceBackfiller::give_up(std::exception_ptr error) {
  if (options_.retry_policy && server_side(error)) retry_or_die(error);
  std::rethrow_exception(std::move(error));
}

void ServiceBackfiller::take_item(nlohmann::json&& item) {
  if (options_.write_mode == BackfillWriteMode::batched) {
    BulkBackfiller::take_item(std::move(item));
    return;
  }
  handle_item(item);
}

void ServiceBackfiller::handle_item(const nlohmann::json& item) {
  if (options_.write_mode == BackfillWriteMode::batched) {
    BulkBackfiller::handle_item(item);
    return;
  }
  if (runtime().seen == SeenMarks::every_row) {
    // A sweeping job marks even the rows the update rule leaves alone as seen,
    // which upsert_webhook_body does not ask for.
    const std::vector<Row> rows = replicator().rows_for_webhook_body(item);
    if (rows.empty()) return;
    UpsertOptions options;
    options.method = WriteMethod::single_row;
    options.seen = SeenMarks::every_row;
    const UpsertResult result = internal::ReplicatorGate(replicator()).write_checked_rows(rows, options);
    count_written(rows.size(), result.changed_count());
    return;
  }
  const UpsertedRows written = replicator().upsert_webhook_body(item);
  count_written(written.rows.size(), written.changed_count());
}

bool ServiceBackfiller::pipelined() const { return options_.pipelined; }

bool ServiceBackfiller::write_behind() const { return options_.write_mode == BackfillWriteMode::batched && pipelined(); }

std::size_t ServiceBackfiller::backfill_batch_size() const { return options_.batch_size; }

}  // namespace webhookdb
