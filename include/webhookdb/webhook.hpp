#pragma once
// An incoming webhook request, the response the replicator gives, and where a
// service names a webhook's topic.

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/json_path.hpp"

namespace webhookdb {

struct WebhookRequest {
  std::string method = "POST";
  std::string path;
  Headers headers;
  // The raw body, exactly as received (signatures are computed over it).
  std::string body;
  // The parsed body; null when not parsed yet (Replicator parses `body`).
  nlohmann::json json;

  // A request whose body is `body` serialized. Throws InvalidJson (an
  // InvalidInput) when `body` is nested deeper than `max_depth`, before
  // serializing recurses through it; invalid UTF-8 is replaced in the text
  // (U+FFFD) and left in `json`, where the write rejects it naming the row.
  [[nodiscard]] static WebhookRequest from_json(nlohmann::json body,
                                                std::size_t max_depth = JsonLimits{}.max_depth) {
    check_json_depth(body, max_depth, "webhook body");
    WebhookRequest r;
    r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    r.json = std::move(body);
    return r;
  }
};

struct WebhookResponse {
  int status = 202;
  Headers headers;
  std::string body;

  [[nodiscard]] static WebhookResponse ok(int status_code = 202, std::string text = "ok") {
    return {status_code, {{"Content-Type", "text/plain"}}, std::move(text)};
  }
  [[nodiscard]] static WebhookResponse error(int status_code, std::string text) {
    return {status_code, {{"Content-Type", "text/plain"}}, std::move(text)};
  }
};

// Where a service names what a webhook is about ("orders/updated", "issues",
// "charge.refunded"): declared once, as data, on the replicator's Descriptor,
//
//   .webhook_topic = {.header = "X-Shopify-Topic"}  // Shopify; GitHub: "X-GitHub-Event"
//   .webhook_topic = {.event_path = {"type"}}       // Stripe: the event's type
//
// and read by the replicator's payload hooks as Payload::topic, to route a
// request or ignore it (prepare_for_insert returning nullopt: a 2xx, nothing
// written). WebhookPolicy::dispatch_request_to can read it with of().
struct WEBHOOKDB_EXPORT WebhookTopic {
  // A request header (case-insensitive); its trimmed value is the topic.
  std::string header;
  // Used when `header` is empty or the request lacks it: a path into the
  // event (the envelope resource_and_event returned with the resource); a
  // string or an integer there is the topic.
  JsonPath event_path;

  [[nodiscard]] bool empty() const noexcept { return header.empty() && event_path.empty(); }
  // The topic of `request`, whose event is `event` (null when none); "" when
  // neither the header nor the event names one.
  [[nodiscard]] std::string of(const WebhookRequest& request, const nlohmann::json* event = nullptr) const;
  // Throws BrokenSpecification naming `owner` when `header` is not an HTTP
  // field name (a token: letters, digits and !#$%&'*+-.^_`|~).
  void validate(std::string_view owner) const;
};

}  // namespace webhookdb
