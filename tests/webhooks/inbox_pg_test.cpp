// The durable webhook inbox against a real PostgreSQL: PgWebhookInbox
// (push/take/lease/backoff/failed state) and WebhookInboxProcessor writing
// into PgReplicaStore. Needs WEBHOOKDB_TEST_DATABASE_URL; fails (never skips)
// without it.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "support/pg_test_env.hpp"
#include "webhook_test_env.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/webhook_inbox.hpp"
#include "webhookdb/jobs/worker.hpp"
#include "webhookdb/jobs/webhook_inbox_processor.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/memory/memory_webhook_inbox.hpp"
#include "webhookdb/webhooks/webhook_handler.hpp"
#include "webhookdb/webhooks/webhook_receiver.hpp"

namespace webhookdb::webhooks {
namespace {

using nlohmann::json;
using namespace test;
using namespace std::chrono_literals;
using jobs::InboxReport;
using jobs::InboxResult;
using pg::PgWebhookInbox;
using pg::PgWebhookInboxOptions;
using jobs::WebhookInboxProcessor;
using jobs::WebhookInboxProcessorOptions;

// The real store, counting the rows each upsert writes by key, and failing
// the next `fail_next` upserts with a message that echoes a secret (as a
// careless driver might).
class CountingStore final : public ReplicaStore {
 public:
  explicit CountingStore(std::shared_ptr<ReplicaStore> next) : next_(std::move(next)) {}

  std::atomic<int> fail_next{0};
  std::atomic<int> upserts{0};
  std::string echoed_secret;

  void create_table(const TableSpec& spec) override { next_->create_table(spec); }
  void ensure_all_columns(const TableSpec& spec) override { next_->ensure_all_columns(spec); }
  void drop_table(const TableSpec& spec) override { next_->drop_table(spec); }
  UpsertResult upsert(const TableSpec& spec, std::span<const Row> rows, const UpsertOptions& options) override {
    if (fail_next.load() > 0) {
      fail_next.fetch_sub(1);
      throw StoreError("could not connect (password=" + echoed_secret + ")", true);
    }
    upserts.fetch_add(1);
    auto result = next_->upsert(spec, rows, options);
    {
      std::lock_guard lock(mutex_);
      for (const auto& row : rows) ++writes_[row.key.dump()];
    }
    written_.notify_all();
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

  // True once `keys` distinct keys were written, false after `timeout`.
  bool wait_for_keys(std::size_t keys, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return written_.wait_for(lock, timeout, [&] { return writes_.size() >= keys; });
  }
  [[nodiscard]] std::map<std::string, int> writes() const {
    std::lock_guard lock(mutex_);
    return writes_;
  }

 private:
  std::shared_ptr<ReplicaStore> next_;
  mutable std::mutex mutex_;
  std::condition_variable written_;
  std::map<std::string, int> writes_;
};

// Collects processor reports from any thread; waits for a number of them.
class Reports {
 public:
  void add(const InboxReport& report) {
    {
      std::lock_guard lock(mutex_);
      reports_.push_back(report);
    }
    cv_.notify_all();
  }
  bool wait_written(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return written_locked() >= n; });
  }
  std::vector<InboxReport> all() const {
    std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  std::size_t written_locked() const {
    return static_cast<std::size_t>(std::count_if(reports_.begin(), reports_.end(), [](const InboxReport& r) {
      return r.result == InboxResult::written;
    }));
  }
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<InboxReport> reports_;
};

class InboxPg : public webhookdb::test::PgTest {
 protected:
  std::shared_ptr<pg::ConnectionPool> pool;
  std::shared_ptr<CountingStore> store;
  std::unique_ptr<Env> env;
  Reports reports;

  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    pool = std::make_shared<pg::ConnectionPool>(config(8));
    store = std::make_shared<CountingStore>(std::make_shared<pg::PgReplicaStore>(pool));
    store->echoed_secret = kWebhookSecret;
    env = std::make_unique<Env>(store, std::make_shared<pg::PgJobStore>(pool));
  }
  void TearDown() override {
    if (env) {
      const std::string log = env->logger->text();
      EXPECT_EQ(log.find(kWebhookSecret), std::string::npos) << log;
    }
    env.reset();
    store.reset();
    pool.reset();
    PgTest::TearDown();
  }

