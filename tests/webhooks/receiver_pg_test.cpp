// The receiver writing into PostgreSQL (PgReplicaStore + PgJobStore): 100
// requests in flight at once, duplicate deliveries racing on the same keys, a
// webhook/backfill race, dependents' `changed` flags. Needs
// WEBHOOKDB_TEST_DATABASE_URL; fails (never skips) without it.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "support/pg_test_env.hpp"
#include "webhook_test_env.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/webhooks/webhook_receiver.hpp"

namespace webhookdb::webhooks {
namespace {

using nlohmann::json;
using namespace test;

// The real store, counting upsert statements, the rows they changed, and the
// statements per key.
class CountingStore final : public ReplicaStore {
 public:
  explicit CountingStore(std::shared_ptr<ReplicaStore> next) : next_(std::move(next)) {}

  void create_table(const TableSpec& spec) override { next_->create_table(spec); }
  void ensure_all_columns(const TableSpec& spec) override { next_->ensure_all_columns(spec); }
  void drop_table(const TableSpec& spec) override { next_->drop_table(spec); }
  UpsertResult upsert(const TableSpec& spec, std::span<const Row> rows, const UpsertOptions& options) override {
    auto result = next_->upsert(spec, rows, options);
    std::lock_guard lock(mutex_);
    ++upserts_;
    changed_ += result.changed_count();
    for (const auto& row : rows) ++per_key_[row.key.dump()];
    return result;
  }
  std::optional<Row> find(const TableSpec& spec, const json& key) override { return next_->find(spec, key); }
  std::size_t count(const TableSpec& spec) override { return next_->count(spec); }
  void for_each(const TableSpec& spec, const std::function<void(const Row&)>& visit) override {
    next_->for_each(spec, visit);
  }
  std::map<std::string, Checkpoint> load_checkpoints(std::int64_t job_id) override {
    return next_->load_checkpoints(job_id);
  }
  void save_checkpoint(const Checkpoint& checkpoint) override { next_->save_checkpoint(checkpoint); }
  void clear_checkpoints(std::int64_t job_id) override { next_->clear_checkpoints(job_id); }

  [[nodiscard]] std::size_t upserts() const {
    std::lock_guard lock(mutex_);
    return upserts_;
  }
  [[nodiscard]] std::size_t rows_changed() const {
    std::lock_guard lock(mutex_);
    return changed_;
  }
  [[nodiscard]] std::size_t max_upserts_of_one_key() const {
    std::lock_guard lock(mutex_);
    std::size_t most = 0;
    for (const auto& [key, n] : per_key_) most = std::max(most, n);
    return most;
  }

 private:
  std::shared_ptr<ReplicaStore> next_;
  mutable std::mutex mutex_;
  std::size_t upserts_ = 0;
  std::size_t changed_ = 0;
  std::map<std::string, std::size_t> per_key_;
};

class ReceiverPg : public webhookdb::test::PgTest {
 protected:
  std::shared_ptr<CountingStore> store;
  std::unique_ptr<Env> env;
  std::unique_ptr<WebhookReceiver> receiver;

  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    auto pool = std::make_shared<pg::ConnectionPool>(config(8));
    store = std::make_shared<CountingStore>(std::make_shared<pg::PgReplicaStore>(pool));
    env = std::make_unique<Env>(store, std::make_shared<pg::PgJobStore>(pool));
  }
  void TearDown() override {
    if (receiver) receiver->stop();
    receiver.reset();
    if (env) {
      const std::string log = env->logger->text();
      EXPECT_EQ(log.find(kWebhookSecret), std::string::npos) << log;
    }
    env.reset();
    PgTest::TearDown();
  }
  void start(WebhookReceiverOptions options = {}) {
    receiver = std::make_unique<WebhookReceiver>(env->context(), options);
    receiver->start();
  }
  [[nodiscard]] std::string target() const { return "/v1/webhooks/" + env->charges.opaque_id; }
  [[nodiscard]] std::string table() const { return "\"" + schema_name() + "\".\"" + env->charges.table_name + "\""; }

  // (rows, distinct keys) as PostgreSQL counts them.
  std::pair<long, long> counts() const {
    auto r = admin_exec("SELECT count(*), count(DISTINCT id) FROM " + table());
    return {std::stol(*r.rows[0][0]), std::stol(*r.rows[0][1])};
  }

