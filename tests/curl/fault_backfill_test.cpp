// The whole stack against the faulty server: a Stripe-like replicator on the
// curl client with the polite policy, run as jobs on the in-process queue
// into the memory store. With 10% of data requests faulted (every kind), a
// full backfill of 5,000 objects ends with exactly the source's rows (page
// retries, then RetryOrDie re-runs of the job), and an incremental run then
// picks up exactly the objects that changed.

#include <gtest/gtest.h>

#include <iostream>
#include <map>

#include "server_fixture.hpp"
#include "webhookdb/converters.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/job_runner.hpp"
#include "webhookdb/memory/in_process_job_queue.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::test {
namespace {

using std::chrono::milliseconds;

class ChargeReplicator final : public Replicator {
 public:
  using Replicator::Replicator;

  // The one-line opt-in to polite retries; and let the job system re-run the
  // job more often than WebhookDB's 2 times.
  [[nodiscard]] BackfillOptions backfill_options() const override {
    return {.retry_policy = polite_retry_policy(), .server_error_retries = 10};
  }

  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& since,
                                   const CancellationToken& cancel) override {
    HttpRequest first;
    first.url = integration().api_url + "/v1/charges";
    if (since) first.url = pagination::with_query(first.url, {{"updated_since", std::to_string(unix_seconds(*since))}});
    first.timeout = milliseconds(300);
    return pages_.fetch(*context().http, first, token, cancel);
  }

 protected:
  [[nodiscard]] Column remote_key_column() const override { return Column("charge_id", ColumnType::text).key("id"); }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override {
    return {Column("amount", ColumnType::bigint),
            Column("currency", ColumnType::text),
            Column("customer", ColumnType::text).indexed(),
            Column("status", ColumnType::text),
            Column("created", ColumnType::timestamptz).convert(converters::unix_timestamp()),
            Column("updated", ColumnType::timestamptz).convert(converters::unix_timestamp())};
  }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::when_newer("updated"); }

 private:
  pagination::StartingAfter pages_{{.limit = 100}};
};

struct Stack {
  std::unique_ptr<tools::ApiServer> server;
  std::shared_ptr<testing::ManualClock> clock = std::make_shared<testing::ManualClock>();
  std::shared_ptr<testing::RecordingSleeper> sleeper = std::make_shared<testing::RecordingSleeper>();
  std::shared_ptr<memory::MemoryReplicaStore> replica = std::make_shared<memory::MemoryReplicaStore>();
  std::shared_ptr<memory::MemoryJobStore> jobs = std::make_shared<memory::MemoryJobStore>(clock);
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
  std::shared_ptr<memory::InProcessJobQueue> queue;
  ReplicatorContext context;
  ServiceIntegration integration;

  explicit Stack(tools::ApiServerOptions options) : server(start_server(std::move(options))) {
    Descriptor d;
    d.name = "test_charge_v1";
    d.resource_name_singular = "charge";
    d.resource_name_plural = "charges";
    d.supports_backfill = true;
    d.factory = Descriptor::factory_for<ChargeReplicator>();
    registry->add(d);

    memory::InProcessJobQueue::Options q;
    q.threads = 1;
    q.clock = clock;
    q.delay = [](milliseconds) { return milliseconds(0); };  // RetryOrDie's 63 s backoff, instantly
    queue = std::make_shared<memory::InProcessJobQueue>(q);

    curl::CurlOptions http;
    http.connect_timeout = milliseconds(1000);
    context.http = curl::make_curl_client(http);
    context.replica = replica;
    context.jobs = jobs;
    context.queue = queue;
    context.clock = clock;
    context.sleeper = sleeper;
    context.registry = registry;
    queue->set_handler(memory::job_runner_handler(std::make_shared<JobRunner>(registry, context)));

    ServiceIntegration si;
    si.service_name = "test_charge_v1";
    si.table_name = "charges";
    si.api_url = server->base_url();
    si.backfill_key = "sk_test_key";
    integration = jobs->create_integration(si);
    registry->make(integration, context)->create_table();
  }

