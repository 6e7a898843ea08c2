#include "webhookdb/curl/curl_http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

#include "webhookdb/codec.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb::curl {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw Error("curl_global_init failed");
  });
}

using codec::istarts_with;
using codec::trim;
using url::is_http_url;

// Wakes a transfer's curl_multi_poll from the cancelling thread. The handle
// that owns the multi clears the pointer (under the mutex) before freeing it,
// so a late cancellation callback never touches a freed multi.
struct Waker {
  std::mutex mutex;
  CURLM* multi = nullptr;
  void wake() {
    std::lock_guard lock(mutex);
    if (multi != nullptr) curl_multi_wakeup(multi);
  }
};

// An easy handle and the multi that drives it. The multi owns the connection
// cache, so a handle that goes back to the pool keeps its connection alive.
struct Handle {
  CURL* easy = nullptr;
  CURLM* multi = nullptr;
  std::shared_ptr<Waker> waker = std::make_shared<Waker>();

  Handle() : easy(curl_easy_init()), multi(curl_multi_init()) {
    if (easy == nullptr || multi == nullptr) {
      release();
      throw Error("curl: cannot create a transfer handle");
    }
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 8L);
    waker->multi = multi;
  }
  ~Handle() { release(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  void release() {
    {
      std::lock_guard lock(waker->mutex);
      waker->multi = nullptr;
    }
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (multi != nullptr) curl_multi_cleanup(multi);
    easy = nullptr;
    multi = nullptr;
  }
};

// What the callbacks fill during one transfer.
struct Transfer {
  CURL* easy = nullptr;
  std::string body;
  Headers headers;
  std::size_t max_bytes = 0;
  bool too_large = false;
  const CancellationToken* cancel = nullptr;
};

// Room for `needed` bytes without ever holding more than `cap`. Capacities
// run up the sequence cap/2^k, so each reallocation copies into a block twice
// the old one, and old plus new never exceed the cap: the resident peak stays
// near the cap (the untouched part of a fresh block is not resident) instead
// of the twice-the-cap a free-running doubling reached (~1 GiB for 512 MiB).
void grow_for(std::string& body, std::size_t needed, std::size_t cap, curl_off_t announced) {
  if (needed <= body.capacity()) return;
  constexpr std::size_t kSmall = 16 * 1024U;
  if (body.capacity() < kSmall && announced > 0) {
    // One allocation for the whole body when its length is announced.
    body.reserve(std::min(cap, std::max(needed, static_cast<std::size_t>(announced))));
    return;
  }
  const std::size_t floor = std::max({needed, kSmall, body.capacity() < kSmall ? 0 : body.capacity() * 2});
  std::size_t next = cap;
  while (next / 2 >= floor) next /= 2;
  body.reserve(next);
}

size_t on_body(char* data, size_t size, size_t count, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->cancel->cancelled()) return 0;
  if (n > t->max_bytes - t->body.size()) {
    // Aborts the transfer here, chunked or not: nothing past the cap is kept.
    t->too_large = true;
    return 0;
  }
  try {
    curl_off_t length = -1;
    if (t->body.empty() &&
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) != CURLE_OK) {
      length = -1;
    }
    grow_for(t->body, t->body.size() + n, t->max_bytes, length);
    t->body.append(data, n);
  } catch (...) {
    t->too_large = true;
    return 0;
  }
  return n;
}

size_t on_header(char* data, size_t size, size_t count, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  try {
    std::string_view line(data, n);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    if (istarts_with(line, "HTTP/")) {
      // A new response (after a redirect or a 100 Continue): keep only the last one's headers.
      t->headers.clear();
    } else if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      if (!t->headers.empty()) {  // obsolete line folding
        t->headers.back().second += ' ';
        t->headers.back().second += trim(line);
      }
    } else if (const auto colon = line.find(':'); colon != std::string_view::npos && colon > 0) {
      t->headers.emplace_back(std::string(trim(line.substr(0, colon))),
                              std::string(trim(line.substr(colon + 1))));
    }
  } catch (...) {
    return 0;
  }
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept {
  const auto* t = static_cast<Transfer*>(user);
  return t->cancel->cancelled() ? 1 : 0;
}

