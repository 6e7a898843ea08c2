#include "webhookdb/webhooks/webhook_handler.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "webhookdb/errors.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/webhooks/webhook_policy.hpp"

namespace webhookdb::webhooks {
namespace {

WebhookResponse internal_error() {
  return WebhookResponse::error(500, "internal error");
}

// The bytes a value takes in an index entry, near enough: its text.
std::size_t indexed_size(const nlohmann::json& value) {
  if (value.is_string()) return value.get_ref<const std::string&>().size();
  if (value.is_array() || value.is_object()) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size();
  }
  return 0;  // numbers, booleans, null: a few bytes
}

// PostgreSQL would refuse the write (after the 202, without an inbox) when an
// index entry passes its btree limit: refuse the payload now instead.
void check_indexable(const TableSpec& spec, const Row& row) {
  const auto refuse = [](const std::string& what, std::size_t size, const std::string& where) {
    throw InvalidInput(what + " is " + std::to_string(size) + " bytes; at most " +
                           std::to_string(kMaxIndexedValueBytes) + " can be indexed",
                       where);
  };
  if (const std::size_t size = indexed_size(row.key); size > kMaxIndexedValueBytes) {
    refuse("the remote key", size, "column '" + spec.remote_key.name + "'");
  }
  for (const IndexSpec& index : spec.indexes()) {
    std::size_t size = 0;
    for (const std::string& name : index.columns) {
      if (name == spec.remote_key.name) {
        size += indexed_size(row.key);
      } else if (auto i = spec.column_index(name); i && *i < row.values.size()) {
        size += indexed_size(row.values[*i]);
      }
    }
    if (size > kMaxIndexedValueBytes) refuse("the indexed value", size, "index '" + index.name + "'");
  }
}

// Payload -> rows, with every check a write would make that does not need the
// database: each column's conversion, UTF-8, index entry sizes. Whatever a
// replicator hook throws while reading the payload (bar a store or HTTP
// failure) says the payload has a shape it cannot take: an InvalidInput, so
// the sender gets a 400 it will not retry, never a 500 it retries for days.
std::vector<Row> storable_rows(Replicator& replicator, const WebhookRequest& request) {
  std::vector<Row> rows;
  try {
    rows = replicator.rows_for_webhook(request);
  } catch (const InvalidInput&) {
    throw;
  } catch (const StoreError&) {
    throw;
  } catch (const HttpBaseError&) {
    throw;
  } catch (const Cancelled&) {
    throw;
  } catch (const InvalidPostcondition&) {
    // Replicator::upsert_webhook's only one: the envelope held an array.
    throw InvalidInput("the event's resource is an array; expected one JSON object", "webhook body");
  } catch (const nlohmann::json::exception&) {
    throw InvalidInput("a value has the wrong JSON type for this integration", "webhook body");
  } catch (const std::exception&) {
    throw InvalidInput("the payload does not have the shape this integration reads", "webhook body");
  }
  for (const Row& row : rows) check_indexable(replicator.table_spec(), row);
  return rows;
}

}  // namespace

struct WebhookHandler::Impl {
  ReplicatorContext context;
  WebhookHandlerOptions options;
  std::shared_ptr<Logger> logger;
  boost::asio::thread_pool pool;

