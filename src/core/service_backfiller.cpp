#include "webhookdb/service_backfiller.hpp"

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
    : BulkBackfiller(replicator),
      mode_(replicator.backfill_write_mode()),
      polite_(replicator.backfill_retry_policy() != nullptr) {}

ServiceBackfiller::ServiceBackfiller(Replicator& replicator, BackfillPartition partition)
    : ServiceBackfiller(replicator) {
  set_checkpoint_key(partition.key);
  partition_ = std::move(partition);
}

std::shared_ptr<const RetryPolicy> ServiceBackfiller::retry_policy() const {
  if (auto policy = replicator().backfill_retry_policy()) return policy;
  return Backfiller::retry_policy();
}

void ServiceBackfiller::retry_or_die(std::exception_ptr cause) const {
  const std::string what = "server error during backfill of " + replicator().integration().opaque_id + ": " + describe(cause);
  throw RetryOrDie(replicator().server_error_retries(), replicator().server_error_backoff(), std::move(cause), what);
}

BackfillPage ServiceBackfiller::fetch_backfill_page(const std::string& token,
                                                    const std::optional<Timestamp>& last_backfilled,
                                                    const CancellationToken& cancel) {
  try {
    if (partition_) return replicator().fetch_partition_page(*partition_, token, last_backfilled, cancel);
    return replicator().fetch_backfill_page(token, last_backfilled, cancel);
  } catch (const HttpBaseError&) {
    // WebhookDB's behaviour: server-side faults skip the page loop's retries
    // and go straight to the job system. With a polite retry policy the page
    // loop retries them first and give_up() maps them.
    if (!polite_ && server_side(std::current_exception())) retry_or_die(std::current_exception());
    throw;
  }
}

void ServiceBackfiller::give_up(std::exception_ptr error) {
  if (polite_ && server_side(error)) retry_or_die(error);
  std::rethrow_exception(std::move(error));
}

void ServiceBackfiller::take_item(nlohmann::json&& item) {
  if (mode_ == BackfillWriteMode::batched) {
    BulkBackfiller::take_item(std::move(item));
    return;
  }
  handle_item(item);
}

void ServiceBackfiller::handle_item(const nlohmann::json& item) {
  if (mode_ == BackfillWriteMode::batched) {
    BulkBackfiller::handle_item(item);
    return;
  }
  const auto rows = replicator().upsert_webhook_body(item);
  count_written(rows.size(), 0);
}

bool ServiceBackfiller::pipelined() const { return replicator().pipelined_backfill(); }

bool ServiceBackfiller::write_behind() const { return mode_ == BackfillWriteMode::batched && pipelined(); }

std::size_t ServiceBackfiller::backfill_batch_size() const { return std::max<std::size_t>(1, replicator().backfill_batch_size()); }

}  // namespace webhookdb
