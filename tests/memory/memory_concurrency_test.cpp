// The memory stores from many threads at once (run under TSan).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"

namespace webhookdb::memory {
namespace {

TableSpec things() {
  TableSpec spec;
  spec.table = "things";
  spec.remote_key = Column("id", ColumnType::bigint);
  spec.columns = {Column("v", ColumnType::integer)};
  spec.update_rule = UpdateRule::when_newer("v");
  return spec;
}

TEST(MemoryConcurrency, ConcurrentUpsertsKeepTheNewestValue) {
  MemoryReplicaStore store;
  const auto spec = things();
  store.create_table(spec);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        std::vector<Row> batch;
        for (int id = 0; id < 20; ++id) batch.push_back(Row{id, {round * 4 + t}, nullptr, {{"round", round}}});
        store.upsert(spec, batch);
        (void)store.find(spec, round % 20);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store.count(spec), 20U);
  for (const auto& row : store.rows(spec)) EXPECT_EQ(row.values[0], 49 * 4 + 3) << row.key;
  EXPECT_EQ(store.upsert_calls(), 200U);
  EXPECT_EQ(store.rows_written(), 4000U);
}

TEST(MemoryConcurrency, OnlyOneThreadGetsAnIntegrationLock) {
  MemoryJobStore store;
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> winners{0};
    std::vector<std::unique_ptr<IntegrationLock>> held(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        held[t] = store.try_lock_integration(round);
        if (held[t]) ++winners;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(winners.load(), 1) << "round " << round;
  }
}

TEST(MemoryConcurrency, ConcurrentJobTreesGetDistinctIds) {
  MemoryJobStore store;
  ServiceIntegration root;
  root = store.create_integration(root);
  ServiceIntegration child;
  child.depends_on = root.id;
  store.create_integration(child);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) (void)store.create_recursive(root, false, nlohmann::json::object());
    });
  }
  for (auto& t : threads) t.join();
  const auto jobs = store.jobs();
  ASSERT_EQ(jobs.size(), 200U);
  std::set<std::int64_t> ids;
  for (const auto& job : jobs) ids.insert(job.id);
  EXPECT_EQ(ids.size(), 200U);
  for (const auto& job : jobs) {
    if (job.parent_job_id) {
      EXPECT_EQ(store.find_job(*job.parent_job_id)->service_integration_id, root.id);
    }
  }
}

}  // namespace
}  // namespace webhookdb::memory
