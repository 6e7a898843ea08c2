#include "webhookdb/jobs/metrics_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <vector>
#include <string>
#include <chrono>
#include <string_view>

#include "webhookdb/errors.hpp"

namespace webhookdb::jobs {
namespace {

constexpr std::size_t kMaxHead = 8 * 1024;
// Connections still sending their request head; more are closed at once.
constexpr std::size_t kMaxPending = 256;

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

namespace {
// A connection whose request head is still arriving.
struct Pending {
  int fd;
  std::string head;
  std::chrono::steady_clock::time_point deadline;
};
}  // namespace

// One poll over the listener and every connection still sending its head, so
// clients that connect and stall (a port scanner, an attacker) hold no turn:
// each is closed at its own deadline while scrapes are answered meanwhile.
void MetricsServer::run() {
  std::vector<Pending> pending;
  std::vector<pollfd> fds;
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->deadline <= now) {
        ::close(it->fd);
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    fds.assign({{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}});
    int wait_ms = -1;
    for (const auto& p : pending) {
      fds.push_back({p.fd, POLLIN, 0});
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(p.deadline - now).count() + 1;
      wait_ms = wait_ms < 0 ? static_cast<int>(left) : std::min(wait_ms, static_cast<int>(left));
    }
    if (::poll(fds.data(), fds.size(), wait_ms) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((fds[1].revents & POLLIN) != 0) break;
    // Connections first (their indexes match `pending` before any is added).
    for (std::size_t i = pending.size(); i-- > 0;) {
      if (fds[i + 2].revents == 0) continue;
      if (read_head(pending[i].fd, pending[i].head)) continue;  // more to come
      ::close(pending[i].fd);
      pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if ((fds[0].revents & POLLIN) != 0) {
      const int connection = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (connection >= 0) {
        if (pending.size() >= kMaxPending) {
          ::close(connection);  // a flood of idle connections: the oldest keep their turn
        } else {
          pending.push_back({connection, {}, std::chrono::steady_clock::now() + std::chrono::seconds(2)});
        }
      }
    }
  }
  for (const auto& p : pending) ::close(p.fd);
}

// Reads what `connection` has sent; false once it is answered or gone.
bool MetricsServer::read_head(int connection, std::string& head) {
  char buffer[1024];
  while (true) {
    const ssize_t n = ::recv(connection, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) return false;  // closed
    head.append(buffer, static_cast<std::size_t>(n));
    if (head.size() > kMaxHead) {
      write_all(connection, response(431, "Request Header Fields Too Large", "text/plain", "too large\n"));
      return false;
    }
    if (head.find("\r\n\r\n") != std::string::npos) {
      answer(connection, head);
      return false;
    }
  }
}

void MetricsServer::answer(int connection, const std::string& head) {
  // The answer is a few KiB: blocking writes, bounded by a send timeout.
  const int flags = ::fcntl(connection, F_GETFL, 0);
  ::fcntl(connection, F_SETFL, flags & ~O_NONBLOCK);
  timeval timeout{2, 0};
  ::setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
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
