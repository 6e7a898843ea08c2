#include "webhookdb/webhooks/event_payload.hpp"

#include "webhookdb/column.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb::webhooks {

nlohmann::json parse_webhook_body(const WebhookRequest& request, std::string_view where) {
  if (!request.json.is_null()) return request.json;
  auto parsed = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    // nlohmann rejects invalid UTF-8 inside strings, so this covers both.
    throw InvalidInput("webhook body is not valid JSON (malformed, or not UTF-8)", std::string(where));
  }
  return parsed;
}

std::pair<nlohmann::json, nlohmann::json> unwrap_event(const nlohmann::json& body,
                                                       const std::vector<std::string>& object_path) {
  if (body.is_object() && !object_path.empty()) {
    if (const nlohmann::json* object = dig(body, object_path); object != nullptr && object->is_object()) {
      return {*object, body};
    }
  }
  return {body, nullptr};
}

std::pair<nlohmann::json, nlohmann::json> event_wrapped_resource_and_event(
    const WebhookRequest& request, const std::vector<std::string>& object_path) {
  return unwrap_event(parse_webhook_body(request), object_path);
}

}  // namespace webhookdb::webhooks
