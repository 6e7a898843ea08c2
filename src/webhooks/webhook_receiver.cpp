#include "webhookdb/webhooks/webhook_receiver.hpp"

#include <array>
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
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

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

bool valid_opaque_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto ca = static_cast<unsigned char>(a[i]);
    const auto cb = static_cast<unsigned char>(b[i]);
    if (std::tolower(ca) != std::tolower(cb)) return false;
  }
  return true;
}

bool is_http_parse_error(const beast::error_code& ec) noexcept {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

class Session;

// Everything a session needs; WebhookReceiver::Impl is this (Impl is private).
struct ReceiverCore {
  WebhookReceiverOptions options;
  std::shared_ptr<Logger> logger;
  WebhookHandler handler;
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

  ReceiverCore(ReplicatorContext context, WebhookReceiverOptions opts)
      : options(std::move(opts)),
        logger(context.logger ? context.logger : std::make_shared<NullLogger>()),
        handler(std::move(context), options.handler),
        ioc(static_cast<int>(options.io_threads == 0 ? 1 : options.io_threads)),
        acceptor(net::make_strand(ioc)),
        accept_retry(acceptor.get_executor()) {}

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  WebhookResponse route(http::request<http::string_body>& request);
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ReceiverCore& impl) : stream_(std::move(socket)), impl_(impl) {}

  void start() { net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::read_header, shared_from_this())); }

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
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(impl_.options.max_header_bytes));
    // Also refuses a Content-Length over the limit before any body is read.
    parser_->body_limit(static_cast<std::uint64_t>(impl_.options.max_body_bytes));
    waiting_ = true;
    stream_.expires_after(impl_.options.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return on_read_error(ec);
    auto& req = parser_->get();
    const auto expect = req[http::field::expect];
    if (!expect.empty() && iequals(std::string_view(expect.data(), expect.size()), "100-continue")) {
      auto interim = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      stream_.expires_after(impl_.options.idle_timeout);
      http::async_write(stream_, *interim, [self = shared_from_this(), interim](beast::error_code wec, std::size_t) {
        if (wec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(impl_.options.idle_timeout);
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_body, shared_from_this()));
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
    WebhookResponse out;
    try {
      out = impl_.route(req);
    } catch (...) {
      out = WebhookResponse::error(500, "internal error");
    }
    send(std::move(out), req.version(), req.keep_alive());
  }

  void send_error(int status, std::string text) {
    send(WebhookResponse::error(status, std::move(text)), 11, /*keep_alive=*/false);
  }

  void send(WebhookResponse out, unsigned version, bool keep_alive) {
    keep_alive = keep_alive && !stopping_;
    response_ = {};
    response_.version(version);
    response_.result(static_cast<unsigned>(out.status));
    bool has_content_type = false;
    for (const auto& [name, value] : out.headers) {
      if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") || iequals(name, "Connection")) {
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

  void on_write(bool keep_alive, beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return close();
    if (keep_alive && !stopping_) return read_header();
    linger();
  }

  // Half-close, then drop what the peer still sends until it closes too.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (stopping_) return close();
    waiting_ = true;
    lingered_ = 0;
    drain_some();
  }

  void drain_some() {
    stream_.expires_after(kLingerTime);
    stream_.async_read_some(net::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ > kLingerBytes) return self->close();
      self->drain_some();
    });
  }

  void close() {
    waiting_ = false;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  ReceiverCore& impl_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::array<char, 16 * 1024> scratch_{};
  std::size_t lingered_ = 0;
  // Only touched on the session's strand.
  bool waiting_ = false;
  bool stopping_ = false;
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
  do_accept();
}

WebhookResponse ReceiverCore::route(http::request<http::string_body>& request) {
  const std::string_view raw_target(request.target().data(), request.target().size());
  const std::string_view path = raw_target.substr(0, raw_target.find('?'));
  const std::string_view prefix = options.path_prefix;
  if (path.substr(0, prefix.size()) != prefix) return WebhookResponse::error(404, "not found");
  std::string_view rest = path.substr(prefix.size());
  const std::string_view opaque_id = rest.substr(0, rest.find('/'));
  if (!valid_opaque_id(opaque_id)) return WebhookResponse::error(404, "not found");
  if (request.method() != http::verb::post) return WebhookResponse::error(405, "method not allowed; use POST");

  WebhookRequest webhook;
  webhook.method = "POST";
  webhook.path = std::string(raw_target);
  for (const auto& field : request) {
    webhook.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  webhook.body = std::move(request.body());
  return handler.handle(std::string(opaque_id), std::move(webhook));
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
  impl_ = std::make_unique<Impl>(std::move(context), std::move(options));
}

WebhookReceiver::~WebhookReceiver() { stop(); }

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

std::uint16_t WebhookReceiver::port() const { return impl_->bound_port; }

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
  impl.handler.drain();
  {
    std::lock_guard lock(impl.mutex);
    impl.stopped = true;
  }
  impl.logger->log(LogLevel::info, "webhook receiver on port " + std::to_string(impl.bound_port) + " stopped");
}

WebhookHandler& WebhookReceiver::handler() { return impl_->handler; }

}  // namespace webhookdb::webhooks