  ~Stack() { queue->shutdown(); }

  memory::QueuedJobRecord run_job(bool incremental) {
    const auto integration_now = jobs->find_integration(integration.id).value();
    const auto job = jobs->create_recursive(integration_now, incremental, nlohmann::json::object());
    queue->enqueue(job.id);
    EXPECT_TRUE(queue->wait_idle_for(milliseconds(60'000))) << "the job did not finish in a minute";
    auto record = queue->record(job.id).value();
    EXPECT_EQ(record.state, memory::QueuedJobState::succeeded) << record.error;
    EXPECT_TRUE(jobs->find_job(job.id).value().finished_at.has_value());
    return record;
  }

  // Every row equals the server's current object, and there is one per object.
  void expect_rows_equal_source() {
    const auto spec = registry->make(integration, context)->table_spec();
    const auto rows = replica->rows(spec);
    const auto objects = server->dataset().objects();
    ASSERT_EQ(rows.size(), objects.size());
    std::map<std::string, const Row*> by_key;
    for (const auto& row : rows) by_key[row.key.get<std::string>()] = &row;
    ASSERT_EQ(by_key.size(), objects.size());
    for (const auto& object : objects) {
      const auto it = by_key.find(object["id"].get<std::string>());
      ASSERT_NE(it, by_key.end()) << object["id"];
      ASSERT_EQ(it->second->data, object) << object["id"];
    }
  }
};

TEST(FaultBackfill, TenPercentFaultsEndWithExactlyTheSourceRows) {
  tools::ApiServerOptions options;
  options.objects = 5000;
  options.seed = 2024;
  options.faults = tools::FaultRates::spread(0.10);
  options.slow_stall = milliseconds(1000);  // past the replicator's 300 ms timeout
  Stack stack(options);
  // Six 503s in a row exhaust the polite policy's six attempts on the first
  // page: the job gives up with RetryOrDie and the queue runs it again.
  stack.server->inject(tools::Fault::http503, 6);

  const auto start = std::chrono::steady_clock::now();
  const auto full = stack.run_job(/*incremental=*/true);  // no last_backfilled_at yet: everything
  const auto full_ms = elapsed_ms(start);
  stack.expect_rows_equal_source();

  const auto stats = stack.server->stats();
  std::cout << "[ measure  ] full backfill of 5000 objects with 10% faults: " << full_ms.count() << " ms, "
            << stats.data_requests << " data requests, " << stats.faults_total() << " faults ("
            << stats.fault_count(tools::Fault::slow) << " slow), " << stack.sleeper->waits().size()
            << " page retries, " << full.retries << " job re-runs\n";
  EXPECT_GE(full.retries, 1) << "RetryOrDie re-ran the job";
  EXPECT_GT(stack.sleeper->waits().size(), 6U) << "page retries beyond the forced ones";
  EXPECT_GT(stats.faults_total(), 6U) << "random faults happened too";
  EXPECT_GE(stats.items, 5000U);

  // Incremental: only objects updated after the last run's start come back.
  const auto since = stack.jobs->find_integration(stack.integration.id).value().last_backfilled_at;
  ASSERT_TRUE(since.has_value());
  std::vector<std::size_t> touched;
  for (std::size_t i = 7; i < 5000; i += 50) touched.push_back(i);
  stack.server->touch(touched, unix_seconds(*since) + 3600);
  stack.clock->advance(std::chrono::hours(2));
  stack.server->reset_stats();
  stack.server->set_faults({});
  (void)stack.run_job(/*incremental=*/true);
  stack.expect_rows_equal_source();
  EXPECT_EQ(stack.server->stats().items, touched.size()) << "only the touched objects were fetched";
}

}  // namespace
}  // namespace webhookdb::test
