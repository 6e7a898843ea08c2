#include "webhookdb/webhooks/webhook_handler.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
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

WebhookResponse retry_later(std::string text) {
  WebhookResponse out = WebhookResponse::error(503, std::move(text));
  out.headers.emplace_back("Retry-After", "1");
  return out;
}

// A verified request waiting for its micro-batch's commit.
struct Batched {
  enum class Kind { rows, inbox };
  Kind kind = Kind::rows;
  std::shared_ptr<Replicator> replicator;
  WebhookPolicy* policy = nullptr;
  std::string target_id;
  std::vector<Row> rows;
  WebhookRequest request;
  WebhookResponse verification;
  std::function<void(WebhookResponse)> done;
  std::chrono::steady_clock::time_point queued_at;
};

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
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> batched{0};
  std::atomic<std::uint64_t> batch_failures{0};

  // Integrations found by opaque id, each until its `until` (integration_ttl).
  struct KnownIntegration {
    ServiceIntegration integration;
    std::chrono::steady_clock::time_point until;
    // Whether handling its requests may wait (an enriched replicator, or a
    // dispatch to another): unknown until resolve() has made its replicator,
    // and sticky once a request needed it. Only `no` lets a request be
    // handled on an I/O thread (handles_without_waiting).
    enum class Wait { unknown, no, may } wait = Wait::unknown;
  };
  std::mutex known_mutex;
  std::unordered_map<std::string, KnownIntegration> known;

  // The micro-batch queue and its writers.
  mutable std::mutex batch_mutex;
  std::condition_variable batch_ready;
  std::condition_variable batch_room;
  std::deque<Batched> batch_queue;
  bool batch_stopping = false;
  std::vector<std::thread> writers;

  Impl(ReplicatorContext ctx, WebhookHandlerOptions opts)
      : context(std::move(ctx)),
        options(std::move(opts)),
        logger(context.logger ? context.logger : std::make_shared<NullLogger>()),
        pool(options.worker_threads == 0 ? 1 : options.worker_threads) {
    if (options.max_batch == 0) options.max_batch = 1;
    if (options.max_queued == 0) options.max_queued = 1;
    const std::size_t n = std::max<std::size_t>(options.batch_writers, 1);
    writers.reserve(n);
    for (std::size_t i = 0; i < n; ++i) writers.emplace_back([this] { write_batches(); });
  }
  ~Impl() { stop_writers(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void stop_writers() {
    {
      std::lock_guard lock(batch_mutex);
      batch_stopping = true;
    }
    batch_ready.notify_all();
    batch_room.notify_all();
    for (auto& writer : writers) {
      if (writer.joinable()) writer.join();
    }
    writers.clear();
  }

  // Answers one request (counted). `done` must not throw; if it does, it is swallowed.
  void finish(std::function<void(WebhookResponse)>& done, WebhookResponse response) {
    try {
      done(count(std::move(response)));
    } catch (...) {  // NOLINT(bugprone-empty-catch): an answer callback must not kill a writer
    }
  }

  // Queues `item` for a batch writer; answers it 503 itself when the queue
  // stays full for queue_wait or the handler is draining.
  void submit(Batched item) {
    {
      std::unique_lock lock(batch_mutex);
      const bool room = batch_room.wait_for(lock, options.queue_wait, [this] {
        return batch_stopping || batch_queue.size() < options.max_queued;
      });
      if (room && !batch_stopping) {
        item.queued_at = std::chrono::steady_clock::now();
        batch_queue.push_back(std::move(item));
        // A writer waits for a first request, then for the window to close
        // or the batch to fill: only those two wake it. Waking it for every
        // request (to find the batch not full yet) cost a context switch per
        // webhook.
        const std::size_t queued = batch_queue.size();
        lock.unlock();
        if (queued == 1 || queued % options.max_batch == 0) batch_ready.notify_all();
        return;
      }
    }
    log(LogLevel::warn, item.target_id, "batch queue full or draining; answered 503");
    finish(item.done, retry_later("webhook queue is full; retry later"));
  }

  void write_batches();
  void commit(std::vector<Batched>& batch);
  void commit_inbox(std::vector<Batched>& batch, const std::vector<std::size_t>& members);
  void commit_rows(std::vector<Batched>& batch, const std::vector<std::size_t>& members);
  WebhookResponse rows_response(Batched& item);

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

  // An answer now, or nullopt when the request joined a batch (which answers it through `done`).
  std::optional<WebhookResponse> process(const std::string& opaque_id, WebhookRequest& request,
                                         std::function<void(WebhookResponse)>& done);
  struct Resolved {
    std::shared_ptr<Replicator> replicator;
    WebhookPolicy* policy = nullptr;
  };
  // The replicator answering for opaque_id (after dispatch), or the answer to give instead.
  std::variant<Resolved, WebhookResponse> resolve(const std::string& opaque_id, const WebhookRequest& request);
  std::optional<ServiceIntegration> find_integration(const std::string& opaque_id);
  std::optional<WebhookResponse> parse_body(WebhookRequest& request) const;
  std::optional<WebhookResponse> process_rows(const std::shared_ptr<Replicator>& replicator, WebhookPolicy* policy,
                                              WebhookRequest& request, const WebhookResponse& verification,
                                              bool synchronous, std::function<void(WebhookResponse)>& done);
  std::optional<WebhookResponse> process_enriched(const std::shared_ptr<Replicator>& replicator,
                                                  WebhookPolicy* policy, WebhookRequest& request,
                                                  const WebhookResponse& verification, bool synchronous,
                                                  std::function<void(WebhookResponse)>& done);
  void push_to_inbox(const std::string& target_id, WebhookRequest& request, const WebhookResponse& verification,
                     std::function<void(WebhookResponse)>& done);
  WebhookResponse enqueue_or_busy(std::function<void()> work, const std::string& target_id,
                                  const WebhookResponse& verification);
};

void WebhookHandler::Impl::write_batches() {
  for (;;) {
    std::vector<Batched> batch;
    {
      std::unique_lock lock(batch_mutex);
      batch_ready.wait(lock, [this] { return batch_stopping || !batch_queue.empty(); });
      if (batch_queue.empty()) return;  // stopping, and nothing left to commit
      const auto close_at = batch_queue.front().queued_at + options.batch_window;
      batch_ready.wait_until(lock, close_at, [this] {
        return batch_stopping || batch_queue.empty() || batch_queue.size() >= options.max_batch;
      });
      if (batch_queue.empty()) continue;  // another writer took them
      const std::size_t n = std::min(batch_queue.size(), options.max_batch);
      batch.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(batch_queue.front()));
        batch_queue.pop_front();
      }
    }
    batch_room.notify_all();
    commit(batch);
  }
}

