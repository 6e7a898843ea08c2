#include "webhookdb/webhooks/webhook_receiver.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb::webhooks {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// After a response that closes the connection, unread request bytes are read
// and dropped for a moment, so the peer sees the response rather than a reset.
constexpr std::size_t kLingerBytes = 4 * 1024 * 1024;
constexpr std::chrono::milliseconds kLingerTime{1000};
// Bodies over this may take only three quarters of the in-flight budget.
constexpr std::size_t kSmallBody = 64 * 1024;
// How long a read is put off at a time while the handler's queue is full.
constexpr std::chrono::milliseconds kSlowStep{5};

WebhookResponse busy(std::string text) {
  WebhookResponse out = WebhookResponse::error(503, std::move(text));
  out.headers.emplace_back("Retry-After", "1");
  return out;
}

void raise_peak(std::atomic<std::size_t>& peak, std::size_t value) noexcept {
  std::size_t seen = peak.load();
  while (value > seen && !peak.compare_exchange_weak(seen, value)) {
  }
}

bool valid_opaque_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

using codec::iequals;

bool is_http_parse_error(const beast::error_code& ec) noexcept {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

class Session;

// Everything a session needs; WebhookReceiver::Impl is this (Impl is private).
// A request either answered at once (no database needed) or for the handler.
struct Routed {
  std::optional<WebhookResponse> answer;
  std::string opaque_id;
};

struct ReceiverCore {
  WebhookReceiverOptions options;
  std::shared_ptr<Logger> logger;
  WebhookHandler handler;
  // Declared before ioc: sessions destroyed with it still count themselves out.
  std::atomic<bool> closing{false};
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> peak_connections{0};
  std::atomic<std::size_t> body_bytes{0};
  std::atomic<std::size_t> peak_body_bytes{0};
  std::atomic<std::uint64_t> refused_busy{0};
  std::atomic<std::uint64_t> handler_timeouts{0};
  std::atomic<std::uint64_t> slowed_reads{0};
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  net::steady_timer accept_retry;
  std::vector<std::thread> threads;
  std::uint16_t bound_port = 0;

  std::mutex stop_mutex;
  std::mutex mutex;
  std::vector<std::weak_ptr<Session>> sessions;
  bool started = false;
  bool stopping = false;
  bool stopped = false;
  // Past max_connections; only touched on the acceptor's strand.
  bool accept_paused = false;
  // Last: joined (by its destructor) before anything its tasks use goes.
  net::thread_pool handler_pool;

  ReceiverCore(ReplicatorContext context, WebhookReceiverOptions opts)
      : options(std::move(opts)),
        logger(context.logger ? context.logger : std::make_shared<NullLogger>()),
        handler(std::move(context), options.handler),
        ioc(static_cast<int>(options.io_threads == 0 ? 1 : options.io_threads)),
        acceptor(net::make_strand(ioc)),
        accept_retry(acceptor.get_executor()),
        handler_pool(std::max<std::size_t>(options.handler_threads, 1)) {}

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  [[nodiscard]] Routed route(const http::request<http::string_body>& request) const;

  void connection_opened() noexcept { raise_peak(peak_connections, connections.fetch_add(1) + 1); }
  void connection_closed();
  void resume_accept();
  // Takes `bytes` of the in-flight body budget; false when it would pass it.
  [[nodiscard]] bool try_reserve(std::size_t bytes) noexcept;
};

// A share of the body budget, given back when its last holder (the session,
// or the handler task that holds the body) lets go.
class BodyReservation {
 public:
  BodyReservation(ReceiverCore& core, std::size_t bytes) noexcept : core_(core), bytes_(bytes) {}
  ~BodyReservation() { core_.body_bytes.fetch_sub(bytes_); }
  BodyReservation(const BodyReservation&) = delete;
  BodyReservation& operator=(const BodyReservation&) = delete;

 private:
  ReceiverCore& core_;
  std::size_t bytes_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ReceiverCore& impl)
      : stream_(std::move(socket)), impl_(impl), deadline_(stream_.get_executor()) {
    impl_.connection_opened();
  }
  ~Session() { impl_.connection_closed(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::read_header, shared_from_this()));
  }

  // From stop(): close now if waiting for a request, else after the response.
  void stop() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->stopping_ = true;
      if (self->waiting_) self->close();
    });
  }

 private:
  void read_header() {
    if (stopping_) return close();
    // Back-pressure: while the handler's batch queue is over half full, the
    // next request is read later (up to handler_deadline), so a burst waits in
    // socket buffers instead of being refused.
    if (impl_.handler.queue_above(0.5) && slowed_ < impl_.options.handler_deadline) {
      impl_.slowed_reads.fetch_add(1, std::memory_order_relaxed);
      slowed_ += kSlowStep;
      waiting_ = true;
      deadline_.expires_after(kSlowStep);
      deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (ec) return;
        self->read_header();
      });
      return;
    }
    slowed_ = std::chrono::milliseconds{0};
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(impl_.options.max_header_bytes));
    // Also refuses a Content-Length over the limit before any body is read.
    parser_->body_limit(static_cast<std::uint64_t>(impl_.options.max_body_bytes));
    waiting_ = true;
    answered_ = false;
    // One deadline for the whole header: trickling bytes does not extend it.
    stream_.expires_after(std::min(impl_.options.idle_timeout, impl_.options.header_timeout));
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  // The body bytes this request may hold: its Content-Length, or the limit
  // for a chunked body.
  [[nodiscard]] std::size_t declared_body_bytes() const {
    if (auto length = parser_->content_length()) return static_cast<std::size_t>(*length);
    return parser_->chunked() ? impl_.options.max_body_bytes : 0;
  }

  void on_header(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return on_read_error(ec);
    request_start_ = std::chrono::steady_clock::now();
    // Checked before the body is read (and before 100 Continue invites it).
    const std::size_t declared = declared_body_bytes();
    if (!impl_.try_reserve(declared)) {
      waiting_ = false;
      impl_.refused_busy.fetch_add(1, std::memory_order_relaxed);
      return send(busy("too many request bodies in flight; retry later"), parser_->get().version(), false);
    }
    if (declared > 0) reservation_ = std::make_shared<BodyReservation>(impl_, declared);
    auto& req = parser_->get();
    const auto expect = req[http::field::expect];
    if (!expect.empty() && iequals(std::string_view(expect.data(), expect.size()), "100-continue")) {
      auto interim =
          std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      stream_.expires_after(impl_.options.idle_timeout);
      http::async_write(stream_, *interim,
                        [self = shared_from_this(), interim](beast::error_code wec, std::size_t) {
                          if (wec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(impl_.options.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_body, shared_from_this()));
  }

  void on_read_error(beast::error_code ec) {
    waiting_ = false;
    if (ec == http::error::body_limit) return send_error(413, "request body too large");
    if (ec == http::error::header_limit) return send_error(431, "request headers too large");
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || !is_http_parse_error(ec)) {
      return close();  // the peer went away, timed out, or we are stopping
    }
    send_error(400, "malformed HTTP request");
  }

  void on_body(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return on_read_error(ec);
    waiting_ = false;
    auto req = parser_->release();
    parser_.reset();
    Routed routed = impl_.route(req);
    if (routed.answer) return send(std::move(*routed.answer), req.version(), req.keep_alive());
    WebhookRequest webhook;
    webhook.method = "POST";
    webhook.path = std::string(req.target().data(), req.target().size());
    for (const auto& field : req) {
      webhook.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    webhook.body = std::move(req.body());
    hand_to_handler(std::move(routed.opaque_id), std::move(webhook), req.version(), req.keep_alive());
  }

  // The handler (database work) runs on the handler pool, never here. The
  // task holds work on the io_context, so stop() waits for its answer; past
  // the deadline the sender gets a 503 and the task's answer is dropped.
  void hand_to_handler(std::string opaque_id, WebhookRequest request, unsigned version, bool keep_alive) {
    auto abandoned = std::make_shared<std::atomic<bool>>(false);
    deadline_.expires_after(impl_.options.handler_deadline);
    deadline_.async_wait([self = shared_from_this(), abandoned, version](beast::error_code ec) {
      if (ec || self->answered_) return;
      abandoned->store(true);
      self->impl_.handler_timeouts.fetch_add(1, std::memory_order_relaxed);
      self->answer(busy("the database is slow to answer; retry later"), version, false);
    });
    // The handler verifies on the handler pool and answers through a callback,
    // on a batch writer once the request's micro-batch is committed: the pool
    // is free for the next request meanwhile.
    struct Pending {
      std::shared_ptr<Session> self;
      beast::tcp_stream::executor_type executor;
      net::executor_work_guard<beast::tcp_stream::executor_type> work;
      std::shared_ptr<BodyReservation> reservation;
      unsigned version;
      bool keep_alive;
      void reply(WebhookResponse out) {
        reservation.reset();
        net::post(executor, [self = self, out = std::move(out), version = version, keep_alive = keep_alive]() mutable {
          self->deadline_.cancel();
          self->answer(std::move(out), version, keep_alive);
        });
      }
    };
    auto executor = stream_.get_executor();
    auto pending = std::make_shared<Pending>(Pending{shared_from_this(), executor, net::make_work_guard(executor),
                                                     std::move(reservation_), version, keep_alive});
    // Nothing to wait for (a known integration, rows built without I/O, room
    // in the batch queue): handled here, on this I/O thread. The hand-off to
    // the pool and back was a thread switch per webhook.
    const bool now = impl_.handler.handles_without_waiting(opaque_id);
    auto handle = [pending, abandoned, id = std::move(opaque_id), request = std::move(request)]() mutable {
      if (abandoned->load()) return pending->reply(busy("the database is slow to answer; retry later"));
      try {
        pending->self->impl_.handler.handle_async(id, std::move(request),
                                                  [pending](WebhookResponse out) { pending->reply(std::move(out)); });
      } catch (...) {
        pending->reply(WebhookResponse::error(500, "internal error"));
      }
    };
    if (now) return handle();
    net::post(impl_.handler_pool, std::move(handle));
  }

  // The first of the handler's answer and the deadline's 503 wins.
  void answer(WebhookResponse out, unsigned version, bool keep_alive) {
    if (answered_) return;
    answered_ = true;
    send(std::move(out), version, keep_alive);
  }

  void send_error(int status, std::string text) {
    send(WebhookResponse::error(status, std::move(text)), 11, /*keep_alive=*/false);
  }

  void send(WebhookResponse out, unsigned version, bool keep_alive) {
    record(out.status);
    keep_alive = keep_alive && !stopping_;
    if (!keep_alive) reservation_.reset();  // the body will not be read
    response_ = {};
    response_.version(version);
    response_.result(static_cast<unsigned>(out.status));
    bool has_content_type = false;
    for (const auto& [name, value] : out.headers) {
      if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") ||
          iequals(name, "Connection")) {
        continue;
      }
      if (iequals(name, "Content-Type")) has_content_type = true;
      response_.insert(name, value);
    }
    if (!has_content_type) response_.set(http::field::content_type, "text/plain");
    if (out.status == 405) response_.set(http::field::allow, "POST");
    response_.body() = std::move(out.body);
    response_.keep_alive(keep_alive);
    response_.prepare_payload();
    stream_.expires_after(impl_.options.idle_timeout);
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&Session::on_write, shared_from_this(), keep_alive));
  }

  // WebhookReceiverOptions::metrics: the answer's status and the time since
  // the request's header arrived (0 for an answer before any header).
  void record(int status) {
    if (!impl_.options.metrics) return;
    const auto now = std::chrono::steady_clock::now();
    const double seconds =
        request_start_ == std::chrono::steady_clock::time_point{}
            ? 0.0
            : std::chrono::duration<double>(now - request_start_).count();
    request_start_ = {};
    const std::string code = std::to_string(status);
    impl_.options.metrics->add("webhookdb_webhook_requests_total", 1, {{"status", code}});
    impl_.options.metrics->observe("webhookdb_webhook_request_duration_seconds", seconds, {{"status", code}});
  }

  void on_write(bool keep_alive, beast::error_code ec, std::size_t /*bytes*/) {
    reservation_.reset();
    if (ec) return close();
    if (keep_alive && !stopping_) return read_header();
    linger();
  }

  // Half-close, then drop what the peer still sends until it closes too. The
  // request's buffers go first: a lingering connection holds a scratch page.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    parser_.reset();
    buffer_ = beast::flat_buffer{};
    response_ = {};
    if (stopping_) return close();
    waiting_ = true;
    lingered_ = 0;
    scratch_ = std::make_unique<std::array<char, 4096>>();
    drain_some();
  }

  void drain_some() {
    stream_.expires_after(kLingerTime);
    stream_.async_read_some(net::buffer(*scratch_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->lingered_ += n;
                              if (ec || self->lingered_ > kLingerBytes) return self->close();
                              self->drain_some();
                            });
  }

  void close() {
    waiting_ = false;
    reservation_.reset();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  ReceiverCore& impl_;
  net::steady_timer deadline_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::shared_ptr<BodyReservation> reservation_;
  std::unique_ptr<std::array<char, 4096>> scratch_;
  std::size_t lingered_ = 0;
  // Time this request's read has been put off by back-pressure.
  std::chrono::milliseconds slowed_{0};
  // Only touched on the session's strand.
  bool waiting_ = false;
  bool stopping_ = false;
  bool answered_ = false;
  std::chrono::steady_clock::time_point request_start_{};
};

