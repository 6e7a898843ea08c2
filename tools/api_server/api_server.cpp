#include "api_server/api_server.hpp"

#include "api_server/mutations.hpp"
#include "api_server/page_links.hpp"
#include "api_server/shapes.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace webhookdb::tools {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Request = http::request<http::string_body>;
using ExtraHeaders = std::vector<std::pair<std::string, std::string>>;

namespace {

constexpr std::array<std::string_view, kFaultKinds> kFaultNames = {
    "none", "500", "502", "503", "429", "slow", "drop", "reset", "truncated", "empty", "wrong_type"};

std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30U)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27U)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31U);
}

std::string_view reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 64> buf{};
  const auto n = std::strftime(buf.data(), buf.size(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf.data(), n);
}

std::uint32_t crc32(std::string_view data) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? 0xEDB88320U ^ (c >> 1U) : c >> 1U;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFU;
  for (const char ch : data) c = table[(c ^ static_cast<unsigned char>(ch)) & 0xFFU] ^ (c >> 8U);
  return c ^ 0xFFFFFFFFU;
}

void put_le32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8U * static_cast<unsigned>(i))) & 0xFFU);
}

// A valid gzip member made of stored (uncompressed) deflate blocks: real
// decoding work for the client without a zlib dependency here.
std::string gzip_stored(std::string_view data) {
  std::string out = {'\x1f', '\x8b', '\x08', '\0', '\0', '\0', '\0', '\0', '\0', '\xff'};
  out.reserve(data.size() + data.size() / 65535 * 5 + 32);
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(65535, data.size() - pos);
    const bool last = pos + n == data.size();
    const auto len = static_cast<std::uint16_t>(n);
    const auto nlen = static_cast<std::uint16_t>(~len);
    out += static_cast<char>(last ? 1 : 0);
    out += static_cast<char>(len & 0xFFU);
    out += static_cast<char>(len >> 8U);
    out += static_cast<char>(nlen & 0xFFU);
    out += static_cast<char>(nlen >> 8U);
    out.append(data.substr(pos, n));
    pos += n;
  } while (pos < data.size());
  put_le32(out, crc32(data));
  put_le32(out, static_cast<std::uint32_t>(data.size()));
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct Target {
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;

  [[nodiscard]] std::optional<std::string> param(std::string_view name) const {
    for (const auto& [k, v] : query) {
      if (k == name) return v;
    }
    return std::nullopt;
  }
};

Target parse_target(std::string_view target) {
  Target t;
  const auto q = target.find('?');
  t.path = decode(target.substr(0, q));
  if (q == std::string_view::npos) return t;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view part = rest.substr(0, amp);
    if (!part.empty()) {
      const auto eq = part.find('=');
      t.query.emplace_back(decode(part.substr(0, eq)),
                           eq == std::string_view::npos ? std::string() : decode(part.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return t;
}

// Bad input in a request: becomes a 400.
struct BadRequest {
  std::string message;
};

std::optional<long long> number_param(const Target& t, std::string_view name) {
  const auto v = t.param(name);
  if (!v || v->empty()) return std::nullopt;
  long long out = 0;
  const auto* end = v->data() + v->size();
  const auto [ptr, ec] = std::from_chars(v->data(), end, out);
  if (ec != std::errc{} || ptr != end || out < 0) throw BadRequest{"parameter " + std::string(name) + " must be a non-negative integer"};
  return out;
}

std::string error_json(std::string_view type, std::string_view message) {
  return nlohmann::json{{"error", {{"type", type}, {"message", message}}}}.dump();
}

// What a data path answers before any fault is applied.
struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  ExtraHeaders headers;
  std::size_t items = 0;
  bool data = false;  // a data page (faults apply, counted as a page)
};

std::string items_array(const Dataset::Slice& s) { return "[" + s.items + "]"; }

}  // namespace

std::string_view to_string(Fault fault) noexcept { return kFaultNames[static_cast<std::size_t>(fault)]; }

std::optional<Fault> parse_fault(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kFaultNames.size(); ++i) {
    if (kFaultNames[i] == name) return static_cast<Fault>(i);
  }
  if (name == "http500") return Fault::http500;
  if (name == "http502") return Fault::http502;
  if (name == "http503") return Fault::http503;
  if (name == "http429") return Fault::http429;
  return std::nullopt;
}

