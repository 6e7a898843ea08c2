// Lost connections, timeouts and concurrent writers: batches are all or
// nothing and the pool recovers.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pg/pg_support.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/replica_store.hpp"

namespace webhookdb::pg {
namespace {

using namespace webhookdb::test;

class PgResilienceTest : public test::PgTest {
 protected:
  std::vector<Row> batch(int n, const std::string& at = "2024-01-01T00:00:00Z", const std::string& prefix = "k") {
    std::vector<Row> rows;
    for (int i = 0; i < n; ++i) rows.push_back(small_row(prefix + std::to_string(i), at, "n" + std::to_string(i)));
    return rows;
  }
  std::string q(const std::string& table) const { return schema().quoted() + ".\"" + table + "\""; }

  // Holds LOCK TABLE <table> from another connection until release() or destruction.
  class TableLock {
   public:
    TableLock(const Config& c, std::string table) : pool_(c) {
      thread_ = std::thread([this, table = std::move(table)] {
        pool_.transaction([&](Session& s) {
          s.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
          locked_ = true;
          while (!release_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        });
      });
      if (!eventually([this] { return locked_.load(); })) ADD_FAILURE() << "LOCK TABLE never happened";
    }
    ~TableLock() { release(); }
    void release() {
      release_ = true;
      if (thread_.joinable()) thread_.join();
    }

   private:
    ConnectionPool pool_;
    std::atomic<bool> locked_{false};
    std::atomic<bool> release_{false};
    std::thread thread_;
  };

  // The pid of the backend of `application_name` waiting for a lock, or "".
  std::string waiting_pid(const std::string& application_name) const {
    auto r = admin_exec(
        "SELECT pid::text FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
        {application_name});
    return r.rows.empty() ? std::string() : r.rows[0][0].value_or("");
  }
};

TEST_F(PgResilienceTest, KilledIdleConnectionsAreReplaced) {
  PgReplicaStore store(config(3));
  const TableSpec spec = small_spec("killed_idle");
  store.create_table(spec);
  // Three connections open and idle.
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] { store.upsert(spec, batch(50, "2024-01-01T00:00:00Z", "t" + std::to_string(t))); });
  }
  for (auto& t : threads) t.join();
  const auto pids = store.pool().idle_backend_pids();
  ASSERT_FALSE(pids.empty());
  for (int pid : pids) admin_exec("SELECT pg_terminate_backend($1::integer)", {std::to_string(pid)});
  ASSERT_TRUE(eventually([&] {
    return admin_exec("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'webhookdb_test'")
               .at(0, "n") == "0";
  }));
  const auto result = store.upsert(spec, batch(2000, "2024-02-01T00:00:00Z"));
  EXPECT_EQ(result.changed_count(), 2000U);
  EXPECT_EQ(store.count(spec), 2150U);
  for (int pid : store.pool().idle_backend_pids()) {
    EXPECT_EQ(std::find(pids.begin(), pids.end(), pid), pids.end()) << "a killed connection was reused";
  }
}

TEST_F(PgResilienceTest, ConnectionKilledMidBatchIsRetriedOnAFreshOne) {
  Config c = config(1);
  c.application_name = "webhookdb_mid_batch";
  c.retries = 1;
  PgReplicaStore store(c);
  const TableSpec spec = small_spec("killed_mid");
  store.create_table(spec);
  TableLock lock(config(1), q("killed_mid"));
  std::atomic<bool> done{false};
  UpsertResult result;
  std::string error;
  std::thread writer([&] {
    try {
      UpsertOptions opts;
      opts.method = WriteMethod::staging_copy;
      opts.checkpoint = Checkpoint{9, "b", "after", false};
      result = store.upsert(spec, batch(3000), opts);
    } catch (const std::exception& e) {
      error = e.what();
    }
    done = true;
  });
  // The COPY went through; the INSERT waits for the lock. Kill that backend.
  std::string pid;
  ASSERT_TRUE(eventually([&] { return !(pid = waiting_pid(c.application_name)).empty(); }));
  admin_exec("SELECT pg_terminate_backend($1::integer)", {pid});
  // The retry waits for the lock too: release it.
  ASSERT_TRUE(eventually([&] {
    const auto now = waiting_pid(c.application_name);
    return !now.empty() && now != pid;
  }));
  lock.release();
  writer.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(result.changed_count(), 3000U);
  EXPECT_EQ(store.count(spec), 3000U);
  EXPECT_EQ(store.load_checkpoints(9).at("b").next_token, "after");
  EXPECT_EQ(store.pool().open_connections(), 1U);
}

