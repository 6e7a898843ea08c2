#include "webhookdb/http_auth.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <utility>

#include "webhookdb/codec.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb {
namespace {

bool has_header(const Headers& headers, std::string_view name) {
  return find_header(headers, name).has_value();
}

std::string elapsed_since(std::chrono::steady_clock::time_point start) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  return std::to_string(ms) + " ms";
}

constexpr std::size_t kMinSecret = 4;

// The Basic credentials' user:password. RFC 7617 says standard base64; a
// client that used the url-safe alphabet sent a secret just the same.
std::optional<std::string> basic_pair(std::string_view token) {
  auto pair = codec::try_base64_decode(token);
  if (!pair) pair = codec::try_base64_decode(token, codec::Base64Alphabet::url_safe);
  return pair;
}

// Collects a secret in each form it may travel in.
class SecretSet {
 public:
  void add(std::string_view value) {
    add_one(std::string(value));
    // Both decodings: '+' is a space in a query value, a '+' in userinfo.
    for (std::string decoded : {url::query_decode(value), url::percent_decode(value)}) {
      add_one(url::percent_encode(decoded));
      add_one(std::move(decoded));
    }
  }
  // user:password, as userinfo or Basic credentials: each part, the pair and
  // the pair's base64. Userinfo decodes '+' as '+' (RFC 3986; curl sends
  // "http://u:a+b@h" as Basic base64("u:a+b")).
  void add_pair(std::string_view user, std::string_view password) {
    add(user);
    add(password);
    const std::string pair = url::percent_decode(user) + ":" + url::percent_decode(password);
    add(pair);
    add_one(codec::base64_encode(pair));
  }
  std::vector<std::string> take() { return std::move(out_); }

 private:
  void add_one(std::string s) {
    if (s.size() < kMinSecret) return;
    // JSON may escape the slash.
    if (s.find('/') != std::string::npos) {
      std::string escaped;
      for (const char c : s) {
        if (c == '/') escaped += '\\';
        escaped += c;
      }
      out_.push_back(std::move(escaped));
    }
    out_.push_back(std::move(s));
  }
  std::vector<std::string> out_;
};

// The same rule as redact_url's, so that what the URL hides is what gets cut.
bool secret_query_name(std::string_view name) {
  const std::string probe = "?" + std::string(name) + "=x";
  return redact_url(probe) != probe;
}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): header name, then value
void add_header_value(SecretSet& set, std::string_view name, std::string_view value) {
  set.add(value);
  if (codec::iequals(name, "cookie")) {
    std::size_t start = 0;
    while (start < value.size()) {
      auto end = value.find(';', start);
      if (end == std::string_view::npos) end = value.size();
      const auto part = value.substr(start, end - start);
      if (const auto eq = part.find('='); eq != std::string_view::npos) set.add(part.substr(eq + 1));
      start = end + 1;
    }
    return;
  }
  const auto space = value.find(' ');
  if (space == std::string_view::npos) return;
  std::string_view rest = value.substr(space + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  set.add(rest);
  if (codec::iequals(value.substr(0, space), "basic")) {
    const auto pair = basic_pair(rest);
    const auto colon = pair ? pair->find(':') : std::string::npos;
    if (colon != std::string::npos) {
      set.add_pair(std::string_view(*pair).substr(0, colon), std::string_view(*pair).substr(colon + 1));
    }
  }
}

}  // namespace

std::vector<std::string> request_secrets(const HttpRequest& request) {
  SecretSet set;
  const std::string_view url = request.url;
  // userinfo, found as redact_url finds it.
  if (const auto scheme = url.find("://"); scheme != std::string_view::npos) {
    const auto host_start = scheme + 3;
    const auto path_start = url.find_first_of("/?#", host_start);
    const auto at = url.rfind('@', path_start == std::string_view::npos ? url.size() : path_start);
    if (at != std::string_view::npos && at >= host_start) {
      const auto userinfo = url.substr(host_start, at - host_start);
      const auto colon = userinfo.find(':');
      if (colon == std::string_view::npos) {
        set.add_pair(userinfo, "");
      } else {
        set.add_pair(userinfo.substr(0, colon), userinfo.substr(colon + 1));
      }
    }
  }
  if (const auto q = url.find('?'); q != std::string_view::npos) {
    std::string_view query = url.substr(q + 1);
    query = query.substr(0, query.find('#'));
    std::size_t start = 0;
    while (start <= query.size()) {
      auto end = query.find('&', start);
      if (end == std::string_view::npos) end = query.size();
      const auto part = query.substr(start, end - start);
      const auto eq = part.find('=');
      if (eq != std::string_view::npos && secret_query_name(part.substr(0, eq))) set.add(part.substr(eq + 1));
      start = end + 1;
    }
  }
  for (const auto& [name, value] : request.headers) {
    if (is_credential_header(name) || secret_query_name(name)) add_header_value(set, name, value);
  }
  return set.take();
}

