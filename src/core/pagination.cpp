#include "webhookdb/pagination.hpp"

#include "webhookdb/codec.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <functional>

namespace webhookdb::pagination {
namespace {

using codec::trim;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// A token in an error message: redacted when it is a URL, and shortened.
std::string shown_token(const std::string& token) {
  std::string shown = token.find("://") != std::string::npos || token.find('?') != std::string::npos
                          ? redact_url(token)
                          : token;
  if (shown.size() > 120) shown = shown.substr(0, 117) + "...";
  return shown;
}

std::string describe_request(const HttpRequest& request) {
  return request.method + " " + redact_url(request.url);
}

std::string scalar_text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer() || value.is_number_unsigned()) return value.dump();
  if (value.is_number_float()) return value.dump();
  return {};
}

// The largest page number, offset or total accepted: 2^53, past which a JSON
// number read as a double is no longer exact (and no API has that many pages).
// It also keeps `page + 1` and `offset + items` far from overflowing.
constexpr long long kMaxCount = 1LL << 53;

long long parse_count(const std::string& token, std::string_view what) {
  long long value = 0;
  const auto* end = token.data() + token.size();
  const auto [ptr, ec] = std::from_chars(token.data(), end, value);
  if (ec != std::errc{} || ptr != end || value < 0 || value > kMaxCount) {
    throw InvalidPrecondition("pagination token '" + shown_token(token) + "' is not a " + std::string(what));
  }
  return value;
}

std::string path_text(const JsonPath& path) {
  std::string out;
  for (const auto& step : path) out += (out.empty() ? "" : ".") + step;
  return out;
}

// A count the body gives (total_pages, total), or nullopt when it gives none.
// A double is range-checked before it is converted: {"total_pages": 1e300}
// made the conversion undefined behaviour (UBSan float-cast-overflow).
std::optional<long long> count_at(const nlohmann::json& body, const JsonPath& path) {
  const nlohmann::json* value = json_at(body, path);
  if (value == nullptr || !value->is_number()) return std::nullopt;
  bool in_range = false;
  if (value->is_number_unsigned()) {
    in_range = value->get<std::uint64_t>() <= static_cast<std::uint64_t>(kMaxCount);
  } else if (value->is_number_integer()) {
    in_range = value->get<std::int64_t>() >= 0 && value->get<std::int64_t>() <= kMaxCount;
  } else {
    const double d = value->get<double>();
    in_range = d >= 0.0 && d <= static_cast<double>(kMaxCount);  // false for NaN too
  }
  if (!in_range) {
    throw InvalidInput("pagination field '" + path_text(path) + "' is " + value->dump() +
                       ", not a count between 0 and 2^53; refusing to page by it");
  }
  return value->is_number_float() ? static_cast<long long>(value->get<double>()) : value->get<long long>();
}

void check_origin(bool same_origin, const HttpRequest& first, const std::string& next) {
  if (!same_origin || next.empty()) return;
  if (origin_of(next) != origin_of(first.url)) {
    throw InvariantViolation("next page URL " + redact_url(next) + " is on another origin than " +
                             redact_url(first.url) + "; not sending the request's credentials there");
  }
}

// `count` pages from `first_number` on: tokens made by `make` from each number.
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): the first number, how many, the step between them
std::shared_ptr<const PagesAhead> counted_pages(long long first_number, long long count, long long step,
                                               std::function<std::string(long long)> make) {
  if (count <= 0) return nullptr;
  auto ahead = std::make_shared<PagesAhead>();
  ahead->count = static_cast<std::uint64_t>(count);
  ahead->token = [first_number, step, make = std::move(make)](std::uint64_t i) {
    return make(first_number + static_cast<long long>(i) * step);
  };
  return ahead;
}

// A page number or offset in a URL's query, or nullopt.
std::optional<long long> count_param(const std::string& url, const std::string& name) {
  const auto text = query_param(url, name);
  if (!text || text->empty()) return std::nullopt;
  long long value = 0;
  const auto* end = text->data() + text->size();
  const auto [ptr, ec] = std::from_chars(text->data(), end, value);
  if (ec != std::errc{} || ptr != end || value < 0 || value > kMaxCount) return std::nullopt;
  return value;
}

