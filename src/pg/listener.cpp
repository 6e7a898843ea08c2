#include "pg/listener.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include <pqxx/pqxx>

#include "webhookdb/errors.hpp"

namespace webhookdb::pg {
namespace {

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel, const std::function<void()>& fn)
      : pqxx::notification_receiver(conn, channel), fn_(fn) {}
  void operator()(const std::string& /*payload*/, int /*backend_pid*/) override { fn_(); }

 private:
  const std::function<void()>& fn_;
};

}  // namespace

Listener::Listener(std::string url, std::string channel, std::shared_ptr<Logger> logger,
                   std::function<void()> on_notify, std::function<void()> on_connect)
    : url_(std::move(url)),
      channel_(std::move(channel)),
      logger_(logger ? std::move(logger) : std::make_shared<NullLogger>()),
      on_notify_(std::move(on_notify)),
      on_connect_(on_connect ? std::move(on_connect) : on_notify_) {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0)
    throw std::system_error(errno, std::generic_category(), "eventfd for the job queue listener");
  thread_ = std::thread([this] { run(); });
}

Listener::~Listener() {
  stopping_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::close(stop_fd_);
}

bool Listener::pause(int milliseconds) const {
  pollfd fd{stop_fd_, POLLIN, 0};
  while (::poll(&fd, 1, milliseconds) < 0 && errno == EINTR) {
  }
  return stopping_.load(std::memory_order_acquire);
}

void Listener::run() {
  int failures = 0;
  while (!stopping_.load(std::memory_order_acquire)) {
    try {
      pqxx::connection conn(url_);
      Receiver receiver(conn, channel_, on_notify_);
      {
        // add_receiver swallows a broken connection: prove the LISTEN took.
        pqxx::nontransaction check(conn);
        check.exec("SELECT 1");
      }
      // Wake waiters first: whatever was sent while not listening is missed.
      on_connect_();
      connected_.store(true, std::memory_order_release);
      if (failures > 0) logger_->log(LogLevel::info, "job queue listener reconnected");
      failures = 0;
      while (!stopping_.load(std::memory_order_acquire)) {
        pollfd fds[2] = {{conn.sock(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        if (fds[0].fd < 0) throw pqxx::broken_connection("listener connection has no socket");
        const int rc = ::poll(fds, 2, -1);
        if (rc < 0) {
          if (errno == EINTR) continue;
          throw std::system_error(errno, std::generic_category(), "poll in the job queue listener");
        }
        if ((fds[1].revents & POLLIN) != 0) break;
        // Reads what arrived and dispatches it; throws when the server is gone.
        conn.get_notifs();
        if ((fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
          throw pqxx::broken_connection("listener connection closed");
        }
      }
      connected_.store(false, std::memory_order_release);
    } catch (const std::exception& e) {
      connected_.store(false, std::memory_order_release);
      ++failures;
      // Database messages never hold the password (it is not echoed by libpq).
      if (failures == 1 || failures % 30 == 0) {
        logger_->log(LogLevel::warn, std::string("job queue listener lost its connection (") + e.what() +
                                         "); relying on polling until it reconnects");
      }
      if (pause(failures == 1 ? 200 : 1000)) break;
    }
  }
}

}  // namespace webhookdb::pg
