// The webhook benchmark (issue 23): a load generator of our own against the
// example receiver (a separate process) on real PostgreSQL. Pre-signed,
// distinct Stripe-style events go over keep-alive connections; each case
// reports webhooks/s (2xx per second), p50/p99 latency, the share refused
// (503) and whether every 2xx landed:
//   baseline  --sync, one transaction per webhook (--max-batch 1), 8 at once
//   sync      --sync, micro-batched
//   inbox     --inbox, micro-batched into the durable inbox
//   burst     --sync, 10,000 sent at once over many connections (peak RSS)
//   crash     --inbox, kill -9 of the receiver mid-burst: every 2xx must be
//             in the table or the inbox afterwards
//
//   webhookdb-webhook-bench --receiver-exe PATH [--database-url URL] [--smoke] [--json FILE]

#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/webhooks/verification.hpp"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* kSecret = "whsec_bench_local_only";

struct Receiver {
  pid_t pid = -1;
  unsigned short port = 0;
};

// Starts the example receiver; reads "port N" from its stdout.
Receiver start_receiver(const std::string& exe, const std::vector<std::string>& args) {
  int out[2];
  if (pipe(out) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  char line[512];
  Receiver r;
  r.pid = pid;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned port = 0;
    if (std::sscanf(line, "port %u", &port) == 1) {
      r.port = static_cast<unsigned short>(port);
      break;
    }
  }
  // Keep draining its stdout so it never blocks on a full pipe.
  std::thread([f] {
    char buf[512];
    while (std::fgets(buf, sizeof buf, f) != nullptr) {
    }
    std::fclose(f);
  }).detach();
  if (r.port == 0) throw std::runtime_error("the receiver did not print its port: " + exe);
  return r;
}

void stop_receiver(Receiver& r, int sig = SIGTERM) {
  if (r.pid <= 0) return;
  kill(r.pid, sig);
  int status = 0;
  waitpid(r.pid, &status, 0);
  r.pid = -1;
}

// Peak resident set (VmHWM) of a live process, in MiB.
double peak_rss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      double kib = 0;
      in >> kib;
      return kib / 1024.0;
    }
  }
  return 0;
}

