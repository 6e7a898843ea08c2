#include "webhookdb/oauth2.hpp"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "webhookdb/codec.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb::oauth2 {
namespace {

using nlohmann::json;

std::string grant_name(GrantType grant) {
  return grant == GrantType::refresh_token ? "refresh_token" : "client_credentials";
}

std::string form_field(std::string_view name, std::string_view value) {
  return std::string(name) + "=" + url::percent_encode(value);
}

// The provider's error code ("invalid_grant"), if the body has a plausible
// one. Only the code is ever shown: error_description may echo what was sent.
std::string error_code(const std::string& body) {
  const json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_object() || !parsed.contains("error") || !parsed["error"].is_string()) return {};
  std::string code = parsed["error"].get<std::string>();
  const bool plain = code.size() <= 64 && std::all_of(code.begin(), code.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-' ||
                              (c >= '0' && c <= '9');
                     });
  return plain ? code : std::string("(unprintable error code)");
}

bool needs_reauthorization(const std::string& code) {
  return code == "invalid_grant" || code == "invalid_client" || code == "unauthorized_client";
}

HttpRequest token_request(const Grant& current) {
  const ClientConfig& c = current.client;
  HttpRequest request;
  request.method = "POST";
  request.url = c.token_url;
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
  request.raise_for_status = false;
  std::string body = form_field("grant_type", grant_name(c.grant));
  if (c.grant == GrantType::refresh_token) body += "&" + form_field("refresh_token", current.tokens.refresh_token);
  if (!c.scopes.empty()) {
    std::string scope;
    for (const auto& s : c.scopes) scope += (scope.empty() ? "" : " ") + s;
    body += "&" + form_field("scope", scope);
  }
  if (c.authentication == ClientAuthentication::body) {
    body += "&" + form_field("client_id", c.client_id) + "&" + form_field("client_secret", c.client_secret);
  } else {
    // RFC 6749 2.3.1: each part form-encoded, then Basic.
    request.headers.emplace_back("Authorization",
                                 basic_auth_value(url::percent_encode(c.client_id), url::percent_encode(c.client_secret)));
  }
  request.body = std::move(body);
  return request;
}

Tokens tokens_from(const HttpResponse& response, const Grant& current, Timestamp now, const std::string& where) {
  const json parsed = json::parse(response.body, nullptr, false);
  if (!parsed.is_object() || !parsed.contains("access_token") || !parsed["access_token"].is_string() ||
      parsed["access_token"].get<std::string>().empty()) {
    throw TokenEndpointError(where + " answered " + std::to_string(response.status) +
                             " without an access_token (not a token response)");
  }
  if (parsed.contains("token_type") &&
      !(parsed["token_type"].is_string() && codec::iequals(parsed["token_type"].get<std::string>(), "bearer"))) {
    throw TokenEndpointError(where + " gave a token that is not a bearer token");
  }
  Tokens tokens;
  tokens.access_token = parsed["access_token"].get<std::string>();
  tokens.issued_at = now;
  if (parsed.contains("expires_in") && parsed["expires_in"].is_number() && parsed["expires_in"].get<double>() > 0) {
    const auto ms = static_cast<std::int64_t>(parsed["expires_in"].get<double>() * 1000.0);
    tokens.expires_at = now + std::chrono::milliseconds(ms);
  }
  const bool rotated = parsed.contains("refresh_token") && parsed["refresh_token"].is_string() &&
                       !parsed["refresh_token"].get<std::string>().empty();
  tokens.refresh_token = rotated ? parsed["refresh_token"].get<std::string>() : current.tokens.refresh_token;
  return tokens;
}

bool marked_expired(const HttpResponse& response) {
  for (const auto& value : find_headers(response.headers, "WWW-Authenticate")) {
    if (codec::ascii_lower(value).find("invalid_token") != std::string::npos) return true;
  }
  return false;
}

std::optional<Credential> credential_of(const Grant& grant) {
  return Credential{.header = "Authorization",
                    .value = "Bearer " + grant.tokens.access_token,
                    .generation = grant.generation};
}

}  // namespace