void WebhookHandler::Impl::commit(std::vector<Batched>& batch) {
  std::vector<std::size_t> inbox_members;
  std::map<std::string, std::vector<std::size_t>> by_integration;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].kind == Batched::Kind::inbox) {
      inbox_members.push_back(i);
    } else {
      by_integration[batch[i].target_id].push_back(i);
    }
  }
  if (!inbox_members.empty()) commit_inbox(batch, inbox_members);
  for (const auto& [target_id, members] : by_integration) commit_rows(batch, members);
}

void WebhookHandler::Impl::commit_inbox(std::vector<Batched>& batch, const std::vector<std::size_t>& members) {
  std::vector<WebhookInbox::Entry> entries;
  entries.reserve(members.size());
  for (std::size_t i : members) entries.push_back({batch[i].target_id, &batch[i].request});
  batches.fetch_add(1, std::memory_order_relaxed);
  try {
    options.inbox->push_batch(entries);
  } catch (const InvalidInput& e) {
    if (members.size() > 1) {
      // One entry the inbox refuses must not fail its neighbours: one by one.
      for (std::size_t i : members) commit_inbox(batch, {i});
      return;
    }
    batched.fetch_add(1, std::memory_order_relaxed);
    finish(batch[members[0]].done, WebhookResponse::error(400, std::string("invalid webhook payload: ") + e.what()));
    return;
  } catch (const std::exception& e) {
    batch_failures.fetch_add(1, std::memory_order_relaxed);
    logger->log(LogLevel::error, "webhook inbox batch of " + std::to_string(members.size()) +
                                     " failed; answered 503: " + e.what());
    for (std::size_t i : members) {
      batched.fetch_add(1, std::memory_order_relaxed);
      finish(batch[i].done, retry_later("the webhook could not be stored; retry later"));
    }
    return;
  }
  inboxed.fetch_add(members.size(), std::memory_order_relaxed);
  for (std::size_t i : members) {
    batched.fetch_add(1, std::memory_order_relaxed);
    finish(batch[i].done, batch[i].verification);
  }
}

