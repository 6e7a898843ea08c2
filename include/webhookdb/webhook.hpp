#pragma once
// An incoming webhook request and the response the replicator gives.

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "webhookdb/errors.hpp"
#include "webhookdb/json_limits.hpp"

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

}  // namespace webhookdb
