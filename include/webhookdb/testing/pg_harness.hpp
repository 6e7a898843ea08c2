#pragma once
// A TestHarness on a real PostgreSQL: every table of the test (replication
// tables and webhookdb's own) in a fresh schema, dropped afterwards.
// Header-only: a test using it links webhookdb::pg and webhookdb::testing.
//
//   webhookdb::testing::TestHarness h;
//   webhookdb::testing::PgSchema schema;   // on ThrowawayPostgres::shared()
//   schema.attach(h);                      // h's replicators now write to PostgreSQL
//   auto si = h.integration("fake_v1");
//
// PostgresBackend runs the conformance kit (conformance.hpp) the same way.
//
// Secrets are encrypted under a random key made for the schema (the stores
// refuse plain-text secrets by default, and a test should see what a host sees).

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <utility>

#include <unistd.h>

#include "webhookdb/pg/config.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/pg/secret_key.hpp"
#include "webhookdb/testing/test_harness.hpp"
#include "webhookdb/testing/throwaway_postgres.hpp"

namespace webhookdb::testing {

class PgSchema {
 public:
  // A schema named <prefix>_<pid>_<n>_<random> on the server `url` names.
  explicit PgSchema(std::string url = ThrowawayPostgres::shared().url(), const std::string& prefix = "wdbk")
      : url_(std::move(url)) {
    static std::atomic<unsigned> counter{0};
    std::random_device random;
    name_ = prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter) + "_" +
            std::to_string(random() % 1000000U);
    pg::Config admin;
    admin.url = url_;
    admin.pool_size = 1;
    admin.application_name = "webhookdb_test_admin";
    admin.statement_timeout = std::chrono::seconds(30);
    admin_ = std::make_shared<pg::ConnectionPool>(admin);
    admin_->exec("CREATE SCHEMA \"" + name_ + "\"");
  }
  // Drops the schema with everything in it (stores still attached hold only
  // idle connections, which block nothing).
  ~PgSchema() {
    try {
      admin_->exec("DROP SCHEMA IF EXISTS \"" + name_ + "\" CASCADE");
    } catch (...) {  // NOLINT(bugprone-empty-catch): a leftover schema in a throwaway server
    }
  }
  PgSchema(const PgSchema&) = delete;
  PgSchema& operator=(const PgSchema&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  // A Config whose webhookdb tables and replication tables live in this schema.
  [[nodiscard]] pg::Config config(int pool_size = 4) const {
    pg::Config c;
    c.url = url_;
    c.pool_size = pool_size;
    c.schema = name_;
    c.replica_schema = name_;
    c.application_name = "webhookdb_test";
    c.acquire_timeout = std::chrono::seconds(20);
    return c;
  }

  // Points `h` at a PgReplicaStore and a PgJobStore on this schema (one pool).
  void attach(TestHarness& h, int pool_size = 4) const {
    auto pool = std::make_shared<pg::ConnectionPool>(config(pool_size));
    h.use_stores(std::make_shared<pg::PgReplicaStore>(pool),
                 std::make_shared<pg::PgJobStore>(pool, h.clock, random_keys()));
  }

  // Secrets under a key made for this test run.
  [[nodiscard]] static pg::SecretKeys random_keys() {
    std::random_device random;
    std::string hex;
    constexpr const char* kDigits = "0123456789abcdef";
    for (std::size_t i = 0; i < 2 * pg::SecretKey::kBytes; ++i) hex.push_back(kDigits[random() % 16U]);
    pg::SecretKeys keys;
    keys.current = pg::SecretKey::parse(hex, "a test key");
    return keys;
  }

 private:
  std::string url_;
  std::string name_;
  std::shared_ptr<pg::ConnectionPool> admin_;
};

// The conformance kit's backend on PostgreSQL (conformance.hpp): a fresh
// schema per test on ThrowawayPostgres::shared().
struct PostgresBackend {
  explicit PostgresBackend(TestHarness& harness) { schema.attach(harness); }
  PgSchema schema;
};

}  // namespace webhookdb::testing