double FaultRates::total() const {
  double t = 0;
  for (std::size_t i = 1; i < kFaultKinds; ++i) t += rate[i];
  return t;
}

FaultRates FaultRates::spread(double total) {
  std::vector<Fault> kinds;
  for (std::size_t i = 1; i < kFaultKinds; ++i) kinds.push_back(static_cast<Fault>(i));
  return spread(total, kinds);
}

FaultRates FaultRates::spread(double total, const std::vector<Fault>& kinds) {
  FaultRates r;
  if (kinds.empty()) return r;
  for (const auto f : kinds) r[f] = total / static_cast<double>(kinds.size());
  return r;
}

std::uint64_t ApiServerStats::faults_total() const {
  std::uint64_t t = 0;
  for (std::size_t i = 1; i < kFaultKinds; ++i) t += faults[i];
  return t;
}

nlohmann::json ApiServerStats::to_json() const {
  nlohmann::json by_kind = nlohmann::json::object();
  for (std::size_t i = 1; i < kFaultKinds; ++i) by_kind[std::string(kFaultNames[i])] = faults[i];
  return {{"requests", requests}, {"data_requests", data_requests}, {"connections", connections},
          {"open_connections", open_connections}, {"pages", pages}, {"items", items}, {"bytes", bytes},
          {"faults", faults_total()}, {"faults_by_kind", by_kind}};
}

// One response, possibly with a fault: delay, then head + body[0, split),
// then (drop: close) or (stall, rest), then close or read the next request.
struct Plan {
  std::string head;
  std::string body;
  std::chrono::milliseconds delay{0};
  std::size_t split = std::string::npos;
  std::chrono::milliseconds stall{0};
  bool drop = false;
  bool reset = false;
  bool close = false;
};

namespace detail {

struct ServerState {
  explicit ServerState(ApiServerOptions o)
      : options(std::move(o)),
        dataset(options.objects, options.seed, options.duplicates, options.base_time),
        rates(options.faults),
        latency(options.latency) {}

  ApiServerOptions options;
  Dataset dataset;

  std::atomic<std::uint64_t> requests{0}, data_requests{0}, connections{0}, open_connections{0}, pages{0}, items{0},
      bytes{0}, draws{0};
  std::array<std::atomic<std::uint64_t>, kFaultKinds> faults{};

  mutable std::mutex config_mutex;
  FaultRates rates;
  std::deque<Fault> injected;
  std::chrono::milliseconds latency;

  std::unique_ptr<OAuthIssuer> oauth = options.oauth.enabled ? std::make_unique<OAuthIssuer>(options.oauth) : nullptr;
  std::unique_ptr<QuotaEnforcer> quota = options.quota.limit > 0 ? std::make_unique<QuotaEnforcer>(options.quota) : nullptr;

  std::mutex lifecycle_mutex;
  bool started = false;
  bool stopped = false;
  std::uint16_t port = 0;
  // Destroyed in stop(): I/O objects first, then the context (which destroys
  // the sessions its pending handlers own).
  std::unique_ptr<asio::io_context> ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::steady_timer> accept_retry;
  std::vector<std::thread> threads;

  void accept();
  Plan respond(const Request& req);
  Fault choose_fault(const Request& req);
  Reply data_reply(const Target& t, const std::string& host);
  Reply helper_reply(const Request& req, const Target& t, const std::string& host, Plan& plan);
  std::string retry_after_value(const Request& req) const;
};

}  // namespace detail

