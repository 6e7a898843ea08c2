// The connection pool and migrations, against a real server.

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "pg/pg_support.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/migrations.hpp"

namespace webhookdb::pg {
namespace {

using test::PgTest;

class PgPoolTest : public PgTest {};

TEST_F(PgPoolTest, ConnectsLazilyWithUtcAndSettings) {
  Config c = config(2);
  c.statement_timeout = std::chrono::milliseconds(1500);
  c.application_name = "webhookdb_pool_test";
  ConnectionPool pool(c);
  EXPECT_EQ(pool.open_connections(), 0U);
  auto r = pool.exec(
      "SELECT current_setting('TimeZone') AS tz, current_setting('statement_timeout') AS st,"
      " current_setting('application_name') AS app, current_setting('client_encoding') AS enc");
  EXPECT_EQ(r.at(0, "tz"), "UTC");
  EXPECT_EQ(r.at(0, "st"), "1500ms");
  EXPECT_EQ(r.at(0, "app"), "webhookdb_pool_test");
  EXPECT_EQ(r.at(0, "enc"), "UTF8");
  EXPECT_EQ(pool.open_connections(), 1U);
  EXPECT_EQ(pool.idle_connections(), 1U);
  EXPECT_THROW((void)r.at(0, "nope"), InvalidPrecondition);
}

TEST_F(PgPoolTest, TransactionsCommitOrRollBack) {
  ConnectionPool pool(config(1));
  pool.exec("CREATE TABLE " + schema().quoted() + ".t (v integer)");
  pool.transaction([&](Session& s) { s.exec("INSERT INTO " + schema().quoted() + ".t VALUES ($1)", {"1"}); });
  EXPECT_THROW(pool.transaction([&](Session& s) {
    s.exec("INSERT INTO " + schema().quoted() + ".t VALUES ($1)", {"2"});
    throw InvariantViolation("boom");
  }),
               InvariantViolation);
  auto r = pool.exec("SELECT count(*) AS n, max(v) AS m FROM " + schema().quoted() + ".t");
  EXPECT_EQ(r.at(0, "n"), "1");
  EXPECT_EQ(r.at(0, "m"), "1");
  // NULL parameters and results.
  r = pool.exec("SELECT $1::text IS NULL AS isnull, NULL::text AS v", {std::nullopt});
  EXPECT_EQ(r.at(0, "isnull"), "t");
  EXPECT_EQ(r.at(0, "v"), std::nullopt);
  // A NUL byte never reaches libpq (it would cut the text silently).
  EXPECT_THROW(pool.exec("SELECT $1::text", {std::string("a\0b", 3)}), InvalidInput);
}

TEST_F(PgPoolTest, DatabaseErrorsAreStoreErrorsWithoutRowValues) {
  ConnectionPool pool(config(1));
  pool.exec("CREATE TABLE " + schema().quoted() + ".s (a integer NOT NULL, secret text)");
  try {
    pool.exec("INSERT INTO " + schema().quoted() + ".s VALUES (NULL, $1)", {"hunter2-value"});
    FAIL() << "no error";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("23502"), std::string::npos) << what;
    EXPECT_NE(what.find("not-null"), std::string::npos) << what;
    // The server's DETAIL ("Failing row contains (...)") never reaches the message.
    EXPECT_EQ(what.find("hunter2-value"), std::string::npos) << what;
    EXPECT_FALSE(e.retryable());
  }
  try {
    pool.exec("SELECT * FROM no_such_table_here");
    FAIL() << "no error";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("42P01"), std::string::npos) << e.what();
  }
  // Data errors (SQLSTATE class 22) are invalid input.
  EXPECT_THROW(pool.exec("SELECT 'abc'::integer"), InvalidInput);
}

TEST_F(PgPoolTest, ConnectionErrorsNeverShowThePassword) {
  Config c;
  c.url = "postgresql://someone:pw-s3cr3t-123@127.0.0.1:1/nodb?connect_timeout=2";
  ConnectionPool pool(c);
  try {
    pool.exec("SELECT 1");
    FAIL() << "connected to port 1?";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find("pw-s3cr3t-123"), std::string::npos) << what;
    EXPECT_NE(what.find("REDACTED"), std::string::npos) << what;
    EXPECT_TRUE(e.retryable());
  }
  EXPECT_EQ(pool.open_connections(), 0U);
}

TEST_F(PgPoolTest, BrokenIdleConnectionIsReplacedNotReused) {
  ConnectionPool pool(config(2));
  pool.exec("SELECT 1");
  const auto pids = pool.idle_backend_pids();
  ASSERT_EQ(pids.size(), 1U);
  admin_exec("SELECT pg_terminate_backend($1::integer)", {std::to_string(pids[0])});
  ASSERT_TRUE(test::eventually([&] {
    return admin_exec("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1::integer", {std::to_string(pids[0])})
               .at(0, "n") == "0";
  }));
  // The dead connection is noticed before it is handed out.
  auto r = pool.exec("SELECT pg_backend_pid()::text AS pid");
  EXPECT_NE(r.at(0, "pid"), std::to_string(pids[0]));
  EXPECT_EQ(pool.open_connections(), 1U);
}