void ClientConfig::validate(std::string_view where) const {
  const std::string w(where);
  if (!url::is_http_url(token_url)) throw InvalidInput(w + ": the token_url is not an http(s) URL");
  if (client_id.empty()) throw InvalidInput(w + ": the client_id is empty");
  for (const auto& s : scopes) {
    if (s.empty() || s.find_first_of(" \t\r\n\"\\") != std::string::npos) {
      throw InvalidInput(w + ": a scope is empty or holds a space, quote or backslash");
    }
  }
  if (!resource_origin.empty() && !url::is_http_url(resource_origin)) {
    throw InvalidInput(w + ": the resource_origin is not an http(s) origin");
  }
}

ReauthorizationRequired::ReauthorizationRequired(std::int64_t integration_id, const std::string& reason)
    : Error("integration " + std::to_string(integration_id) + " needs re-authorisation: " + reason +
            "; store a new grant for it (TokenStore::authorize) before its jobs can run"),
      integration_id_(integration_id),
      reason_(reason) {}

Tokens request_tokens(HttpClient& http, std::int64_t integration_id, const Grant& current, Timestamp now,
                      const CancellationToken& cancel) {
  const std::string where = "the token endpoint " + redact_url(current.client.token_url) + " (" +
                            grant_name(current.client.grant) + " grant, integration " +
                            std::to_string(integration_id) + ")";
  if (current.client.grant == GrantType::refresh_token && current.tokens.refresh_token.empty()) {
    throw ReauthorizationRequired(integration_id, "there is no refresh token to refresh with");
  }
  const HttpRequest request = token_request(current);
  HttpResponse response = http.send(request, cancel);
  if (response.status >= 200 && response.status < 300) return tokens_from(response, current, now, where);
  const std::string code = error_code(response.body);
  if ((response.status == 400 || response.status == 401) && needs_reauthorization(code)) {
    throw ReauthorizationRequired(integration_id, where + " answered " + code);
  }
  if (response.status == 408 || response.status == 429 || response.status >= 500) {
    // Retryable, as any HTTP error: the body never reaches the error (a token
    // response may hold tokens), the Basic credentials are cut by throw_http_error.
    response.body.clear();
    throw_http_error(request, response);
  }
  throw TokenEndpointError(where + " answered " + std::to_string(response.status) +
                           (code.empty() ? std::string() : " " + code));
}

// --- InMemoryTokenStore ---

void InMemoryTokenStore::authorize(std::int64_t integration_id, const ClientConfig& client, const Tokens& tokens) {
  client.validate("OAuth2 client of integration " + std::to_string(integration_id));
  std::lock_guard lock(mutex_);
  Grant& g = grants_[integration_id];
  g.client = client;
  g.tokens = tokens;
  g.generation += 1;
  g.needs_reauthorization = false;
  g.reauthorization_reason.clear();
}