  mutable std::mutex mutex;
  std::condition_variable idle;
  std::size_t pending = 0;
  bool draining = false;
  std::mutex drain_mutex;
  bool drained = false;

  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> unavailable{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> processed_async{0};
  std::atomic<std::uint64_t> failed_async{0};
  std::atomic<std::uint64_t> inboxed{0};

  Impl(ReplicatorContext ctx, WebhookHandlerOptions opts)
      : context(std::move(ctx)),
        options(std::move(opts)),
        logger(context.logger ? context.logger : std::make_shared<NullLogger>()),
        pool(options.worker_threads == 0 ? 1 : options.worker_threads) {}

  void log(LogLevel level, const std::string& opaque_id, const std::string& text) const {
    logger->log(level, "webhook for " + opaque_id + ": " + text);
  }

  WebhookResponse count(WebhookResponse response) {
    if (response.status < 300) {
      accepted.fetch_add(1, std::memory_order_relaxed);
    } else if (response.status == 503) {
      unavailable.fetch_add(1, std::memory_order_relaxed);
    } else if (response.status >= 500) {
      failed.fetch_add(1, std::memory_order_relaxed);
    } else {
      rejected.fetch_add(1, std::memory_order_relaxed);
    }
    return response;
  }

  // False when full or draining. Posting under the lock means drain() never
  // joins the pool between our check and our post.
  bool enqueue(std::function<void()> work, const std::string& opaque_id) {
    std::lock_guard lock(mutex);
    if (draining || pending >= options.max_pending) return false;
    ++pending;
    boost::asio::post(pool, [this, work = std::move(work), opaque_id] {
      try {
        work();
        processed_async.fetch_add(1, std::memory_order_relaxed);
      } catch (...) {
        failed_async.fetch_add(1, std::memory_order_relaxed);
        const auto error = std::current_exception();
        log(LogLevel::error, opaque_id, "asynchronous write failed: " + describe(error));
        if (options.on_async_error) {
          try {
            options.on_async_error(opaque_id, error);
          } catch (...) {  // NOLINT(bugprone-empty-catch): a callback must not kill a worker
          }
        }
      }
      std::lock_guard done(mutex);
      --pending;
      if (pending == 0) idle.notify_all();
    });
    return true;
  }

  WebhookResponse process(const std::string& opaque_id, WebhookRequest& request);
  WebhookResponse process_enriched(const std::shared_ptr<Replicator>& replicator, WebhookPolicy* policy,
                                   WebhookRequest& request, const WebhookResponse& verification,
                                   bool synchronous);
  WebhookResponse push_to_inbox(const std::string& target_id, const WebhookRequest& request,
                                const WebhookResponse& verification);
  WebhookResponse enqueue_or_busy(std::function<void()> work, const std::string& target_id,
                                  const WebhookResponse& verification);
};

WebhookResponse WebhookHandler::Impl::process(const std::string& opaque_id, WebhookRequest& request) {
  std::optional<ServiceIntegration> integration;
  try {
    integration = context.jobs->find_integration_by_opaque_id(opaque_id);
  } catch (const std::exception& e) {
    log(LogLevel::error, opaque_id, std::string("integration lookup failed: ") + e.what());
    return internal_error();
  }
  if (!integration) return WebhookResponse::error(404, "unknown integration");
  const Descriptor* descriptor = context.registry->find(integration->service_name);
  if (descriptor == nullptr || !descriptor->supports_webhooks) {
    log(LogLevel::warn, opaque_id,
        descriptor == nullptr ? "no replicator registered as '" + integration->service_name + "'"
                              : "replicator '" + descriptor->name + "' does not support webhooks");
    return WebhookResponse::error(404, "integration does not accept webhooks");
  }

  std::shared_ptr<Replicator> replicator = context.registry->make(*integration, context);
  if (WebhookPolicy* policy = webhook_policy_of(*replicator)) {
    if (auto target = policy->dispatch_request_to(request)) replicator = std::move(target);
  }
  WebhookPolicy* policy = webhook_policy_of(*replicator);
  const std::string& target_id = replicator->integration().opaque_id;

  WebhookResponse verification = replicator->webhook_response(request);
  if (verification.status >= 400) {
    log(LogLevel::info, target_id,
        "rejected with " + std::to_string(verification.status) + ": " + verification.body.substr(0, 200));
    return verification;
  }

  // Parsed here, with the depth limit enforced while parsing, so a hostile
  // body never becomes a document deep enough to exhaust the stack later
  // (copies and dump() recurse). The receiver already bounds the size.
  JsonLimits limits = context.json_limits;
  limits.max_depth = std::min(limits.max_depth, options.max_json_depth);
  if (request.json.is_null()) {
    auto parsed = try_parse_json_limited(request.body, limits);
    if (parsed.error) {
      const JsonParseError& error = *parsed.error;
      const std::string reason = error.failure == JsonFailure::malformed
                                     ? "webhook body is not valid JSON (malformed, or not UTF-8)"
                                     : "webhook body: " + error.message;
      return WebhookResponse::error(error.failure == JsonFailure::too_large ? 413 : 400,
                                    reason + " at byte " + std::to_string(error.offset));
    }
    request.json = std::move(parsed.value);
  } else if (json_depth(request.json) > limits.max_depth) {
    return WebhookResponse::error(
        400, "webhook body: JSON nested deeper than " + std::to_string(limits.max_depth) + " levels");
  }
  if (!request.json.is_object() && !request.json.is_array()) {
    return WebhookResponse::error(
        400, "webhook body must be a JSON object or array, got " + std::string(request.json.type_name()));
  }

  const bool synchronous =
      options.process_synchronously.value_or(policy != nullptr && policy->process_webhooks_synchronously());
  // Enrichment may call out over HTTP: the whole upsert is left to the write
  // (now, the worker, or the inbox's processor), unchecked before the answer.
  if (replicator->table_spec().enrichment)
    return process_enriched(replicator, policy, request, verification, synchronous);

  // Rows are built and checked now, so a payload that cannot become a row is
  // a 400 the sender sees, never a 202 and then a failure in a log.
  std::vector<Row> rows = storable_rows(*replicator, request);
  if (synchronous) {
    if (!rows.empty()) rows = replicator->write_webhook_rows(std::move(rows)).rows;
    return policy != nullptr ? policy->synchronous_response(rows, request)
                             : default_synchronous_response(rows);
  }
  if (rows.empty()) return verification;  // the replicator skips this resource
  if (options.inbox) return push_to_inbox(target_id, request, verification);
  auto work = [replicator, rows = std::move(rows)]() mutable { replicator->write_webhook_rows(std::move(rows)); };
  return enqueue_or_busy(std::move(work), target_id, verification);
}

WebhookResponse WebhookHandler::Impl::process_enriched(const std::shared_ptr<Replicator>& replicator,
                                                       WebhookPolicy* policy, WebhookRequest& request,
                                                       const WebhookResponse& verification,
                                                       bool synchronous) {
  if (synchronous) {
    std::vector<Row> rows = replicator->upsert_webhook(request).rows;
    return policy != nullptr ? policy->synchronous_response(rows, request)
                             : default_synchronous_response(rows);
  }
  const std::string& target_id = replicator->integration().opaque_id;
  if (options.inbox) return push_to_inbox(target_id, request, verification);
  auto work = [replicator, request = std::move(request)] { replicator->upsert_webhook(request); };
  return enqueue_or_busy(std::move(work), target_id, verification);
}

WebhookResponse WebhookHandler::Impl::push_to_inbox(const std::string& target_id,
                                                    const WebhookRequest& request,
                                                    const WebhookResponse& verification) {
  // Throws when not stored: handle() answers 500 and the sender retries.
  options.inbox->push(target_id, request);
  inboxed.fetch_add(1, std::memory_order_relaxed);
  return verification;
}

WebhookResponse WebhookHandler::Impl::enqueue_or_busy(std::function<void()> work,
                                                      const std::string& target_id,
                                                      const WebhookResponse& verification) {
  if (enqueue(std::move(work), target_id)) return verification;
  log(LogLevel::warn, target_id, "worker queue full or draining; answered 503");
  WebhookResponse busy = WebhookResponse::error(503, "webhook queue is full; retry later");
  busy.headers.emplace_back("Retry-After", "1");
  return busy;
}

WebhookHandler::WebhookHandler(ReplicatorContext context, WebhookHandlerOptions options) {
  if (!context.jobs)
    throw InvalidPrecondition("WebhookHandler needs a job store (context.jobs) to find integrations");
  if (!context.registry) throw InvalidPrecondition("WebhookHandler needs a registry (context.registry)");
  impl_ = std::make_shared<Impl>(std::move(context), std::move(options));
}

WebhookHandler::~WebhookHandler() {
  drain();
}

WebhookResponse WebhookHandler::handle(const std::string& opaque_id, WebhookRequest request) {
  Impl& impl = *impl_;
  impl.requests.fetch_add(1, std::memory_order_relaxed);
  try {
    return impl.count(impl.process(opaque_id, request));
  } catch (const InvalidInput& e) {
    return impl.count(WebhookResponse::error(400, std::string("invalid webhook payload: ") + e.what()));
  } catch (const nlohmann::json::exception&) {
    // A replicator hook read the payload as a shape it does not have.
    return impl.count(WebhookResponse::error(400, "invalid webhook payload: unexpected JSON shape"));
  } catch (const StoreError& e) {
    impl.log(LogLevel::error, opaque_id, std::string("store failed: ") + e.what());
    return impl.count(internal_error());
  } catch (const std::exception& e) {
    impl.log(LogLevel::error, opaque_id, std::string("failed: ") + e.what());
    return impl.count(internal_error());
  } catch (...) {
    impl.log(LogLevel::error, opaque_id, "failed with an unknown exception");
    return impl.count(internal_error());
  }
}

void WebhookHandler::wait_idle() {
  std::unique_lock lock(impl_->mutex);
  impl_->idle.wait(lock, [this] { return impl_->pending == 0; });
}

bool WebhookHandler::wait_idle_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mutex);
  return impl_->idle.wait_for(lock, timeout, [this] { return impl_->pending == 0; });
}

void WebhookHandler::drain() {
  if (!impl_) return;
  std::lock_guard drain_lock(impl_->drain_mutex);
  if (impl_->drained) return;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->draining = true;
  }
  impl_->pool.join();
  impl_->drained = true;
}

WebhookStats WebhookHandler::stats() const {
  const Impl& impl = *impl_;
  WebhookStats s;
  s.requests = impl.requests.load();
  s.accepted = impl.accepted.load();
  s.rejected = impl.rejected.load();
  s.unavailable = impl.unavailable.load();
  s.failed = impl.failed.load();
  s.processed_async = impl.processed_async.load();
  s.failed_async = impl.failed_async.load();
  s.inboxed = impl.inboxed.load();
  {
    std::lock_guard lock(impl.mutex);
    s.pending = impl.pending;
  }
  return s;
}

}  // namespace webhookdb::webhooks