using detail::ServerState;

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ServerState& server)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), server_(server) {
    ++server_.open_connections;
  }
  ~Session() { --server_.open_connections; }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() { read(); }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(64U * 1024U);
    parser_->body_limit(1024U * 1024U);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      close();  // end of stream, reset, or a malformed request
      return;
    }
    plan_ = server_.respond(parser_->get());
    if (plan_.delay.count() > 0) {
      timer_.expires_after(plan_.delay);
      timer_.async_wait([self = shared_from_this()](beast::error_code e) {
        if (!e) self->send_first();
      });
    } else {
      send_first();
    }
  }

  void send_first() {
    if (plan_.reset) {
      beast::error_code ignored;
      socket_.set_option(asio::socket_base::linger(true, 0), ignored);
      socket_.close(ignored);
      return;
    }
    const std::size_t first = std::min(plan_.split, plan_.body.size());
    const std::array<asio::const_buffer, 2> buffers{asio::buffer(plan_.head), asio::buffer(plan_.body.data(), first)};
    asio::async_write(socket_, buffers, [self = shared_from_this()](beast::error_code e, std::size_t n) {
      self->server_.bytes += n;
      if (e) {
        self->close();
        return;
      }
      self->after_first();
    });
  }

  void after_first() {
    if (plan_.split >= plan_.body.size()) {
      finish();
      return;
    }
    if (plan_.drop) {
      close();
      return;
    }
    timer_.expires_after(plan_.stall);
    timer_.async_wait([self = shared_from_this()](beast::error_code e) {
      if (e) return;
      auto& p = self->plan_;
      asio::async_write(self->socket_, asio::buffer(p.body.data() + p.split, p.body.size() - p.split),
                        [self](beast::error_code e2, std::size_t n) {
                          self->server_.bytes += n;
                          if (e2) {
                            self->close();
                            return;
                          }
                          self->finish();
                        });
    });
  }

  void finish() {
    if (plan_.close) {
      beast::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_send, ignored);
      close();
      return;
    }
    read();
  }

  void close() {
    beast::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Plan plan_;
  ServerState& server_;
};

std::string make_head(int status, std::string_view content_type, std::size_t length, const ExtraHeaders& extra,
                      bool close) {
  std::string head;
  head.reserve(256);
  head += "HTTP/1.1 ";
  head += std::to_string(status);
  head += ' ';
  head += reason(status);
  head += "\r\nServer: webhookdb-api-server\r\n";
  if (!content_type.empty()) {
    head += "Content-Type: ";
    head += content_type;
    head += "\r\n";
  }
  head += "Content-Length: ";
  head += std::to_string(length);
  head += "\r\n";
  if (close) head += "Connection: close\r\n";
  for (const auto& [k, v] : extra) {
    head += k;
    head += ": ";
    head += v;
    head += "\r\n";
  }
  head += "\r\n";
  return head;
}

bool is_data_path(std::string_view path) {
  return path == "/v1/charges" || path == shapes::kStripeChargesPath || shapes::is_github_issues_path(path) || path == "/cursor" || path == "/link" || path == "/pages" || path == "/offset" ||
         path == "/nexturl" || path.rfind("/broken/", 0) == 0;
}

}  // namespace

void ServerState::accept() {
  acceptor->async_accept(asio::make_strand(*ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (ec) {
      // Out of descriptors or similar: try again shortly instead of spinning.
      accept_retry->expires_after(std::chrono::milliseconds(10));
      accept_retry->async_wait([this](beast::error_code e) {
        if (!e) accept();
      });
      return;
    }
    ++connections;
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::make_shared<Session>(std::move(socket), *this)->start();
    accept();
  });
}

Fault ServerState::choose_fault(const Request& req) {
  if (const auto it = req.find("X-Fault"); it != req.end()) {
    if (auto f = parse_fault(std::string_view(it->value().data(), it->value().size()))) return *f;
  }
  std::lock_guard lock(config_mutex);
  if (!injected.empty()) {
    const Fault f = injected.front();
    injected.pop_front();
    return f;
  }
  const double total = rates.total();
  if (total <= 0) return Fault::none;
  const std::uint64_t draw = mix(options.seed * 0x2545F4914F6CDD1DULL + draws.fetch_add(1));
  double x = static_cast<double>(draw >> 11U) * 0x1.0p-53;
  for (std::size_t i = 1; i < kFaultKinds; ++i) {
    if (x < rates.rate[i]) return static_cast<Fault>(i);
    x -= rates.rate[i];
  }
  return Fault::none;
}

