#include "webhookdb/webhooks/webhook_policy.hpp"

#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"
#include "webhookdb/registry.hpp"

namespace webhookdb::webhooks {

std::unique_ptr<Replicator> WebhookPolicy::dispatch_request_to(const WebhookRequest& /*request*/) { return nullptr; }

WebhookResponse WebhookPolicy::synchronous_response(const std::vector<Row>& upserted,
                                                    const WebhookRequest& /*request*/) const {
  return default_synchronous_response(upserted);
}

WebhookPolicy* webhook_policy_of(Replicator& replicator) noexcept { return dynamic_cast<WebhookPolicy*>(&replicator); }

WebhookResponse default_synchronous_response(const std::vector<Row>& upserted) {
  nlohmann::json body;
  if (upserted.size() == 1) {
    body = upserted.front().data;
  } else if (!upserted.empty()) {
    body = nlohmann::json::array();
    for (const auto& row : upserted) body.push_back(row.data);
  }
  return {200, {{"Content-Type", "application/json"}}, to_jsonb_text(body, "synchronous webhook response")};
}

std::unique_ptr<Replicator> replicator_for(const Replicator& self, const ServiceIntegration& other) {
  const auto& registry = self.context().registry;
  if (!registry) {
    throw InvalidPrecondition("replicator " + self.descriptor().name +
                              " has no registry to dispatch a webhook to integration " + other.opaque_id);
  }
  return registry->make(other, self.context());
}

}  // namespace webhookdb::webhooks