  std::shared_ptr<pg::PgWebhookInbox> make_inbox(int max_attempts = 10, std::chrono::milliseconds lease = 30s) {
    pg::PgWebhookInboxOptions o;
    o.clock = env->clock;  // backoffs move with the test's clock
    o.logger = env->logger;
    o.max_attempts = max_attempts;
    o.lease = lease;
    o.backoff = 10s;
    o.max_backoff = 60s;
    return std::make_shared<pg::PgWebhookInbox>(pool, o);
  }
  std::unique_ptr<WebhookInboxProcessor> make_processor(std::shared_ptr<pg::PgWebhookInbox> inbox,
                                                        const std::string& owner, std::size_t batch = 4) {
    WebhookInboxProcessorOptions o;
    o.owner = owner;
    o.batch = batch;
    o.poll_interval = 2s;
    o.on_processed = [this](const InboxReport& r) { reports.add(r); };
    return std::make_unique<WebhookInboxProcessor>(std::move(inbox), env->context(), o);
  }

  [[nodiscard]] WebhookRequest signed_event(const std::string& id, int version) const {
    return env->signed_request(charge_event(charge(id, version, version)).dump());
  }
  [[nodiscard]] std::string inbox_table() const { return schema().quoted() + ".webhookdb_webhook_inbox"; }
  void expire_leases() const {
    admin_exec("UPDATE " + inbox_table() + " SET leased_until = clock_timestamp() - interval '1 second'");
  }
  void advance_clock(std::chrono::seconds by) const { env->clock->set_unix(env->clock->unix_now() + by.count()); }
};

TEST_F(InboxPg, MigrationIsVersionedAndIdempotent) {
  auto a = make_inbox();
  auto b = make_inbox();
  b->migrate();
  EXPECT_EQ(pg::applied_migrations(*pool, "webhook_inbox"), (std::vector<int>{1}));
  EXPECT_EQ(a->pending_count(), 0U);
  EXPECT_TRUE(a->entries().empty());
}

TEST_F(InboxPg, PushKeepsMethodPathHeadersAndBodyAndTakeLeasesIt) {
  auto inbox = make_inbox();
  WebhookRequest request = signed_event("ch_1", 1);
  request.headers.emplace_back("X-Odd", std::string("a\0b", 3));
  inbox->push(env->charges.opaque_id, request);
  EXPECT_EQ(inbox->pending_count(), 1U);

  auto taken = inbox->take("p1", 10);
  ASSERT_EQ(taken.size(), 1U);
  const auto& d = taken[0];
  EXPECT_EQ(d.opaque_id, env->charges.opaque_id);
  EXPECT_EQ(d.attempt, 1);
  EXPECT_EQ(d.request.method, "POST");
  EXPECT_EQ(d.request.path, request.path);
  EXPECT_EQ(d.request.body, request.body);
  ASSERT_EQ(d.request.headers.size(), 2U);
  EXPECT_EQ(d.request.headers[0], request.headers[0]);
  EXPECT_EQ(d.request.headers[1].second, "a\xEF\xBF\xBD" "b");
  EXPECT_TRUE(d.request.json.is_null());
  EXPECT_FALSE(d.token.empty());

  // Leased: nobody else gets it.
  EXPECT_TRUE(inbox->take("p2", 10).empty());
  const auto entry = inbox->entry(d.id);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->lease_owner, "p1");
  EXPECT_TRUE(entry->leased_until);
  EXPECT_EQ(entry->attempts, 1);
  EXPECT_TRUE(inbox->done(d));
  EXPECT_FALSE(inbox->done(d));
  EXPECT_EQ(inbox->pending_count(), 0U);

  EXPECT_THROW(inbox->push("", request), InvalidPrecondition);
  WebhookRequest nul = request;
  nul.body = std::string("{\"a\":\0}", 7);
  EXPECT_THROW(inbox->push(env->charges.opaque_id, nul), InvalidInput);
  EXPECT_EQ(inbox->pending_count(), 0U);
}