HttpRequest with_url(const HttpRequest& first, std::string url) {
  HttpRequest request = first;
  request.url = std::move(url);
  return request;
}

}  // namespace

// --- Link header ---

std::vector<std::string> Link::rels() const {
  std::vector<std::string> out;
  const auto it = params.find("rel");
  if (it == params.end()) return out;
  std::string_view rest = it->second;
  while (!rest.empty()) {
    while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
    std::size_t n = 0;
    while (n < rest.size() && !is_space(rest[n])) ++n;
    if (n > 0) out.push_back(codec::ascii_lower(rest.substr(0, n)));
    rest.remove_prefix(n);
  }
  return out;
}

namespace {

// RFC 8288 Link header scanner: one function per part of the grammar.
class LinkScanner {
 public:
  explicit LinkScanner(std::string_view value) : v_(value) {}

  std::vector<Link> links() {
    std::vector<Link> out;
    while (i_ < v_.size()) {
      skip_space();
      if (i_ < v_.size() && v_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ >= v_.size()) break;
      if (v_[i_] != '<') {
        skip_to_next_link();
        continue;
      }
      const auto close = v_.find('>', i_ + 1);
      if (close == std::string_view::npos) break;
      Link link;
      link.target = std::string(trim(v_.substr(i_ + 1, close - i_ - 1)));
      i_ = close + 1;
      if (!read_params(link)) {
        skip_to_next_link();
        continue;
      }
      out.push_back(std::move(link));
    }
    return out;
  }

 private:
  void skip_space() {
    while (i_ < v_.size() && is_space(v_[i_])) ++i_;
  }

  // Skips to just past the next ',' outside quotes and <...>.
  void skip_to_next_link() {
    bool quoted = false;
    bool bracketed = false;
    for (; i_ < v_.size(); ++i_) {
      const char c = v_[i_];
      if (quoted) {
        if (c == '\\')
          ++i_;
        else if (c == '"')
          quoted = false;
      } else if (bracketed) {
        if (c == '>') bracketed = false;
      } else if (c == '"') {
        quoted = true;
      } else if (c == '<') {
        bracketed = true;
      } else if (c == ',') {
        ++i_;
        return;
      }
    }
  }

  // `;name[=value]` pairs up to the next ',' or the end; false when malformed.
  bool read_params(Link& link) {
    while (true) {
      skip_space();
      if (i_ >= v_.size() || v_[i_] == ',') return true;
      if (v_[i_] != ';') return false;
      ++i_;
      skip_space();
      const std::size_t name_start = i_;
      while (i_ < v_.size() && v_[i_] != '=' && v_[i_] != ';' && v_[i_] != ',' && !is_space(v_[i_])) ++i_;
      std::string name = codec::ascii_lower(v_.substr(name_start, i_ - name_start));
      skip_space();
      std::string param_value;
      if (i_ < v_.size() && v_[i_] == '=') {
        ++i_;
        skip_space();
        param_value = read_value();
      }
      // A trailing '*' names the RFC 8187 extended form; keep the plain one first.
      if (!name.empty()) link.params.emplace(std::move(name), std::move(param_value));
    }
  }

  // A quoted-string (backslash escapes) or a token up to ';' or ','.
  std::string read_value() {
    std::string out;
    if (i_ < v_.size() && v_[i_] == '"') {
      ++i_;
      while (i_ < v_.size() && v_[i_] != '"') {
        if (v_[i_] == '\\' && i_ + 1 < v_.size()) ++i_;
        out += v_[i_];
        ++i_;
      }
      if (i_ < v_.size()) ++i_;  // closing quote
      return out;
    }
    const std::size_t start = i_;
    while (i_ < v_.size() && v_[i_] != ';' && v_[i_] != ',') ++i_;
    return std::string(trim(v_.substr(start, i_ - start)));
  }

  std::string_view v_;
  std::size_t i_ = 0;
};

}  // namespace

std::vector<Link> parse_link_header(std::string_view value) { return LinkScanner(value).links(); }

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): the base url, then the rel looked for
std::optional<std::string> find_link(const Headers& headers, std::string_view base_url,
                                     std::string_view rel) {
  const std::string wanted = codec::ascii_lower(rel);
  for (const auto& value : find_headers(headers, "Link")) {
    for (const auto& link : parse_link_header(value)) {
      const auto rels = link.rels();
      if (std::find(rels.begin(), rels.end(), wanted) != rels.end()) {
        return resolve_url(base_url, link.target);
      }
    }
  }
  return std::nullopt;
}