// One keep-alive HTTP/1.1 connection with blocking sockets.
class Connection {
 public:
  explicit Connection(unsigned short port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Connection() {
    if (fd_ >= 0) close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  [[nodiscard]] bool ok() const { return fd_ >= 0; }

  // The status, or -1 when the connection broke.
  int post(const std::string& wire) {
    std::size_t sent = 0;
    while (sent < wire.size()) {
      const ssize_t n = send(fd_, wire.data() + sent, wire.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return -1;
      sent += static_cast<std::size_t>(n);
    }
    for (;;) {
      const auto end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        int status = 0;
        if (std::sscanf(buffer_.c_str(), "HTTP/1.%*d %d", &status) != 1) return -1;
        std::size_t length = 0;
        std::string head = buffer_.substr(0, end);
        std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
        if (auto at = head.find("content-length:"); at != std::string::npos) {
          length = std::strtoul(head.c_str() + at + 15, nullptr, 10);
        }
        const bool closing = head.find("connection: close") != std::string::npos;
        while (buffer_.size() < end + 4 + length) {
          if (!fill()) return -1;
        }
        buffer_.erase(0, end + 4 + length);
        if (closing) {
          close(fd_);
          fd_ = -1;
        }
        return status;
      }
      if (!fill()) return -1;
    }
  }

 private:
  bool fill() {
    char chunk[16384];
    const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buffer_;
};

struct Request {
  std::string key;
  std::string wire;
};

std::vector<Request> make_requests(const std::string& prefix, std::size_t n) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::vector<Request> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string key = "ch_" + prefix + "_" + std::to_string(i);
    const json charge{{"id", key},        {"amount", 100 + static_cast<int>(i % 1000)}, {"currency", "usd"},
                      {"status", "succeeded"}, {"object", "charge"},                         {"created", now - 60}};
    const std::string body = json{{"id", "evt_" + key}, {"object", "event"},          {"created", now},
                                  {"type", "charge.succeeded"}, {"data", {{"object", charge}}}}
                                 .dump();
    std::string wire = "POST /v1/webhooks/svi_example_charges HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\nStripe-Signature: " +
                       webhookdb::webhooks::stripe_signature_header(kSecret, now, body) +
                       "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    out.push_back({key, std::move(wire)});
  }
  return out;
}

struct Result {
  std::string name;
  std::size_t sent = 0;
  std::size_t accepted = 0;
  std::size_t refused = 0;  // 503
  std::size_t other = 0;    // any other status, or a broken connection
  double seconds = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double rss_mib = 0;
  std::size_t landed = 0;  // 2xx found in the table or the inbox afterwards
  bool all_landed = false;
  std::vector<std::string> acked;
};

// Sends every request over `connections` connections; refused ones are not retried.
Result run_load(const std::string& name, unsigned short port, const std::vector<Request>& requests,
                std::size_t connections, const std::atomic<bool>* abort = nullptr,
                std::atomic<std::size_t>* answered_2xx = nullptr) {
  Result r;
  r.name = name;
  r.sent = requests.size();
  std::mutex mutex;
  std::vector<double> latencies;
  latencies.reserve(requests.size());
  std::atomic<std::size_t> next{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < connections; ++c) {
    threads.emplace_back([&] {
      auto conn = std::make_unique<Connection>(port);
      std::vector<double> mine;
      std::vector<std::string> acked;
      std::size_t accepted = 0, refused = 0, other = 0;
      for (;;) {
        if (abort != nullptr && abort->load()) break;
        const std::size_t i = next.fetch_add(1);
        if (i >= requests.size()) break;
        if (!conn->ok()) conn = std::make_unique<Connection>(port);
        const auto t0 = Clock::now();
        const int status = conn->ok() ? conn->post(requests[i].wire) : -1;
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (status >= 200 && status < 300) {
          ++accepted;
          acked.push_back(requests[i].key);
          if (answered_2xx != nullptr) answered_2xx->fetch_add(1);
        } else if (status == 503) {
          ++refused;
        } else {
          ++other;
          if (status < 0) conn = std::make_unique<Connection>(port);
        }
      }
      std::lock_guard lock(mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
      r.acked.insert(r.acked.end(), acked.begin(), acked.end());
      r.accepted += accepted;
      r.refused += refused;
      r.other += other;
    });
  }
  for (auto& t : threads) t.join();
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies.begin(), latencies.end());
  if (!latencies.empty()) {
    r.p50_ms = latencies[latencies.size() / 2];
    r.p99_ms = latencies[std::min(latencies.size() - 1, latencies.size() * 99 / 100)];
  }
  return r;
}

// Keys present in the charges table or (as a body) in the inbox.
std::set<std::string> stored_keys(webhookdb::pg::ConnectionPool& pool) {
  std::set<std::string> keys;
  for (const auto& row : pool.exec("SELECT stripe_id FROM example_stripe_charges").rows) {
    if (row[0]) keys.insert(*row[0]);
  }
  const auto inbox = pool.exec("SELECT to_regclass('webhookdb_webhook_inbox') IS NOT NULL AS present");
  if (inbox.at(0, "present").value_or("") == "t") {
    for (const auto& row : pool.exec("SELECT body FROM webhookdb_webhook_inbox").rows) {
      if (!row[0]) continue;
      const auto body = json::parse(*row[0], nullptr, false);
      if (body.is_object()) keys.insert(body["data"]["object"].value("id", ""));
    }
  }
  return keys;
}

void reset_tables(webhookdb::pg::ConnectionPool& pool) {
  pool.exec("DROP TABLE IF EXISTS example_stripe_charges");
  pool.exec("DO $$ BEGIN IF to_regclass('webhookdb_webhook_inbox') IS NOT NULL THEN "
            "DELETE FROM webhookdb_webhook_inbox; END IF; END $$");
}

void check_landed(Result& r, webhookdb::pg::ConnectionPool& pool) {
  const auto keys = stored_keys(pool);
  for (const auto& key : r.acked) r.landed += keys.count(key);
  r.all_landed = r.landed == r.acked.size();
}

void print(const Result& r, std::ostream& out) {
  out << std::left << std::setw(9) << r.name << std::right << std::fixed << std::setprecision(0) << std::setw(9)
      << (r.seconds > 0 ? static_cast<double>(r.accepted) / r.seconds : 0) << " /s" << std::setprecision(1)
      << std::setw(8) << r.p50_ms << std::setw(8) << r.p99_ms << " ms" << std::setw(7)
      << (r.sent > 0 ? 100.0 * static_cast<double>(r.refused) / static_cast<double>(r.sent) : 0) << " %"
      << std::setw(6) << r.other << std::setw(8) << std::setprecision(2) << r.seconds << " s" << std::setw(8)
      << std::setprecision(0) << r.rss_mib << " MiB  " << r.landed << "/" << r.acked.size()
      << (r.all_landed ? " landed" : " MISSING") << "\n";
}

json to_json(const Result& r) {
  return {{"case", r.name},
          {"sent", r.sent},
          {"accepted", r.accepted},
          {"refused", r.refused},
          {"other", r.other},
          {"seconds", r.seconds},
          {"webhooks_per_second", r.seconds > 0 ? static_cast<double>(r.accepted) / r.seconds : 0},
          {"p50_ms", r.p50_ms},
          {"p99_ms", r.p99_ms},
          {"refused_share", r.sent > 0 ? static_cast<double>(r.refused) / static_cast<double>(r.sent) : 0},
          {"peak_rss_mib", r.rss_mib},
          {"acked", r.acked.size()},
          {"landed", r.landed}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"webhook ingestion benchmark"};
  std::string receiver_exe;
  std::string database_url;
  std::string json_path;
  bool smoke = false;
  std::size_t connections = 32;
  std::size_t events = 20000;
  std::size_t burst = 10000;
  std::size_t burst_connections = 256;
  app.add_option("--receiver-exe", receiver_exe, "the example webhook_receiver")->required();
  app.add_option("--database-url", database_url, "PostgreSQL (default: $WEBHOOKDB_TEST_DATABASE_URL)");
  app.add_option("--json", json_path, "write the results here");
  app.add_option("--connections", connections, "connections of the steady cases");
  app.add_option("--events", events, "webhooks per steady case");
  app.add_option("--burst", burst, "webhooks of the burst");
  app.add_flag("--smoke", smoke, "small and quick");
  CLI11_PARSE(app, argc, argv);
  if (database_url.empty()) {
    if (const char* url = std::getenv("WEBHOOKDB_TEST_DATABASE_URL")) database_url = url;
  }
  if (database_url.empty()) {
    std::cerr << "webhook bench: give --database-url or set WEBHOOKDB_TEST_DATABASE_URL\n";
    return 2;
  }
  // The receiver keeps its integrations' webhook secret in PostgreSQL: on this
  // throwaway database, in plain text unless the host gave a key.
  if (std::getenv("WEBHOOKDB_SECRET_KEY") == nullptr && std::getenv("WEBHOOKDB_SECRET_KEY_FILE") == nullptr) {
    setenv("WEBHOOKDB_PLAINTEXT_SECRETS", "1", 1);
  }
  if (smoke) {
    events = 400;
    burst = 400;
    connections = 8;
    burst_connections = 32;
  }
  try {
    webhookdb::pg::Config config;
    config.url = database_url;
    webhookdb::pg::ConnectionPool pool(config);
    std::vector<Result> results;
    bool ok = true;
    auto steady = [&](const std::string& name, std::vector<std::string> flags, std::size_t n, std::size_t conns) {
      reset_tables(pool);
      flags.insert(flags.begin(), {"--port", "0", "--secret", kSecret, "--database-url", database_url});
      Receiver receiver = start_receiver(receiver_exe, flags);
      const auto requests = make_requests(name, n);
      Result r = run_load(name, receiver.port, requests, conns);
      r.rss_mib = peak_rss_mib(receiver.pid);
      stop_receiver(receiver);
      check_landed(r, pool);
      ok = ok && r.all_landed && r.other == 0;
      results.push_back(std::move(r));
    };
    std::cout << "case      webhooks/s      p50     p99     refused other    time      RSS   2xx landed\n";
    // One transaction per webhook, 8 at a time (the receiver's 8 handler threads before micro-batches).
    steady("baseline", {"--sync", "--max-batch", "1", "--batch-window-us", "0", "--batch-writers", "8"}, events,
           connections);
    print(results.back(), std::cout);
    steady("sync", {"--sync"}, events, connections);
    print(results.back(), std::cout);
    steady("inbox", {"--inbox"}, events, connections);
    print(results.back(), std::cout);
    steady("burst", {"--sync"}, burst, burst_connections);
    print(results.back(), std::cout);

    // kill -9 mid-burst: every 2xx must be in the table or the inbox.
    {
      reset_tables(pool);
      Receiver receiver = start_receiver(
          receiver_exe, {"--port", "0", "--secret", kSecret, "--database-url", database_url, "--inbox"});
      const auto requests = make_requests("crash", burst);
      std::atomic<bool> abort{false};
      std::atomic<std::size_t> answered{0};
      std::thread killer([&] {
        // Mid-burst: once a quarter has been answered 2xx (or after 10 s).
        const auto give_up = Clock::now() + std::chrono::seconds(10);
        while (answered.load() < requests.size() / 4 && Clock::now() < give_up) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        kill(receiver.pid, SIGKILL);
        abort = true;
      });
      Result r = run_load("crash", receiver.port, requests, burst_connections, &abort, &answered);
      killer.join();
      int status = 0;
      waitpid(receiver.pid, &status, 0);
      check_landed(r, pool);
      ok = ok && r.all_landed && !r.acked.empty();
      results.push_back(std::move(r));
      print(results.back(), std::cout);
    }
    const double base = static_cast<double>(results[0].accepted) / std::max(results[0].seconds, 1e-9);
    const double sync = static_cast<double>(results[1].accepted) / std::max(results[1].seconds, 1e-9);
    std::cout << "sync / baseline: " << std::setprecision(2) << (base > 0 ? sync / base : 0) << "x\n";
    if (!json_path.empty()) {
      json out = json::array();
      for (const auto& r : results) out.push_back(to_json(r));
      std::ofstream(json_path) << out.dump(2) << "\n";
    }
    if (!ok) {
      std::cout << "webhook benchmark FAILED: a 2xx did not land, or a request broke\n";
      return 1;
    }
    std::cout << "webhook benchmark complete\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "webhook bench: " << e.what() << "\n";
    return 1;
  }
}
