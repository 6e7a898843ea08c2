#include "webhookdb/testing/throwaway_postgres.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include "webhookdb/errors.hpp"

namespace webhookdb::testing {
namespace {

namespace fs = std::filesystem;

// The user and group the server runs as: `postgres` when we are root
// (initdb refuses root), else nobody to switch to.
struct Owner {
  uid_t uid = 0;
  gid_t gid = 0;
};

std::optional<Owner> server_owner() {
  if (::geteuid() != 0) return std::nullopt;
  const passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) {
    throw InvalidPrecondition(
        "ThrowawayPostgres: running as root and there is no `postgres` user to run the server as");
  }
  return Owner{pw->pw_uid, pw->pw_gid};
}

std::string tail_of(const fs::path& log) {
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  constexpr std::size_t kTail = 2000;
  return text.size() > kTail ? text.substr(text.size() - kTail) : text;
}

// Runs argv[0] with its output appended to `log`; its exit status (-1 when it
// did not exit normally).
int run(const std::vector<std::string>& args, const fs::path& log, const std::optional<Owner>& owner) {
  std::vector<std::string> strings = args;
  std::vector<char*> argv;
  argv.reserve(strings.size() + 1);
  for (auto& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw InvalidPrecondition("ThrowawayPostgres: cannot open " + log.string());
  if (owner) (void)::fchown(fd, owner->uid, owner->gid);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    if (owner && (::setgid(owner->gid) != 0 || ::setuid(owner->uid) != 0)) ::_exit(126);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fd);
  if (pid < 0) throw InvalidPrecondition("ThrowawayPostgres: fork failed");
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool has_tools(const fs::path& dir) {
  std::error_code ec;
  return fs::exists(dir / "initdb", ec) && fs::exists(dir / "pg_ctl", ec);
}

fs::path find_bin_dir(const fs::path& configured) {
  if (!configured.empty()) {
    if (!has_tools(configured)) {
      throw InvalidPrecondition("ThrowawayPostgres: no initdb and pg_ctl in " + configured.string());
    }
    return configured;
  }
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      const fs::path dir(std::string(rest.substr(0, colon)));
      if (!dir.empty() && has_tools(dir)) return dir;
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  // Debian keeps the server's tools out of PATH, one directory per major version.
  std::vector<std::pair<int, fs::path>> versions;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        has_tools(entry.path() / "bin")) {
      versions.emplace_back(std::stoi(name), entry.path() / "bin");
    }
  }
  if (versions.empty()) {
    throw InvalidPrecondition(
        "ThrowawayPostgres: no initdb and pg_ctl on PATH or in /usr/lib/postgresql/*/bin "
        "(install Debian's postgresql package, or set WEBHOOKDB_TEST_DATABASE_URL)");
  }
  return std::max_element(versions.begin(), versions.end())->second;
}

std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw InvalidPrecondition("ThrowawayPostgres: socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0;
  ::close(fd);
  if (!ok) throw InvalidPrecondition("ThrowawayPostgres: cannot find a free loopback port");
  return ntohs(addr.sin_port);
}

}  // namespace

ThrowawayPostgres::ThrowawayPostgres() : ThrowawayPostgres(Options{}) {}

ThrowawayPostgres::ThrowawayPostgres(Options options) {
  if (options.use_environment) {
    const char* url = std::getenv(options.environment_variable.c_str());
    if (url != nullptr && *url != '\0') {
      url_ = url;
      return;
    }
  }
  start(options);
}

ThrowawayPostgres::~ThrowawayPostgres() { stop(); }

void ThrowawayPostgres::start(const Options& options) {
  const fs::path bin = find_bin_dir(options.bin_dir);
  const auto owner = server_owner();
  std::string pattern = (fs::temp_directory_path() / "webhookdb-pg.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw InvalidPrecondition("ThrowawayPostgres: mkdtemp failed");
  directory_ = pattern;
  pg_ctl_ = bin / "pg_ctl";
  try {
    if (owner && ::chown(directory_.c_str(), owner->uid, owner->gid) != 0) {
      throw InvalidPrecondition("ThrowawayPostgres: cannot give " + directory_.string() + " to postgres");
    }
    const fs::path log = directory_ / "setup.log";
    if (run({(bin / "initdb").string(), "-D", (directory_ / "data").string(), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"},
            log, owner) != 0) {
      throw InvalidPrecondition("ThrowawayPostgres: initdb failed:\n" + tail_of(log));
    }
    const std::uint16_t port = free_loopback_port();
    const std::string server_options = "-c listen_addresses=127.0.0.1 -p " + std::to_string(port) + " -k " +
                                       directory_.string() +
                                       " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                                       " -c max_connections=200";
    if (run({pg_ctl_.string(), "-D", (directory_ / "data").string(), "-l", (directory_ / "server.log").string(),
             "-w", "-t", std::to_string(options.start_timeout.count()), "-o", server_options, "start"},
            log, owner) != 0) {
      throw InvalidPrecondition("ThrowawayPostgres: the server did not start:\n" +
                                tail_of(directory_ / "server.log"));
    }
    url_ = "postgresql://postgres@127.0.0.1:" + std::to_string(port) + "/postgres";
  } catch (...) {
    stop();
    throw;
  }
}

void ThrowawayPostgres::stop() noexcept {
  if (directory_.empty()) return;
  try {
    if (fs::exists(directory_ / "data" / "postmaster.pid")) {
      (void)run({pg_ctl_.string(), "-D", (directory_ / "data").string(), "-m", "immediate", "-w", "stop"},
                directory_ / "setup.log", server_owner());
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): best effort on the way out
  }
  std::error_code ec;
  fs::remove_all(directory_, ec);
  directory_.clear();
}

ThrowawayPostgres& ThrowawayPostgres::shared() {
  // Destroyed at exit, which stops a server it started.
  static ThrowawayPostgres server;
  return server;
}

}  // namespace webhookdb::testing