// --- Bodies ---

nlohmann::json parse_json_body(const HttpRequest& request, const HttpResponse& response,
                               const JsonLimits& limits) {
  const std::string content_type = response.header("Content-Type").value_or("none");
  if (trim(response.body).empty()) {
    throw HttpConnectionError(describe_request(request) + ": empty response body (HTTP " +
                                  std::to_string(response.status) + ", content-type " + content_type + ")",
                              request.method, redact_url(request.url));
  }
  auto parsed = try_parse_json_limited(response.body, limits);
  if (!parsed.error) return std::move(parsed.value);
  if (parsed.error->failure != JsonFailure::malformed) {
    throw InvalidJson(std::move(*parsed.error), describe_request(request) + " response body");
  }
  throw HttpConnectionError(describe_request(request) + ": response body is not valid JSON (" +
                                std::to_string(response.body.size()) + " bytes, HTTP " +
                                std::to_string(response.status) + ", content-type " + content_type +
                                ", failed at byte " + std::to_string(parsed.error->offset) +
                                "): truncated or not an API response",
                            request.method, redact_url(request.url));
}

// --- RepeatGuard ---

bool RepeatGuard::remember(Walk& walk, const std::string& token) {
  // A 64-bit hash instead of the token (a next-page URL may be kilobytes):
  // two distinct tokens of one walk collide with odds of about 2^-44 at
  // kRememberedTokens, and a collision is a loud error, never a silent skip.
  const std::uint64_t hash = std::hash<std::string>{}(token);
  if (!walk.seen.insert(hash).second) return false;
  walk.order.push_back(hash);
  if (walk.order.size() > kRememberedTokens) {
    walk.seen.erase(walk.order.front());
    walk.order.pop_front();
  }
  return true;
}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): the walk, then its token
void RepeatGuard::begin(const std::string& walk, const std::string& token) {
  std::lock_guard lock(mutex_);
  auto it = walks_.find(walk);
  if (it == walks_.end() || token.empty() || token != it->second.last_next) {
    if (it == walks_.end()) {
      if (walks_.size() >= kMaxWalks) {
        walks_.erase(std::min_element(walks_.begin(), walks_.end(), [](const auto& a, const auto& b) {
          return a.second.used < b.second.used;
        }));
      }
      it = walks_.try_emplace(walk).first;
    }
    Walk& fresh = it->second;
    fresh.seen.clear();
    fresh.order.clear();
    fresh.previous_fingerprint.clear();
    if (!token.empty()) (void)remember(fresh, token);
    fresh.last_next = token;
  }
  it->second.used = ++uses_;
}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): the walk, the token asked and the next one answered
void RepeatGuard::end(const std::string& walk, const std::string& token, const std::string& next,
                      const nlohmann::json& items) {
  std::lock_guard lock(mutex_);
  auto it = walks_.find(walk);
  if (it == walks_.end()) {  // forgotten for newer walks: it starts again here
    it = walks_.try_emplace(walk).first;
    if (!token.empty()) (void)remember(it->second, token);
  }
  Walk& w = it->second;
  w.used = ++uses_;
  // Consecutive identical non-empty pages: the API ignores the page parameter.
  std::string fingerprint;
  if (items.is_array() && !items.empty()) {
    fingerprint = std::to_string(items.size()) + "|" + items.front().dump() + "|" + items.back().dump();
  }
  if (!fingerprint.empty() && fingerprint == w.previous_fingerprint) {
    walks_.erase(it);
    throw InvariantViolation("pagination page for token '" + shown_token(token) +
                             "' has the same items as the previous page: the API ignores the pagination "
                             "parameter and following it would loop forever");
  }
  if (next.empty()) {  // the walk is over
    walks_.erase(it);
    return;
  }
  if (!remember(w, next)) {
    walks_.erase(it);
    throw InvariantViolation("pagination token repeated ('" + shown_token(next) + "' after '" +
                             shown_token(token) + "'): following it would loop forever");
  }
  w.previous_fingerprint = std::move(fingerprint);
  w.last_next = next;
}