TEST_F(InboxPg, HundredConcurrentPushesAreEachWrittenExactlyOnce) {
  auto inbox = make_inbox();
  // Three processors wait for NOTIFYs while 100 senders push at once.
  CancellationSource stop;
  std::vector<std::unique_ptr<WebhookInboxProcessor>> processors;
  std::vector<std::thread> running;
  // All made before any runs: a thread must not index a vector that is still growing.
  for (int p = 0; p < 3; ++p) processors.push_back(make_processor(make_inbox(), "proc_" + std::to_string(p)));
  for (auto& processor : processors) {
    running.emplace_back([&stop, proc = processor.get()] { proc->run(stop.token()); });
  }
  constexpr int kCount = 100;
  std::latch go(kCount);
  std::atomic<int> push_errors{0};
  std::vector<std::thread> senders;
  for (int i = 0; i < kCount; ++i) {
    senders.emplace_back([&, i] {
      const WebhookRequest request = signed_event("inbox_" + std::to_string(i), i);
      go.arrive_and_wait();
      try {
        inbox->push(env->charges.opaque_id, request);
      } catch (const std::exception& e) {
        push_errors.fetch_add(1);
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& t : senders) t.join();
  EXPECT_EQ(push_errors.load(), 0);
  const bool all_written = reports.wait_written(kCount, 60s);
  stop.cancel();
  for (auto& t : running) t.join();
  ASSERT_TRUE(all_written);

  // Each webhook written once: one report per row, one upsert per key.
  std::set<std::int64_t> ids;
  for (const auto& r : reports.all()) {
    EXPECT_EQ(r.result, InboxResult::written) << r.error;
    EXPECT_EQ(r.rows, 1U);
    EXPECT_TRUE(ids.insert(r.id).second) << "row " << r.id << " written twice";
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kCount));
  const auto writes = store->writes();
  EXPECT_EQ(writes.size(), static_cast<std::size_t>(kCount));
  for (const auto& [key, n] : writes) EXPECT_EQ(n, 1) << key;
  std::uint64_t written = 0;
  for (const auto& p : processors) written += p->stats().written;
  EXPECT_EQ(written, static_cast<std::uint64_t>(kCount));

  EXPECT_EQ(env->count(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    auto row = env->find("inbox_" + std::to_string(i));
    ASSERT_TRUE(row) << i;
    EXPECT_EQ(row->data, charge("inbox_" + std::to_string(i), i, i));
  }
  EXPECT_EQ(inbox->pending_count(), 0U);
  EXPECT_EQ(admin_exec("SELECT count(*) FROM " + inbox_table()).rows.at(0).at(0).value_or(""), "0");
}

TEST_F(InboxPg, AnotherProcessorFinishesARowWhoseProcessorDied) {
  auto inbox = make_inbox();
  inbox->push(env->charges.opaque_id, signed_event("ch_dead", 1));
  // A processor takes the row and dies before writing it.
  auto dead = inbox->take("dead_processor", 1);
  ASSERT_EQ(dead.size(), 1U);

  auto survivor = make_processor(inbox, "survivor");
  EXPECT_EQ(survivor->process_available(), 0U) << "a live lease must not be taken";
  EXPECT_EQ(env->count(), 0U);

  expire_leases();
  EXPECT_EQ(survivor->process_available(), 1U);
  auto all = reports.all();
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].result, InboxResult::written);
  EXPECT_EQ(all[0].id, dead[0].id);
  EXPECT_EQ(all[0].attempt, 2);
  ASSERT_TRUE(env->find("ch_dead"));
  EXPECT_EQ(inbox->pending_count(), 0U);
  // The dead processor's late calls change nothing.
  EXPECT_FALSE(inbox->done(dead[0]));
  EXPECT_EQ(inbox->fail(dead[0], "late"), pg::InboxFailure::lease_lost);
}

TEST_F(InboxPg, ARowWhoseProcessorDiesEveryTimeFailsAfterMaxAttempts) {
  auto inbox = make_inbox(/*max_attempts=*/2);
  inbox->push(env->charges.opaque_id, signed_event("ch_poison", 1));
  ASSERT_EQ(inbox->take("a", 1).size(), 1U);
  expire_leases();
  ASSERT_EQ(inbox->take("b", 1).size(), 1U);
  expire_leases();
  EXPECT_TRUE(inbox->take("c", 1).empty());
  const auto failed = inbox->failed();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_NE(failed[0].last_error.find("lease expired"), std::string::npos) << failed[0].last_error;
  EXPECT_TRUE(failed[0].failed_at);
}

TEST_F(InboxPg, AStoreFailureKeepsTheRowWithoutSecretsAndALaterAttemptSucceeds) {
  auto inbox = make_inbox();
  const WebhookRequest request = signed_event("ch_retry", 3);
  inbox->push(env->charges.opaque_id, request);
  store->fail_next = 1;
  auto processor = make_processor(inbox, "p");

  EXPECT_EQ(processor->process_available(), 1U);
  auto all = reports.all();
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].result, InboxResult::retrying);
  auto entries = inbox->entries();
  ASSERT_EQ(entries.size(), 1U);
  const auto& e = entries[0];
  EXPECT_EQ(e.attempts, 1);
  EXPECT_FALSE(e.failed_at);
  EXPECT_FALSE(e.leased_until);
  EXPECT_NE(e.last_error.find("could not connect"), std::string::npos) << e.last_error;
  EXPECT_NE(e.last_error.find("REDACTED"), std::string::npos) << e.last_error;
  EXPECT_EQ(e.last_error.find(kWebhookSecret), std::string::npos) << e.last_error;
  EXPECT_EQ(all[0].error, e.last_error);
  // Due after the backoff, in the injected clock's time.
  ASSERT_TRUE(e.available_at);
  EXPECT_EQ(*e.available_at, env->clock->now() + std::chrono::seconds(10));
  EXPECT_EQ(inbox->time_until_due(), std::chrono::milliseconds(10'000));
  EXPECT_EQ(env->count(), 0U);

  EXPECT_EQ(processor->process_available(), 0U) << "taken before its backoff ended";
  advance_clock(10s);
  EXPECT_EQ(processor->process_available(), 1U);
  all = reports.all();
  ASSERT_EQ(all.size(), 2U);
  EXPECT_EQ(all[1].result, InboxResult::written);
  EXPECT_EQ(all[1].attempt, 2);
  auto row = env->find("ch_retry");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->data, charge("ch_retry", 3, 3));
  EXPECT_EQ(inbox->pending_count(), 0U);
  EXPECT_TRUE(inbox->entries().empty());
}