WebhookResponse WebhookHandler::Impl::rows_response(Batched& item) {
  try {
    return item.policy != nullptr ? item.policy->synchronous_response(item.rows, item.request)
                                  : default_synchronous_response(item.rows);
  } catch (const std::exception& e) {
    log(LogLevel::error, item.target_id, std::string("synchronous response failed: ") + e.what());
    return internal_error();
  }
}

void WebhookHandler::Impl::commit_rows(std::vector<Batched>& batch, const std::vector<std::size_t>& members) {
  Replicator& replicator = *batch[members[0]].replicator;
  const TableSpec& spec = replicator.table_spec();
  std::vector<Row> rows;
  for (std::size_t i : members) rows.insert(rows.end(), batch[i].rows.begin(), batch[i].rows.end());
  rows = spec.update_rule.collapse(spec, std::move(rows));
  batches.fetch_add(1, std::memory_order_relaxed);
  try {
    replicator.write_webhook_rows(std::move(rows));
  } catch (const InvalidInput& e) {
    if (members.size() > 1) {
      // A row the store refuses must not fail its neighbours: one by one.
      for (std::size_t i : members) commit_rows(batch, {i});
      return;
    }
    batched.fetch_add(1, std::memory_order_relaxed);
    finish(batch[members[0]].done, WebhookResponse::error(400, std::string("invalid webhook payload: ") + e.what()));
    return;
  } catch (const std::exception& e) {
    batch_failures.fetch_add(1, std::memory_order_relaxed);
    log(LogLevel::error, batch[members[0]].target_id,
        "batch of " + std::to_string(members.size()) + " failed; answered 503: " + e.what());
    for (std::size_t i : members) {
      batched.fetch_add(1, std::memory_order_relaxed);
      finish(batch[i].done, retry_later("the webhook could not be stored; retry later"));
    }
    return;
  }
  for (std::size_t i : members) {
    batched.fetch_add(1, std::memory_order_relaxed);
    finish(batch[i].done, rows_response(batch[i]));
  }
}

// The job store's answer, or a recent one (integration_ttl). An unknown id is
// asked again each time: nothing a sender makes up is kept.
std::optional<ServiceIntegration> WebhookHandler::Impl::find_integration(const std::string& opaque_id) {
  const auto ttl = options.integration_ttl;
  if (ttl <= std::chrono::milliseconds::zero()) return context.jobs->find_integration_by_opaque_id(opaque_id);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(known_mutex);
    if (auto found = known.find(opaque_id); found != known.end() && found->second.until > now) {
      return found->second.integration;
    }
  }
  auto integration = context.jobs->find_integration_by_opaque_id(opaque_id);
  std::lock_guard lock(known_mutex);
  if (!integration) {
    known.erase(opaque_id);
    return integration;
  }
  // Bounded: a host with more integrations than this looks some up again.
  constexpr std::size_t kMaxKnown = 4096;
  if (known.size() >= kMaxKnown) std::erase_if(known, [&](const auto& entry) { return entry.second.until <= now; });
  if (known.size() >= kMaxKnown) known.clear();
  // A refresh keeps what resolve() learnt: resetting it would let a request
  // of an enriched integration onto an I/O thread until resolve() ran again.
  auto& entry = known[opaque_id];
  entry.integration = *integration;
  entry.until = now + ttl;
  return integration;
}

