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
// Each case also prints where the CPU went (this load generator, the
// receiver, the PostgreSQL server of --database-url: seconds over the case,
// as cores and per webhook) and the transactions committed per webhook.
//
//   webhookdb-webhook-bench --receiver-exe PATH [--database-url URL] [--smoke] [--json FILE]
//                           [--cases sync,inbox] [--receiver-arg=--batch-window-us --receiver-arg=1000]

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <optional>
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

// CPU seconds (user + system) of a process from /proc/PID/stat, with its
// reaped children when `with_children`; its parent pid in `ppid`.
struct ProcCpu {
  pid_t ppid = 0;
  double seconds = 0;
};
std::optional<ProcCpu> proc_cpu(const std::filesystem::path& dir, bool with_children) {
  std::ifstream in(dir / "stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return std::nullopt;
  // After the command: state is field 3, ppid 4; utime, stime 14-15, cutime, cstime 16-17.
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  ProcCpu out;
  double ticks = 0;
  for (int n = 3; n <= 17 && rest >> field; ++n) {
    if (n == 4) out.ppid = static_cast<pid_t>(std::stol(field));
    if (n == 14 || n == 15 || (with_children && (n == 16 || n == 17))) ticks += std::stod(field);
  }
  out.seconds = ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  return out;
}

// Where the 2 cores go during a case: this load generator (not the system
// under test, but it shares the cores), the receiver, and the PostgreSQL
// server of --database-url (its postmaster with its reaped children and its
// live children: backends, WAL writer, checkpointer; no other server).
struct CpuSplit {
  double load_generator = 0;
  double receiver = 0;
  double postgres = 0;
  bool postgres_known = false;
};

pid_t g_postmaster = 0;

void find_postmaster(webhookdb::pg::ConnectionPool& pool) {
  try {
    const auto backend = pool.exec("SELECT pg_backend_pid() AS pid").at(0, "pid").value_or("0");
    if (const auto stat = proc_cpu("/proc/" + backend, false)) g_postmaster = stat->ppid;
  } catch (const std::exception&) {
    g_postmaster = 0;
  }
}

// Transactions committed in the database so far (pg_stat_database).
double commits(webhookdb::pg::ConnectionPool& pool) {
  const auto r = pool.exec("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()");
  return std::stod(r.at(0, "xact_commit").value_or("0"));
}

double self_cpu() {
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  const auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return secs(self.ru_utime) + secs(self.ru_stime);
}

std::optional<double> server_cpu() {
  if (g_postmaster <= 0) return std::nullopt;
  const auto postmaster = proc_cpu("/proc/" + std::to_string(g_postmaster), true);
  if (!postmaster) return std::nullopt;
  double total = postmaster->seconds;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = entry.path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto stat = proc_cpu(entry.path(), true);
    if (stat && stat->ppid == g_postmaster) total += stat->seconds;
  }
  return total;
}

double receiver_cpu(pid_t pid) {
  const auto stat = proc_cpu("/proc/" + std::to_string(pid), false);
  return stat ? stat->seconds : 0;
}

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
  CpuSplit cpu;
  double commits = 0;  // transactions committed in the database meanwhile (the receiver's start included)
};