namespace {
// What tells a walk from the others running at the same time: its first request.
std::string walk_of(const HttpRequest& first) {
  std::string walk = first.method;
  walk += ' ';
  walk += first.url;
  walk += '\n';
  walk += first.body;
  return walk;
}
}  // namespace

// --- Paginator ---

BackfillPage Paginator::fetch(HttpClient& http, const HttpRequest& first, const std::string& token,
                              const CancellationToken& cancel) {
  const std::string walk = walk_of(first);
  // A page of a known range: counted, not followed, and checked in order by the page loop.
  const bool guarded = !fetching_page_ahead();
  if (guarded) guard_.begin(walk, token);
  const HttpRequest request = request_for(first, token);
  const HttpResponse response = http.send(request, cancel);
  if (response.status < 200 || response.status >= 300) throw_http_error(request, response);
  nlohmann::json body = parse_json_body(request, response, json_limits_);
  const nlohmann::json* items = json_at(body, items_path());
  if (items != nullptr && !items->is_array()) items = nullptr;
  std::string next = next_token(first, request, response, body, items, token);
  if (guarded) guard_.end(walk, token, next, items != nullptr ? *items : nlohmann::json());

  BackfillPage page;
  if (!next.empty()) page.ahead = pages_ahead(request, response, body, items, next);
  page.next = std::move(next);
  page.bytes = response.body.size();
  // `items` points into the local `body`, which is not const: move it out.
  if (items != nullptr) {
    page.items = std::move(*const_cast<nlohmann::json*>(items));
  } else {
    page.url = redact_url(request.url);
    for (const auto& step : items_path()) page.items_path += (page.items_path.empty() ? "" : ".") + step;
  }
  return page;
}

// --- StartingAfter ---

HttpRequest StartingAfter::request_for(const HttpRequest& first, const std::string& token) const {
  std::string url = first.url;
  if (options_.limit > 0) url = set_query_param(url, options_.limit_param, std::to_string(options_.limit));
  if (!token.empty()) url = set_query_param(url, options_.cursor_param, token);
  return with_url(first, std::move(url));
}

std::string StartingAfter::next_token(const HttpRequest&, const HttpRequest&, const HttpResponse&,
                                      const nlohmann::json& body, const nlohmann::json* items,
                                      const std::string&) const {
  if (items == nullptr || items->empty()) return {};
  const nlohmann::json* has_more = json_at(body, options_.has_more_path);
  bool more = false;
  if (has_more != nullptr && has_more->is_boolean()) {
    more = has_more->get<bool>();
  } else {
    more = options_.limit > 0 && items->size() >= static_cast<std::size_t>(options_.limit);
  }
  if (!more) return {};
  const nlohmann::json* id = json_at(items->back(), options_.id_path);
  const std::string text = id != nullptr ? scalar_text(*id) : std::string();
  if (text.empty()) {
    throw InvalidInput("the last item of a page has no id to continue after (has_more is true)");
  }
  return text;
}

// --- Cursor ---

HttpRequest Cursor::request_for(const HttpRequest& first, const std::string& token) const {
  std::string url = first.url;
  if (options_.limit > 0) url = set_query_param(url, options_.limit_param, std::to_string(options_.limit));
  if (!token.empty()) url = set_query_param(url, options_.cursor_param, token);
  return with_url(first, std::move(url));
}

std::string Cursor::next_token(const HttpRequest&, const HttpRequest&, const HttpResponse&,
                               const nlohmann::json& body, const nlohmann::json*, const std::string&) const {
  const nlohmann::json* next = json_at(body, options_.next_cursor_path);
  return next != nullptr ? scalar_text(*next) : std::string();
}

// --- LinkHeader ---

HttpRequest LinkHeader::request_for(const HttpRequest& first, const std::string& token) const {
  return token.empty() ? first : with_url(first, token);
}

std::string LinkHeader::next_token(const HttpRequest& first, const HttpRequest& sent,
                                   const HttpResponse& response, const nlohmann::json&, const nlohmann::json*,
                                   const std::string&) const {
  // Relative targets resolve against the URL that answered (after redirects).
  const std::string& base = response.url.empty() ? sent.url : response.url;
  std::string next = find_link(response.headers, base, options_.rel).value_or("");
  check_origin(options_.same_origin, first, next);
  return next;
}

