#pragma once
// LISTEN on a dedicated connection (never a pooled one: it stays idle in
// LISTEN for the process's life). A thread waits on the socket and a stop
// eventfd with poll(2), so it wakes for a notification or a stop, never on a
// timer; a lost connection is re-opened after a short pause (the queue's
// fallback poll covers the gap). Private to webhookdb::jobs.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "webhookdb/logger.hpp"

namespace webhookdb::pg {

class Listener {
 public:
  // `on_notify` runs on the listener thread for every notification on
  // `channel`; `on_connect` once after each (re)connect (notifications sent
  // while disconnected are lost, so every waiter should look again); when
  // `on_connect` is empty, `on_notify` runs then instead.
  Listener(std::string url, std::string channel, std::shared_ptr<Logger> logger,
           std::function<void()> on_notify, std::function<void()> on_connect = {});
  // Stops and joins the thread.
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  [[nodiscard]] bool connected() const noexcept { return connected_.load(std::memory_order_acquire); }

 private:
  void run();
  // Waits on the stop eventfd; true when stopping.
  bool pause(int milliseconds) const;

  std::string url_;
  std::string channel_;
  std::shared_ptr<Logger> logger_;
  std::function<void()> on_notify_;
  std::function<void()> on_connect_;
  int stop_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

}  // namespace webhookdb::pg
