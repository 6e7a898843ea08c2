#pragma once
// What the payload hooks of a Replicator see: one struct, so a hook's
// signature does not change when the payload gains a part.
//
//   std::optional<nlohmann::json> resource_to_data(const Payload& p) const override {
//     return p.event != nullptr ? *p.event : p.resource;
//   }
//   std::optional<Row> prepare_for_insert(const Payload& p) const override {
//     if (p.request != nullptr && !p.topic.starts_with("orders/")) return std::nullopt;  // not ours
//     return Replicator::prepare_for_insert(p);
//   }

#include <string_view>

#include <nlohmann/json.hpp>

#include "webhookdb/webhook.hpp"

namespace webhookdb {

struct Payload {
  // The resource a row is made from (an API item or a webhook's resource).
  const nlohmann::json& resource;
  // The event wrapping it; null on backfills and for bare-resource webhooks.
  const nlohmann::json* event = nullptr;
  // The webhook request; null on backfills.
  const WebhookRequest* request = nullptr;
  // What fetch_enrichment returned; null when the table has no enrichment
  // column (and always inside fetch_enrichment itself).
  const nlohmann::json* enrichment = nullptr;
  // The webhook's topic, as the Descriptor's webhook_topic names it
  // ("orders/updated"); empty on backfills, when the descriptor names no
  // topic, and when the request carries none.
  std::string_view topic;
};

}  // namespace webhookdb