std::string ServerState::retry_after_value(const Request& req) const {
  if (const auto it = req.find("X-Retry-After"); it != req.end()) return std::string(it->value());
  if (options.retry_after_date) {
    return http_date(std::time(nullptr) + options.retry_after_seconds);
  }
  return std::to_string(options.retry_after_seconds);
}

Reply ServerState::data_reply(const Target& t, const std::string& host) {
  Reply r;
  r.data = true;
  if (t.path == shapes::kStripeChargesPath || shapes::is_github_issues_path(t.path)) {
    shapes::Page page;
    try {
      page = t.path == shapes::kStripeChargesPath ? shapes::stripe_charges(dataset, t.query)
                                                  : shapes::github_issues(dataset, t.query, "http://" + host);
    } catch (const shapes::BadParameter& e) {
      throw BadRequest{e.what()};
    }
    r.status = page.status;
    r.data = page.status == 200;
    r.body = std::move(page.body);
    r.headers = std::move(page.headers);
    r.items = page.items;
    return r;
  }
  const auto since = number_param(t, "updated_since");
  const std::optional<std::int64_t> since64 =
      since ? std::optional<std::int64_t>(static_cast<std::int64_t>(*since)) : std::nullopt;
  const std::string limit_name = t.path == "/pages" ? "per_page" : "limit";
  const auto limit = static_cast<std::size_t>(std::clamp<long long>(
      number_param(t, limit_name).value_or(static_cast<long long>(options.default_limit)), 1,
      static_cast<long long>(options.max_limit)));
  const std::string base = "http://" + host;
  auto follow_url = [&](std::string_view path, std::size_t after) {
    std::string url = base + std::string(path) + "?after=" + std::to_string(after) + "&limit=" + std::to_string(limit);
    if (since) url += "&updated_since=" + std::to_string(*since);
    return url;
  };

  if (t.path == "/v1/charges") {
    std::size_t position = 0;
    if (auto after = t.param("starting_after"); after && !after->empty()) {
      const auto index = dataset.index_of(*after);
      if (!index) {
        r.status = 400;
        r.data = false;
        r.body = error_json("invalid_request_error", "No such charge: '" + *after + "'");
        return r;
      }
      position = *index + 1;
    }
    const auto s = dataset.scan(false, position, limit, since64);
    r.items = s.count;
    r.body = R"({"object":"list","url":"/v1/charges","has_more":)" + std::string(s.more ? "true" : "false") +
             R"(,"data":)" + items_array(s) + "}";
    return r;
  }
  if (t.path == "/cursor") {
    std::size_t position = 0;
    if (auto c = t.param("cursor"); c && !c->empty()) {
      long long pos = -1;
      if (c->size() > 1 && (*c)[0] == 'c') {
        const auto* end = c->data() + c->size();
        const auto [ptr, ec] = std::from_chars(c->data() + 1, end, pos);
        if (ec != std::errc{} || ptr != end) pos = -1;
      }
      if (pos < 0) throw BadRequest{"malformed cursor"};
      position = static_cast<std::size_t>(pos);
    }
    const auto s = dataset.scan(true, position, limit, since64);
    r.items = s.count;
    r.body = R"({"data":)" + items_array(s) + R"(,"next_cursor":)" +
             (s.more ? "\"c" + std::to_string(s.next) + "\"" : std::string("null")) + "}";
    return r;
  }
  if (t.path == "/link") {
    const auto after = static_cast<std::size_t>(number_param(t, "after").value_or(0));
    const auto s = dataset.scan(true, after, limit, since64);
    r.items = s.count;
    r.body = items_array(s);
    std::string link = "<" + follow_url("/link", 0) + ">; rel=\"first\"";
    if (s.more) link += ", <" + follow_url("/link", s.next) + ">; rel=\"next\"";
    r.headers.emplace_back("Link", link);
    return r;
  }
  if (t.path == "/pages") {
    const auto page = std::max<long long>(1, number_param(t, "page").value_or(1));
    std::size_t total = 0;
    const auto s = dataset.nth(true, static_cast<std::size_t>(page - 1) * limit, limit, since64, total);
    r.items = s.count;
    // Appended into one reserved string: the page's items are copied once.
    r.body.reserve(s.items.size() + 128);
    r.body += R"({"data":[)";
    r.body += s.items;
    r.body += R"(],"page":)" + std::to_string(page) + R"(,"per_page":)" + std::to_string(limit) +
              R"(,"total_pages":)" + std::to_string((total + limit - 1) / limit) + R"(,"total":)" +
              std::to_string(total) + "}";
    const auto last = static_cast<long long>((total + limit - 1) / limit);
    if (auto links = page_links(base + "/pages", t.query, page, last); !links.empty()) {
      r.headers.emplace_back("Link", std::move(links));
    }
    return r;
  }
  if (t.path == "/offset") {
    const auto offset = static_cast<std::size_t>(number_param(t, "offset").value_or(0));
    std::size_t total = 0;
    const auto s = dataset.nth(true, offset, limit, since64, total);
    r.items = s.count;
    r.body = R"({"data":)" + items_array(s) + R"(,"offset":)" + std::to_string(offset) + R"(,"limit":)" +
             std::to_string(limit) + R"(,"total":)" + std::to_string(total) + "}";
    return r;
  }
  if (t.path == "/nexturl") {
    const auto after = static_cast<std::size_t>(number_param(t, "after").value_or(0));
    const auto s = dataset.scan(true, after, limit, since64);
    r.items = s.count;
    r.body = R"({"data":)" + items_array(s) + R"(,"next":)" +
             (s.more ? "\"" + follow_url("/nexturl", s.next) + "\"" : std::string("null")) + "}";
    return r;
  }
  // Broken pagination: each page is new, but the tokens come back around.
  if (t.path == "/broken/cursor") {
    const std::string c = t.param("cursor").value_or("");
    const std::size_t position = c.empty() ? 0 : (c == "a" ? 2 : 4);
    const auto s = dataset.scan(false, position, 2, std::nullopt);
    r.items = s.count;
    r.body = R"({"data":)" + items_array(s) + R"(,"next_cursor":")" + (c == "a" ? "b" : "a") + "\"}";
    return r;
  }
  if (t.path == "/broken/link") {
    const auto page = number_param(t, "page").value_or(1);
    const auto s = dataset.scan(false, page == 2 ? 2 : 0, 2, std::nullopt);
    r.items = s.count;
    r.body = items_array(s);
    r.headers.emplace_back("Link", "<" + base + "/broken/link?page=" + (page == 2 ? "1" : "2") + ">; rel=\"next\"");
    return r;
  }
  if (t.path == "/broken/pages") {
    // Ignores ?page: every page is the first one.
    const auto s = dataset.scan(false, 0, limit, std::nullopt);
    r.items = s.count;
    r.body = R"({"data":)" + items_array(s) + "}";
    return r;
  }
  r.status = 404;
  r.data = false;
  r.body = error_json("invalid_request_error", "no such path");
  return r;
}