struct SlistDeleter {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

void append_header(Slist& list, const std::string& line) {
  curl_slist* grown = curl_slist_append(list.get(), line.c_str());
  if (grown == nullptr) throw Error("curl: out of memory building request headers");
  (void)list.release();
  list.reset(grown);
}

bool has_line_break(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

// curl's error text, with the raw URL (which may hold secrets) replaced.
std::string curl_detail(CURLcode code, const char* errbuf, const std::string& raw_url,
                        const std::string& shown_url) {
  std::string text = errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(code));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!raw_url.empty()) {
    for (auto at = text.find(raw_url); at != std::string::npos;
         at = text.find(raw_url, at + shown_url.size())) {
      text.replace(at, raw_url.size(), shown_url);
    }
  }
  return "curl error " + std::to_string(static_cast<int>(code)) + ": " + text;
}

// An HttpError whose excerpt and headers hold none of the credentials the
// request sent: some APIs echo the key they rejected ("invalid api key ...").
// the HttpBaseError order (method, url), then the response:
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters)
[[noreturn]] void throw_http_error(long status, const std::string& method, const std::string& shown_url,
                                   const std::string& body, const Headers& headers,
                                   const std::vector<std::string>& secrets) {
  constexpr std::size_t kExcerpt = 1024;
  std::size_t longest = 0;
  for (const auto& secret : secrets) longest = std::max(longest, secret.size());
  // Redact before cutting, so that a secret across the cut is not left half-shown.
  std::string excerpt = redact_secrets(body.substr(0, kExcerpt + longest), secrets);
  if (excerpt.size() > kExcerpt) excerpt.resize(kExcerpt);
  Headers shown;
  shown.reserve(headers.size());
  for (const auto& [name, value] : headers) shown.emplace_back(name, redact_secrets(value, secrets));
  throw HttpError(static_cast<int>(status), method, shown_url, std::move(excerpt), std::move(shown));
}

// the request, where it is sent from, and its redacted url:
// NOLINTNEXTLINE(bugprone-easily-swappable-parameters)
void validate(const HttpRequest& request, const std::string& where, const std::string& shown_url) {
  if (!is_http_url(request.url))
    throw InvalidPrecondition(where + ": only http and https URLs are supported");
  if (request.method.empty() || has_line_break(request.method) ||
      request.method.find(' ') != std::string::npos) {
    throw InvalidPrecondition("invalid HTTP method for " + shown_url);
  }
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || has_line_break(name) || has_line_break(value) ||
        name.find(':') != std::string::npos) {
      // Name only: the value may be a secret.
      throw InvalidPrecondition(where + ": invalid request header '" + (has_line_break(name) ? "?" : name) +
                                "' (empty name, colon or line break)");
    }
  }
}

// "scheme://host:port" as libcurl parses the URL (the parser that picks the
// server, so no parser differential: url::origin_of is the paginators' view of
// a URL, this is the one curl connects to), default port spelled out; empty
// when the URL does not parse.
std::string curl_origin_of(const std::string& url) {
  const std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), &curl_url_cleanup);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return {};
  std::string out;
  for (const CURLUPart part : {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT}) {
    char* text = nullptr;
    if (curl_url_get(u.get(), part, &text, part == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0U) != CURLUE_OK)
      return {};
    out += text;
    curl_free(text);
    if (part == CURLUPART_SCHEME) out += "://";
    if (part == CURLUPART_HOST) out += ':';
  }
  return codec::ascii_lower(out);
}

// One request of a redirect chain. libcurl follows no redirect itself: it
// would send every custom header (X-Shopify-Access-Token...) to any origin.
struct Hop {
  std::string url;
  std::string method;
  std::string body;
  // False from the first hop off the request's origin on: no caller header.
  bool caller_headers = true;
};