TEST_F(InboxPg, TheSignatureHeaderIsKeptOutOfTheRecordedError) {
  auto inbox = make_inbox();
  WebhookRequest request = signed_event("ch_sig", 1);
  const std::string signature = request.headers.at(0).second;
  store->echoed_secret = signature;  // a store echoing the request's credential header
  store->fail_next = 1;
  inbox->push(env->charges.opaque_id, request);
  auto processor = make_processor(inbox, "p");
  EXPECT_EQ(processor->process_available(), 1U);
  const auto entries = inbox->entries();
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_EQ(entries[0].last_error.find(signature), std::string::npos) << entries[0].last_error;
  EXPECT_NE(entries[0].last_error.find("REDACTED"), std::string::npos) << entries[0].last_error;
  EXPECT_EQ(env->logger->text().find(signature), std::string::npos);
}

TEST_F(InboxPg, FailedRowsAreListedAndCanBeRequeued) {
  auto inbox = make_inbox(/*max_attempts=*/2);
  inbox->push(env->charges.opaque_id, signed_event("ch_failing", 1));
  store->fail_next = 2;
  auto processor = make_processor(inbox, "p");
  EXPECT_EQ(processor->process_available(), 1U);
  advance_clock(10s);
  EXPECT_EQ(processor->process_available(), 1U);
  auto all = reports.all();
  ASSERT_EQ(all.size(), 2U);
  EXPECT_EQ(all[0].result, InboxResult::retrying);
  EXPECT_EQ(all[1].result, InboxResult::failed);
  EXPECT_EQ(processor->stats().failed, 1U);

  auto failed = inbox->failed();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].attempts, 2);
  EXPECT_TRUE(failed[0].failed_at);
  EXPECT_NE(failed[0].last_error.find("could not connect"), std::string::npos);
  EXPECT_EQ(inbox->pending_count(), 0U);
  advance_clock(600s);
  EXPECT_EQ(processor->process_available(), 0U) << "a failed row stays put";
  EXPECT_EQ(inbox->time_until_due(), std::nullopt);

  EXPECT_FALSE(inbox->requeue_failed(failed[0].id + 1000));
  EXPECT_TRUE(inbox->requeue_failed(failed[0].id));
  EXPECT_FALSE(inbox->requeue_failed(failed[0].id)) << "no longer failed";
  EXPECT_TRUE(inbox->failed().empty());
  EXPECT_EQ(inbox->pending_count(), 1U);
  EXPECT_EQ(processor->process_available(), 1U);
  EXPECT_EQ(reports.all().back().result, InboxResult::written);
  EXPECT_TRUE(env->find("ch_failing"));
  EXPECT_TRUE(inbox->entries().empty());
}