void ReceiverCore::do_accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    on_accept(ec, std::move(socket));
  });
}

void ReceiverCore::on_accept(beast::error_code ec, tcp::socket socket) {
  if (!acceptor.is_open() || ec == net::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors, typically: back off instead of spinning.
    logger->log(LogLevel::warn, "webhook receiver: accept failed: " + ec.message());
    accept_retry.expires_after(std::chrono::milliseconds(50));
    accept_retry.async_wait([this](beast::error_code wec) {
      if (!wec && acceptor.is_open()) do_accept();
    });
    return;
  }
  auto session = std::make_shared<Session>(std::move(socket), *this);
  {
    std::lock_guard lock(mutex);
    if (stopping) return;  // the socket closes with the session
    std::erase_if(sessions, [](const std::weak_ptr<Session>& s) { return s.expired(); });
    sessions.push_back(session);
  }
  session->start();
  // Past the cap, new connections wait in the listen backlog until one closes.
  if (connections.load() >= options.max_connections) {
    accept_paused = true;
    return;
  }
  do_accept();
}

void ReceiverCore::connection_closed() {
  connections.fetch_sub(1);
  if (closing.load()) return;
  net::post(acceptor.get_executor(), [this] { resume_accept(); });
}

void ReceiverCore::resume_accept() {
  if (!accept_paused || !acceptor.is_open() || connections.load() >= options.max_connections) return;
  accept_paused = false;
  do_accept();
}

