#include "webhookdb/jobs/metrics_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "webhookdb/errors.hpp"

namespace webhookdb::jobs {
namespace {

constexpr std::size_t kMaxHead = 8 * 1024;

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // the scraper went away
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string response(int status, std::string_view reason, std::string_view type, std::string_view body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\nContent-Type: " + std::string(type) +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + std::string(body);
}

}  // namespace

MetricsServer::MetricsServer(std::shared_ptr<Metrics> metrics, const std::string& address, std::uint16_t port)
    : metrics_(std::move(metrics)) {
  const std::string where = "the metrics endpoint " + address + ":" + std::to_string(port);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    throw InvalidPrecondition(where + ": not an IPv4 address");
  }
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener_ < 0) throw InvalidPrecondition(where + ": socket() failed");
  const int one = 1;
  ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t length = sizeof addr;
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener_, 16) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &length) != 0 ||
      ::pipe2(wake_, O_CLOEXEC) != 0) {
    const int error = errno;
    ::close(listener_);
    throw InvalidPrecondition(where + ": cannot listen (errno " + std::to_string(error) + ")");
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

MetricsServer::~MetricsServer() {
  const char stop = 's';
  (void)!::write(wake_[1], &stop, 1);
  if (thread_.joinable()) thread_.join();
  ::close(listener_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void MetricsServer::run() {
  while (true) {
    pollfd fds[2] = {{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if ((fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int connection = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) continue;
    answer(connection);
    ::close(connection);
  }
}

void MetricsServer::answer(int connection) {
  timeval timeout{2, 0};
  ::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  std::string head;
  char buffer[1024];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() > kMaxHead) {
      write_all(connection, response(431, "Request Header Fields Too Large", "text/plain", "too large\n"));
      return;
    }
    const ssize_t n = ::recv(connection, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // closed, or stalled past the timeout
    head.append(buffer, static_cast<std::size_t>(n));
  }
  const std::string_view line(head.data(), head.find("\r\n"));
  const bool get = line.rfind("GET ", 0) == 0;
  const auto target_end = line.find(' ', 4);
  const std::string_view target = get ? line.substr(4, target_end == std::string_view::npos ? 0 : target_end - 4)
                                      : std::string_view{};
  const bool metrics = target == "/metrics" || target.rfind("/metrics?", 0) == 0;
  if (!get || !metrics) {
    write_all(connection, response(404, "Not Found", "text/plain", "GET /metrics\n"));
    return;
  }
  std::string body;
  try {
    body = metrics_->render();
  } catch (const std::exception&) {
    write_all(connection, response(500, "Internal Server Error", "text/plain", "metrics unavailable\n"));
    return;
  }
  write_all(connection, response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body));
}

}  // namespace webhookdb::jobs
