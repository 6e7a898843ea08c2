#include "webhookdb/http_client.hpp"

#include <algorithm>
#include <cctype>

#include "webhookdb/codec.hpp"
#include "webhookdb/http_auth.hpp"

namespace webhookdb {

std::optional<std::string> find_header(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (codec::iequals(k, name)) return v;
  }
  return std::nullopt;
}

std::vector<std::string> find_headers(const Headers& headers, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers) {
    if (codec::iequals(k, name)) out.push_back(v);
  }
  return out;
}

HttpResponse HttpClient::get(const std::string& url, const Headers& headers, const CancellationToken& cancel) {
  HttpRequest request;
  request.url = url;
  request.headers = headers;
  return send(request, cancel);
}

HttpClientDecorator::HttpClientDecorator(std::shared_ptr<HttpClient> next) : next_(std::move(next)) {}

HttpResponse HttpClientDecorator::send(const HttpRequest& request, const CancellationToken& cancel) {
  return next_->send(request, cancel);
}

bool HttpClient::authenticates(std::int64_t /*integration_id*/) {
  return false;
}

bool HttpClientDecorator::authenticates(std::int64_t integration_id) {
  return next_->authenticates(integration_id);
}

void raise_for_status(const HttpRequest& request, const HttpResponse& response) {
  if (response.status < 400) return;
  throw_http_error(request, response);
}

void throw_http_error(const HttpRequest& request, const HttpResponse& response) {
  // Some APIs echo the credential they rejected ("invalid api key sk_live_..."):
  // cut every credential the request sent out of the excerpt and the headers.
  const auto secrets = request_secrets(request);
  constexpr std::size_t kExcerpt = 1024;
  std::size_t longest = 0;
  for (const auto& secret : secrets) longest = std::max(longest, secret.size());
  // Redact before cutting, so that a secret across the cut is not left half-shown.
  std::string excerpt = redact_secrets(response.body.substr(0, kExcerpt + longest), secrets);
  if (excerpt.size() > kExcerpt) excerpt.resize(kExcerpt);
  Headers shown;
  shown.reserve(response.headers.size());
  for (const auto& [name, value] : response.headers) shown.emplace_back(name, redact_secrets(value, secrets));
  throw HttpError(response.status, request.method, redact_url(request.url), std::move(excerpt), std::move(shown));
}

}  // namespace webhookdb