Slist hop_headers(const Hop& hop, const HttpRequest& request, const CurlOptions& opt) {
  Slist headers;
  if (hop.caller_headers) {
    for (const auto& [name, value] : opt.default_headers) {
      if (!find_header(request.headers, name)) append_header(headers, name + ": " + value);
    }
    for (const auto& [name, value] : request.headers) {
      // "Name;" is curl's spelling of a header with an empty value.
      append_header(headers, value.empty() ? name + ";" : name + ": " + value);
    }
  }
  // No "Expect: 100-continue" round trip for request bodies.
  append_header(headers, "Expect:");
  return headers;
}

void set_method(CURL* easy, const Hop& hop) {
  const std::string& method = hop.method;
  if (method == "GET" && hop.body.empty()) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    if (method != "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!hop.body.empty() || (method != "GET" && method != "DELETE" && method != "OPTIONS")) {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(hop.body.size()));
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, hop.body.data());
    }
  }
}

void configure(CURL* easy, const Hop& hop, const CurlOptions& opt, Transfer& t, char* errbuf,
               curl_slist* headers, std::chrono::milliseconds timeout) {
  curl_easy_reset(easy);  // keeps the connection, DNS and TLS session caches
  curl_easy_setopt(easy, CURLOPT_URL, hop.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt.connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<std::int64_t>(1, timeout.count())));
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  // A declared Content-Length above the cap fails before any body is read
  // (CURLE_FILESIZE_EXCEEDED); on_body enforces the cap on the rest.
  curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(opt.max_response_bytes));
  if (opt.decompress) curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, opt.verify_tls ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, opt.verify_tls ? 2L : 0L);
  if (!opt.ca_bundle.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, opt.ca_bundle.c_str());
  if (!opt.ca_path.empty()) curl_easy_setopt(easy, CURLOPT_CAPATH, opt.ca_path.c_str());
  if (!opt.user_agent.empty()) curl_easy_setopt(easy, CURLOPT_USERAGENT, opt.user_agent.c_str());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &on_progress);
  curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &t);
  set_method(easy, hop);
}

struct Outcome {
  CURLcode code = CURLE_OK;
  bool done = false;
  bool multi_failed = false;
  long status = 0;
  std::string effective_url;
  // Where a 3xx points, resolved by libcurl; empty without a Location.
  std::string redirect_url;
};

// Runs the configured transfer through the handle's multi, so that a
// cancellation wakes the poll at once instead of waiting for curl's next
// progress call.
Outcome drive(Handle& handle, const CancellationToken& cancel, const std::string& where) {
  CURL* easy = handle.easy;
  CURLM* multi = handle.multi;
  const auto subscription = cancel.subscribe([waker = handle.waker] { waker->wake(); });
  if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
    cancel.unsubscribe(subscription);
    throw Error("curl: cannot start a transfer for " + where);
  }
  Outcome out;
  while (true) {
    int running = 0;
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      out.multi_failed = true;
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) {
        out.code = msg->data.result;
        out.done = true;
      }
    }
    if (out.done || cancel.cancelled()) break;
    // curl shortens the wait to its own timers; the waker ends it on cancel.
    if (curl_multi_poll(multi, nullptr, 0, 1000, nullptr) != CURLM_OK) {
      out.multi_failed = true;
      break;
    }
  }
  cancel.unsubscribe(subscription);
  curl_multi_remove_handle(multi, easy);  // aborts an unfinished transfer
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &out.status);
  const char* effective = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &effective) == CURLE_OK && effective != nullptr) {
    out.effective_url = effective;
  }
  const char* redirect = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK && redirect != nullptr) {
    out.redirect_url = redirect;
  }
  return out;
}

