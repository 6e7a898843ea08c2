#pragma once
// A tiny scriptable HTTP/1.1 server on 127.0.0.1 for the reliability tests,
// plain or TLS (Boost.Beast + OpenSSL), and test-time certificates made with
// OpenSSL's C API (no openssl command line). Each connection is served on a
// thread of its own, one request per connection (Connection: close), so a
// handler may stream as long as it likes; stop() ends every connection.

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "webhookdb/errors.hpp"

namespace webhookdb::test {

struct MiniRequest {
  std::string method;
  std::string target;
  Headers headers;
  std::string body;
};

// Writes the response body in pieces; returns false to stop (client gone).
using BodyWriter = std::function<bool(std::string_view chunk)>;

struct MiniResponse {
  int status = 200;
  Headers headers;
  std::string body;
  // Set: the body is streamed chunked by this instead of `body`.
  std::function<void(const BodyWriter& write)> stream;
};

using MiniHandler = std::function<MiniResponse(const MiniRequest&)>;

// --- Certificates ---

struct Pem {
  std::string certificate;
  std::string private_key;
};

namespace detail {

inline std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

inline void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("OpenSSL: ") + what);
}

inline void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

}  // namespace detail

// A certificate for `common_name` with subjectAltName `san` ("IP:127.0.0.1",
// "DNS:example.test"), signed by `issuer` (self-signed when null). `ca` marks
// it a CA (basicConstraints CA:TRUE, keyCertSign).
inline Pem make_certificate(const std::string& common_name, const std::string& san, const Pem* issuer, bool ca) {
  static std::atomic<long> serial{1000};
  EVP_PKEY* key = EVP_EC_gen("P-256");
  detail::check(key != nullptr, "key generation");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                             -1, -1, 0);

  X509* issuer_cert = cert;
  EVP_PKEY* issuer_key = key;
  if (issuer != nullptr) {
    BIO* cb = BIO_new_mem_buf(issuer->certificate.data(), static_cast<int>(issuer->certificate.size()));
    issuer_cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    BIO_free(cb);
    BIO* kb = BIO_new_mem_buf(issuer->private_key.data(), static_cast<int>(issuer->private_key.size()));
    issuer_key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
    BIO_free(kb);
    detail::check(issuer_cert != nullptr && issuer_key != nullptr, "reading the issuer");
  }
  X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert));
  detail::add_ext(cert, issuer_cert, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  detail::add_ext(cert, issuer_cert, NID_key_usage,
                  ca ? "critical,keyCertSign,cRLSign,digitalSignature" : "critical,digitalSignature");
  if (!ca || issuer == nullptr) detail::add_ext(cert, issuer_cert, NID_ext_key_usage, "serverAuth");
  detail::add_ext(cert, issuer_cert, NID_subject_key_identifier, "hash");
  if (!san.empty()) detail::add_ext(cert, issuer_cert, NID_subject_alt_name, san.c_str());
  detail::check(X509_sign(cert, issuer_key, EVP_sha256()) > 0, "signing");

  Pem out;
  BIO* cbio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cbio, cert);
  out.certificate = detail::bio_string(cbio);
  BIO_free(cbio);
  BIO* kbio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(kbio, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.private_key = detail::bio_string(kbio);
  BIO_free(kbio);

  if (issuer != nullptr) {
    X509_free(issuer_cert);
    EVP_PKEY_free(issuer_key);
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

// --- Server ---

class MiniServer {
 public:
  // `tls`: serve HTTPS with this certificate (chain) and key.
  explicit MiniServer(MiniHandler handler, const Pem* tls = nullptr)
      : handler_(std::move(handler)), acceptor_(io_) {
    namespace asio = boost::asio;
    if (tls != nullptr) {
      ssl_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
      ssl_->use_certificate_chain(asio::buffer(tls->certificate));
      ssl_->use_private_key(asio::buffer(tls->private_key), asio::ssl::context::pem);
    }
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~MiniServer() { stop(); }
  MiniServer(const MiniServer&) = delete;
  MiniServer& operator=(const MiniServer&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url(const std::string& path_and_query = "/") const {
    return std::string(ssl_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path_and_query;
  }
  [[nodiscard]] std::vector<MiniRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  // TLS handshakes that failed (the client refused the certificate...).
  [[nodiscard]] int failed_handshakes() const { return failed_handshakes_.load(); }
  [[nodiscard]] std::uint64_t bytes_streamed() const { return bytes_streamed_.load(); }

  void stop() {
    if (stopped_.exchange(true)) return;
    // Wake accept() with a connection of our own, then end every open one.
    try {
      boost::asio::io_context io;
      boost::asio::ip::tcp::socket s(io);
      s.connect({boost::asio::ip::make_address("127.0.0.1"), port_});
    } catch (...) {
    }
    if (accept_thread_.joinable()) accept_thread_.join();
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : connection_threads_) t.join();
  }

 private:
  void accept_loop() {
    while (!stopped_) {
      boost::asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopped_) break;
      std::lock_guard lock(mutex_);
      open_fds_.insert(socket.native_handle());
      connection_threads_.emplace_back([this, s = std::move(socket)]() mutable { serve(std::move(s)); });
    }
  }

  void serve(boost::asio::ip::tcp::socket socket) {
    const int fd = socket.native_handle();
    try {
      if (ssl_) {
        boost::asio::ssl::stream<boost::asio::ip::tcp::socket&> stream(socket, *ssl_);
        boost::system::error_code ec;
        stream.handshake(boost::asio::ssl::stream_base::server, ec);
        if (ec) {
          ++failed_handshakes_;
        } else {
          exchange(stream);
          stream.shutdown(ec);
        }
      } else {
        exchange(socket);
      }
    } catch (...) {
      // The client went away: nothing to answer.
    }
    std::lock_guard lock(mutex_);
    open_fds_.erase(fd);
    boost::system::error_code ignored;
    socket.shutdown(boost::asio::socket_base::shutdown_both, ignored);
    socket.close(ignored);
  }

  template <class Stream>
  void exchange(Stream& stream) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::read(stream, buffer, req);
    MiniRequest mreq;
    mreq.method = std::string(req.method_string());
    mreq.target = std::string(req.target());
    for (const auto& field : req) mreq.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    mreq.body = req.body();
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(mreq);
    }
    MiniResponse mres = handler_(mreq);
    if (!mres.stream) {
      http::response<http::string_body> res{static_cast<http::status>(mres.status), 11};
      for (const auto& [name, value] : mres.headers) res.insert(name, value);
      res.set(http::field::connection, "close");
      res.body() = mres.body;
      res.prepare_payload();
      http::write(stream, res);
      return;
    }
    // Chunked, streamed while the client reads.
    http::response<http::empty_body> res{static_cast<http::status>(mres.status), 11};
    for (const auto& [name, value] : mres.headers) res.insert(name, value);
    res.set(http::field::connection, "close");
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    http::write_header(stream, sr);
    mres.stream([&](std::string_view chunk) {
      if (stopped_) return false;
      boost::system::error_code ec;
      boost::asio::write(stream, http::make_chunk(boost::asio::buffer(chunk.data(), chunk.size())), ec);
      if (ec) return false;
      bytes_streamed_ += chunk.size();
      return true;
    });
    boost::system::error_code ec;
    boost::asio::write(stream, http::make_chunk_last(), ec);
  }

  MiniHandler handler_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::unique_ptr<boost::asio::ssl::context> ssl_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<int> failed_handshakes_{0};
  std::atomic<std::uint64_t> bytes_streamed_{0};
  std::thread accept_thread_;
  mutable std::mutex mutex_;
  std::set<int> open_fds_;
  std::vector<std::thread> connection_threads_;
  std::vector<MiniRequest> requests_;
};

}  // namespace webhookdb::test