  // Sends every (key, version) body from its own client thread, all released at once.
  int send_all_at_once(const std::vector<json>& events) {
    std::latch go(static_cast<std::ptrdiff_t>(events.size()));
    std::atomic<int> accepted{0};
    std::vector<std::thread> clients;
    clients.reserve(events.size());
    for (const auto& event : events) {
      clients.emplace_back([&, body = event.dump()] {
        const auto headers = env->signature(body);
        TestConnection connection(receiver->port(), std::chrono::seconds(60));
        go.arrive_and_wait();
        const auto r = connection.post(target(), body, headers, false);
        if (r.status >= 200 && r.status < 300) {
          accepted.fetch_add(1);
        } else {
          ADD_FAILURE() << "status " << r.status << ": " << r.body;
        }
      });
    }
    for (auto& t : clients) t.join();
    return accepted.load();
  }
};

TEST_F(ReceiverPg, HundredConcurrentRequestsUpsertedExactlyOnce) {
  // Every row PostgreSQL inserts or updates in the table, logged by a trigger:
  // an idempotent second write of a key would leave the row count unchanged
  // but show here as an UPDATE.
  const std::string schema = "\"" + schema_name() + "\"";
  admin_exec("CREATE TABLE " + schema + ".write_log (id text NOT NULL, op text NOT NULL)");
  admin_exec("CREATE FUNCTION " + schema + ".log_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO " +
             schema + ".write_log VALUES (NEW.id, TG_OP); RETURN NEW; END $$");
  admin_exec("CREATE TRIGGER log_write AFTER INSERT OR UPDATE ON " + table() + " FOR EACH ROW EXECUTE FUNCTION " +
             schema + ".log_write()");

  WebhookReceiverOptions options;
  options.io_threads = 4;
  options.handler.worker_threads = 4;
  start(options);
  std::vector<json> events;
  for (int i = 0; i < 100; ++i) events.push_back(charge_event(charge("pg_" + std::to_string(i), 1, i)));
  EXPECT_EQ(send_all_at_once(events), 100);
  receiver->handler().wait_idle();
  const auto stats = receiver->handler().stats();
  EXPECT_EQ(stats.processed_async, 100U);
  EXPECT_EQ(stats.failed_async, 0U);
  EXPECT_EQ(counts(), std::make_pair(100L, 100L));
  // One upsert statement per delivery, each reporting its row as changed: even
  // a second write the update rule turns into a no-op is counted.
  EXPECT_EQ(store->upserts(), 100U);
  EXPECT_EQ(store->rows_changed(), 100U);
  EXPECT_EQ(store->max_upserts_of_one_key(), 1U);
  // In PostgreSQL: 100 inserts of 100 distinct keys, no update.
  const auto log = admin_exec("SELECT count(*) FILTER (WHERE op = 'INSERT'), count(*) FILTER (WHERE op <> 'INSERT'), "
                              "count(DISTINCT id) FROM " + schema + ".write_log");
  EXPECT_EQ(*log.rows[0][0], "100");
  EXPECT_EQ(*log.rows[0][1], "0");
  EXPECT_EQ(*log.rows[0][2], "100");
  for (int i = 0; i < 100; ++i) {
    auto row = env->find("pg_" + std::to_string(i));
    ASSERT_TRUE(row) << i;
    EXPECT_EQ(row->values[1], i);
    EXPECT_EQ(row->data, charge("pg_" + std::to_string(i), 1, i));
  }
}

TEST_F(ReceiverPg, DuplicateDeliveriesRacingOnTheSameKeysKeepTheNewest) {
  WebhookReceiverOptions options;
  options.io_threads = 4;
  options.handler.process_synchronously = true;  // every request writes on an io thread, in parallel
  start(options);
  std::vector<json> events;
  for (int i = 0; i < 50; ++i) {
    for (int version : {1, 3, 2}) events.push_back(charge_event(charge("dup_" + std::to_string(i), version, version)));
  }
  std::shuffle(events.begin(), events.end(), std::mt19937(42));
  EXPECT_EQ(send_all_at_once(events), 150);
  EXPECT_EQ(counts(), std::make_pair(50L, 50L));
  for (int i = 0; i < 50; ++i) {
    auto row = env->find("dup_" + std::to_string(i));
    ASSERT_TRUE(row);
    EXPECT_EQ(row->values[0], 3) << i;
  }
}

TEST_F(ReceiverPg, WebhookAndBackfillRacingEndWithTheNewest) {
  WebhookReceiverOptions options;
  options.handler.worker_threads = 3;
  start(options);
  run_webhook_backfill_race(*env, *receiver);
  const auto [rows, keys] = counts();
  EXPECT_EQ(rows, keys);
}

TEST_F(ReceiverPg, DependentsSeeTheRightChangedFlag) {
  env->add_refunds(env->charges);
  WebhookReceiverOptions options;
  options.handler.process_synchronously = true;
  start(options);
  auto send = [&](int version) {
    const std::string body = charge_event(charge("dep", version)).dump();
    return post_once(receiver->port(), target(), body, env->signature(body)).status;
  };
  EXPECT_EQ(send(2), 200);  // new row
  EXPECT_EQ(send(5), 200);  // newer
  EXPECT_EQ(send(4), 200);  // older: not updated
  EXPECT_EQ(send(5), 200);  // same version: not updated
  const auto calls = env->recorder->calls();
  ASSERT_EQ(calls.size(), 4U);
  EXPECT_TRUE(calls[0].changed);
  EXPECT_TRUE(calls[1].changed);
  EXPECT_FALSE(calls[2].changed);
  EXPECT_FALSE(calls[3].changed);
  EXPECT_EQ(calls[2].version, 4);
  EXPECT_EQ(env->find("dep")->values[0], 5);
}

TEST_F(ReceiverPg, StatusesAgainstPostgres) {
  start();
  const std::string good = charge_event(charge("st", 1)).dump();
  EXPECT_EQ(post_once(receiver->port(), target(), good, env->signature(good)).status, 202);
  EXPECT_EQ(post_once(receiver->port(), target(), good, env->signature(good, "whsec_bad")).status, 401);
  EXPECT_EQ(post_once(receiver->port(), "/v1/webhooks/svi_unknown", good, env->signature(good)).status, 404);
  const std::string bad = "{\"id\":";
  EXPECT_EQ(post_once(receiver->port(), target(), bad, env->signature(bad)).status, 400);
  const std::string nul = R"({"id":"nul","version":1,"note":"a\u0000b"})";
  EXPECT_EQ(post_once(receiver->port(), target(), nul, env->signature(nul)).status, 202);
  receiver->handler().wait_idle();
  EXPECT_TRUE(env->find("st"));
  auto with_nul = env->find("nul");
  ASSERT_TRUE(with_nul);
  EXPECT_EQ(with_nul->data.value("note", ""), "ab");  // encoded NUL stripped for jsonb
  EXPECT_EQ(receiver->handler().stats().failed_async, 0U);
}

}  // namespace
}  // namespace webhookdb::webhooks