std::shared_ptr<const PagesAhead> LinkHeader::pages_ahead(const HttpRequest& sent, const HttpResponse& response,
                                                          const nlohmann::json&, const nlohmann::json*,
                                                          const std::string& next) const {
  if (options_.page_param.empty()) return nullptr;
  const std::string& base = response.url.empty() ? sent.url : response.url;
  const auto last = find_link(response.headers, base, "last");
  if (!last) return nullptr;
  const auto next_page = count_param(next, options_.page_param);
  const auto last_page = count_param(*last, options_.page_param);
  if (!next_page || !last_page || *last_page < *next_page) return nullptr;
  // Only when the last URL is the next one with another page number: the
  // pages in between are then that URL with each number.
  if (set_query_param(next, options_.page_param, std::to_string(*last_page)) != *last) return nullptr;
  if (set_query_param(next, options_.page_param, std::to_string(*next_page)) != next) return nullptr;
  return counted_pages(*next_page, *last_page - *next_page + 1, 1,
                       [next, param = options_.page_param](long long page) {
                         return set_query_param(next, param, std::to_string(page));
                       });
}

// --- PageNumber ---

long long PageNumber::page_of(const std::string& token) const {
  return token.empty() ? options_.first_page : parse_count(token, "page number");
}

HttpRequest PageNumber::request_for(const HttpRequest& first, const std::string& token) const {
  std::string url = set_query_param(first.url, options_.page_param, std::to_string(page_of(token)));
  if (options_.per_page > 0)
    url = set_query_param(url, options_.per_page_param, std::to_string(options_.per_page));
  return with_url(first, std::move(url));
}

std::optional<long long> PageNumber::last_page(const nlohmann::json& body) const {
  if (!options_.total_pages_path.empty()) {
    if (const auto total = count_at(body, options_.total_pages_path)) return *total;
  }
  if (!options_.total_count_path.empty() && options_.per_page > 0) {
    if (const auto total = count_at(body, options_.total_count_path)) {
      return (*total + options_.per_page - 1) / options_.per_page;
    }
  }
  return std::nullopt;
}

std::string PageNumber::next_token(const HttpRequest&, const HttpRequest&, const HttpResponse&,
                                   const nlohmann::json& body, const nlohmann::json* items,
                                   const std::string& token) const {
  if (items == nullptr || items->empty()) return {};
  const long long page = page_of(token);
  if (const auto last = last_page(body)) return page < *last ? std::to_string(page + 1) : std::string();
  if (options_.per_page > 0 && items->size() < static_cast<std::size_t>(options_.per_page)) return {};
  return std::to_string(page + 1);
}

std::shared_ptr<const PagesAhead> PageNumber::pages_ahead(const HttpRequest&, const HttpResponse&,
                                                          const nlohmann::json& body, const nlohmann::json*,
                                                          const std::string& next) const {
  const auto last = last_page(body);
  if (!last) return nullptr;
  const long long first = page_of(next);
  return counted_pages(first, *last - first + 1, 1, [](long long page) { return std::to_string(page); });
}

// --- Offset ---

long long Offset::offset_of(const std::string& token) const {
  return token.empty() ? 0 : parse_count(token, "offset");
}

HttpRequest Offset::request_for(const HttpRequest& first, const std::string& token) const {
  std::string url = set_query_param(first.url, options_.offset_param, std::to_string(offset_of(token)));
  if (options_.limit > 0) url = set_query_param(url, options_.limit_param, std::to_string(options_.limit));
  return with_url(first, std::move(url));
}

std::string Offset::next_token(const HttpRequest&, const HttpRequest&, const HttpResponse&,
                               const nlohmann::json& body, const nlohmann::json* items,
                               const std::string& token) const {
  if (items == nullptr || items->empty()) return {};
  const long long next = offset_of(token) + static_cast<long long>(items->size());
  if (!options_.total_path.empty()) {
    if (const auto total = count_at(body, options_.total_path)) {
      return next < *total ? std::to_string(next) : std::string();
    }
  }
  if (options_.limit > 0 && items->size() < static_cast<std::size_t>(options_.limit)) return {};
  return std::to_string(next);
}