// The load generator: every connection of a case on one thread, driven by
// epoll (non-blocking keep-alive sockets). It is not the system under test but
// it shares the 2 cores with it: one thread waking once for many ready
// sockets, requests signed and framed before the clock starts, and no
// allocation per request keep its share small (32 blocking threads, one
// wake-up per response, took about 0.25 of a core at 3,500 webhooks/s).
class LoadGenerator {
 public:
  LoadGenerator(unsigned short port, const std::vector<Request>& requests, std::size_t connections)
      : port_(port), requests_(requests), slots_(connections) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) throw std::runtime_error("epoll_create1 failed");
  }
  ~LoadGenerator() {
    for (auto& slot : slots_) close_slot(slot);
    close(epoll_);
  }
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Sends every request (refused ones are not retried); stops early once
  // `abort` is set.
  void run(Result& r, std::vector<double>& latencies, const std::atomic<bool>* abort,
           std::atomic<std::size_t>* answered_2xx) {
    result_ = &r;
    latencies_ = &latencies;
    abort_ = abort;
    answered_2xx_ = answered_2xx;
    for (std::size_t s = 0; s < slots_.size(); ++s) start_next(s);
    std::vector<epoll_event> events(slots_.size());
    while (busy_ > 0) {
      if (abort != nullptr && abort->load()) break;
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 100);
      for (int e = 0; e < n; ++e) on_event(static_cast<std::size_t>(events[static_cast<std::size_t>(e)].data.u64),
                                           events[static_cast<std::size_t>(e)].events);
    }
  }

 private:
  struct Slot {
    int fd = -1;
    std::size_t request = 0;  // index into requests_
    std::size_t sent = 0;     // bytes of its wire sent
    bool active = false;
    Clock::time_point started;
    std::array<char, 4096> in{};
    std::size_t have = 0;  // bytes in `in`
  };

  bool connect_slot(Slot& slot, std::size_t index) {
    slot.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (slot.fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(slot.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Blocking connect (loopback: done once the receiver's backlog holds it), then non-blocking I/O.
    if (connect(slot.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(slot.fd);
      slot.fd = -1;
      return false;
    }
    fcntl(slot.fd, F_SETFL, fcntl(slot.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
    ev.data.u64 = index;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, slot.fd, &ev);
    slot.have = 0;
    return true;
  }

  void close_slot(Slot& slot) {
    if (slot.fd >= 0) close(slot.fd);
    slot.fd = -1;
  }

  // The slot takes the next request, if any is left (a new connection when
  // it has none; a request it cannot connect for counts as broken).
  void start_next(std::size_t s) {
    Slot& slot = slots_[s];
    while (next_ < requests_.size() && slot.fd < 0 && !connect_slot(slot, s)) {
      ++next_;
      ++result_->other;
      if (abort_ != nullptr && abort_->load()) return;
    }
    if (next_ >= requests_.size()) {
      close_slot(slot);
      return;
    }
    slot.request = next_++;
    slot.sent = 0;
    slot.active = true;
    ++busy_;
    slot.started = Clock::now();
    send_some(s);
  }

  void send_some(std::size_t s) {
    Slot& slot = slots_[s];
    const std::string& wire = requests_[slot.request].wire;
    while (slot.sent < wire.size()) {
      const ssize_t n = send(slot.fd, wire.data() + slot.sent, wire.size() - slot.sent, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) return broken(s);
      slot.sent += static_cast<std::size_t>(n);
    }
  }

  void on_event(std::size_t s, std::uint32_t events) {
    Slot& slot = slots_[s];
    if (!slot.active) return;
    if ((events & EPOLLOUT) != 0 && slot.sent < requests_[slot.request].wire.size()) send_some(s);
    if (!slot.active) return;
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) receive(s);
  }

  void receive(std::size_t s) {
    Slot& slot = slots_[s];
    for (;;) {
      if (slot.have == slot.in.size()) return broken(s);  // no answer of ours is that long
      const ssize_t n = recv(slot.fd, slot.in.data() + slot.have, slot.in.size() - slot.have, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) return broken(s);
      slot.have += static_cast<std::size_t>(n);
      const std::string_view text(slot.in.data(), slot.have);
      const auto end = text.find("\r\n\r\n");
      if (end == std::string_view::npos) continue;
      const std::string_view head = text.substr(0, end + 2);
      const std::size_t length = header_number(head, "content-length:");
      if (slot.have < end + 4 + length) continue;
      int status = 0;
      if (head.size() < 12 || std::sscanf(slot.in.data(), "HTTP/1.%*d %d", &status) != 1) return broken(s);
      const bool closing = header_has(head, "connection:", "close");
      // One answer per request: nothing else should be buffered.
      slot.have = 0;
      return answered(s, status, closing);
    }
  }

  // The value of a numeric header (0 when absent); `name` is lower case with its colon.
  static std::size_t header_number(std::string_view head, std::string_view name) {
    const auto at = find_header(head, name);
    if (at == std::string_view::npos) return 0;
    return std::strtoul(head.data() + at + name.size(), nullptr, 10);
  }
  static bool header_has(std::string_view head, std::string_view name, std::string_view value) {
    const auto at = find_header(head, name);
    if (at == std::string_view::npos) return false;
    const auto line_end = head.find("\r\n", at);
    const std::string_view line = head.substr(at, line_end - at);
    return line.find(value) != std::string_view::npos;
  }
  static std::size_t find_header(std::string_view head, std::string_view name) {
    for (std::size_t line = head.find("\r\n"); line != std::string_view::npos; line = head.find("\r\n", line + 2)) {
      const std::size_t at = line + 2;
      if (head.size() - at < name.size()) return std::string_view::npos;
      bool same = true;
      for (std::size_t k = 0; k < name.size() && same; ++k) {
        same = std::tolower(static_cast<unsigned char>(head[at + k])) == name[k];
      }
      if (same) return at;
    }
    return std::string_view::npos;
  }

  void answered(std::size_t s, int status, bool closing) {
    Slot& slot = slots_[s];
    latencies_->push_back(std::chrono::duration<double, std::milli>(Clock::now() - slot.started).count());
    slot.active = false;
    --busy_;
    if (status >= 200 && status < 300) {
      ++result_->accepted;
      result_->acked.push_back(requests_[slot.request].key);
      if (answered_2xx_ != nullptr) answered_2xx_->fetch_add(1);
    } else if (status == 503) {
      ++result_->refused;
    } else {
      ++result_->other;
    }
    if (closing) close_slot(slot);
    start_next(s);
  }

  // The connection broke before its answer: a request counted as other, a new connection for the next.
  void broken(std::size_t s) {
    Slot& slot = slots_[s];
    latencies_->push_back(std::chrono::duration<double, std::milli>(Clock::now() - slot.started).count());
    slot.active = false;
    --busy_;
    ++result_->other;
    close_slot(slot);
    start_next(s);
  }

  unsigned short port_;
  const std::vector<Request>& requests_;
  std::vector<Slot> slots_;
  int epoll_ = -1;
  std::size_t next_ = 0;
  std::size_t busy_ = 0;
  Result* result_ = nullptr;
  std::vector<double>* latencies_ = nullptr;
  std::atomic<std::size_t>* answered_2xx_ = nullptr;
  const std::atomic<bool>* abort_ = nullptr;
};

// Sends every request over `connections` connections; refused ones are not retried.
Result run_load(const std::string& name, unsigned short port, const std::vector<Request>& requests,
                std::size_t connections, const std::atomic<bool>* abort = nullptr,
                std::atomic<std::size_t>* answered_2xx = nullptr) {
  Result r;
  r.name = name;
  r.sent = requests.size();
  std::vector<double> latencies;
  latencies.reserve(requests.size());
  r.acked.reserve(requests.size());
  LoadGenerator generator(port, requests, connections);
  const auto start = Clock::now();
  generator.run(r, latencies, abort, answered_2xx);
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
  if (r.accepted > 0 && r.seconds > 0 && r.cpu.receiver > 0) {
    const double n = static_cast<double>(r.accepted);
    const auto share = [&](double cpu) {
      std::ostringstream t;
      t << std::fixed << std::setprecision(2) << cpu / r.seconds << " cores, " << std::setprecision(0)
        << cpu / n * 1e6 << " us/webhook";
      return t.str();
    };
    out << "          cpu: load generator " << share(r.cpu.load_generator) << "; receiver " << share(r.cpu.receiver)
        << "; postgres " << (r.cpu.postgres_known ? share(r.cpu.postgres) : std::string("n/a"))
        << "; commits/webhook " << std::setprecision(3) << r.commits / n << "\n";
  }
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
          {"landed", r.landed},
          {"commits", r.commits},
          {"cpu_seconds",
           {{"load_generator", r.cpu.load_generator},
            {"receiver", r.cpu.receiver},
            {"postgres", r.cpu.postgres_known ? json(r.cpu.postgres) : json(nullptr)}}}};
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
  std::vector<std::string> cases{"baseline", "sync", "inbox", "burst", "crash"};
  app.add_option("--cases", cases, "which cases to run (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"baseline", "sync", "inbox", "burst", "crash"}));
  std::vector<std::string> extra;
  app.add_option("--receiver-arg", extra, "an extra receiver argument for the batched cases (repeatable)")
      ->allow_extra_args(false);
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
    find_postmaster(pool);
    std::vector<Result> results;
    bool ok = true;
    auto steady = [&](const std::string& name, std::vector<std::string> flags, std::size_t n, std::size_t conns) {
      reset_tables(pool);
      flags.insert(flags.begin(), {"--port", "0", "--secret", kSecret, "--database-url", database_url});
      const double commits0 = commits(pool);
      Receiver receiver = start_receiver(receiver_exe, flags);
      const auto requests = make_requests(name, n);
      const double gen0 = self_cpu();
      const double recv0 = receiver_cpu(receiver.pid);
      const auto pg0 = server_cpu();
      Result r = run_load(name, receiver.port, requests, conns);
      const auto pg1 = server_cpu();
      r.cpu.load_generator = self_cpu() - gen0;
      r.cpu.receiver = receiver_cpu(receiver.pid) - recv0;
      r.cpu.postgres_known = pg0 && pg1;
      if (r.cpu.postgres_known) r.cpu.postgres = *pg1 - *pg0;
      r.rss_mib = peak_rss_mib(receiver.pid);
      stop_receiver(receiver);
      // A backend's counts reach pg_stat_database when it ends: give the receiver's a moment.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      r.commits = commits(pool) - commits0;
      check_landed(r, pool);
      ok = ok && r.all_landed && r.other == 0;
      results.push_back(std::move(r));
    };
    const auto wanted = [&](const std::string& name) {
      return std::find(cases.begin(), cases.end(), name) != cases.end();
    };
    const auto batched = [&](std::vector<std::string> flags) {
      flags.insert(flags.end(), extra.begin(), extra.end());
      return flags;
    };
    std::cout << "case      webhooks/s      p50     p99     refused other    time      RSS   2xx landed\n";
    std::optional<double> base, sync;
    const auto rate = [](const Result& r) { return static_cast<double>(r.accepted) / std::max(r.seconds, 1e-9); };
    // One transaction per webhook, 8 at a time (the receiver's 8 handler threads before micro-batches).
    if (wanted("baseline")) {
      steady("baseline", {"--sync", "--max-batch", "1", "--batch-window-us", "0", "--batch-writers", "8"}, events,
             connections);
      print(results.back(), std::cout);
      base = rate(results.back());
    }
    if (wanted("sync")) {
      steady("sync", batched({"--sync"}), events, connections);
      print(results.back(), std::cout);
      sync = rate(results.back());
    }
    if (wanted("inbox")) {
      steady("inbox", batched({"--inbox"}), events, connections);
      print(results.back(), std::cout);
    }
    if (wanted("burst")) {
      steady("burst", batched({"--sync"}), burst, burst_connections);
      print(results.back(), std::cout);
    }

    // kill -9 mid-burst: every 2xx must be in the table or the inbox.
    if (wanted("crash")) {
      reset_tables(pool);
      Receiver receiver = start_receiver(
          receiver_exe,
          batched({"--port", "0", "--secret", kSecret, "--database-url", database_url, "--inbox"}));
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
    if (base && sync) {
      std::cout << "sync / baseline: " << std::setprecision(2) << (*base > 0 ? *sync / *base : 0) << "x\n";
    }
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
