#pragma once
// Static facts about a replicator kind.

#include <functional>
#include <memory>
#include <string>

#include "webhookdb/service_integration.hpp"
#include "webhookdb/webhook.hpp"

namespace webhookdb {

class Replicator;
struct ReplicatorContext;
struct Descriptor;

using ReplicatorFactory =
    std::function<std::unique_ptr<Replicator>(const Descriptor&, const ServiceIntegration&, const ReplicatorContext&)>;

struct Descriptor {
  std::string name;  // e.g. stripe_charge_v1
  std::string resource_name_singular;
  std::string resource_name_plural;
  bool supports_webhooks = false;
  bool supports_backfill = false;
  // Name of the descriptor this one depends on; empty for none.
  std::string dependency_descriptor;
  // Where a webhook names its topic (a header, or a field of the event), read
  // by the payload hooks as Payload::topic; empty: no topic. Registry::add
  // validates it.
  WebhookTopic webhook_topic;
  ReplicatorFactory factory;

  // A factory for a Replicator subclass whose constructor takes
  // (const Descriptor&, const ServiceIntegration&, const ReplicatorContext&).
  template <class R>
  [[nodiscard]] static ReplicatorFactory factory_for() {
    return [](const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& ctx) {
      return std::unique_ptr<Replicator>(std::make_unique<R>(d, si, ctx));
    };
  }
};

}  // namespace webhookdb
