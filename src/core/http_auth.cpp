#include "webhookdb/http_auth.hpp"

#include <algorithm>
#include <array>
#include <cctype>

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

}  // namespace

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
