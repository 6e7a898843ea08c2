#include "webhookdb/webhooks/event_payload.hpp"

#include "webhookdb/column.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/json_path.hpp"

namespace webhookdb::webhooks {

nlohmann::json parse_webhook_body(const WebhookRequest& request, std::string_view where, const JsonLimits& limits) {
  const std::string place = where.empty() ? std::string("webhook body") : std::string(where);
  if (!request.json.is_null()) {
    check_json_depth(request.json, limits.max_depth, place);
    return request.json;
  }
  // Invalid UTF-8 inside strings is malformed JSON too. where() stays
  // exactly `where`; the offset goes into the message.
  auto parsed = try_parse_json_limited(request.body, limits);
  if (!parsed.error) return std::move(parsed.value);
  JsonParseError error = std::move(*parsed.error);
  error.message = "webhook body: " + error.message + " at byte " + std::to_string(error.offset);
  throw InvalidJson(std::move(error), place, /*has_offset=*/false);
}

std::pair<nlohmann::json, nlohmann::json> unwrap_event(const nlohmann::json& body,
                                                       const std::vector<std::string>& object_path) {
  if (body.is_object() && !object_path.empty()) {
    if (const nlohmann::json* object = json_at(body, object_path); object != nullptr && object->is_object()) {
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
