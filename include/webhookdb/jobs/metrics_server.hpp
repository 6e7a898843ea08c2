#pragma once
// Serves a Metrics registry (webhookdb/metrics.hpp) to Prometheus: GET
// /metrics answers the text format; anything else is a 404. One thread polls
// every connection, each closed after its answer: a scrape endpoint, not a
// web server. A client has 2 s to send its request head (at most 8 KiB);
// clients that stall do not delay a scrape (up to 256 open at once; more
// are closed as they connect).
//
//   jobs::MetricsServer server(metrics, "0.0.0.0", 9464);

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "webhookdb/export.hpp"
#include "webhookdb/metrics.hpp"

namespace webhookdb::jobs {

class WEBHOOKDB_EXPORT MetricsServer {
 public:
  // Listens at once (port 0: any free port; see port()). InvalidPrecondition
  // naming the address and port when it cannot.
  MetricsServer(std::shared_ptr<Metrics> metrics, const std::string& address, std::uint16_t port);
  // Stops listening and joins the thread.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

 private:
  void run();
  bool read_head(int connection, std::string& head);
  void answer(int connection, const std::string& head);

  std::shared_ptr<Metrics> metrics_;
  int listener_ = -1;
  int wake_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace webhookdb::jobs