Reply ServerState::helper_reply(const Request& req, const Target& t, const std::string& host, Plan& plan) {
  Reply r;
  const std::string& path = t.path;
  if (path.rfind("/status/", 0) == 0) {
    long long code = 0;
    const std::string digits = path.substr(8);
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), code);
    if (ec != std::errc{} || ptr != digits.data() + digits.size() || code < 200 || code > 599) {
      throw BadRequest{"status must be 200..599"};
    }
    r.status = static_cast<int>(code);
    r.content_type = "text/plain";
    r.body = "status " + std::to_string(code) + " body: ";
    while (r.body.size() < 2048) r.body += "lorem ipsum dolor sit amet ";
    r.body.resize(2048);
    r.headers.emplace_back("Set-Cookie", "session=server-side-cookie-secret; HttpOnly");
    r.headers.emplace_back("X-Request-Id", "req_" + std::to_string(requests.load()));
    if (code == 429 || code == 503) r.headers.emplace_back("Retry-After", retry_after_value(req));
    return r;
  }
  if (path.rfind("/redirect/", 0) == 0) {
    long long n = 0;
    const std::string digits = path.substr(10);
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc{} || ptr != digits.data() + digits.size()) throw BadRequest{"redirect count must be a number"};
    if (n > 0) {
      r.status = 302;
      r.content_type = "text/plain";
      r.body = "redirecting";
      r.headers.emplace_back("Location", "/redirect/" + std::to_string(n - 1));
    } else {
      r.body = R"({"redirected":true})";
    }
    return r;
  }
  if (path == "/delay") {
    const auto ms = std::min<long long>(60'000, number_param(t, "ms").value_or(0));
    plan.delay = std::chrono::milliseconds(ms);
    r.body = R"({"delayed_ms":)" + std::to_string(ms) + "}";
    return r;
  }
  if (path == "/echo") {
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& field : req) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      const std::string value(field.value());
      if (headers.contains(name)) {
        headers[name] = headers[name].get<std::string>() + ", " + value;
      } else {
        headers[name] = value;
      }
    }
    r.body = nlohmann::json{{"method", std::string(req.method_string())},
                            {"target", std::string(req.target())},
                            {"headers", headers},
                            {"body", req.body()}}
                 .dump();
    return r;
  }
  if (path == "/headers") {
    r.body = R"({"ok":true})";
    r.headers = {{"X-Multi", "one"},
                 {"X-Multi", "two"},
                 {"x-MiXeD-CaSe", "yes"},
                 {"Link", "<http://" + host + "/a>; rel=\"prev\""},
                 {"Link", "<http://" + host + "/b>; rel=\"next\""}};
    return r;
  }
  if (path == "/health") {
    r.body = R"({"ok":true})";
    return r;
  }
  if (path == "/admin/stats") {
    ApiServerStats s;
    s.requests = requests;
    s.data_requests = data_requests;
    s.connections = connections;
    s.open_connections = open_connections;
    s.pages = pages;
    s.items = items;
    s.bytes = bytes;
    for (std::size_t i = 0; i < kFaultKinds; ++i) s.faults[i] = faults[i];
    r.body = s.to_json().dump();
    return r;
  }
  if (auto m = mutations::handle(dataset, path, [&t](std::string_view name) { return t.param(name); })) {
    r.status = m->status;
    r.body = std::move(m->body);
    return r;
  }
  if (path == "/admin/touch") {
    const auto every = static_cast<std::size_t>(std::max<long long>(1, number_param(t, "every").value_or(10)));
    const auto offset = static_cast<std::size_t>(number_param(t, "offset").value_or(0));
    const auto updated = number_param(t, "updated").value_or(static_cast<long long>(std::time(nullptr)));
    std::vector<std::size_t> indexes;
    for (std::size_t i = offset; i < dataset.size(); i += every) indexes.push_back(i);
    dataset.touch(indexes, static_cast<std::int64_t>(updated));
    r.body = nlohmann::json{{"touched", indexes.size()}, {"updated", updated}}.dump();
    return r;
  }
  if (path == "/admin/faults") {
    std::lock_guard lock(config_mutex);
    if (const auto v = t.param("rate")) rates = FaultRates::spread(std::stod(*v));
    for (std::size_t i = 1; i < kFaultKinds; ++i) {
      if (const auto v = t.param("rate_" + std::string(kFaultNames[i]))) rates.rate[i] = std::stod(*v);
    }
    r.body = nlohmann::json{{"total", rates.total()}}.dump();
    return r;
  }
  r.status = 404;
  r.body = error_json("invalid_request_error", "no such path: " + path);
  return r;
}

