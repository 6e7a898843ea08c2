#include "webhookdb/webhooks/replay_guard.hpp"

namespace webhookdb::webhooks {

ReplayGuard::ReplayGuard(std::size_t max_entries) : max_entries_(max_entries == 0 ? 1 : max_entries) {}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): expiry, then now, as the header declares
bool ReplayGuard::first_use(std::string_view signature, Timestamp expires_at, Timestamp now) {
  std::lock_guard lock(mutex_);
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now) {
    seen_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
  std::string key(signature);
  if (seen_.contains(key)) return false;
  while (seen_.size() >= max_entries_) {
    seen_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
  seen_.insert(key);
  by_expiry_.emplace(expires_at, std::move(key));
  return true;
}

std::size_t ReplayGuard::size() const {
  std::lock_guard lock(mutex_);
  return seen_.size();
}

}  // namespace webhookdb::webhooks