TEST_F(InboxPg, PayloadsNoRetryCanFixFailAtOnceAndRequeueAllBringsThemBack) {
  auto inbox = make_inbox();
  // An integration deleted after the webhook was accepted, and a resource
  // that cannot become a row (no remote key).
  inbox->push("svi_gone", signed_event("ch_x", 1));
  inbox->push(env->charges.opaque_id, env->signed_request(charge_event(json{{"object", "charge"}}).dump()));
  auto processor = make_processor(inbox, "p");
  EXPECT_EQ(processor->process_available(), 2U);
  const auto failed = inbox->failed();
  ASSERT_EQ(failed.size(), 2U);
  EXPECT_EQ(failed[0].attempts, 1);
  EXPECT_NE(failed[0].last_error.find("unknown integration svi_gone"), std::string::npos) << failed[0].last_error;
  EXPECT_EQ(failed[1].attempts, 1);
  EXPECT_NE(failed[1].last_error.find("invalid webhook payload"), std::string::npos) << failed[1].last_error;

  EXPECT_EQ(inbox->requeue_all_failed(), 2U);
  EXPECT_EQ(inbox->pending_count(), 2U);
  EXPECT_EQ(inbox->requeue_all_failed(), 0U);
}

TEST_F(InboxPg, DependentsAreNotifiedWhenTheProcessorWrites) {
  auto refunds = env->add_refunds(env->charges);
  auto inbox = make_inbox();
  inbox->push(env->charges.opaque_id, signed_event("ch_dep", 2));
  inbox->push(env->charges.opaque_id, signed_event("ch_dep", 1));  // older: no change
  auto processor = make_processor(inbox, "p", 1);
  EXPECT_EQ(processor->process_available(), 2U);
  const auto calls = env->recorder->calls();
  ASSERT_EQ(calls.size(), 2U);
  EXPECT_TRUE(calls[0].changed);
  EXPECT_FALSE(calls[1].changed);
  EXPECT_EQ(env->find("ch_dep")->data, charge("ch_dep", 2, 2));
}

// A batch is written with one upsert: a stop during it finishes the batch
// (its rows are written), and no further batch is taken.
TEST_F(InboxPg, AStoppedProcessorFinishesItsBatchAndTakesNoMore) {
  auto inbox = make_inbox();
  for (int i = 0; i < 6; ++i) inbox->push(env->charges.opaque_id, signed_event("ch_s" + std::to_string(i), 1));
  CancellationSource stop;
  WebhookInboxProcessorOptions o;
  o.owner = "stopping";
  o.batch = 3;
  o.on_processed = [&](const InboxReport& r) {
    reports.add(r);
    stop.cancel();  // stop after the first row's report
  };
  WebhookInboxProcessor processor(inbox, env->context(), o);
  EXPECT_EQ(processor.process_available(stop.token()), 3U);
  auto all = reports.all();
  ASSERT_EQ(all.size(), 3U);
  for (const auto& r : all) EXPECT_EQ(r.result, InboxResult::written);
  EXPECT_EQ(store->upserts.load(), 1);
  const auto entries = inbox->entries();
  ASSERT_EQ(entries.size(), 3U);
  for (const auto& e : entries) {
    EXPECT_EQ(e.attempts, 0) << "a row of the next batch was not attempted";
    EXPECT_FALSE(e.leased_until);
  }
  auto other = make_processor(inbox, "other");
  EXPECT_EQ(other->process_available(), 3U);
  EXPECT_EQ(env->count(), 6U);
}