namespace {
// OAuth mode (oauth.hpp): the /oauth/ paths, and the bearer check of data paths.
std::optional<Reply> oauth_reply(OAuthIssuer* oauth, const Request& req, const std::string& path, bool data_path) {
  if (oauth == nullptr) return std::nullopt;
  const auto auth_field = req[http::field::authorization];
  const std::string_view authorization(auth_field.data(), auth_field.size());
  std::optional<OAuthReply> o = oauth->handle(std::string_view(req.method_string().data(), req.method_string().size()),
                                              path, req.body(), authorization);
  if (!o && data_path) o = oauth->check_bearer(authorization);
  if (!o) return std::nullopt;
  Reply r;
  r.status = o->status;
  r.body = std::move(o->body);
  r.headers = std::move(o->headers);
  return r;
}
}  // namespace

namespace {
// Quota mode (quota.hpp): /quota/stats, and the admission of data requests
// per API key. A refusal replaces the reply; a served request gets the
// headers the mode advertises (added to `served_headers`).
std::optional<Reply> quota_reply(QuotaEnforcer* quota, const Request& req, const std::string& path, bool data_path,
                                 ExtraHeaders& served_headers) {
  if (quota == nullptr) return std::nullopt;
  if (auto stats = quota->handle(path)) {
    Reply r;
    r.body = std::move(*stats);
    return r;
  }
  if (!data_path) return std::nullopt;
  std::string key = std::string(req[http::field::authorization]);
  if (key.empty()) key = std::string(req["X-Api-Key"]);
  if (key.empty()) key = "anonymous";
  QuotaVerdict verdict = quota->admit(key);
  if (verdict.allowed) {
    for (auto& header : verdict.headers) served_headers.push_back(std::move(header));
    return std::nullopt;
  }
  Reply r;
  r.status = verdict.status;
  r.body = std::move(verdict.body);
  for (auto& header : verdict.headers) r.headers.push_back(std::move(header));
  return r;
}
}  // namespace