bool is_redirect(long status) {
  return status == 300 || status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// What the request sent, for the failure messages.
struct Sent {
  const HttpRequest& request;
  const CurlOptions& options;
  std::string where;
  std::string shown_url;
  std::chrono::milliseconds timeout;
};

[[noreturn]] void throw_too_large(const Sent& sent, const Transfer& t, CURLcode code) {
  const std::string limit = std::to_string(sent.options.max_response_bytes) + " bytes";
  std::string what = sent.where + ": response body larger than " + limit +
                     " (the limit, CurlOptions::max_response_bytes; the JSON page limit by default)";
  curl_off_t declared = -1;
  if (code == CURLE_FILESIZE_EXCEEDED &&
      curl_easy_getinfo(t.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &declared) == CURLE_OK && declared > 0) {
    what += ": its Content-Length is " + std::to_string(declared) + ", refused before reading the body";
  } else {
    what += ": cut off while it streamed";
  }
  throw ResponseTooLarge(what + "; not retried, the same response would be as large again", sent.shown_url,
                         sent.options.max_response_bytes);
}

// A transfer that did not complete: the curl code decides first (a timeout
// after a 200 status line is a timeout).
[[noreturn]] void throw_failure(const Sent& sent, const Outcome& out, const Transfer& t, const char* errbuf,
                                const Hop& hop, const CancellationToken& cancel) {
  const std::string& method = sent.request.method;
  if (cancel.cancelled()) throw Cancelled(sent.where + ": cancelled");
  if (out.multi_failed) {
    throw HttpConnectionError(sent.where + ": curl multi interface failure", method, sent.shown_url);
  }
  const std::string detail = curl_detail(out.code, errbuf, hop.url, redact_url(hop.url));
  switch (out.code) {
    case CURLE_OPERATION_TIMEDOUT:
      throw HttpTimeout(sent.where + ": timed out (limit " + std::to_string(sent.timeout.count()) +
                            " ms, connect " + std::to_string(sent.options.connect_timeout.count()) + " ms; " +
                            detail + ")",
                        method, sent.shown_url);
    case CURLE_FILESIZE_EXCEEDED:
      throw_too_large(sent, t, out.code);
    case CURLE_WRITE_ERROR:
      if (t.too_large) throw_too_large(sent, t, out.code);
      break;
    case CURLE_URL_MALFORMAT:
      throw InvalidPrecondition(sent.where + ": malformed URL (" + detail + ")");
    default:
      break;
  }
  // Refused, DNS, reset, TLS, a cut-off body, bad content encoding...
  throw HttpConnectionError(sent.where + ": " + detail, method, sent.shown_url);
}

// Everything sent as a credential, to cut out of what an error shows.
std::vector<std::string> sent_secrets(const Sent& sent) {
  HttpRequest all = sent.request;
  for (const auto& [name, value] : sent.options.default_headers) {
    if (!find_header(sent.request.headers, name)) all.headers.emplace_back(name, value);
  }
  return request_secrets(all);
}

// The hop a 3xx leads to: the method rules browsers and libcurl apply, and
// the origin rule (see CrossOriginRedirect).
Hop next_hop(const Sent& sent, const Hop& hop, long status, const std::string& target) {
  if (!is_http_url(target))
    throw InvalidPrecondition(sent.where + ": redirect to a URL that is not http or https");
  Hop next = hop;
  next.url = target;
  if ((status == 303 && hop.method != "HEAD") || ((status == 301 || status == 302) && hop.method == "POST")) {
    next.method = "GET";
    next.body.clear();
  }
  const std::string from = curl_origin_of(sent.request.url);
  if (!from.empty() && curl_origin_of(target) == from) return next;
  const auto secrets = sent_secrets(sent);
  const auto refuse = [&](const std::string& why) {
    throw InvariantViolation(sent.where + ": redirect (" + std::to_string(status) + ") to " +
                             redact_secrets(redact_url(target), secrets) + ", on another origin, " + why +
                             "; not following it");
  };
  if (sent.options.cross_origin_redirects == CrossOriginRedirect::refuse) {
    refuse("refused by CrossOriginRedirect::refuse");
  }
  if (redact_secrets(target, secrets) != target) refuse("would carry a credential of the request in its URL");
  if (!next.body.empty()) refuse("would resend the request body, which may hold a credential");
  next.caller_headers = false;
  return next;
}

// One hop of the chain, run to completion: a failed transfer throws here.
struct HopResult {
  Transfer t;
  Outcome out;
};

HopResult run_hop(Handle& handle, const Sent& sent, const Hop& hop,
                  std::chrono::steady_clock::time_point deadline, const CancellationToken& cancel) {
  HopResult hr;
  hr.t.easy = handle.easy;
  hr.t.max_bytes = sent.options.max_response_bytes;
  hr.t.cancel = &cancel;
  std::array<char, CURL_ERROR_SIZE> errbuf{};
  const Slist headers = hop_headers(hop, sent.request, sent.options);
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  configure(handle.easy, hop, sent.options, hr.t, errbuf.data(), headers.get(), left);
  hr.out = drive(handle, cancel, sent.where);
  if (!hr.out.done || hr.out.code != CURLE_OK) throw_failure(sent, hr.out, hr.t, errbuf.data(), hop, cancel);
  return hr;
}

[[noreturn]] void throw_status(const Sent& sent, const HopResult& hr) {
  throw_http_error(hr.out.status, sent.request.method, sent.shown_url, hr.t.body, hr.t.headers,
                   sent_secrets(sent));
}

HttpResponse to_response(HopResult&& hr, const Hop& hop) {
  HttpResponse response;
  response.status = static_cast<int>(hr.out.status);
  response.headers = std::move(hr.t.headers);
  response.body = std::move(hr.t.body);
  response.url = hr.out.effective_url.empty() ? hop.url : hr.out.effective_url;
  return response;
}

}  // namespace