bool ReceiverCore::try_reserve(std::size_t bytes) noexcept {
  if (bytes == 0) return true;
  const std::size_t total = options.max_body_bytes_in_flight;
  const std::size_t cap = bytes > kSmallBody ? total / 4 * 3 : total;
  std::size_t held = body_bytes.load();
  do {
    if (bytes > cap || held > cap - bytes) return false;
  } while (!body_bytes.compare_exchange_weak(held, held + bytes));
  raise_peak(peak_body_bytes, held + bytes);
  return true;
}

Routed ReceiverCore::route(const http::request<http::string_body>& request) const {
  const std::string_view raw_target(request.target().data(), request.target().size());
  const std::string_view path = raw_target.substr(0, raw_target.find('?'));
  const std::string_view prefix = options.path_prefix;
  const auto not_found = [] { return Routed{WebhookResponse::error(404, "not found"), {}}; };
  if (path.substr(0, prefix.size()) != prefix) return not_found();
  // Exactly <prefix><opaque_id>: nothing after it, so no dot segments either.
  const std::string_view opaque_id = path.substr(prefix.size());
  if (!valid_opaque_id(opaque_id)) return not_found();
  if (request.method() != http::verb::post)
    return {WebhookResponse::error(405, "method not allowed; use POST"), {}};
  return {std::nullopt, std::string(opaque_id)};
}

}  // namespace

