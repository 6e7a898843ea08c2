#include "webhookdb/jobs/webhook_inbox_processor.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/errors.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/jobs/worker.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/registry.hpp"

namespace webhookdb::jobs {

std::string_view to_string(InboxResult result) noexcept {
  switch (result) {
    case InboxResult::written: return "written";
    case InboxResult::retrying: return "retrying";
    case InboxResult::failed: return "failed";
    case InboxResult::lease_lost: return "lease_lost";
    case InboxResult::released: return "released";
  }
  return "unknown";
}

namespace {

// Why one attempt did not write its row.
struct AttemptError {
  std::string message;
  // No retry can fix it (the payload, an unknown integration).
  bool permanent = false;
};

}  // namespace

struct WebhookInboxProcessor::Impl {
  std::shared_ptr<pg::PgWebhookInbox> inbox;
  ReplicatorContext context;
  WebhookInboxProcessorOptions options;
  std::shared_ptr<Logger> logger;

  std::atomic<std::uint64_t> written{0};
  std::atomic<std::uint64_t> retrying{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> lease_lost{0};

  void log(LogLevel level, const std::string& text) const { logger->log(level, text); }

  // The integration's secrets and the request's credential headers (the
  // signature) removed: a replicator or a store may echo either in an error.
  static std::string scrubbed(std::string text, const std::optional<ServiceIntegration>& si,
                              const WebhookRequest& request) {
    std::vector<std::string> secrets;
    if (si) {
      for (const std::string* secret : {&si->backfill_secret, &si->backfill_key, &si->webhook_secret}) {
        if (secret->size() >= 3) secrets.push_back(*secret);
      }
    }
    for (const auto& [name, value] : request.headers) {
      if (is_credential_header(name) && value.size() >= 4) secrets.push_back(value);
    }
    return secrets.empty() ? text : redact_secrets(std::move(text), std::move(secrets));
  }

  // Writes one row's webhook; the error when it did not.
  std::optional<AttemptError> write(const pg::InboxDelivery& delivery, std::optional<ServiceIntegration>& si,
                                    std::size_t& rows) {
    try {
      si = context.jobs->find_integration_by_opaque_id(delivery.opaque_id);
      if (!si) return AttemptError{"unknown integration " + delivery.opaque_id, true};
      const Descriptor* descriptor = context.registry->find(si->service_name);
      // Another processor may serve that replicator: retried, then failed.
      if (descriptor == nullptr) return AttemptError{"no replicator registered as '" + si->service_name + "'", false};
      if (!descriptor->supports_webhooks) {
        return AttemptError{"replicator '" + descriptor->name + "' does not support webhooks", true};
      }
      WebhookRequest request = delivery.request;
      auto parsed = try_parse_json_limited(request.body, context.json_limits);
      if (parsed.error) {
        return AttemptError{"webhook body: " + parsed.error->message + " at byte " + std::to_string(parsed.error->offset),
                            true};
      }
      request.json = std::move(parsed.value);
      std::unique_ptr<Replicator> replicator = context.registry->make(*si, context);
      rows = replicator->upsert_webhook(request).rows.size();
      return std::nullopt;
    } catch (const InvalidInput& e) {
      return AttemptError{std::string("invalid webhook payload: ") + e.what(), true};
    } catch (const nlohmann::json::exception&) {
      return AttemptError{"invalid webhook payload: unexpected JSON shape", true};
    } catch (const std::exception& e) {
      return AttemptError{e.what(), false};
    } catch (...) {
      return AttemptError{"unknown exception", false};
    }
  }

  InboxReport process(const pg::InboxDelivery& delivery) {
    InboxReport report;
    report.id = delivery.id;
    report.opaque_id = delivery.opaque_id;
    report.attempt = delivery.attempt;
    std::optional<ServiceIntegration> si;
    const auto error = write(delivery, si, report.rows);
    const std::string where = "webhook inbox row " + std::to_string(delivery.id) + " for " + delivery.opaque_id;
    if (!error) {
      if (inbox->done(delivery)) {
        report.result = InboxResult::written;
        written.fetch_add(1, std::memory_order_relaxed);
      } else {
        // Taken over after our lease expired: the other processor writes it too.
        report.result = InboxResult::lease_lost;
        lease_lost.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::warn, where + ": written, but its lease had expired (another processor took it)");
      }
      return report;
    }
    report.error = scrubbed(error->message, si, delivery.request);
    switch (inbox->fail(delivery, report.error, error->permanent)) {
      case pg::InboxFailure::retrying:
        report.result = InboxResult::retrying;
        retrying.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::warn, where + " (attempt " + std::to_string(delivery.attempt) + ") failed, will retry: " +
                                report.error);
        break;
      case pg::InboxFailure::failed:
        report.result = InboxResult::failed;
        failed.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::error, where + " failed for good (attempt " + std::to_string(delivery.attempt) +
                                 "): " + report.error);
        break;
      case pg::InboxFailure::lease_lost:
        report.result = InboxResult::lease_lost;
        lease_lost.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::warn, where + " failed after its lease expired: " + report.error);
        break;
    }
    return report;
  }

  // A batch of taken rows: each integration's rows built first, then written
  // with one multi-row/COPY upsert per integration (the update rule decides
  // between two versions of a key within it), then deleted from the inbox in
  // one transaction. A row that cannot be built, an enriched replicator, or a
  // group whose write the store refuses as invalid goes the one-by-one way
  // (process()), so only the bad row fails.
  void process_batch(const std::vector<pg::InboxDelivery>& batch) {
    std::map<std::string, Group> groups;
    std::vector<std::size_t> one_by_one;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!join_group(batch, i, groups)) one_by_one.push_back(i);
    }
    std::vector<std::size_t> written_members;
    for (auto& [opaque_id, group] : groups) {
      if (group.members.empty()) continue;
      auto& into = write_group(group) ? written_members : one_by_one;
      into.insert(into.end(), group.members.begin(), group.members.end());
    }
    if (!written_members.empty()) finish_written(batch, groups, written_members);
    std::sort(one_by_one.begin(), one_by_one.end());
    for (std::size_t i : one_by_one) notify(process(batch[i]));
  }

  // The deliveries of one integration in a batch, with the rows each makes.
  struct Group {
    std::shared_ptr<Replicator> replicator;
    std::optional<ServiceIntegration> si;
    std::vector<std::size_t> members;
    std::vector<std::vector<Row>> rows;
  };

  // False when batch[i] must go the one-by-one way (process() records why).
  bool join_group(const std::vector<pg::InboxDelivery>& batch, std::size_t i, std::map<std::string, Group>& groups) {
    const pg::InboxDelivery& delivery = batch[i];
    try {
      auto found = groups.find(delivery.opaque_id);
      if (found == groups.end()) {
        auto si = context.jobs->find_integration_by_opaque_id(delivery.opaque_id);
        const Descriptor* descriptor = si ? context.registry->find(si->service_name) : nullptr;
        if (!si || descriptor == nullptr || !descriptor->supports_webhooks) return false;
        Group group;
        group.replicator = context.registry->make(*si, context);
        group.si = std::move(si);
        found = groups.emplace(delivery.opaque_id, std::move(group)).first;
      }
      Group& group = found->second;
      if (group.replicator->table_spec().enrichment) return false;
      WebhookRequest request = delivery.request;
      auto parsed = try_parse_json_limited(request.body, context.json_limits);
      if (parsed.error) return false;
      request.json = std::move(parsed.value);
      group.rows.push_back(group.replicator->rows_for_webhook(request));
      group.members.push_back(i);
      return true;
    } catch (...) {
      return false;
    }
  }

  // One upsert for the group, the update rule deciding between two versions
  // of a key within it. False when the store refused it: each member then
  // goes one by one and records its own error (an outage fails each in turn).
  static bool write_group(Group& group) {
    const TableSpec& spec = group.replicator->table_spec();
    std::vector<Row> rows;
    for (const auto& member_rows : group.rows) rows.insert(rows.end(), member_rows.begin(), member_rows.end());
    rows = spec.update_rule.collapse(spec, std::move(rows));
    try {
      if (!rows.empty()) group.replicator->write_webhook_rows(std::move(rows));
      return true;
    } catch (...) {
      return false;
    }
  }

  // Deletes what was written from the inbox in one transaction and reports each.
  void finish_written(const std::vector<pg::InboxDelivery>& batch, const std::map<std::string, Group>& groups,
                      const std::vector<std::size_t>& written_members) {
    std::vector<pg::InboxDelivery> written_batch;
    written_batch.reserve(written_members.size());
    for (std::size_t i : written_members) written_batch.push_back(batch[i]);
    std::vector<bool> deleted;
    try {
      deleted = inbox->done_batch(written_batch);
    } catch (const std::exception& e) {
      // Written but not deleted: the lease expires and they are written again (harmless).
      log(LogLevel::warn, std::string("webhook inbox: ") + std::to_string(written_batch.size()) +
                              " rows written but not deleted: " + e.what());
      deleted.assign(written_batch.size(), false);
    }
    for (std::size_t k = 0; k < written_batch.size(); ++k) {
      InboxReport report;
      report.id = written_batch[k].id;
      report.opaque_id = written_batch[k].opaque_id;
      report.attempt = written_batch[k].attempt;
      const auto& group = groups.at(written_batch[k].opaque_id);
      for (std::size_t m = 0; m < group.members.size(); ++m) {
        if (group.members[m] == written_members[k]) report.rows = group.rows[m].size();
      }
      if (deleted[k]) {
        report.result = InboxResult::written;
        written.fetch_add(1, std::memory_order_relaxed);
      } else {
        report.result = InboxResult::lease_lost;
        lease_lost.fetch_add(1, std::memory_order_relaxed);
      }
      notify(report);
    }
  }

  void notify(const InboxReport& report) const {
    if (!options.on_processed) return;
    try {
      options.on_processed(report);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a callback must not stop the processor
    }
  }
};

