#include "webhookdb/url.hpp"

#include "webhookdb/codec.hpp"

namespace webhookdb::url {
namespace {

// scheme://authority/path?query#fragment, as views into the URL.
struct UrlParts {
  std::string_view scheme;     // without ':'
  std::string_view authority;  // without '//'
  bool has_authority = false;
  std::string_view path;
  std::string_view query;  // without '?'
  bool has_query = false;
  std::string_view fragment;  // without '#'
  bool has_fragment = false;
};

bool scheme_char(char c, bool first) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (alpha) return true;
  return !first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
}

bool unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

enum class Plus { literal, space };

std::string decode(std::string_view s, Plus plus) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size() && codec::hex_value(s[i + 1]) >= 0 && codec::hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(codec::hex_value(s[i + 1]) * 16 + codec::hex_value(s[i + 2]));
      i += 2;
    } else {
      out += (c == '+' && plus == Plus::space) ? ' ' : c;
    }
  }
  return out;
}

UrlParts split_url(std::string_view url) {
  UrlParts p;
  std::size_t i = 0;
  // A scheme: letters then ':' before any of "/?#".
  for (std::size_t k = 0; k < url.size(); ++k) {
    if (url[k] == ':') {
      if (k > 0) {
        p.scheme = url.substr(0, k);
        i = k + 1;
      }
      break;
    }
    if (!scheme_char(url[k], k == 0)) break;
  }
  if (url.substr(i, 2) == "//") {
    p.has_authority = true;
    const auto end = url.find_first_of("/?#", i + 2);
    p.authority = url.substr(i + 2, (end == std::string_view::npos ? url.size() : end) - i - 2);
    i = end == std::string_view::npos ? url.size() : end;
  }
  const auto frag = url.find('#', i);
  if (frag != std::string_view::npos) {
    p.has_fragment = true;
    p.fragment = url.substr(frag + 1);
  }
  const std::string_view before_fragment = url.substr(0, frag == std::string_view::npos ? url.size() : frag);
  const auto q = before_fragment.find('?', i);
  if (q != std::string_view::npos) {
    p.has_query = true;
    p.query = before_fragment.substr(q + 1);
  }
  p.path = before_fragment.substr(i, (q == std::string_view::npos ? before_fragment.size() : q) - i);
  return p;
}

std::string join_url(std::string_view scheme, bool has_authority, std::string_view authority,
                     std::string_view path, bool has_query, std::string_view query, bool has_fragment,
                     std::string_view fragment) {
  std::string out;
  if (!scheme.empty()) {
    out += scheme;
    out += ':';
  }
  if (has_authority) {
    out += "//";
    out += authority;
  }
  out += path;
  if (has_query) {
    out += '?';
    out += query;
  }
  if (has_fragment) {
    out += '#';
    out += fragment;
  }
  return out;
}

// RFC 3986 5.2.4.
std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> out;
  const bool absolute = !path.empty() && path.front() == '/';
  std::size_t start = absolute ? 1 : 0;
  bool trailing_slash = false;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view seg = path.substr(start, end - start);
    const bool last = end == path.size();
    if (seg == ".") {
      trailing_slash = last;
    } else if (seg == "..") {
      if (!out.empty()) out.pop_back();
      trailing_slash = last;
    } else {
      out.push_back(seg);
      trailing_slash = false;
    }
    start = end + 1;
  }
  std::string result = absolute ? "/" : "";
  for (std::size_t k = 0; k < out.size(); ++k) {
    if (k > 0) result += '/';
    result += out[k];
  }
  if (trailing_slash && !result.empty() && result.back() != '/') result += '/';
  return result;
}

}  // namespace

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    if (unreserved(ch)) {
      out += ch;
    } else {
      const auto c = static_cast<unsigned char>(ch);
      out += '%';
      out += kHex[c >> 4U];
      out += kHex[c & 0x0FU];
    }
  }
  return out;
}

std::string percent_decode(std::string_view text) {
  return decode(text, Plus::literal);
}

std::string query_decode(std::string_view text) {
  return decode(text, Plus::space);
}