std::optional<Grant> InMemoryTokenStore::load(std::int64_t integration_id) {
  std::lock_guard lock(mutex_);
  const auto it = grants_.find(integration_id);
  if (it == grants_.end()) return std::nullopt;
  return it->second;
}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): integration, then the generation seen stale (TokenStore's order)
Grant InMemoryTokenStore::refresh(std::int64_t integration_id, std::int64_t stale_generation,
                                  const Exchange& exchange) {
  std::lock_guard lock(mutex_);
  const auto it = grants_.find(integration_id);
  if (it == grants_.end()) {
    throw InvalidPrecondition("integration " + std::to_string(integration_id) + " has no OAuth2 grant");
  }
  Grant& g = it->second;
  if (g.needs_reauthorization) throw ReauthorizationRequired(integration_id, g.reauthorization_reason);
  if (g.generation != stale_generation) return g;
  try {
    g.tokens = exchange(g);
  } catch (const ReauthorizationRequired& e) {
    g.needs_reauthorization = true;
    g.reauthorization_reason = e.reason();
    throw;
  }
  g.generation += 1;
  return g;
}

// --- OAuth2Credentials ---

OAuth2Credentials::OAuth2Credentials(std::shared_ptr<HttpClient> token_http, std::shared_ptr<TokenStore> store,
                                     std::shared_ptr<Clock> clock, OAuth2Options options)
    : token_http_(std::move(token_http)),
      store_(std::move(store)),
      clock_(clock ? std::move(clock) : system_clock()),
      options_(options) {
  if (!token_http_ || !store_) throw InvalidPrecondition("OAuth2Credentials needs an HTTP client and a token store");
}

OAuth2Credentials::Cached& OAuth2Credentials::cached(std::int64_t integration_id) {
  std::lock_guard lock(map_mutex_);
  auto& slot = cache_[integration_id];
  if (!slot) slot = std::make_unique<Cached>();
  return *slot;
}

bool OAuth2Credentials::due(const Grant& grant) const {
  if (grant.tokens.access_token.empty()) return true;
  if (!grant.tokens.expires_at) return false;
  auto margin = std::chrono::duration_cast<std::chrono::microseconds>(options_.refresh_margin);
  if (grant.tokens.issued_at) {
    margin = std::min(margin, (*grant.tokens.expires_at - *grant.tokens.issued_at) / 4);
  }
  return clock_->now() >= *grant.tokens.expires_at - margin;
}

Grant OAuth2Credentials::refreshed(std::int64_t integration_id, std::int64_t stale_generation,
                                   const CancellationToken& cancel) {
  return store_->refresh(integration_id, stale_generation, [&](const Grant& current) {
    return request_tokens(*token_http_, integration_id, current, clock_->now(), cancel);
  });
}

std::optional<Credential> OAuth2Credentials::credential_for(const HttpRequest& request,
                                                            const CancellationToken& cancel) {
  if (!request.integration_id) return std::nullopt;
  const std::int64_t id = *request.integration_id;
  Cached& c = cached(id);
  std::lock_guard lock(c.mutex);
  if (!c.grant || due(*c.grant)) {
    if (!c.grant && c.no_grant_until && clock_->now() < *c.no_grant_until) return std::nullopt;
    std::optional<Grant> stored = store_->load(id);
    if (!stored) {  // not an OAuth2 integration (yet)
      c.no_grant_until =
          clock_->now() + std::chrono::duration_cast<std::chrono::microseconds>(options_.no_grant_recheck);
      return std::nullopt;
    }
    c.no_grant_until.reset();
    if (stored->needs_reauthorization) throw ReauthorizationRequired(id, stored->reauthorization_reason);
    c.grant = due(*stored) ? refreshed(id, stored->generation, cancel) : *std::move(stored);
  }
  const auto& origin = c.grant->client.resource_origin;
  if (!origin.empty() && url::origin_of(request.url) != url::origin_of(origin)) return std::nullopt;
  return credential_of(*c.grant);
}

bool OAuth2Credentials::covers(std::int64_t integration_id) {
  Cached& c = cached(integration_id);
  std::lock_guard lock(c.mutex);
  if (c.grant) return true;
  if (c.no_grant_until && clock_->now() < *c.no_grant_until) return false;
  if (store_->load(integration_id)) return true;
  c.no_grant_until =
      clock_->now() + std::chrono::duration_cast<std::chrono::microseconds>(options_.no_grant_recheck);
  return false;
}

bool OAuth2Credentials::renew(const HttpRequest& request, const Credential& used, const HttpResponse& response,
                              const CancellationToken& cancel) {
  if (!request.integration_id || options_.retry_unauthorized == RetryUnauthorized::never) return false;
  if (options_.retry_unauthorized == RetryUnauthorized::when_marked_expired && !marked_expired(response)) {
    return false;
  }
  const std::int64_t id = *request.integration_id;
  Cached& c = cached(id);
  std::lock_guard lock(c.mutex);
  // Another thread of this process may have refreshed already.
  if (c.grant && c.grant->generation != used.generation && !due(*c.grant)) return true;
  c.grant = refreshed(id, used.generation, cancel);
  return true;
}

}  // namespace webhookdb::oauth2
