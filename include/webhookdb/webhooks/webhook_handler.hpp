#pragma once
// The transport-independent part of webhook ingestion: look up the
// integration, make its replicator, dispatch, verify, validate, then upsert
// now (synchronous) or later (asynchronous): stored in a WebhookInbox when one
// is set (durable with pg::PgWebhookInbox: a crash after the 202 loses
// nothing), else on a bounded in-memory worker pool. The Beast
// WebhookReceiver calls it; a host with its own HTTP server can too.
//
// Micro-batched durable acknowledgement: in synchronous mode and with an
// inbox, a verified request whose rows are built joins a batch; a batch
// writer commits the batch (per integration, its rows through the replica
// store's multi-row/COPY upsert; every inbox entry through
// WebhookInbox::push_batch) in one transaction, and only then is each of its
// requests answered. A batch closes batch_window after its first request or
// at max_batch requests, whichever comes first. Two versions of one key in a
// batch: the one the table's update rule prefers is written (the newer). A
// batch whose commit fails answers each request 503 with Retry-After (none
// was answered 2xx); a store that refuses a row as invalid (InvalidInput)
// makes the batch's requests be written one by one, so only that one is a 400.
//
// Statuses: 2xx accepted (the verification's status, 202 by default; 200 with
// the row when synchronous), 400 malformed JSON / invalid UTF-8 / not an
// object or array / too deeply nested / a resource that cannot become a row,
// 401 failed verification, 404 unknown integration (or one no registered
// replicator takes webhooks for), 503 (with Retry-After) worker or batch queue full, draining, or a batch commit failed; 500 only
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

#include "webhookdb/export.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/webhook.hpp"
#include "webhookdb/webhooks/webhook_inbox.hpp"

namespace webhookdb::webhooks {

// The longest remote key (and value of an indexed column), in bytes of its
// text, that a webhook may carry. PostgreSQL's btree refuses index entries over
// about 2704 bytes (a third of a page) after compression; 2000 leaves room for
// the entry's overhead without relying on compression. Longer is a 400.
inline constexpr std::size_t kMaxIndexedValueBytes = 2000;

struct WEBHOOKDB_EXPORT WebhookHandlerOptions {
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
  // still a 400) and answered only when stored; a push that fails is a 503 with Retry-After.
  // A processor writes them later (jobs::WebhookInboxProcessor). The worker
  // pool, max_pending and drain() then play no part. Unset: the pool writes
  // them, and a crash or store failure after the 202 loses them.
  std::shared_ptr<WebhookInbox> inbox;
  // Called on a worker thread when an asynchronous write fails (after it is
  // logged). Must not throw.
  std::function<void(const std::string& opaque_id, std::exception_ptr error)> on_async_error;

  // --- Micro-batches (synchronous mode and the inbox) ---
  // How long a batch waits for more requests after its first one. Zero:
  // each batch is what was queued when a writer became free. Every request
  // of a batch waits it out, so it bounds throughput per connection: at 32
  // connections 3 ms gave 4,039 webhooks/s, 1 ms 6,536 (webhookdb-webhook-bench).
  std::chrono::microseconds batch_window{1'000};
  // A batch is committed at this many requests without waiting out the window.
  std::size_t max_batch = 256;
  // Threads committing batches (one commits while the next fills).
  std::size_t batch_writers = 2;
  // Requests waiting for a batch writer (bounded queue). When full,
  // handle_async() waits up to queue_wait for room, then answers 503 with
  // Retry-After.
  std::size_t max_queued = 8192;
  std::chrono::milliseconds queue_wait{5'000};
  // An integration found by its opaque id is remembered this long (zero:
  // looked up for every request). Each lookup is a statement on the job
  // store's database; at thousands of webhooks a second it was one round
  // trip and one backend's CPU per webhook. A secret changed, or an
  // integration deleted, is seen by requests arriving after this.
  std::chrono::milliseconds integration_ttl{1'000};
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
  std::uint64_t batches = 0;          // micro-batches committed (or failed)
  std::uint64_t batched = 0;          // requests answered from a micro-batch
  std::uint64_t batch_failures = 0;   // micro-batches whose commit failed
  std::uint64_t queued = 0;           // requests waiting for a batch writer now
};

class WEBHOOKDB_EXPORT WebhookHandler {
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
  // Waits for its micro-batch's commit.
  WebhookResponse handle(const std::string& opaque_id, WebhookRequest request);
  // The same, answering through `done` (exactly once; on the calling thread
  // for an answer that needs no write, else on a batch writer once the batch
  // is committed or failed). Blocks only while the batch queue is full.
  // `done` must not throw.
  void handle_async(const std::string& opaque_id, WebhookRequest request,
                    std::function<void(WebhookResponse)> done);
  // True when handle_async would wait on neither a database nor an HTTP call
  // for this integration now: the integration is known (integration_ttl),
  // its replicator builds rows without I/O (no enrichment, no dispatch to
  // another), and the batch queue is under half full. A receiver then calls
  // handle_async on its I/O thread instead of handing the request to a pool:
  // one thread switch less per webhook.
  [[nodiscard]] bool handles_without_waiting(const std::string& opaque_id) const;
  // True when the batch queue is at least `fraction` full (0..1): a receiver
  // slows its reading then.
  [[nodiscard]] bool queue_above(double fraction) const;

  // Blocks until no asynchronous write is queued or running.
  void wait_idle();
  [[nodiscard]] bool wait_idle_for(std::chrono::milliseconds timeout);
  // Stops taking asynchronous work and batches (503 from now on), commits
  // the batches queued and finishes what is queued, joins the workers. Idempotent. Must not be called from a worker.
  void drain();

  [[nodiscard]] WebhookStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace webhookdb::webhooks