std::variant<WebhookHandler::Impl::Resolved, WebhookResponse> WebhookHandler::Impl::resolve(
    const std::string& opaque_id, const WebhookRequest& request) {
  std::optional<ServiceIntegration> integration;
  try {
    integration = find_integration(opaque_id);
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
  bool dispatched = false;
  if (WebhookPolicy* policy = webhook_policy_of(*replicator)) {
    if (auto target = policy->dispatch_request_to(request)) {
      replicator = std::move(target);
      dispatched = true;
    }
  }
  {
    using Wait = KnownIntegration::Wait;
    const bool may_wait = dispatched || replicator->table_spec().enrichment;
    std::lock_guard lock(known_mutex);
    if (auto found = known.find(opaque_id); found != known.end() && found->second.wait != Wait::may) {
      found->second.wait = may_wait ? Wait::may : Wait::no;
    }
  }
  WebhookPolicy* policy = webhook_policy_of(*replicator);
  return Resolved{std::move(replicator), policy};
}

// Parsed here, with the depth limit enforced while parsing, so a hostile
// body never becomes a document deep enough to exhaust the stack later
// (copies and dump() recurse). The receiver already bounds the size.
std::optional<WebhookResponse> WebhookHandler::Impl::parse_body(WebhookRequest& request) const {
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
  return std::nullopt;
}

// Verify, dispatch and parse, then the write: now (synchronous: joins a
// batch), durably queued (inbox), or on the pool.
std::optional<WebhookResponse> WebhookHandler::Impl::process(const std::string& opaque_id, WebhookRequest& request,
                                                             std::function<void(WebhookResponse)>& done) {
  auto resolved = resolve(opaque_id, request);
  if (auto* answer = std::get_if<WebhookResponse>(&resolved)) return std::move(*answer);
  auto& [replicator, policy] = std::get<Resolved>(resolved);
  const std::string& target_id = replicator->integration().opaque_id;

  WebhookResponse verification = replicator->webhook_response(request);
  if (verification.status >= 400) {
    log(LogLevel::info, target_id,
        "rejected with " + std::to_string(verification.status) + ": " + verification.body.substr(0, 200));
    return verification;
  }
  if (auto bad_body = parse_body(request)) return bad_body;

  const bool synchronous =
      options.process_synchronously.value_or(policy != nullptr && policy->process_webhooks_synchronously());
  // Enrichment may call out over HTTP: the whole upsert is left to the write
  // (now, the worker, or the inbox's processor), unchecked before the answer.
  if (replicator->table_spec().enrichment)
    return process_enriched(replicator, policy, request, verification, synchronous, done);
  return process_rows(replicator, policy, request, verification, synchronous, done);
}

// Rows are built and checked now, so a payload that cannot become a row is
// a 400 the sender sees, never a 202 and then a failure in a log.
std::optional<WebhookResponse> WebhookHandler::Impl::process_rows(
    const std::shared_ptr<Replicator>& replicator, WebhookPolicy* policy, WebhookRequest& request,
    const WebhookResponse& verification, bool synchronous, std::function<void(WebhookResponse)>& done) {
  const std::string& target_id = replicator->integration().opaque_id;
  std::vector<Row> rows = storable_rows(*replicator, request);
  if (synchronous) {
    if (rows.empty()) {
      return policy != nullptr ? policy->synchronous_response(rows, request)
                               : default_synchronous_response(rows);
    }
    Batched item;
    item.kind = Batched::Kind::rows;
    item.replicator = replicator;
    item.policy = policy;
    item.target_id = target_id;
    item.rows = std::move(rows);
    item.request = std::move(request);
    item.done = std::move(done);
    submit(std::move(item));
    return std::nullopt;
  }
  if (rows.empty()) return verification;  // the replicator skips this resource
  if (options.inbox) {
    push_to_inbox(target_id, request, verification, done);
    return std::nullopt;
  }
  auto work = [replicator, rows = std::move(rows)]() mutable { replicator->write_webhook_rows(std::move(rows)); };
  return enqueue_or_busy(std::move(work), target_id, verification);
}

std::optional<WebhookResponse> WebhookHandler::Impl::process_enriched(
    const std::shared_ptr<Replicator>& replicator, WebhookPolicy* policy, WebhookRequest& request,
    const WebhookResponse& verification, bool synchronous, std::function<void(WebhookResponse)>& done) {
  if (synchronous) {
    std::vector<Row> rows = replicator->upsert_webhook(request).rows;
    return policy != nullptr ? policy->synchronous_response(rows, request)
                             : default_synchronous_response(rows);
  }
  const std::string& target_id = replicator->integration().opaque_id;
  if (options.inbox) {
    push_to_inbox(target_id, request, verification, done);
    return std::nullopt;
  }
  auto work = [replicator, request = std::move(request)] { replicator->upsert_webhook(request); };
  return enqueue_or_busy(std::move(work), target_id, verification);
}

void WebhookHandler::Impl::push_to_inbox(const std::string& target_id, WebhookRequest& request,
                                         const WebhookResponse& verification,
                                         std::function<void(WebhookResponse)>& done) {
  // Answered once the batch holding it is committed (503 when that fails).
  Batched item;
  item.kind = Batched::Kind::inbox;
  item.target_id = target_id;
  item.request = std::move(request);
  item.request.json = nullptr;  // the inbox stores the raw body
  item.verification = verification;
  item.done = std::move(done);
  submit(std::move(item));
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
  // Shared: the writer may still be inside set_value when get() returns.
  auto answer = std::make_shared<std::promise<WebhookResponse>>();
  auto future = answer->get_future();
  handle_async(opaque_id, std::move(request), [answer](WebhookResponse out) { answer->set_value(std::move(out)); });
  return future.get();
}

void WebhookHandler::handle_async(const std::string& opaque_id, WebhookRequest request,
                                  std::function<void(WebhookResponse)> done) {
  Impl& impl = *impl_;
  impl.requests.fetch_add(1, std::memory_order_relaxed);
  std::optional<WebhookResponse> out;
  try {
    out = impl.process(opaque_id, request, done);
  } catch (const InvalidInput& e) {
    out = WebhookResponse::error(400, std::string("invalid webhook payload: ") + e.what());
  } catch (const nlohmann::json::exception&) {
    // A replicator hook read the payload as a shape it does not have.
    out = WebhookResponse::error(400, "invalid webhook payload: unexpected JSON shape");
  } catch (const StoreError& e) {
    impl.log(LogLevel::error, opaque_id, std::string("store failed: ") + e.what());
    out = internal_error();
  } catch (const std::exception& e) {
    impl.log(LogLevel::error, opaque_id, std::string("failed: ") + e.what());
    out = internal_error();
  } catch (...) {
    impl.log(LogLevel::error, opaque_id, "failed with an unknown exception");
    out = internal_error();
  }
  if (out) impl.finish(done, std::move(*out));
}

bool WebhookHandler::handles_without_waiting(const std::string& opaque_id) const {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.known_mutex);
    const auto found = impl.known.find(opaque_id);
    if (found == impl.known.end() || found->second.wait != Impl::KnownIntegration::Wait::no ||
        found->second.until <= std::chrono::steady_clock::now()) {
      return false;
    }
  }
  return !queue_above(0.5);
}

bool WebhookHandler::queue_above(double fraction) const {
  std::lock_guard lock(impl_->batch_mutex);
  return static_cast<double>(impl_->batch_queue.size()) >= fraction * static_cast<double>(impl_->options.max_queued);
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
  impl_->stop_writers();
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
  s.batches = impl.batches.load();
  s.batched = impl.batched.load();
  s.batch_failures = impl.batch_failures.load();
  {
    std::lock_guard lock(impl.batch_mutex);
    s.queued = impl.batch_queue.size();
  }
  {
    std::lock_guard lock(impl.mutex);
    s.pending = impl.pending;
  }
  return s;
}

}  // namespace webhookdb::webhooks