TEST_F(PgResilienceTest, WithoutRetriesAKilledBatchLeavesNothingBehind) {
  Config c = config(1);
  c.application_name = "webhookdb_no_retry";
  c.retries = 0;
  PgReplicaStore store(c);
  const TableSpec spec = small_spec("killed_no_retry");
  store.create_table(spec);
  for (auto method : {WriteMethod::single_row, WriteMethod::multi_row, WriteMethod::staging_copy}) {
    TableLock lock(config(1), q("killed_no_retry"));
    std::optional<StoreError> failure;
    std::thread writer([&] {
      try {
        UpsertOptions opts;
        opts.method = method;
        opts.checkpoint = Checkpoint{10, "b", "never", false};
        store.upsert(spec, batch(1200), opts);
      } catch (const StoreError& e) {
        failure = e;
      } catch (const std::exception& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
      }
    });
    std::string pid;
    EXPECT_TRUE(eventually([&] { return !(pid = waiting_pid(c.application_name)).empty(); }));
    admin_exec("SELECT pg_terminate_backend($1::integer)", {pid});
    writer.join();
    lock.release();
    ASSERT_TRUE(failure.has_value()) << method_name(method);
    EXPECT_TRUE(failure->retryable()) << failure->what();
    EXPECT_EQ(store.count(spec), 0U) << method_name(method);
    EXPECT_TRUE(store.load_checkpoints(10).empty());
  }
  // The pool recovered.
  EXPECT_EQ(store.upsert(spec, batch(10)).changed_count(), 10U);
}

TEST_F(PgResilienceTest, StatementTimeoutFailsTheWholeBatch) {
  Config c = config(1);
  c.statement_timeout = std::chrono::milliseconds(300);
  PgReplicaStore store(c);
  const TableSpec spec = small_spec("timeout");
  store.create_table(spec);
  TableLock lock(config(1), q("timeout"));
  try {
    store.upsert(spec, batch(100));
    ADD_FAILURE() << "no timeout";
  } catch (const StoreError& e) {
    EXPECT_TRUE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("57014"), std::string::npos) << e.what();
  }
  lock.release();
  EXPECT_EQ(store.count(spec), 0U);
}

TEST_F(PgResilienceTest, ConcurrentWritersOfOverlappingKeys) {
  PgReplicaStore store(config(4));
  const TableSpec spec = small_spec("contended");
  store.create_table(spec);
  // Four writers, five rounds each, overlapping keys in a different order per writer.
  std::vector<std::vector<std::vector<Row>>> work(4);
  std::map<std::string, std::string> newest;
  for (int t = 0; t < 4; ++t) {
    for (int round = 0; round < 5; ++round) {
      std::vector<Row> rows;
      for (int i = 0; i < 1200; ++i) {
        const std::string key = "k" + std::to_string((i * (t + 1) * 7 + round) % 1500);
        const std::string at = "2024-01-01T00:0" + std::to_string(round) + ":0" + std::to_string(t) + "Z";
        rows.push_back(small_row(key, at, "t" + std::to_string(t) + "r" + std::to_string(round)));
        auto& best = newest[key];
        if (best < at) best = at;
      }
      work[static_cast<std::size_t>(t)].push_back(std::move(rows));
    }
  }
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < work.size(); ++t) {
    threads.emplace_back([&, t] {
      int round = 0;
      for (const auto& rows : work[t]) {
        try {
          UpsertOptions opts;
          opts.method = round++ % 2 == 0 ? WriteMethod::staging_copy : WriteMethod::multi_row;
          store.upsert(spec, rows, opts);
        } catch (const std::exception& e) {
          ++errors;
          ADD_FAILURE() << e.what();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  // Every stored row holds the newest version any writer offered for it.
  std::size_t seen = 0;
  store.for_each(spec, [&](const Row& r) {
    ++seen;
    EXPECT_EQ(r.values[0], newest.at(r.key.get<std::string>())) << r.key;
  });
  EXPECT_EQ(seen, newest.size());
}

}  // namespace
}  // namespace webhookdb::pg
