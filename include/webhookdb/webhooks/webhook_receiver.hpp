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
// Beyond the handler's statuses: 404 for a path outside the prefix, 405 (with
// Allow: POST) for another method, 413 for a body over max_body_bytes (a
// Content-Length over it is refused before the body is read; a chunked body
// is cut off when it passes it), 431 for oversized headers, 400 for a
// request that is not HTTP. Keep-alive is honoured; many connections are
// served at once on io_threads threads.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

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
  // A connection idle (or a request trickling in) this long is closed.
  std::chrono::milliseconds idle_timeout{30'000};
  WebhookHandlerOptions handler;
};

class WebhookReceiver {
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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webhookdb::webhooks
