#pragma once
// Everything a replicator test needs, wired: memory stores, a mock HTTP
// client, a manual clock, a sleeper that never sleeps, a recording queue and
// logger, and a registry with the fakes. Header-only, so webhookdb::testing
// itself does not depend on webhookdb::memory: a test using it links both.
//
// The stores behind context(), integration() and job() are `replica_store`
// and `job_store`: the memory ones by default; use_stores() swaps in others
// (pg_harness.hpp puts a real PostgreSQL there), and `replica`/`jobs` then
// stay unused.
//
//   TestHarness h;
//   auto si = h.integration("fake_v1");
//   h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z")}));
//   auto r = h.replicator(si);
//   auto job = h.job(si);
//   r->backfill(job);
//   EXPECT_EQ(h.rows(*r).size(), 1);

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/testing/capturing_logger.hpp"
#include "webhookdb/testing/fake_replicator.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/mock_http_client.hpp"
#include "webhookdb/testing/recording_job_queue.hpp"
#include "webhookdb/testing/recording_progress_sink.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::testing {

struct TestHarness {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::shared_ptr<RecordingSleeper> sleeper = std::make_shared<RecordingSleeper>(clock);
  std::shared_ptr<MockHttpClient> http = std::make_shared<MockHttpClient>();
  std::shared_ptr<memory::MemoryReplicaStore> replica = std::make_shared<memory::MemoryReplicaStore>();
  std::shared_ptr<memory::MemoryJobStore> jobs = std::make_shared<memory::MemoryJobStore>(clock);
  std::shared_ptr<RecordingJobQueue> queue = std::make_shared<RecordingJobQueue>();
  std::shared_ptr<CapturingLogger> logger = std::make_shared<CapturingLogger>();
  std::shared_ptr<RecordingProgressSink> progress = std::make_shared<RecordingProgressSink>();
  std::shared_ptr<FakeControl> fake = std::make_shared<FakeControl>();
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
  // The stores the replicators use (see the top of this file).
  std::shared_ptr<ReplicaStore> replica_store = replica;
  std::shared_ptr<JobStore> job_store = jobs;

  TestHarness() { register_fakes(*registry, fake); }

  // Replicators made from now on write to `replica_store` and keep their jobs
  // and integrations in `job_store`.
  void use_stores(std::shared_ptr<ReplicaStore> replicas, std::shared_ptr<JobStore> job_rows) {
    replica_store = std::move(replicas);
    job_store = std::move(job_rows);
  }

  [[nodiscard]] ReplicatorContext context() const {
    ReplicatorContext ctx;
    ctx.http = http;
    ctx.replica = replica_store;
    ctx.jobs = job_store;
    ctx.queue = queue;
    ctx.clock = clock;
    ctx.sleeper = sleeper;
    ctx.logger = logger;
    ctx.progress = progress;
    ctx.registry = registry;
    return ctx;
  }

  // Creates an integration in the job store with backfill credentials, an
  // api_url of https://api.example.test/<service_name> and a table of its own;
  // `customize` may change any field before it is stored.
  ServiceIntegration integration(const std::string& service_name = "fake_v1",
                                 const std::function<void(ServiceIntegration&)>& customize = {}) {
    ServiceIntegration si;
    si.service_name = service_name;
    si.table_name = service_name + "_" + std::to_string(++tables_);
    si.api_url = "https://api.example.test/" + service_name;
    si.backfill_key = "bfkey";
    si.backfill_secret = "bfsecret";
    if (customize) customize(si);
    return job_store->create_integration(si);
  }

  // The replicator for `integration`, its table created.
  std::unique_ptr<Replicator> replicator(const ServiceIntegration& integration) const {
    auto r = registry->make(integration, context());
    r->create_table();
    return r;
  }

  // The same for one of the fakes, typed so a test can call its hooks
  // (public in FakeReplicator). Throws InvalidPrecondition for another service.
  std::unique_ptr<FakeReplicator> fake_replicator(const ServiceIntegration& integration) const {
    auto r = replicator(integration);
    auto* typed = dynamic_cast<FakeReplicator*>(r.get());
    if (typed == nullptr) throw InvalidPrecondition(integration.service_name + " is not a fake replicator");
    (void)r.release();
    return std::unique_ptr<FakeReplicator>(typed);
  }

  // A job in the job store (with children for dependents).
  [[nodiscard]] BackfillJob job(const ServiceIntegration& integration, bool incremental = false,
                                const nlohmann::json& criteria = nlohmann::json::object()) const {
    return job_store->create_recursive(integration, incremental, criteria);
  }

  // The rows of `r`'s table in remote key order.
  [[nodiscard]] std::vector<Row> rows(const Replicator& r) const {
    std::vector<Row> out;
    replica_store->for_each(r.table_spec(), [&](const Row& row) { out.push_back(row); });
    return out;
  }

 private:
  int tables_ = 0;
};

}  // namespace webhookdb::testing
