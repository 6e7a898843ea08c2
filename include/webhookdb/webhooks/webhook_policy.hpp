#pragma once
// Webhook hooks that are not on Replicator: a replicator opts in by also
// deriving from WebhookPolicy,
//
//   class ChargeReplicator : public Replicator, public webhooks::WebhookPolicy { ... };
//
// and the WebhookHandler finds them with dynamic_cast. Replicators that do not
// derive from it get the defaults (handle the request themselves, process
// asynchronously).

#include <memory>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/row.hpp"
#include "webhookdb/webhook.hpp"

namespace webhookdb::webhooks {

class WEBHOOKDB_EXPORT WebhookPolicy {
 public:
  virtual ~WebhookPolicy() = default;

  // The replicator that verifies and processes `request`: nullptr (the
  // default) for this one, or another integration's (one endpoint that fans
  // out to several integrations). Only one hop: the handler does not ask the
  // returned replicator again. See replicator_for().
  [[nodiscard]] virtual std::unique_ptr<Replicator> dispatch_request_to(const WebhookRequest& request);

  // true: the handler upserts before answering and answers with
  // synchronous_response(). false (the default): it verifies, validates,
  // answers 202 and writes on its worker pool.
  [[nodiscard]] virtual bool process_webhooks_synchronously() const { return false; }

  // The answer after a synchronous upsert. Default: 200, application/json,
  // the data of the upserted row (an array when there were several, null
  // when the resource was skipped).
  [[nodiscard]] virtual WebhookResponse synchronous_response(const std::vector<Row>& upserted,
                                                             const WebhookRequest& request) const;

 protected:
  WebhookPolicy() = default;
  WebhookPolicy(const WebhookPolicy&) = default;
  WebhookPolicy& operator=(const WebhookPolicy&) = default;
};

// The policy `replicator` implements, or nullptr.
[[nodiscard]] WEBHOOKDB_EXPORT WebhookPolicy* webhook_policy_of(Replicator& replicator) noexcept;

// The default synchronous response body for `upserted` (see above).
[[nodiscard]] WEBHOOKDB_EXPORT WebhookResponse default_synchronous_response(const std::vector<Row>& upserted);

// The replicator of `other`, made through `self`'s registry and ports, for
// dispatch_request_to overrides. InvalidPrecondition without a registry.
[[nodiscard]] WEBHOOKDB_EXPORT std::unique_ptr<Replicator> replicator_for(const Replicator& self,
                                                                          const ServiceIntegration& other);

}  // namespace webhookdb::webhooks