TEST_F(PgPoolTest, StatementTimeoutIsARetryableStoreError) {
  Config c = config(1);
  c.statement_timeout = std::chrono::milliseconds(100);
  ConnectionPool pool(c);
  try {
    pool.exec("SELECT pg_sleep(2)");
    FAIL() << "no timeout";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("57014"), std::string::npos) << e.what();
    EXPECT_TRUE(e.retryable());
  }
  EXPECT_EQ(pool.exec("SELECT 1 AS one").at(0, "one"), "1");
}

TEST_F(PgPoolTest, ManyThreadsShareASmallPool) {
  ConnectionPool pool(config(2));
  pool.exec("CREATE TABLE " + schema().quoted() + ".counter (n integer)");
  pool.exec("INSERT INTO " + schema().quoted() + ".counter VALUES (0)");
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        try {
          pool.transaction(
              [&](Session& s) { s.exec("UPDATE " + schema().quoted() + ".counter SET n = n + 1"); });
        } catch (...) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(pool.open_connections(), 2U);
  EXPECT_EQ(pool.exec("SELECT n FROM " + schema().quoted() + ".counter").at(0, "n"), "120");
}

TEST_F(PgPoolTest, WaitingForAConnectionTimesOut) {
  Config c = config(1);
  c.acquire_timeout = std::chrono::milliseconds(200);
  ConnectionPool pool(c);
  std::atomic<bool> holding{false};
  std::atomic<bool> release{false};
  std::thread holder([&] {
    pool.transaction([&](Session&) {
      holding = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    });
  });
  ASSERT_TRUE(test::eventually([&] { return holding.load(); }));
  try {
    pool.exec("SELECT 1");
    ADD_FAILURE() << "got a connection from a pool of one that is in use";
  } catch (const StoreError& e) {
    EXPECT_TRUE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("waiting for a free PostgreSQL connection"), std::string::npos);
  }
  release = true;
  holder.join();
  EXPECT_EQ(pool.exec("SELECT 2 AS two").at(0, "two"), "2");
}

TEST_F(PgPoolTest, MigrationsAreVersionedAndIdempotent) {
  ConnectionPool pool(config(2));
  std::vector<Migration> steps = {
      {1, "create a", "CREATE TABLE {schema}.mig_a (id integer)"},
      {2, "create b", "CREATE TABLE {schema}.mig_b (id integer); INSERT INTO {schema}.mig_b VALUES (1)"},
  };
  EXPECT_EQ(migrate(pool, "test_component", steps), 2);
  EXPECT_EQ(migrate(pool, "test_component", steps), 0);
  EXPECT_EQ(applied_migrations(pool, "test_component"), (std::vector<int>{1, 2}));
  // A later step is applied alone; another component has its own versions.
  steps.push_back({3, "alter b", "ALTER TABLE {schema}.mig_b ADD COLUMN note text"});
  EXPECT_EQ(migrate(pool, "test_component", steps), 1);
  EXPECT_EQ(migrate(pool, "other_component", {{1, "c", "CREATE TABLE {schema}.mig_c (id integer)"}}), 1);
  EXPECT_EQ(applied_migrations(pool, "test_component"), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(applied_migrations(pool, "other_component"), (std::vector<int>{1}));
  EXPECT_EQ(pool.exec("SELECT count(*) AS n FROM " + schema().quoted() + ".mig_b").at(0, "n"), "1");
  // A failing step applies nothing of the batch.
  steps.push_back({4, "broken", "CREATE TABLE {schema}.mig_d (id integer); SELECT no_such_function()"});
  EXPECT_THROW(migrate(pool, "test_component", steps), StoreError);
  EXPECT_EQ(applied_migrations(pool, "test_component"), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(admin_exec("SELECT to_regclass($1) IS NULL AS gone", {schema().quoted() + ".mig_d"}).at(0, "gone"), "t");
  // Bad lists are rejected before anything runs.
  EXPECT_THROW(migrate(pool, "x", {{0, "zero", "SELECT 1"}}), InvalidPrecondition);
  EXPECT_THROW(migrate(pool, "x", {{1, "a", "SELECT 1"}, {1, "b", "SELECT 1"}}), InvalidPrecondition);
  EXPECT_THROW(migrate(pool, "", {{1, "a", "SELECT 1"}}), InvalidPrecondition);
}

TEST_F(PgPoolTest, ConcurrentMigratorsApplyEachStepOnce) {
  const std::vector<Migration> steps = {
      {1, "create", "CREATE TABLE {schema}.once (id integer)"},
      {2, "insert", "INSERT INTO {schema}.once VALUES (1)"},
  };
  std::atomic<int> applied{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      try {
        ConnectionPool pool(config(1));
        applied += migrate(pool, "racy", steps);
      } catch (...) {
        ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(applied.load(), 2);
  EXPECT_EQ(admin_exec("SELECT count(*) AS n FROM " + schema().quoted() + ".once").at(0, "n"), "1");
}

TEST_F(PgPoolTest, MigrationCreatesAMissingSchema) {
  Config c = config(1);
  c.schema = schema_name() + "_own";
  ConnectionPool pool(c);
  EXPECT_EQ(migrate(pool, "c", {{1, "t", "CREATE TABLE {schema}.t (id integer)"}}), 1);
  EXPECT_EQ(admin_exec("SELECT to_regclass($1) IS NOT NULL AS ok", {"\"" + c.schema + "\".t"}).at(0, "ok"), "t");
  admin_exec("DROP SCHEMA \"" + c.schema + "\" CASCADE");
}

}  // namespace
}  // namespace webhookdb::pg