std::string with_query(std::string_view url, const QueryParams& params) {
  if (params.empty()) return std::string(url);
  const auto frag = url.find('#');
  std::string out(url.substr(0, frag));
  const std::string fragment = frag == std::string_view::npos ? "" : std::string(url.substr(frag));
  bool has_query = out.find('?') != std::string::npos;
  for (const auto& [name, value] : params) {
    if (!has_query) {
      out += '?';
      has_query = true;
    } else if (out.back() != '?' && out.back() != '&') {
      out += '&';
    }
    out += percent_encode(name);
    out += '=';
    out += percent_encode(value);
  }
  return out + fragment;
}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): url, then name, then value
std::string set_query_param(std::string_view url, std::string_view name, std::string_view value) {
  const UrlParts p = split_url(url);
  std::string query;
  bool replaced = false;
  const std::string encoded = percent_encode(name) + "=" + percent_encode(value);
  std::size_t start = 0;
  while (p.has_query && start <= p.query.size()) {
    auto end = p.query.find('&', start);
    if (end == std::string_view::npos) end = p.query.size();
    const std::string_view part = p.query.substr(start, end - start);
    start = end + 1;
    if (part.empty()) continue;
    const std::string_view key = part.substr(0, part.find('='));
    if (query_decode(key) == name) {
      if (replaced) continue;
      replaced = true;
      if (!query.empty()) query += '&';
      query += encoded;
      continue;
    }
    if (!query.empty()) query += '&';
    query += part;
  }
  if (!replaced) {
    if (!query.empty()) query += '&';
    query += encoded;
  }
  return join_url(p.scheme, p.has_authority, p.authority, p.path, true, query, p.has_fragment, p.fragment);
}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): url, then the name looked up, as every URL API
std::optional<std::string> query_param(std::string_view url, std::string_view name) {
  const UrlParts p = split_url(url);
  if (!p.has_query) return std::nullopt;
  std::size_t start = 0;
  while (start <= p.query.size()) {
    auto end = p.query.find('&', start);
    if (end == std::string_view::npos) end = p.query.size();
    const std::string_view part = p.query.substr(start, end - start);
    start = end + 1;
    const auto eq = part.find('=');
    if (query_decode(part.substr(0, eq)) == name) {
      return eq == std::string_view::npos ? std::string() : query_decode(part.substr(eq + 1));
    }
  }
  return std::nullopt;
}

// base, then the reference resolved against it (RFC 3986 order):
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters)
std::string resolve_url(std::string_view base, std::string_view reference) {
  reference = codec::trim(reference);
  const UrlParts r = split_url(reference);
  const UrlParts b = split_url(base);
  if (!r.scheme.empty()) {
    return join_url(r.scheme, r.has_authority, r.authority, remove_dot_segments(r.path), r.has_query, r.query,
                    r.has_fragment, r.fragment);
  }
  if (r.has_authority) {
    return join_url(b.scheme, true, r.authority, remove_dot_segments(r.path), r.has_query, r.query,
                    r.has_fragment, r.fragment);
  }
  if (r.path.empty()) {
    return join_url(b.scheme, b.has_authority, b.authority, b.path, r.has_query || b.has_query,
                    r.has_query ? r.query : b.query, r.has_fragment, r.fragment);
  }
  std::string path;
  if (r.path.front() == '/') {
    path = remove_dot_segments(r.path);
  } else {
    std::string merged;
    if (b.has_authority && b.path.empty()) {
      merged = "/" + std::string(r.path);
    } else {
      const auto slash = b.path.rfind('/');
      merged =
          std::string(slash == std::string_view::npos ? std::string_view() : b.path.substr(0, slash + 1)) +
          std::string(r.path);
    }
    path = remove_dot_segments(merged);
  }
  return join_url(b.scheme, b.has_authority, b.authority, path, r.has_query, r.query, r.has_fragment,
                  r.fragment);
}

std::string origin_of(std::string_view url) {
  const UrlParts p = split_url(url);
  const std::string scheme = codec::ascii_lower(p.scheme);
  std::string_view authority = p.authority;
  if (const auto at = authority.rfind('@'); at != std::string_view::npos)
    authority = authority.substr(at + 1);
  std::string host = codec::ascii_lower(authority);
  std::string port;
  // [v6]:port or host:port
  const auto bracket = host.rfind(']');
  const auto colon = host.rfind(':');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    port = host.substr(colon + 1);
    host.resize(colon);
  }
  if (port.empty()) {
    if (scheme == "http") port = "80";
    if (scheme == "https") port = "443";
  }
  return scheme + "://" + host + (port.empty() ? "" : ":" + port);
}

bool is_http_url(std::string_view url) noexcept {
  return codec::istarts_with(url, "http://") || codec::istarts_with(url, "https://");
}

}  // namespace webhookdb::url