std::string redact_secrets(std::string text, std::vector<std::string> secrets) {
  // Longest first, so that a secret containing another is cut whole.
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  static constexpr std::string_view kRedacted = "REDACTED";
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    for (auto at = text.find(secret); at != std::string::npos;
         at = text.find(secret, at + kRedacted.size())) {
      text.replace(at, secret.size(), kRedacted);
    }
  }
  return text;
}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): user, then password: the order of RFC 7617
std::string basic_auth_value(std::string_view user, std::string_view password) {
  std::string credentials(user);
  credentials += ':';
  credentials += password;
  return "Basic " + codec::base64_encode(credentials);
}

bool is_credential_header(std::string_view name) {
  const std::string n = codec::ascii_lower(name);
  if (n == "authorization" || n == "proxy-authorization" || n == "cookie" || n == "set-cookie") return true;
  static constexpr std::array<std::string_view, 9> needles = {
      "key", "token", "secret", "password", "signature", "auth", "session", "credential", "passwd"};
  return std::any_of(needles.begin(), needles.end(),
                     [&](std::string_view needle) { return n.find(needle) != std::string::npos; });
}

Headers without_credentials(const Headers& headers) {
  Headers out;
  for (const auto& [name, value] : headers) {
    if (!is_credential_header(name)) out.emplace_back(name, value);
  }
  return out;
}

HeaderAuth::HeaderAuth(std::shared_ptr<HttpClient> next, std::string header, std::string value)
    : HttpClientDecorator(std::move(next)), header_(std::move(header)), value_(std::move(value)) {
  if (header_.empty() || header_.find_first_of(":\r\n") != std::string::npos ||
      value_.find_first_of("\r\n") != std::string::npos) {
    // The value is a secret: the message names the header only.
    throw InvalidPrecondition(
        "invalid authentication header '" +
        (header_.find_first_of("\r\n") == std::string::npos ? header_ : std::string("?")) +
        "' (empty name, or a line break in the name or value)");
  }
}

HttpResponse HeaderAuth::send(const HttpRequest& request, const CancellationToken& cancel) {
  if (has_header(request.headers, header_)) return HttpClientDecorator::send(request, cancel);
  HttpRequest authed = request;
  authed.headers.emplace_back(header_, value_);
  return HttpClientDecorator::send(authed, cancel);
}

BearerAuth::BearerAuth(std::shared_ptr<HttpClient> next, std::string_view token)
    : HeaderAuth(std::move(next), "Authorization", "Bearer " + std::string(token)) {}

BasicAuth::BasicAuth(std::shared_ptr<HttpClient> next, std::string_view user, std::string_view password)
    : HeaderAuth(std::move(next), "Authorization", basic_auth_value(user, password)) {}

Credential bearer_credential(std::string_view token) {
  return Credential{.header = "Authorization", .value = "Bearer " + std::string(token)};
}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): user, then password: the order of RFC 7617
Credential basic_credential(std::string_view user, std::string_view password) {
  return Credential{.header = "Authorization", .value = basic_auth_value(user, password)};
}

bool CredentialProvider::renew(const HttpRequest& /*request*/, const Credential& /*used*/,
                               const HttpResponse& /*response*/, const CancellationToken& /*cancel*/) {
  return false;
}

bool CredentialProvider::covers(std::int64_t /*integration_id*/) {
  return false;
}

StaticCredentials::StaticCredentials(Credential credential) : credential_(std::move(credential)) {}

bool StaticCredentials::covers(std::int64_t /*integration_id*/) {
  return true;
}

std::optional<Credential> StaticCredentials::credential_for(const HttpRequest& /*request*/,
                                                            const CancellationToken& /*cancel*/) {
  return credential_;
}

IntegrationCredentials::IntegrationCredentials(Lookup lookup) : lookup_(std::move(lookup)) {
  if (!lookup_) throw InvalidPrecondition("IntegrationCredentials needs a lookup");
}