struct WebhookReceiver::Impl : ReceiverCore {
  using ReceiverCore::ReceiverCore;
};

WebhookReceiver::WebhookReceiver(ReplicatorContext context, WebhookReceiverOptions options) {
  const auto& prefix = options.path_prefix;
  if (prefix.size() < 2 || prefix.front() != '/' || prefix.back() != '/') {
    throw InvalidPrecondition("webhook receiver path_prefix must start and end with '/'");
  }
  if (options.metrics) {
    options.metrics->describe("webhookdb_webhook_requests_total", MetricKind::counter,
                              "Webhook requests answered, by status.");
    options.metrics->describe("webhookdb_webhook_request_duration_seconds", MetricKind::histogram,
                              "From a webhook request's header to its answer, by status.");
  }
  impl_ = std::make_unique<Impl>(std::move(context), std::move(options));
}

WebhookReceiver::~WebhookReceiver() {
  stop();
}

void WebhookReceiver::start() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.mutex);
    if (impl.started) throw InvalidPrecondition("webhook receiver already started");
    impl.started = true;
  }
  const std::string where = impl.options.address + ":" + std::to_string(impl.options.port);
  try {
    const tcp::endpoint endpoint(net::ip::make_address(impl.options.address), impl.options.port);
    impl.acceptor.open(endpoint.protocol());
    impl.acceptor.set_option(net::socket_base::reuse_address(true));
    impl.acceptor.bind(endpoint);
    impl.acceptor.listen(net::socket_base::max_listen_connections);
    impl.bound_port = impl.acceptor.local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    beast::error_code ignored;
    impl.acceptor.close(ignored);
    {
      std::lock_guard lock(impl.mutex);
      impl.stopped = true;
    }
    throw InvalidPrecondition("webhook receiver cannot listen on " + where + ": " + e.code().message());
  }
  impl.work.emplace(impl.ioc.get_executor());
  impl.do_accept();
  const std::size_t n = impl.options.io_threads == 0 ? 1 : impl.options.io_threads;
  impl.threads.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    impl.threads.emplace_back([&impl] {
      for (;;) {
        try {
          impl.ioc.run();
          return;
        } catch (const std::exception& e) {
          impl.logger->log(LogLevel::error, std::string("webhook receiver: io thread error: ") + e.what());
        }
      }
    });
  }
  impl.logger->log(LogLevel::info, "webhook receiver listening on " + impl.options.address + ":" +
                                       std::to_string(impl.bound_port) + impl.options.path_prefix);
}

