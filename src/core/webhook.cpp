#include "webhookdb/webhook.hpp"

#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/http_client.hpp"

namespace webhookdb {
namespace {

// RFC 9110 section 5.6.2: tchar.
bool is_token_char(char c) {
  static constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         kSymbols.find(c) != std::string_view::npos;
}

}  // namespace

std::string WebhookTopic::of(const WebhookRequest& request, const nlohmann::json* event) const {
  if (!header.empty()) {
    if (auto value = find_header(request.headers, header)) return std::string(codec::trim(*value));
  }
  if (event_path.empty() || event == nullptr) return {};
  const nlohmann::json* value = json_at(*event, event_path);
  if (value == nullptr) return {};
  if (value->is_string()) return value->get<std::string>();
  if (value->is_number_integer() || value->is_number_unsigned()) return value->dump();
  return {};
}

void WebhookTopic::validate(std::string_view owner) const {
  for (const char c : header) {
    if (!is_token_char(c)) {
      throw BrokenSpecification(std::string(owner) + ": webhook_topic.header '" + header +
                                "' is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)");
    }
  }
}

}  // namespace webhookdb
