#pragma once
// Where accepted webhooks wait to be written. With an inbox, the handler
// answers 202 only once the request is stored there, and a processor writes it
// later (at least once: a repeated upsert is harmless under the update rule).
// A durable inbox (pg::PgWebhookInbox) means a crash or a store failure
// after the 202 loses nothing.
//
// Header-only (std + nlohmann + core's WebhookRequest), so an implementation
// in another component does not link webhookdb::webhooks.

#include <string>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/webhook.hpp"

namespace webhookdb::webhooks {

class WEBHOOKDB_EXPORT WebhookInbox {
 public:
  virtual ~WebhookInbox() = default;
  // Stores `request` (method, path, headers, raw body) for the integration
  // `opaque_id` (the integration that will write it, after any dispatch).
  // Returns once stored; throws (a StoreError, say) when it was not, and then
  // the sender must not be told it was accepted. Thread-safe.
  virtual void push(const std::string& opaque_id, const WebhookRequest& request) = 0;

  struct Entry {
    std::string opaque_id;
    const WebhookRequest* request = nullptr;
  };
  // Stores every entry, or throws having stored none it would vouch for (the
  // handler's micro-batches: one transaction for many webhooks). The default
  // pushes them one by one: an inbox that can do better (pg::PgWebhookInbox)
  // overrides it. After a throw some may be stored: delivery is at least once.
  virtual void push_batch(const std::vector<Entry>& entries) {
    for (const Entry& entry : entries) push(entry.opaque_id, *entry.request);
  }
};

}  // namespace webhookdb::webhooks
