#pragma once
// A PostgreSQL server for a test run, started from the binaries on this
// machine and thrown away afterwards, so replicator tests (the conformance
// kit's PostgreSQL backend, pg_harness.hpp) need no server set up by hand.
//
//   auto& pg = webhookdb::testing::ThrowawayPostgres::shared();  // once per process
//   webhookdb::pg::Config config;
//   config.url = pg.url();
//
// When WEBHOOKDB_TEST_DATABASE_URL is set (scripts/pg.sh, CI) that server is
// used and nothing is started. Otherwise initdb and pg_ctl (from
// Options::bin_dir, else PATH, else the newest /usr/lib/postgresql/*/bin) make
// a cluster in a fresh temporary directory, listening on a free loopback port
// and a socket in that directory, with fsync off; the destructor stops it
// (immediate) and removes the directory. Run as root, the server runs as the
// `postgres` user (PostgreSQL refuses root). POSIX only.

#include <chrono>
#include <filesystem>
#include <string>

#include "webhookdb/export.hpp"

namespace webhookdb::testing {

class WEBHOOKDB_EXPORT ThrowawayPostgres {
 public:
  struct Options {
    // Use the server this variable names, when it is set and not empty.
    bool use_environment = true;
    std::string environment_variable = "WEBHOOKDB_TEST_DATABASE_URL";
    // Where initdb and pg_ctl are; empty: PATH, then /usr/lib/postgresql/<newest>/bin.
    std::filesystem::path bin_dir;
    std::chrono::seconds start_timeout{60};
  };

  ThrowawayPostgres();
  explicit ThrowawayPostgres(Options options);
  // Stops a server this object started and removes its directory.
  ~ThrowawayPostgres();
  ThrowawayPostgres(const ThrowawayPostgres&) = delete;
  ThrowawayPostgres& operator=(const ThrowawayPostgres&) = delete;

  // A libpq URL of the server's `postgres` database (no password: trust on loopback).
  [[nodiscard]] const std::string& url() const noexcept { return url_; }
  // true when this object started the server, false when it uses the environment's.
  [[nodiscard]] bool started() const noexcept { return !directory_.empty(); }
  // The cluster's directory (data/, server.log), empty when nothing was started.
  [[nodiscard]] const std::filesystem::path& directory() const noexcept { return directory_; }

  // One server per process, made on first use and stopped at exit.
  static ThrowawayPostgres& shared();

 private:
  void start(const Options& options);
  void stop() noexcept;

  std::string url_;
  std::filesystem::path directory_;
  std::filesystem::path pg_ctl_;
};

}  // namespace webhookdb::testing
