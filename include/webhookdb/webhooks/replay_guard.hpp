#pragma once
// Remembers signatures accepted inside the timestamp tolerance window, so the
// same signed request delivered twice is rejected the second time. Optional:
// upserts are idempotent, so a replay is usually harmless; use it when a
// replicator's webhook has side effects. Thread-safe, bounded.

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

#include "webhookdb/export.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb::webhooks {

class WEBHOOKDB_EXPORT ReplayGuard {
 public:
  // Past `max_entries` the entries closest to expiry are forgotten first.
  explicit ReplayGuard(std::size_t max_entries = 100'000);

  // True the first time `signature` is offered; false for a replay. The entry
  // is kept until `expires_at`, after which the timestamp check rejects the
  // request anyway. Expired entries are pruned relative to `now`.
  // NOLINTNEXTLINE(bugprone-easily-swappable-parameters): expiry, then now
  bool first_use(std::string_view signature, Timestamp expires_at, Timestamp now);

  [[nodiscard]] std::size_t size() const;

 private:
  std::size_t max_entries_;
  mutable std::mutex mutex_;
  std::unordered_set<std::string> seen_;
  std::multimap<Timestamp, std::string> by_expiry_;
};

}  // namespace webhookdb::webhooks