// --- WebhookHandler / WebhookReceiver with an inbox ---

TEST_F(InboxPg, TheReceiverWithAnInboxAnswers202AndTheRowAppearsOnlyAfterTheProcessorRuns) {
  auto inbox = make_inbox();
  WebhookReceiverOptions options;
  options.io_threads = 2;
  options.handler.inbox = inbox;
  WebhookReceiver receiver(env->context(), options);
  receiver.start();
  const std::string target = "/v1/webhooks/" + env->charges.opaque_id;
  auto post = [&](const std::string& path, const std::string& text,
                  const std::vector<std::pair<std::string, std::string>>& headers) {
    TestConnection connection(receiver.port());
    return connection.post(path, text, headers, false);
  };

  const std::string body = charge_event(charge("ch_http", 4, 4)).dump();
  auto r = post(target, body, env->signature(body));
  EXPECT_EQ(r.status, 202) << r.body;
  // Stored, not written: the 202 came from the inbox's COMMIT.
  EXPECT_EQ(inbox->pending_count(), 1U);
  EXPECT_EQ(env->count(), 0U);
  EXPECT_EQ(receiver.handler().stats().inboxed, 1U);
  EXPECT_EQ(receiver.handler().stats().pending, 0U);

  // Refused requests never reach the inbox.
  r = post(target, body, env->signature(body, "whsec_wrong_secret"));
  EXPECT_EQ(r.status, 401);
  const std::string malformed = "{\"id\": ";
  r = post(target, malformed, env->signature(malformed));
  EXPECT_EQ(r.status, 400);
  const std::string keyless = charge_event(json{{"object", "charge"}}).dump();
  r = post(target, keyless, env->signature(keyless));
  EXPECT_EQ(r.status, 400) << "a payload that cannot become a row is refused up front";
  r = post("/v1/webhooks/svi_unknown", body, env->signature(body));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(inbox->pending_count(), 1U);
  receiver.stop();

  auto processor = make_processor(inbox, "p");
  EXPECT_EQ(processor->process_available(), 1U);
  auto row = env->find("ch_http");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->data, charge("ch_http", 4, 4));
  EXPECT_EQ(inbox->pending_count(), 0U);
}

// An inbox whose store is down.
class BrokenInbox final : public WebhookInbox {
 public:
  void push(const std::string& /*opaque_id*/, const WebhookRequest& /*request*/) override {
    throw StoreError("inbox unavailable", true);
  }
};

TEST_F(InboxPg, ABatchIsOneInboxTransactionAndDrainsAsOneUpsertWithTheNewerVersion) {
  auto inbox = make_inbox();
  std::vector<WebhookRequest> requests;
  for (int i = 0; i < 40; ++i) requests.push_back(signed_event("ch_b" + std::to_string(i), 1));
  requests.push_back(signed_event("ch_dup", 3));  // newer first, older last
  requests.push_back(signed_event("ch_dup", 2));
  std::vector<WebhookInbox::Entry> entries;
  for (const auto& r : requests) entries.push_back({env->charges.opaque_id, &r});
  inbox->push_batch(entries);
  EXPECT_EQ(inbox->pending_count(), 42U);
  auto processor = make_processor(inbox, "batcher", 100);
  EXPECT_EQ(processor->process_available(), 42U);
  EXPECT_EQ(store->upserts.load(), 1) << "one take of 42 rows: one multi-row upsert";
  EXPECT_EQ(inbox->pending_count(), 0U);
  EXPECT_EQ(env->count(), 41U);
  auto dup = env->find("ch_dup");
  ASSERT_TRUE(dup.has_value());
  EXPECT_EQ(dup->data.value("version", 0), 3) << dup->data.dump();
  EXPECT_EQ(processor->stats().written, 42U);
}

