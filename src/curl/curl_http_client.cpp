#include "webhookdb/curl/curl_http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <mutex>
#include <string_view>
#include <vector>

#include "webhookdb/http_auth.hpp"

namespace webhookdb::curl {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw Error("curl_global_init failed");
  });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

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

size_t on_body(char* data, size_t size, size_t count, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->cancel->cancelled()) return 0;
  if (t->body.size() + n > t->max_bytes) {
    t->too_large = true;
    return 0;
  }
  try {
    if (t->body.empty()) {
      // One allocation for the whole body when its length is announced.
      curl_off_t length = -1;
      if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK && length > 0) {
        t->body.reserve(std::min({static_cast<std::size_t>(length), t->max_bytes, std::size_t{64} << 20U}));
      }
    }
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
      t->headers.emplace_back(std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
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

bool has_line_break(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

// curl's error text, with the raw URL (which may hold secrets) replaced.
std::string curl_detail(CURLcode code, const char* errbuf, const std::string& raw_url, const std::string& shown_url) {
  std::string text = errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(code));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!raw_url.empty()) {
    for (auto at = text.find(raw_url); at != std::string::npos; at = text.find(raw_url, at + shown_url.size())) {
      text.replace(at, raw_url.size(), shown_url);
    }
  }
  return "curl error " + std::to_string(static_cast<int>(code)) + ": " + text;
}

// An HttpError whose excerpt and headers hold none of the credentials the
// request sent: some APIs echo the key they rejected ("invalid api key ...").
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

const CurlOptions& CurlHttpClient::options() const noexcept { return impl_->options; }

std::size_t CurlHttpClient::idle_handles() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->idle.size();
}

HttpResponse CurlHttpClient::send(const HttpRequest& request, const CancellationToken& cancel) {
  const CurlOptions& opt = impl_->options;
  const std::string shown_url = redact_url(request.url);
  const std::string where = request.method + " " + shown_url;

  if (!istarts_with(request.url, "http://") && !istarts_with(request.url, "https://")) {
    throw InvalidPrecondition(where + ": only http and https URLs are supported");
  }
  if (request.method.empty() || has_line_break(request.method) ||
      request.method.find(' ') != std::string::npos) {
    throw InvalidPrecondition("invalid HTTP method for " + shown_url);
  }
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || has_line_break(name) || has_line_break(value) || name.find(':') != std::string::npos) {
      // Name only: the value may be a secret.
      throw InvalidPrecondition(where + ": invalid request header '" + (has_line_break(name) ? "?" : name) +
                                "' (empty name, colon or line break)");
    }
  }
  cancel.throw_if_cancelled();

  std::unique_ptr<Handle> handle = impl_->checkout();
  struct Checkin {
    Impl& impl;
    std::unique_ptr<Handle>& handle;
    ~Checkin() { impl.checkin(std::move(handle)); }
  } checkin{*impl_, handle};

  CURL* easy = handle->easy;
  curl_easy_reset(easy);  // keeps the connection, DNS and TLS session caches

  Transfer t;
  t.easy = easy;
  t.max_bytes = opt.max_response_bytes;
  t.cancel = &cancel;
  std::array<char, CURL_ERROR_SIZE> errbuf{};

  Slist headers;
  for (const auto& [name, value] : opt.default_headers) {
    if (!find_header(request.headers, name)) append_header(headers, name + ": " + value);
  }
  for (const auto& [name, value] : request.headers) {
    // "Name;" is curl's spelling of a header with an empty value.
    append_header(headers, value.empty() ? name + ";" : name + ": " + value);
  }
  // No "Expect: 100-continue" round trip for request bodies.
  append_header(headers, "Expect:");

  const auto timeout = request.timeout.count() > 0 ? request.timeout : opt.timeout;
  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf.data());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt.connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, opt.max_redirects > 0 ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, static_cast<long>(std::max(0, opt.max_redirects)));
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

  const std::string& method = request.method;
  if (method == "GET" && request.body.empty()) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    if (method != "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!request.body.empty() || (method != "GET" && method != "DELETE" && method != "OPTIONS")) {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    }
  }

  // Drive the transfer through the handle's multi so that a cancellation
  // wakes the poll at once instead of waiting for curl's next progress call.
  CURLM* multi = handle->multi;
  const auto subscription = cancel.subscribe([waker = handle->waker] { waker->wake(); });
  if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
    cancel.unsubscribe(subscription);
    throw Error("curl: cannot start a transfer for " + where);
  }
  bool done = false;
  bool multi_failed = false;
  CURLcode code = CURLE_OK;
  while (true) {
    int running = 0;
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      multi_failed = true;
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) {
        code = msg->data.result;
        done = true;
      }
    }
    if (done || cancel.cancelled()) break;
    // curl shortens the wait to its own timers; the waker ends it on cancel.
    if (curl_multi_poll(multi, nullptr, 0, 1000, nullptr) != CURLM_OK) {
      multi_failed = true;
      break;
    }
  }
  cancel.unsubscribe(subscription);
  curl_multi_remove_handle(multi, easy);  // aborts an unfinished transfer

  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  const char* effective = nullptr;
  curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &effective);

  // Everything sent as a credential, to cut out of what an error shows.
  const auto secrets = [&] {
    HttpRequest sent = request;
    for (const auto& [name, value] : opt.default_headers) {
      if (!find_header(request.headers, name)) sent.headers.emplace_back(name, value);
    }
    return request_secrets(sent);
  };
  if (done && code == CURLE_OK) {
    if (request.raise_for_status && status >= 400) {
      throw_http_error(status, method, shown_url, t.body, t.headers, secrets());
    }
    HttpResponse response;
    response.status = static_cast<int>(status);
    response.headers = std::move(t.headers);
    response.body = std::move(t.body);
    response.url = effective != nullptr ? effective : request.url;
    return response;
  }
  if (cancel.cancelled()) throw Cancelled(where + ": cancelled");
  if (multi_failed) throw HttpConnectionError(where + ": curl multi interface failure", method, shown_url);

  // The curl code decides first: a timeout after a 200 status line is a timeout.
  const std::string detail = curl_detail(code, errbuf.data(), request.url, shown_url);
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      throw HttpTimeout(where + ": timed out (limit " + std::to_string(timeout.count()) + " ms, connect " +
                            std::to_string(opt.connect_timeout.count()) + " ms; " + detail + ")",
                        method, shown_url);
    case CURLE_TOO_MANY_REDIRECTS:
      if (status >= 300) throw_http_error(status, method, shown_url, t.body, t.headers, secrets());
      break;
    case CURLE_WRITE_ERROR:
      if (t.too_large) {
        throw HttpConnectionError(where + ": response body larger than " + std::to_string(opt.max_response_bytes) +
                                      " bytes",
                                  method, shown_url);
      }
      break;
    case CURLE_URL_MALFORMAT:
      throw InvalidPrecondition(where + ": malformed URL (" + detail + ")");
    default:
      break;
  }
  // Refused, DNS, reset, TLS, a cut-off body, bad content encoding...
  throw HttpConnectionError(where + ": " + detail, method, shown_url);
}

std::shared_ptr<CurlHttpClient> make_curl_client(CurlOptions options) {
  return std::make_shared<CurlHttpClient>(std::move(options));
}

}  // namespace webhookdb::curl