std::shared_ptr<const PagesAhead> Offset::pages_ahead(const HttpRequest&, const HttpResponse&,
                                                      const nlohmann::json& body, const nlohmann::json* items,
                                                      const std::string& next) const {
  // Offsets a full page apart: only when this page was full.
  if (options_.total_path.empty() || options_.limit <= 0 || items == nullptr ||
      items->size() != static_cast<std::size_t>(options_.limit))
    return nullptr;
  const auto total = count_at(body, options_.total_path);
  if (!total) return nullptr;
  const long long first = offset_of(next);
  const long long count = (*total - first + options_.limit - 1) / options_.limit;
  return counted_pages(first, count, options_.limit, [](long long offset) { return std::to_string(offset); });
}

// --- NextUrl ---

HttpRequest NextUrl::request_for(const HttpRequest& first, const std::string& token) const {
  return token.empty() ? first : with_url(first, token);
}

std::string NextUrl::next_token(const HttpRequest& first, const HttpRequest& sent,
                                const HttpResponse& response, const nlohmann::json& body,
                                const nlohmann::json*, const std::string&) const {
  const nlohmann::json* next = json_at(body, options_.next_path);
  if (next == nullptr || !next->is_string() || next->get<std::string>().empty()) return {};
  const std::string& base = response.url.empty() ? sent.url : response.url;
  std::string url = resolve_url(base, next->get<std::string>());
  check_origin(options_.same_origin, first, url);
  return url;
}

// --- BodyCursor ---

BodyCursor::BodyCursor(BodyCursorOptions options) : options_(std::move(options)) {
  const auto refuse = [](const std::string& what) {
    throw BrokenSpecification("pagination::BodyCursorOptions: " + what);
  };
  if (options_.limit < 0) refuse("limit is " + std::to_string(options_.limit) + "; 0 (not sent) or more");
  if (options_.cursor_field.empty())
    refuse("cursor_field is empty; the request body needs a field for the cursor");
  if (options_.limit > 0 && options_.limit_field.empty()) refuse("limit_field is empty but limit is set");
  if (options_.limit > 0 && options_.limit_field == options_.cursor_field) {
    refuse("limit_field and cursor_field are both '" + options_.cursor_field + "'");
  }
  if (options_.next_cursor_path.empty())
    refuse("next_cursor_path is empty; the response must name the next cursor");
}

HttpRequest BodyCursor::request_for(const HttpRequest& first, const std::string& token) const {
  if (codec::iequals(first.method, "GET") || codec::iequals(first.method, "HEAD")) {
    throw InvalidPrecondition("pagination::BodyCursor sends its cursor in the request body, but " +
                              describe_request(first) + " has none: make the first request a POST");
  }
  nlohmann::json body =
      trim(first.body).empty() ? nlohmann::json::object() : nlohmann::json::parse(first.body, nullptr, false);
  if (!body.is_object()) {
    throw InvalidPrecondition("pagination::BodyCursor: the body of " + describe_request(first) +
                              " is not a JSON object; the cursor goes into one");
  }
  if (options_.limit > 0) body[options_.limit_field] = options_.limit;
  if (!token.empty()) body[options_.cursor_field] = token;
  HttpRequest request = first;
  request.body = body.dump();
  if (!find_header(request.headers, "Content-Type"))
    request.headers.emplace_back("Content-Type", "application/json");
  return request;
}

std::string BodyCursor::next_token(const HttpRequest&, const HttpRequest&, const HttpResponse&,
                                   const nlohmann::json& body, const nlohmann::json*,
                                   const std::string&) const {
  const nlohmann::json* more =
      options_.has_more_path.empty() ? nullptr : json_at(body, options_.has_more_path);
  const bool says_more = more != nullptr && more->is_boolean() && more->get<bool>();
  if (more != nullptr && more->is_boolean() && !says_more) return {};
  const nlohmann::json* next = json_at(body, options_.next_cursor_path);
  std::string text = next != nullptr ? scalar_text(*next) : std::string();
  if (text.empty() && says_more) {
    throw InvalidInput("pagination field '" + path_text(options_.has_more_path) + "' is true but '" +
                       path_text(options_.next_cursor_path) + "' names no next cursor");
  }
  return text;
}

}  // namespace webhookdb::pagination