std::optional<Credential> IntegrationCredentials::credential_for(const HttpRequest& request,
                                                                 const CancellationToken& /*cancel*/) {
  if (!request.integration_id) return std::nullopt;
  return lookup_(*request.integration_id);
}

bool IntegrationCredentials::covers(std::int64_t integration_id) {
  return lookup_(integration_id).has_value();
}

namespace {

// The request with `credential` set; a line break in it is refused naming
// the header only (the value is a secret).
HttpRequest with_credential(const HttpRequest& request, const Credential& credential) {
  if (credential.header.empty() || credential.header.find_first_of(":\r\n") != std::string::npos ||
      credential.value.find_first_of("\r\n") != std::string::npos) {
    throw InvalidPrecondition("a credential provider gave an invalid header for " + request.method + " " +
                              redact_url(request.url) + " (empty name, or a line break in the name or value)");
  }
  HttpRequest authed = request;
  authed.headers.emplace_back(credential.header, credential.value);
  return authed;
}

class IntegrationHttpClient final : public HttpClientDecorator {
 public:
  IntegrationHttpClient(std::shared_ptr<HttpClient> next, std::int64_t id)
      : HttpClientDecorator(std::move(next)), id_(id) {}
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override {
    if (request.integration_id) return HttpClientDecorator::send(request, cancel);
    HttpRequest stamped = request;
    stamped.integration_id = id_;
    return HttpClientDecorator::send(stamped, cancel);
  }

 private:
  std::int64_t id_;
};

}  // namespace

CredentialAuth::CredentialAuth(std::shared_ptr<HttpClient> next, std::shared_ptr<CredentialProvider> provider)
    : HttpClientDecorator(std::move(next)), provider_(std::move(provider)) {
  if (!provider_) throw InvalidPrecondition("CredentialAuth needs a credential provider");
}

HttpResponse CredentialAuth::send(const HttpRequest& request, const CancellationToken& cancel) {
  auto credential = provider_->credential_for(request, cancel);
  if (!credential || has_header(request.headers, credential->header)) {
    return HttpClientDecorator::send(request, cancel);
  }
  HttpRequest authed = with_credential(request, *credential);
  authed.raise_for_status = false;
  HttpResponse response = HttpClientDecorator::send(authed, cancel);
  if (response.status == 401 && provider_->renew(request, *credential, response, cancel)) {
    credential = provider_->credential_for(request, cancel);
    if (!credential) throw InvariantViolation("the credential provider renewed a credential it then did not give");
    authed = with_credential(request, *credential);
    authed.raise_for_status = false;
    response = HttpClientDecorator::send(authed, cancel);
  }
  if (request.raise_for_status) raise_for_status(authed, response);
  return response;
}

bool CredentialAuth::authenticates(std::int64_t integration_id) {
  return provider_->covers(integration_id) || HttpClientDecorator::authenticates(integration_id);
}

std::shared_ptr<HttpClient> for_integration(std::shared_ptr<HttpClient> shared, std::int64_t integration_id) {
  if (!shared) throw InvalidPrecondition("for_integration needs an HTTP client");
  return std::make_shared<IntegrationHttpClient>(std::move(shared), integration_id);
}

LoggingHttpClient::LoggingHttpClient(std::shared_ptr<HttpClient> next, std::shared_ptr<Logger> logger,
                                     LogLevel level)
    : HttpClientDecorator(std::move(next)), logger_(std::move(logger)), level_(level) {}

HttpResponse LoggingHttpClient::send(const HttpRequest& request, const CancellationToken& cancel) {
  const auto start = std::chrono::steady_clock::now();
  const std::string what = request.method + " " + redact_url(request.url);
  try {
    HttpResponse response = HttpClientDecorator::send(request, cancel);
    if (logger_) {
      logger_->log(level_, "http " + what + " -> " + std::to_string(response.status) + " in " +
                               elapsed_since(start) + ", " + std::to_string(response.body.size()) + " bytes");
    }
    return response;
  } catch (const HttpError& e) {
    if (logger_) {
      logger_->log(level_,
                   "http " + what + " -> " + std::to_string(e.status()) + " in " + elapsed_since(start));
    }
    throw;
  } catch (const Cancelled&) {
    if (logger_) logger_->log(level_, "http " + what + " cancelled after " + elapsed_since(start));
    throw;
  } catch (const HttpBaseError& e) {
    // Adapter messages carry only redacted URLs.
    if (logger_)
      logger_->log(level_, "http " + what + " failed after " + elapsed_since(start) + ": " + e.what());
    throw;
  }
}

}  // namespace webhookdb
