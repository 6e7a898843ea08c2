#pragma once
// A WebhookInbox in memory, for tests and for hosts that hand requests on
// themselves. Not durable: what it holds dies with the process.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/webhooks/webhook_inbox.hpp"

namespace webhookdb::memory {

struct InboxMessage {
  std::string opaque_id;
  WebhookRequest request;
};

class WEBHOOKDB_EXPORT MemoryWebhookInbox final : public webhooks::WebhookInbox {
 public:
  void push(const std::string& opaque_id, const WebhookRequest& request) override;

  // Removes and returns up to `max` messages, oldest first.
  [[nodiscard]] std::vector<InboxMessage> take(std::size_t max = static_cast<std::size_t>(-1));
  [[nodiscard]] std::size_t size() const;
  // Blocks until at least `count` messages are held or `timeout` passes; true when they are.
  [[nodiscard]] bool wait_for_size(std::size_t count, std::chrono::milliseconds timeout) const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::deque<InboxMessage> messages_;
};

}  // namespace webhookdb::memory
