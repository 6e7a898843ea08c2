#include "webhookdb/memory/memory_webhook_inbox.hpp"

#include <algorithm>

namespace webhookdb::memory {

void MemoryWebhookInbox::push(const std::string& opaque_id, const WebhookRequest& request) {
  {
    std::lock_guard lock(mutex_);
    messages_.push_back({opaque_id, request});
  }
  changed_.notify_all();
}

std::vector<InboxMessage> MemoryWebhookInbox::take(std::size_t max) {
  std::lock_guard lock(mutex_);
  const std::size_t n = std::min(max, messages_.size());
  std::vector<InboxMessage> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(std::move(messages_.front()));
    messages_.pop_front();
  }
  return out;
}

std::size_t MemoryWebhookInbox::size() const {
  std::lock_guard lock(mutex_);
  return messages_.size();
}

bool MemoryWebhookInbox::wait_for_size(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return messages_.size() >= count; });
}

}  // namespace webhookdb::memory
