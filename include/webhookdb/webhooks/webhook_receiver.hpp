#pragma once
// An embeddable HTTP/1.1 webhook endpoint (Boost.Beast inside, nothing of it
// here): POST <path_prefix><opaque_id> goes to a WebhookHandler.
//
//   webhooks::WebhookReceiver receiver(context);     // 127.0.0.1, ephemeral port
//   receiver.start();
//   std::cout << receiver.port();
//   ...
//   receiver.stop();                                 // graceful
//
// Beyond the handler's statuses: 404 for any path but exactly
// <path_prefix><opaque_id> (an optional query string aside), 405 (with
// Allow: POST) for another method, 413 for a body over max_body_bytes (a
// Content-Length over it is refused before the body is read; a chunked body
// is cut off when it passes it), 431 for oversized headers, 400 for a
// request that is not HTTP, 503 with Retry-After when the in-flight body
// budget is spent or the handler misses its deadline. Keep-alive is honoured;
// many connections are served at once on io_threads threads.
//
// Under abuse: the handler's database work runs on handler_threads, never on
// the io threads, so requests that need no database are answered at once
// while the database stalls. (A request with nothing to wait for, see
// WebhookHandler::handles_without_waiting, is verified and queued for its
// micro-batch on its io thread; its commit is a batch writer's.) Open connections are capped (past the cap new
// ones wait in the listen backlog) and so are the body bytes being received
// or handled (counted by declared length, a chunked body as max_body_bytes).
//
// Durable answers: the handler commits requests in micro-batches (see
// WebhookHandlerOptions::batch_window, max_batch) and each is answered after
// its batch's commit. Back-pressure: while the handler's batch queue is over
// half full, each connection puts off reading its next request (5 ms at a
// time, up to handler_deadline), so a burst waits in socket buffers rather
// than being refused; a request still unanswered at handler_deadline, or
// refused by a full queue, is a 503 with Retry-After.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "webhookdb/export.hpp"
#include "webhookdb/metrics.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/webhooks/webhook_handler.hpp"

namespace webhookdb::webhooks {

struct WebhookReceiverOptions {
  // Loopback by default: exposing it is the host's decision.
  std::string address = "127.0.0.1";
  // 0: an ephemeral port, see port().
  std::uint16_t port = 0;
  std::size_t io_threads = 4;
  std::size_t max_body_bytes = 1024 * 1024;
  std::size_t max_header_bytes = 16 * 1024;
  // Must start and end with '/'.
  std::string path_prefix = "/v1/webhooks/";
  // A connection idle (or a request body trickling in) this long is closed.
  std::chrono::milliseconds idle_timeout{30'000};
  // A request's headers must arrive within this (slowloris); then closed.
  std::chrono::milliseconds header_timeout{10'000};
  // Threads that run the handler; each may hold a database connection.
  std::size_t handler_threads = 8;
  // A request still waiting for the handler after this is answered 503 with
  // Retry-After (the handler may still finish it: a redelivery is harmless).
  std::chrono::milliseconds handler_deadline{10'000};
  // Open connections; past it, new ones wait in the listen backlog. Each
  // costs tens of KiB without a body.
  std::size_t max_connections = 2048;
  // Request body bytes received or being handled at once; a request whose
  // declared body would pass it is answered 503 with Retry-After. Bodies over
  // 64 KiB may take only three quarters of it, so a flood of large bodies
  // leaves room for ordinary webhooks. The default keeps a flood well under
  // 256 MiB of memory, leaving a 24 GiB host to PostgreSQL.
  std::size_t max_body_bytes_in_flight = 64 * 1024 * 1024;
  WebhookHandlerOptions handler;
  // When set: webhookdb_webhook_requests_total and the histogram
  // webhookdb_webhook_request_duration_seconds (header received to answer
  // written), by status; the receiver's stats() and the inbox are the host's
  // to add as gauges (Metrics::on_collect).
  std::shared_ptr<Metrics> metrics;
};

struct ReceiverStats {
  std::size_t connections = 0;
  std::size_t peak_connections = 0;
  std::size_t body_bytes_in_flight = 0;
  std::size_t peak_body_bytes_in_flight = 0;
  std::uint64_t refused_busy = 0;      // 503: the body budget was spent
  std::uint64_t handler_timeouts = 0;  // 503: the handler missed its deadline
  std::uint64_t slowed_reads = 0;      // reads put off (5 ms each) while the batch queue was over half full
};

class WEBHOOKDB_EXPORT WebhookReceiver {
 public:
  explicit WebhookReceiver(ReplicatorContext context, WebhookReceiverOptions options = {});
  // stop().
  ~WebhookReceiver();
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  // Binds and starts serving. InvalidPrecondition when the address cannot be
  // bound, or when called twice.
  void start();
  // The bound port (after start()).
  [[nodiscard]] std::uint16_t port() const;
  // "http://<address>:<port><path_prefix><opaque_id>".
  [[nodiscard]] std::string url_for(const std::string& opaque_id) const;
  // Stops accepting, closes idle connections, lets requests being handled
  // finish and answer, then drains the handler's worker pool. Idempotent.
  // Must not be called from a handler.
  void stop();

  [[nodiscard]] WebhookHandler& handler();
  // Thread-safe.
  [[nodiscard]] ReceiverStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webhookdb::webhooks
