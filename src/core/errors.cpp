#include "webhookdb/errors.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "webhookdb/codec.hpp"
#include "webhookdb/http_client.hpp"

namespace webhookdb {
namespace {

using codec::ascii_lower;

bool secret_looking(std::string_view name) {
  static constexpr std::array<std::string_view, 14> needles = {
      "key", "token", "secret", "password", "passwd", "pwd", "signature", "sig", "auth",
      "credential", "session", "code", "access", "private"};
  const std::string n = ascii_lower(name);
  return std::any_of(needles.begin(), needles.end(),
                     [&](std::string_view needle) { return n.find(needle) != std::string::npos; });
}

bool credential_header(std::string_view name) {
  const std::string n = ascii_lower(name);
  return n == "authorization" || n == "proxy-authorization" || n == "cookie" || n == "set-cookie" ||
         secret_looking(n);
}

// the HttpBaseError order (method, url), then the excerpt:
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters)
std::string http_error_message(int status, const std::string& method, const std::string& url,
                               const std::string& excerpt) {
  std::string msg = "HTTP " + std::to_string(status) + " from " + method + " " + url;
  if (!excerpt.empty()) {
    msg += ": ";
    msg += excerpt.substr(0, 200);
  }
  return msg;
}

}  // namespace

HttpError::HttpError(int status, std::string method, std::string url, std::string body_excerpt, Headers headers)
    : HttpBaseError(http_error_message(status, method, url, body_excerpt), method, url),
      status_(status),
      body_excerpt_(std::move(body_excerpt)) {
  if (body_excerpt_.size() > 1024) body_excerpt_.resize(1024);
  for (auto& [name, value] : headers) {
    if (!credential_header(name)) headers_.emplace_back(std::move(name), std::move(value));
  }
}

std::optional<std::string> HttpError::header(std::string_view name) const { return find_header(headers_, name); }

RetryOrDie::RetryOrDie(int retries, std::chrono::seconds backoff, std::exception_ptr cause, const std::string& what)
    : Error(what), retries_(retries), backoff_(backoff), cause_(std::move(cause)) {}

std::string redact_url(std::string_view url) {
  std::string out(url);
  // user:password@host
  const auto scheme = out.find("://");
  if (scheme != std::string::npos) {
    const auto host_start = scheme + 3;
    const auto path_start = out.find_first_of("/?#", host_start);
    const auto at = out.rfind('@', path_start == std::string::npos ? out.size() : path_start);
    if (at != std::string::npos && at >= host_start) {
      out.replace(host_start, at - host_start, "REDACTED");
    }
  }
  const auto q = out.find('?');
  if (q == std::string::npos) return out;
  const auto hash = out.find('#', q);
  const std::string fragment = hash == std::string::npos ? "" : out.substr(hash);
  const std::string query = out.substr(q + 1, (hash == std::string::npos ? out.size() : hash) - q - 1);
  std::string rebuilt;
  std::size_t start = 0;
  while (start <= query.size()) {
    auto end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    std::string part = query.substr(start, end - start);
    const auto eq = part.find('=');
    if (eq != std::string::npos && secret_looking(part.substr(0, eq))) {
      part = part.substr(0, eq + 1) + "REDACTED";
    }
    if (!rebuilt.empty()) rebuilt += '&';
    rebuilt += part;
    start = end + 1;
  }
  return out.substr(0, q + 1) + rebuilt + fragment;
}

std::string describe(const std::exception_ptr& e) noexcept {
  if (!e) return "no error";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    try {
      return ex.what();
    } catch (...) {
      return "error";
    }
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace webhookdb
