#pragma once
// An incoming webhook request and the response the replicator gives.

#include <string>

#include <nlohmann/json.hpp>

#include "webhookdb/errors.hpp"

namespace webhookdb {

struct WebhookRequest {
  std::string method = "POST";
  std::string path;
  Headers headers;
  // The raw body, exactly as received (signatures are computed over it).
  std::string body;
  // The parsed body; null when not parsed yet (Replicator parses `body`).
  nlohmann::json json;

  [[nodiscard]] static WebhookRequest from_json(nlohmann::json body) {
    WebhookRequest r;
    r.body = body.dump();
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