WebhookInboxProcessor::WebhookInboxProcessor(std::shared_ptr<pg::PgWebhookInbox> inbox, ReplicatorContext context,
                                             WebhookInboxProcessorOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (!inbox) throw InvalidPrecondition("WebhookInboxProcessor needs an inbox");
  if (!context.jobs) {
    throw InvalidPrecondition("WebhookInboxProcessor needs a job store (context.jobs) to find integrations");
  }
  if (!context.registry) throw InvalidPrecondition("WebhookInboxProcessor needs a registry (context.registry)");
  if (options.batch == 0) options.batch = 1;
  if (options.owner.empty()) options.owner = default_worker_owner();
  impl_->logger = options.logger ? options.logger : (context.logger ? context.logger : std::make_shared<NullLogger>());
  if (!context.logger) context.logger = impl_->logger;
  impl_->inbox = std::move(inbox);
  impl_->context = std::move(context);
  impl_->options = std::move(options);
}

WebhookInboxProcessor::~WebhookInboxProcessor() = default;

std::size_t WebhookInboxProcessor::process_available(const CancellationToken& cancel) {
  Impl& impl = *impl_;
  std::size_t handled = 0;
  while (!cancel.cancelled()) {
    const auto batch = impl.inbox->take(impl.options.owner, impl.options.batch);
    if (batch.empty()) break;
    if (batch.size() > 1 && !cancel.cancelled()) {
      impl.process_batch(batch);
      handled += batch.size();
      continue;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (cancel.cancelled()) {
        for (std::size_t j = i; j < batch.size(); ++j) {
          if (impl.inbox->release(batch[j])) {
            InboxReport report;
            report.id = batch[j].id;
            report.opaque_id = batch[j].opaque_id;
            report.attempt = batch[j].attempt;
            report.result = InboxResult::released;
            impl.notify(report);
          }
        }
        return handled;
      }
      impl.notify(impl.process(batch[i]));
      ++handled;
    }
  }
  return handled;
}

void WebhookInboxProcessor::run(const CancellationToken& cancel) {
  Impl& impl = *impl_;
  using std::chrono::milliseconds;
  while (!cancel.cancelled()) {
    // Read before looking, so a push during the look is not slept through.
    const std::uint64_t seen = impl.inbox->wake_generation();
    milliseconds wait = impl.options.poll_interval;
    try {
      process_available(cancel);
      if (cancel.cancelled()) break;
      if (auto due = impl.inbox->time_until_due()) wait = std::min(std::max(*due, milliseconds(10)), wait);
    } catch (const std::exception& e) {
      impl.log(LogLevel::error, std::string("webhook inbox processor ") + impl.options.owner +
                                    ": inbox failed (will look again): " + e.what());
    }
    impl.inbox->wait_for_work(seen, wait, cancel);
  }
}

const std::string& WebhookInboxProcessor::owner() const noexcept { return impl_->options.owner; }

InboxProcessorStats WebhookInboxProcessor::stats() const {
  InboxProcessorStats s;
  s.written = impl_->written.load();
  s.retrying = impl_->retrying.load();
  s.failed = impl_->failed.load();
  s.lease_lost = impl_->lease_lost.load();
  return s;
}

}  // namespace webhookdb::jobs