TEST_F(InboxPg, AFailedBatchUpsertKeepsEveryRowForALaterAttempt) {
  auto inbox = make_inbox();
  std::vector<WebhookRequest> requests;
  for (int i = 0; i < 5; ++i) requests.push_back(signed_event("ch_f" + std::to_string(i), 1));
  std::vector<WebhookInbox::Entry> entries;
  for (const auto& r : requests) entries.push_back({env->charges.opaque_id, &r});
  inbox->push_batch(entries);
  store->fail_next = 100;  // the batch, then each row alone
  auto processor = make_processor(inbox, "failing", 100);
  processor->process_available();
  EXPECT_EQ(inbox->pending_count(), 5U) << "nothing lost";
  EXPECT_EQ(processor->stats().retrying, 5U);
  store->fail_next = 0;
  advance_clock(120s);
  processor->process_available();
  EXPECT_EQ(inbox->pending_count(), 0U);
  EXPECT_EQ(env->count(), 5U);
}

TEST_F(InboxPg, TheHandlerAnswers503WhenTheInboxCannotStoreAndUsesThePoolWithoutOne) {
  {
    WebhookHandlerOptions options;
    options.inbox = std::make_shared<BrokenInbox>();
    WebhookHandler handler(env->context(), options);
    const auto r = handler.handle(env->charges.opaque_id, signed_event("ch_down", 1));
    EXPECT_EQ(r.status, 503);
    EXPECT_TRUE(std::any_of(r.headers.begin(), r.headers.end(),
                            [](const auto& h) { return h.first == "Retry-After"; }));
    EXPECT_EQ(r.body.find("inbox unavailable"), std::string::npos) << "a generic message";
    EXPECT_EQ(handler.stats().inboxed, 0U);
  }
  {
    auto memory = std::make_shared<memory::MemoryWebhookInbox>();
    WebhookHandlerOptions options;
    options.inbox = memory;
    WebhookHandler handler(env->context(), options);
    const WebhookRequest request = signed_event("ch_mem", 1);
    EXPECT_EQ(handler.handle(env->charges.opaque_id, request).status, 202);
    auto messages = memory->take();
    ASSERT_EQ(messages.size(), 1U);
    EXPECT_EQ(messages[0].opaque_id, env->charges.opaque_id);
    EXPECT_EQ(messages[0].request.body, request.body);
    EXPECT_EQ(memory->size(), 0U);
  }
  {
    WebhookHandler handler(env->context());  // no inbox: the in-memory pool writes it
    EXPECT_EQ(handler.handle(env->charges.opaque_id, signed_event("ch_pool", 1)).status, 202);
    handler.wait_idle();
    EXPECT_EQ(handler.stats().processed_async, 1U);
  }
  EXPECT_FALSE(env->find("ch_down"));
  EXPECT_FALSE(env->find("ch_mem"));
  EXPECT_TRUE(env->find("ch_pool"));
}

TEST_F(InboxPg, AWorkerWithAnInboxWritesItsWebhooksAndStopsWithIt) {
  auto inbox = make_inbox();
  auto queue = std::make_shared<pg::PgJobQueue>(pool);
  jobs::WorkerOptions options;
  options.concurrency = 1;
  options.owner = "worker_with_inbox";
  options.webhook_inbox = inbox;
  jobs::Worker worker(env->registry, env->context(), queue, options);
  worker.start();
  for (int i = 0; i < 5; ++i) inbox->push(env->charges.opaque_id, signed_event("ch_w" + std::to_string(i), 1));
  EXPECT_TRUE(store->wait_for_keys(5, 30s));
  worker.stop();
  EXPECT_EQ(env->count(), 5U);
  EXPECT_EQ(inbox->pending_count(), 0U);
  // Stopped: a later push waits in the inbox for the next processor.
  inbox->push(env->charges.opaque_id, signed_event("ch_later", 1));
  EXPECT_EQ(inbox->pending_count(), 1U);
  EXPECT_FALSE(env->find("ch_later"));
}

}  // namespace
}  // namespace webhookdb::webhooks
