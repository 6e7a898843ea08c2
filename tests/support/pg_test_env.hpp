#pragma once
// PostgreSQL for tests. The server comes from WEBHOOKDB_TEST_DATABASE_URL
// (scripts/pg.sh starts a throwaway one); when it is missing the test FAILS,
// it never skips. Each test gets a fresh, uniquely named schema, dropped with
// everything in it afterwards. Header-only: link webhookdb::pg.
//
//   class MyTest : public webhookdb::test::PgTest {};
//   TEST_F(MyTest, Works) {
//     webhookdb::pg::PgReplicaStore store(config());   // tables and webhookdb's own in schema_name()
//     ...
//   }
//
// Outside a PgTest fixture, a ScopedSchema does the same for one scope.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "webhookdb/pg/config.hpp"
#include "webhookdb/pg/connection_pool.hpp"

namespace webhookdb::test {

inline constexpr const char* kDatabaseUrlVariable = "WEBHOOKDB_TEST_DATABASE_URL";

// The test database URL, or nullptr when the variable is unset or empty.
[[nodiscard]] inline const char* database_url_or_null() {
  const char* url = std::getenv(kDatabaseUrlVariable);
  return (url == nullptr || *url == '\0') ? nullptr : url;
}

// The test database URL. When it is missing: records a test failure and throws.
[[nodiscard]] inline std::string database_url() {
  const char* url = database_url_or_null();
  if (url == nullptr) {
    ADD_FAILURE() << kDatabaseUrlVariable
                  << " is not set: tests of the PostgreSQL adapter need a server "
                     "(source scripts/pg.sh && pg_start, or run scripts/test.sh)";
    throw std::runtime_error(std::string(kDatabaseUrlVariable) + " is not set");
  }
  return url;
}

// A fresh schema named <prefix>_<pid>_<n>_<random>, dropped (CASCADE) on destruction.
class ScopedSchema {
 public:
  explicit ScopedSchema(std::string url = database_url(), const std::string& prefix = "wdbt")
      : url_(std::move(url)) {
    static std::atomic<unsigned> counter{0};
    std::random_device rd;
    name_ = prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter) + "_" +
            std::to_string(rd() % 1000000U);
    pg::Config admin;
    admin.url = url_;
    admin.pool_size = 1;
    admin.application_name = "webhookdb_test_admin";
    admin.statement_timeout = std::chrono::seconds(30);
    admin_ = std::make_unique<pg::ConnectionPool>(admin);
    admin_->exec("CREATE SCHEMA " + quoted());
  }
  ~ScopedSchema() {
    try {
      admin_->exec("DROP SCHEMA IF EXISTS " + quoted() + " CASCADE");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "dropping test schema " << name_ << ": " << e.what();
    }
  }
  ScopedSchema(const ScopedSchema&) = delete;
  ScopedSchema& operator=(const ScopedSchema&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& url() const noexcept { return url_; }
  [[nodiscard]] std::string quoted() const { return "\"" + name_ + "\""; }

  // A Config whose schema (webhookdb's own tables) and replica_schema
  // (replication tables) are this schema.
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

  // Runs SQL (autocommit) on the fixture's own connection.
  pg::QueryResult exec(const std::string& sql, const std::vector<pg::Param>& params = {}) const {
    return admin_->exec(sql, params);
  }

 private:
  std::string url_;
  std::string name_;
  std::unique_ptr<pg::ConnectionPool> admin_;
};

// Fixture: a ScopedSchema per test.
class PgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* url = database_url_or_null();
    ASSERT_NE(url, nullptr) << kDatabaseUrlVariable
                            << " is not set: tests of the PostgreSQL adapter need a server "
                               "(source scripts/pg.sh && pg_start, or run scripts/test.sh)";
    schema_ = std::make_unique<ScopedSchema>(url);
  }
  void TearDown() override { schema_.reset(); }

  [[nodiscard]] ScopedSchema& schema() const { return *schema_; }
  [[nodiscard]] const std::string& schema_name() const { return schema_->name(); }
  [[nodiscard]] pg::Config config(int pool_size = 4) const { return schema_->config(pool_size); }
  pg::QueryResult admin_exec(const std::string& sql, const std::vector<pg::Param>& params = {}) const {
    return schema_->exec(sql, params);
  }

 private:
  std::unique_ptr<ScopedSchema> schema_;
};

}  // namespace webhookdb::test