Plan ServerState::respond(const Request& req) {
  ++requests;
  Plan plan;
  plan.close = !req.keep_alive();
  const Target target = parse_target(std::string_view(req.target().data(), req.target().size()));
  std::string host = std::string(req[http::field::host]);
  if (host.empty()) host = options.address + ":" + std::to_string(port);

  Reply reply;
  Fault fault = Fault::none;
  try {
    ExtraHeaders quota_headers;
    if (auto o = oauth_reply(oauth.get(), req, target.path, is_data_path(target.path))) {
      reply = std::move(*o);
    } else if (auto q = quota_reply(quota.get(), req, target.path, is_data_path(target.path), quota_headers)) {
      if (is_data_path(target.path)) ++data_requests;
      reply = std::move(*q);
    } else if (is_data_path(target.path)) {
      ++data_requests;
      fault = choose_fault(req);
      reply = data_reply(target, host);
      for (auto& header : quota_headers) reply.headers.push_back(std::move(header));
      std::lock_guard lock(config_mutex);
      plan.delay = latency;
    } else {
      reply = helper_reply(req, target, host, plan);
    }
  } catch (const BadRequest& e) {
    reply = Reply{};
    reply.status = 400;
    reply.body = error_json("invalid_request_error", e.message);
  } catch (const std::exception& e) {
    reply = Reply{};
    reply.status = 500;
    reply.body = error_json("api_error", e.what());
  }

  if (reply.data && reply.status == 200) {
    switch (fault) {
      case Fault::none:
        ++pages;
        items += reply.items;
        break;
      case Fault::http500:
      case Fault::http502:
      case Fault::http503:
      case Fault::http429: {
        const int status = fault == Fault::http500 ? 500 : fault == Fault::http502 ? 502 : fault == Fault::http503 ? 503 : 429;
        reply.status = status;
        reply.headers.clear();
        reply.body = error_json(status == 429 ? "rate_limit_error" : "api_error",
                                "injected " + std::to_string(status));
        if (status == 429 || status == 503) reply.headers.emplace_back("Retry-After", retry_after_value(req));
        break;
      }
      case Fault::slow:
        plan.stall = options.slow_stall;
        break;
      case Fault::drop:
        plan.drop = true;
        break;
      case Fault::reset:
        plan.reset = true;
        break;
      case Fault::truncated:
        reply.body.resize(reply.body.size() / 2);
        break;
      case Fault::empty:
        reply.body.clear();
        break;
      case Fault::wrong_type:
        reply.content_type = "text/html";
        reply.body = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>";
        break;
    }
    if (fault != Fault::none) ++faults[static_cast<std::size_t>(fault)];
  }

  const bool gzip_wanted = options.gzip || req.find("X-Gzip") != req.end();
  if (gzip_wanted && reply.content_type == "application/json") {
    const auto accept = req.find(http::field::accept_encoding);
    if (accept != req.end() && std::string_view(accept->value().data(), accept->value().size()).find("gzip") !=
                                   std::string_view::npos) {
      reply.body = gzip_stored(reply.body);
      reply.headers.emplace_back("Content-Encoding", "gzip");
    }
  }
  if (fault == Fault::slow || fault == Fault::drop) plan.split = reply.body.size() / 2;

  const bool head_only = req.method() == http::verb::head;
  plan.head = make_head(reply.status, reply.content_type, reply.body.size(), reply.headers, plan.close);
  plan.body = head_only ? std::string() : std::move(reply.body);
  return plan;
}

