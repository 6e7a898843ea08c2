#pragma once
// The transport-independent part of webhook ingestion: look up the
// integration, make its replicator, dispatch, verify, validate, then upsert
// now (synchronous) or later (asynchronous): stored in a WebhookInbox when one
// is set (durable with pg::PgWebhookInbox: a crash after the 202 loses
// nothing), else on a bounded in-memory worker pool. The Beast
// WebhookReceiver calls it; a host with its own HTTP server can too.
//
// Statuses: 2xx accepted (the verification's status, 202 by default; 200 with
// the row when synchronous), 400 malformed JSON / invalid UTF-8 / not an
// object or array / too deeply nested / a resource that cannot become a row,
// 401 failed verification, 404 unknown integration (or one no registered
// replicator takes webhooks for), 503 worker queue full or draining, 500 only
// when a store (or the inbox) fails, with a generic message. Rows are built and
// checked (conversions, UTF-8, index entry sizes: see kMaxIndexedValueBytes)
// before any 2xx and before the inbox stores the request, so a payload that
// cannot become a row is a 400 and never a 202 whose write then fails; any
// exception a replicator hook throws while reading the payload is a 400 too.
// Replicators with enrichment (an HTTP call) are the exception: their rows are
// built at write time. Secrets, headers and bodies are
// never logged.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "webhookdb/replicator.hpp"
#include "webhookdb/webhook.hpp"
#include "webhookdb/webhooks/webhook_inbox.hpp"

namespace webhookdb::webhooks {

// The longest remote key (and value of an indexed column), in bytes of its
// text, that a webhook may carry. PostgreSQL's btree refuses index entries over
// about 2704 bytes (a third of a page) after compression; 2000 leaves room for
// the entry's overhead without relying on compression. Longer is a 400.
inline constexpr std::size_t kMaxIndexedValueBytes = 2000;

struct WebhookHandlerOptions {
  // Set: overrides every replicator's process_webhooks_synchronously().
  std::optional<bool> process_synchronously;
  // Threads of the asynchronous worker pool.
  std::size_t worker_threads = 2;
  // Accepted-but-unwritten webhooks (queued or being written); past it, 503.
  std::size_t max_pending = 1024;
  // Deeper JSON is a 400, refused while parsing (deep nesting would exhaust
  // the stack when copied or written). The lower of this and the context's
  // json_limits.max_depth applies; a body past json_limits.max_bytes is a 413.
  std::size_t max_json_depth = 128;
  // Set: asynchronous webhooks are pushed here once verified and validated
  // (their rows built and dropped, so a payload that cannot become a row is
  // still a 400) and answered only when stored; a push that fails is a 500.
  // A processor writes them later (jobs::WebhookInboxProcessor). The worker
  // pool, max_pending and drain() then play no part. Unset: the pool writes
  // them, and a crash or store failure after the 202 loses them.
  std::shared_ptr<WebhookInbox> inbox;
  // Called on a worker thread when an asynchronous write fails (after it is
  // logged). Must not throw.
  std::function<void(const std::string& opaque_id, std::exception_ptr error)> on_async_error;
};

struct WebhookStats {
  std::uint64_t requests = 0;
  std::uint64_t accepted = 0;         // answered 2xx
  std::uint64_t rejected = 0;         // answered 4xx
  std::uint64_t unavailable = 0;      // answered 503
  std::uint64_t failed = 0;           // answered 500
  std::uint64_t processed_async = 0;  // asynchronous writes done
  std::uint64_t failed_async = 0;     // asynchronous writes that threw
  std::uint64_t inboxed = 0;          // asynchronous webhooks stored in the inbox
  std::uint64_t pending = 0;          // asynchronous writes queued or running now
};

class WebhookHandler {
 public:
  // Needs context.jobs (integrations) and context.registry (replicators); an
  // InvalidPrecondition otherwise. The context is given to every replicator.
  explicit WebhookHandler(ReplicatorContext context, WebhookHandlerOptions options = {});
  // drain().
  ~WebhookHandler();
  WebhookHandler(const WebhookHandler&) = delete;
  WebhookHandler& operator=(const WebhookHandler&) = delete;

  // Handles one POST for integration `opaque_id`. Thread-safe; never throws
  // for anything the request contains.
  WebhookResponse handle(const std::string& opaque_id, WebhookRequest request);

  // Blocks until no asynchronous write is queued or running.
  void wait_idle();
  [[nodiscard]] bool wait_idle_for(std::chrono::milliseconds timeout);
  // Stops taking asynchronous work (503 from now on), finishes what is
  // queued, joins the workers. Idempotent. Must not be called from a worker.
  void drain();

  [[nodiscard]] WebhookStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace webhookdb::webhooks
