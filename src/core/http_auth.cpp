#include "webhookdb/http_auth.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace webhookdb {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool has_header(const Headers& headers, std::string_view name) { return find_header(headers, name).has_value(); }

std::string elapsed_since(std::chrono::steady_clock::time_point start) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  return std::to_string(ms) + " ms";
}

constexpr std::size_t kMinSecret = 4;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::string percent_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4U];
      out += hex[u & 15U];
    }
  }
  return out;
}

std::string base64_decode(std::string_view s) {
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (const char c : s) {
    if (c == '=') break;
    int v = -1;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+' || c == '-') {
      v = 62;
    } else if (c == '/' || c == '_') {
      v = 63;
    } else {
      return {};  // not base64: nothing to decode
    }
    buffer = (buffer << 6U) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> static_cast<unsigned>(bits)) & 0xFFU);
    }
  }
  return out;
}

// Collects a secret in each form it may travel in.
class SecretSet {
 public:
  void add(std::string_view value) {
    add_one(std::string(value));
    const std::string decoded = percent_decode(value);
    add_one(decoded);
    add_one(percent_encode(decoded));
  }
  // user:password, as userinfo or Basic credentials: each part, the pair and
  // the pair's base64.
  void add_pair(std::string_view user, std::string_view password) {
    add(user);
    add(password);
    const std::string pair = percent_decode(user) + ":" + percent_decode(password);
    add(pair);
    add_one(base64_encode(pair));
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

void add_header_value(SecretSet& set, std::string_view name, std::string_view value) {
  set.add(value);
  if (lower(name) == "cookie") {
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
  if (lower(value.substr(0, space)) == "basic") {
    const std::string pair = base64_decode(rest);
    const auto colon = pair.find(':');
    if (colon != std::string::npos) {
      set.add_pair(std::string_view(pair).substr(0, colon), std::string_view(pair).substr(colon + 1));
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
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + kRedacted.size())) {
      text.replace(at, secret.size(), kRedacted);
    }
  }
  return text;
}

std::string base64_encode(std::string_view data) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const auto n = (static_cast<unsigned>(static_cast<unsigned char>(data[i])) << 16U) |
                   (static_cast<unsigned>(static_cast<unsigned char>(data[i + 1])) << 8U) |
                   static_cast<unsigned>(static_cast<unsigned char>(data[i + 2]));
    out += kAlphabet[(n >> 18U) & 63U];
    out += kAlphabet[(n >> 12U) & 63U];
    out += kAlphabet[(n >> 6U) & 63U];
    out += kAlphabet[n & 63U];
  }
  const std::size_t rest = data.size() - i;
  if (rest > 0) {
    unsigned n = static_cast<unsigned>(static_cast<unsigned char>(data[i])) << 16U;
    if (rest == 2) n |= static_cast<unsigned>(static_cast<unsigned char>(data[i + 1])) << 8U;
    out += kAlphabet[(n >> 18U) & 63U];
    out += kAlphabet[(n >> 12U) & 63U];
    out += rest == 2 ? kAlphabet[(n >> 6U) & 63U] : '=';
    out += '=';
  }
  return out;
}

std::string basic_auth_value(std::string_view user, std::string_view password) {
  std::string credentials(user);
  credentials += ':';
  credentials += password;
  return "Basic " + base64_encode(credentials);
}

bool is_credential_header(std::string_view name) {
  const std::string n = lower(name);
  if (n == "authorization" || n == "proxy-authorization" || n == "cookie" || n == "set-cookie") return true;
  static constexpr std::array<std::string_view, 9> needles = {"key",  "token",   "secret",     "password", "signature",
                                                             "auth", "session", "credential", "passwd"};
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
    throw InvalidPrecondition("invalid authentication header '" +
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

LoggingHttpClient::LoggingHttpClient(std::shared_ptr<HttpClient> next, std::shared_ptr<Logger> logger,
                                     LogLevel level)
    : HttpClientDecorator(std::move(next)), logger_(std::move(logger)), level_(level) {}

HttpResponse LoggingHttpClient::send(const HttpRequest& request, const CancellationToken& cancel) {
  const auto start = std::chrono::steady_clock::now();
  const std::string what = request.method + " " + redact_url(request.url);
  try {
    HttpResponse response = HttpClientDecorator::send(request, cancel);
    if (logger_) {
      logger_->log(level_, "http " + what + " -> " + std::to_string(response.status) + " in " + elapsed_since(start) +
                               ", " + std::to_string(response.body.size()) + " bytes");
    }
    return response;
  } catch (const HttpError& e) {
    if (logger_) {
      logger_->log(level_, "http " + what + " -> " + std::to_string(e.status()) + " in " + elapsed_since(start));
    }
    throw;
  } catch (const Cancelled&) {
    if (logger_) logger_->log(level_, "http " + what + " cancelled after " + elapsed_since(start));
    throw;
  } catch (const HttpBaseError& e) {
    // Adapter messages carry only redacted URLs.
    if (logger_) logger_->log(level_, "http " + what + " failed after " + elapsed_since(start) + ": " + e.what());
    throw;
  }
}

}  // namespace webhookdb
