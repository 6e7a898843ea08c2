#pragma once
// Helpers for Replicator::resource_and_event overrides: parse the body once,
// and unwrap Stripe-style events ({"type": ..., "data": {"object": {...}}})
// while passing bare resources and arrays of resources through.
//
//   std::pair<json, json> resource_and_event(const WebhookRequest& r) const override {
//     return webhooks::event_wrapped_resource_and_event(r);
//   }

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/webhook.hpp"

namespace webhookdb::webhooks {

// request.json when already parsed, else the parsed body. Throws InvalidInput
// (InvalidJson) naming `where` and the byte offset for malformed JSON, invalid
// UTF-8, or a body past `limits` (never echoing the body). Pass the
// replicator's context().json_limits to honour a host's configuration.
[[nodiscard]] WEBHOOKDB_EXPORT nlohmann::json parse_webhook_body(const WebhookRequest& request,
                                                                 std::string_view where = {},
                                                                 const JsonLimits& limits = {});

// When `body` is an object whose `object_path` leads to an object, returns
// (that object, body); otherwise (body, null): a bare resource or an array of
// resources, which Replicator::upsert_webhook handles.
[[nodiscard]] WEBHOOKDB_EXPORT std::pair<nlohmann::json, nlohmann::json> unwrap_event(
    const nlohmann::json& body, const std::vector<std::string>& object_path = {"data", "object"});

// parse_webhook_body + unwrap_event with Stripe's path.
[[nodiscard]] WEBHOOKDB_EXPORT std::pair<nlohmann::json, nlohmann::json> event_wrapped_resource_and_event(
    const WebhookRequest& request, const std::vector<std::string>& object_path = {"data", "object"});

}  // namespace webhookdb::webhooks