ApiServer::ApiServer(ApiServerOptions options) : impl_(std::make_shared<ServerState>(std::move(options))) {}

ApiServer::~ApiServer() { stop(); }

void ApiServer::start() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->started) throw std::logic_error("ApiServer::start: already started");
  auto& im = *impl_;
  const int threads = std::max(1, im.options.threads);
  im.ioc = std::make_unique<asio::io_context>(threads);
  im.acceptor = std::make_unique<tcp::acceptor>(*im.ioc);
  im.accept_retry = std::make_unique<asio::steady_timer>(*im.ioc);
  const tcp::endpoint endpoint(asio::ip::make_address(im.options.address), im.options.port);
  im.acceptor->open(endpoint.protocol());
  im.acceptor->set_option(asio::socket_base::reuse_address(true));
  im.acceptor->bind(endpoint);
  im.acceptor->listen(asio::socket_base::max_listen_connections);
  im.port = im.acceptor->local_endpoint().port();
  im.started = true;
  im.accept();
  for (int i = 0; i < threads; ++i) {
    im.threads.emplace_back([ioc = im.ioc.get()] {
      for (;;) {
        try {
          ioc->run();
          return;
        } catch (...) {  // a handler threw: keep serving
        }
      }
    });
  }
}

void ApiServer::stop() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  auto& im = *impl_;
  if (!im.started || im.stopped) return;
  im.stopped = true;
  im.ioc->stop();
  for (auto& t : im.threads) t.join();
  im.threads.clear();
  im.accept_retry.reset();
  im.acceptor.reset();
  im.ioc.reset();
}

std::uint16_t ApiServer::port() const { return impl_->port; }

std::string ApiServer::base_url() const { return "http://" + impl_->options.address + ":" + std::to_string(port()); }

ApiServerStats ApiServer::stats() const {
  const auto& im = *impl_;
  ApiServerStats s;
  s.requests = im.requests;
  s.data_requests = im.data_requests;
  s.connections = im.connections;
  s.open_connections = im.open_connections;
  s.pages = im.pages;
  s.items = im.items;
  s.bytes = im.bytes;
  for (std::size_t i = 0; i < kFaultKinds; ++i) s.faults[i] = im.faults[i];
  return s;
}

void ApiServer::reset_stats() {
  auto& im = *impl_;
  im.requests = 0;
  im.data_requests = 0;
  im.connections = 0;
  im.pages = 0;
  im.items = 0;
  im.bytes = 0;
  for (auto& f : im.faults) f = 0;
}

const Dataset& ApiServer::dataset() const { return impl_->dataset; }

void ApiServer::touch(const std::vector<std::size_t>& indexes, std::int64_t updated) {
  impl_->dataset.touch(indexes, updated);
}

void ApiServer::inject(Fault fault, std::size_t count) {
  std::lock_guard lock(impl_->config_mutex);
  for (std::size_t i = 0; i < count; ++i) impl_->injected.push_back(fault);
}

void ApiServer::set_faults(const FaultRates& rates) {
  std::lock_guard lock(impl_->config_mutex);
  impl_->rates = rates;
}

void ApiServer::set_latency(std::chrono::milliseconds latency) {
  std::lock_guard lock(impl_->config_mutex);
  impl_->latency = latency;
}

QuotaCounts ApiServer::quota_counts() const { return impl_->quota ? impl_->quota->totals() : QuotaCounts{}; }

}  // namespace webhookdb::tools
