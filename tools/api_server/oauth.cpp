#include "api_server/oauth.hpp"

#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "webhookdb/codec.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb::tools {
namespace {

std::map<std::string, std::string> form(std::string_view body) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start <= body.size()) {
    auto end = body.find('&', start);
    if (end == std::string_view::npos) end = body.size();
    const auto part = body.substr(start, end - start);
    const auto eq = part.find('=');
    if (eq != std::string_view::npos) out[url::query_decode(part.substr(0, eq))] = url::query_decode(part.substr(eq + 1));
    start = end + 1;
  }
  return out;
}

OAuthReply error_reply(int status, const std::string& code) {
  OAuthReply r;
  r.status = status;
  r.body = nlohmann::json{{"error", code}}.dump();
  return r;
}

}  // namespace

OAuthIssuer::OAuthIssuer(OAuthOptions options) : options_(std::move(options)) {}

std::string OAuthIssuer::new_token(std::string_view prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::string(prefix) + std::to_string(++serial_) + "_" + std::to_string(rng());
}

std::optional<OAuthReply> OAuthIssuer::handle(std::string_view method, std::string_view path, std::string_view body,
                                              std::string_view authorization) {
  if (path.rfind("/oauth/", 0) != 0) return std::nullopt;
  if (path == "/oauth/token" && method == "POST") return token(body, authorization);
  if (path == "/oauth/grant" && method == "POST") {
    std::lock_guard lock(mutex_);
    const std::string rt = new_token("rt_");
    refresh_uses_[rt] = 0;
    return OAuthReply{.body = nlohmann::json{{"refresh_token", rt}}.dump()};
  }
  if (path == "/oauth/stats") return OAuthReply{.body = stats_json()};
  return error_reply(404, "no_such_oauth_path");
}

OAuthReply OAuthIssuer::token(std::string_view body, std::string_view authorization) {
  auto fields = form(body);
  std::string id = fields["client_id"];
  std::string secret = fields["client_secret"];
  if (authorization.rfind("Basic ", 0) == 0) {
    // RFC 6749 2.3.1: the id and secret are form-encoded before Basic's base64.
    const std::string pair = codec::try_base64_decode(authorization.substr(6)).value_or("");
    const auto colon = pair.find(':');
    if (colon != std::string::npos) {
      id = url::query_decode(pair.substr(0, colon));
      secret = url::query_decode(pair.substr(colon + 1));
    }
  }
  std::lock_guard lock(mutex_);
  if (id != options_.client_id || secret != options_.client_secret) {
    ++bad_client_;
    return error_reply(401, "invalid_client");
  }
  nlohmann::json answer{{"token_type", "Bearer"},
                        {"expires_in", static_cast<double>(options_.access_lifetime.count()) / 1000.0}};
  const std::string& grant = fields["grant_type"];
  if (grant == "refresh_token") {
    const auto it = refresh_uses_.find(fields["refresh_token"]);
    if (it == refresh_uses_.end()) return error_reply(400, "invalid_grant");
    if (++it->second > 1) {
      ++reuses_refused_;
      return error_reply(400, "invalid_grant");
    }
    const std::string rt = new_token("rt_");
    refresh_uses_[rt] = 0;
    answer["refresh_token"] = rt;
  } else if (grant != "client_credentials") {
    return error_reply(400, "unsupported_grant_type");
  }
  const std::string at = new_token("at_");
  access_[at] = std::chrono::steady_clock::now() + options_.access_lifetime;
  ++access_issued_;
  answer["access_token"] = at;
  return OAuthReply{.body = answer.dump()};
}

std::optional<OAuthReply> OAuthIssuer::check_bearer(std::string_view authorization) {
  std::lock_guard lock(mutex_);
  if (authorization.rfind("Bearer ", 0) == 0) {
    const auto it = access_.find(std::string(authorization.substr(7)));
    if (it != access_.end() && std::chrono::steady_clock::now() < it->second) return std::nullopt;
  }
  ++unauthorized_;
  OAuthReply r = error_reply(401, "invalid_token");
  r.headers.emplace_back("WWW-Authenticate", R"(Bearer error="invalid_token", error_description="expired or unknown")");
  return r;
}

std::string OAuthIssuer::stats_json() const {
  std::lock_guard lock(mutex_);
  std::uint64_t unused = 0;
  std::uint64_t once = 0;
  std::uint64_t more = 0;
  int max_uses = 0;
  for (const auto& [token, uses] : refresh_uses_) {
    (uses == 0 ? unused : uses == 1 ? once : more) += 1;
    max_uses = std::max(max_uses, uses);
  }
  return nlohmann::json{{"access_tokens_issued", access_issued_},
                        {"refresh_tokens_issued", refresh_uses_.size()},
                        {"refresh_tokens_unused", unused},
                        {"refresh_tokens_used_once", once},
                        {"refresh_tokens_used_more_than_once", more},
                        {"max_refresh_token_uses", max_uses},
                        {"reuses_refused", reuses_refused_},
                        {"unauthorized", unauthorized_},
                        {"invalid_client", bad_client_}}
      .dump();
}

}  // namespace webhookdb::tools