std::uint16_t WebhookReceiver::port() const {
  return impl_->bound_port;
}

std::string WebhookReceiver::url_for(const std::string& opaque_id) const {
  const std::string& address = impl_->options.address;
  const bool v6 = address.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + address + "]" : address) + ":" + std::to_string(impl_->bound_port) +
         impl_->options.path_prefix + opaque_id;
}

void WebhookReceiver::stop() {
  Impl& impl = *impl_;
  std::lock_guard stop_lock(impl.stop_mutex);
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(impl.mutex);
    if (!impl.started || impl.stopped) return;
    impl.stopping = true;
    impl.closing = true;
    for (const auto& weak : impl.sessions) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
    impl.sessions.clear();
  }
  net::post(impl.acceptor.get_executor(), [&impl] {
    beast::error_code ignored;
    impl.acceptor.close(ignored);
    impl.accept_retry.cancel();
  });
  for (const auto& session : live) session->stop();
  live.clear();
  // The io threads return once every connection has closed.
  impl.work.reset();
  for (auto& thread : impl.threads) thread.join();
  impl.threads.clear();
  // Every handler task has answered (each held work on the io_context).
  impl.handler_pool.join();
  impl.handler.drain();
  {
    std::lock_guard lock(impl.mutex);
    impl.stopped = true;
  }
  impl.logger->log(LogLevel::info,
                   "webhook receiver on port " + std::to_string(impl.bound_port) + " stopped");
}

WebhookHandler& WebhookReceiver::handler() {
  return impl_->handler;
}

ReceiverStats WebhookReceiver::stats() const {
  const Impl& impl = *impl_;
  ReceiverStats s;
  s.connections = impl.connections.load();
  s.peak_connections = impl.peak_connections.load();
  s.body_bytes_in_flight = impl.body_bytes.load();
  s.peak_body_bytes_in_flight = impl.peak_body_bytes.load();
  s.refused_busy = impl.refused_busy.load();
  s.handler_timeouts = impl.handler_timeouts.load();
  s.slowed_reads = impl.slowed_reads.load();
  return s;
}

}  // namespace webhookdb::webhooks
