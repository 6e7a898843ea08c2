#pragma once
// Real webhookdb-worker processes for the benchmarks that run a fleet
// (webhookdb-queue-bench, webhookdb-quota-fleet-bench). The database URL goes
// through the environment, never argv, where ps would show its password.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <webhookdb/errors.hpp>

namespace webhookdb::bench {

class WorkerFleet {
 public:
  // `common_args` go to every worker after the executable: schemas, poll
  // interval and the like; spawn() adds --owner, --log-level and its own.
  WorkerFleet(std::string exe, std::string database_url, std::vector<std::string> common_args)
      : exe_(std::move(exe)), database_url_(std::move(database_url)), common_args_(std::move(common_args)) {}
  // Workers left running by a failed phase are stopped.
  ~WorkerFleet() { stop_all(); }
  WorkerFleet(const WorkerFleet&) = delete;
  WorkerFleet& operator=(const WorkerFleet&) = delete;

  pid_t spawn(const std::string& owner, const std::vector<std::string>& extra_args) {
    std::vector<std::string> args{exe_};
    args.insert(args.end(), common_args_.begin(), common_args_.end());
    args.insert(args.end(), {"--owner", owner, "--log-level", "error"});
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw InvariantViolation("fork failed for worker " + owner);
    if (pid == 0) {
      setenv("WEBHOOKDB_DATABASE_URL", database_url_.c_str(), 1);
      if (FILE* null = std::fopen("/dev/null", "w")) dup2(fileno(null), STDOUT_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    pids_.push_back(pid);
    return pid;
  }

  // A worker is up once it has a session of its own (its runners took once
  // and wait; its listener connects at the first wait).
  static void wait_until_up(pqxx::connection& admin, const std::vector<std::string>& owners) {
    using namespace std::chrono_literals;
    for (const auto& owner : owners) {
      bool up = false;
      for (int i = 0; i < 1000 && !up; ++i) {
        pqxx::nontransaction nt(admin);
        up = nt.exec_params("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                            "webhookdb-worker " + owner)[0][0]
                 .as<long>() > 0;
        if (!up) std::this_thread::sleep_for(20ms);
      }
      if (!up) throw InvariantViolation("worker " + owner + " did not start");
    }
    std::this_thread::sleep_for(500ms);
  }

  void stop(pid_t pid) {
    if (std::find(pids_.begin(), pids_.end(), pid) == pids_.end()) return;
    if (kill(pid, SIGTERM) == 0) waitpid(pid, nullptr, 0);
    std::erase(pids_, pid);
  }

  // SIGTERM to all first, so they drain at the same time.
  void stop_all() {
    for (pid_t pid : pids_) kill(pid, SIGTERM);
    for (pid_t pid : pids_) waitpid(pid, nullptr, 0);
    pids_.clear();
  }

 private:
  std::string exe_;
  std::string database_url_;
  std::vector<std::string> common_args_;
  std::vector<pid_t> pids_;
};

}  // namespace webhookdb::bench