struct CurlHttpClient::Impl {
  CurlOptions options;
  mutable std::mutex mutex;
  std::vector<std::unique_ptr<Handle>> idle;

  std::unique_ptr<Handle> checkout() {
    {
      std::lock_guard lock(mutex);
      if (!idle.empty()) {
        auto handle = std::move(idle.back());
        idle.pop_back();
        return handle;
      }
    }
    return std::make_unique<Handle>();
  }

  void checkin(std::unique_ptr<Handle> handle) {
    std::lock_guard lock(mutex);
    if (idle.size() < options.max_idle_handles) idle.push_back(std::move(handle));
  }
};

CurlHttpClient::CurlHttpClient(CurlOptions options) : impl_(std::make_unique<Impl>()) {
  global_init();
  impl_->options = std::move(options);
}

CurlHttpClient::~CurlHttpClient() = default;

const CurlOptions& CurlHttpClient::options() const noexcept {
  return impl_->options;
}

std::size_t CurlHttpClient::idle_handles() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->idle.size();
}

HttpResponse CurlHttpClient::send(const HttpRequest& request, const CancellationToken& cancel) {
  const CurlOptions& opt = impl_->options;
  const auto timeout = request.timeout.count() > 0 ? request.timeout : opt.timeout;
  const Sent sent{request, opt, request.method + " " + redact_url(request.url), redact_url(request.url),
                  timeout};
  validate(request, sent.where, sent.shown_url);
  cancel.throw_if_cancelled();

  std::unique_ptr<Handle> handle = impl_->checkout();
  struct Checkin {
    Impl& impl;
    std::unique_ptr<Handle>& handle;
    ~Checkin() { impl.checkin(std::move(handle)); }
  } checkin{*impl_, handle};

  // The timeout covers the whole chain of redirects.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Hop hop{request.url, request.method, request.body, true};
  for (int redirects = 0;; ++redirects) {
    HopResult hr = run_hop(*handle, sent, hop, deadline, cancel);
    if (opt.max_redirects > 0 && is_redirect(hr.out.status) && !hr.out.redirect_url.empty()) {
      if (redirects >= opt.max_redirects) throw_status(sent, hr);
      hop = next_hop(sent, hop, hr.out.status, hr.out.redirect_url);
      continue;
    }
    if (request.raise_for_status && hr.out.status >= 400) throw_status(sent, hr);
    return to_response(std::move(hr), hop);
  }
}

std::shared_ptr<CurlHttpClient> make_curl_client(CurlOptions options) {
  return std::make_shared<CurlHttpClient>(std::move(options));
}

}  // namespace webhookdb::curl
