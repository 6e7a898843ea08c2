// The receiver under abuse with a real PostgreSQL (issue 16, items 7 and 9):
// a key PostgreSQL cannot index is a 400 before any 202 (never a 202 and a
// lost write, never a 500), and a stalled integrations table answers
// database-free requests at once and the others 503 + Retry-After by a
// deadline. Needs WEBHOOKDB_TEST_DATABASE_URL; fails (never skips) without it.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/pg_test_env.hpp"
#include "webhook_test_env.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/webhooks/webhook_receiver.hpp"

namespace webhookdb::webhooks {
namespace {

using nlohmann::json;
using namespace test;
using Clock = std::chrono::steady_clock;

// Holds LOCK TABLE <table> IN ACCESS EXCLUSIVE MODE from its own connection
// until release() or destruction.
class TableLock {
 public:
  TableLock(const pg::Config& config, std::string table) : pool_(config) {
    thread_ = std::thread([this, table = std::move(table)] {
      try {
        pool_.transaction([&](pg::Session& s) {
          s.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
          locked_ = true;
          while (!release_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        });
      } catch (const std::exception& e) {
        ADD_FAILURE() << "LOCK TABLE failed: " << e.what();
        locked_ = true;
      }
    });
    const auto until = Clock::now() + std::chrono::seconds(10);
    while (!locked_ && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!locked_) ADD_FAILURE() << "LOCK TABLE never happened";
  }
  ~TableLock() { release(); }
  TableLock(const TableLock&) = delete;
  TableLock& operator=(const TableLock&) = delete;
  void release() {
    release_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  pg::ConnectionPool pool_;
  std::atomic<bool> locked_{false};
  std::atomic<bool> release_{false};
  std::thread thread_;
};

class AbusePg : public webhookdb::test::PgTest {
 protected:
  std::unique_ptr<Env> env;
  std::unique_ptr<WebhookReceiver> receiver;

  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    auto pool = std::make_shared<pg::ConnectionPool>(config(8));
    env = std::make_unique<Env>(std::make_shared<pg::PgReplicaStore>(pool),
                                std::make_shared<pg::PgJobStore>(pool));
  }
  void TearDown() override {
    if (receiver) receiver->stop();
    receiver.reset();
    env.reset();
    PgTest::TearDown();
  }
  void start(WebhookReceiverOptions options = {}) {
    receiver = std::make_unique<WebhookReceiver>(env->context(), options);
    receiver->start();
  }
  [[nodiscard]] std::string target() const { return "/v1/webhooks/" + env->charges.opaque_id; }
  ClientResponse post_signed(const json& body) {
    const std::string text = body.dump();
    return post_once(receiver->port(), target(), text, env->signature(text));
  }
};

TEST_F(AbusePg, KeyTooLargeForTheIndexIs400NotA202ThenALostWrite) {
  start();
  const auto r = post_signed(charge_event(charge(random_key(8 * 1024), 1)));
  EXPECT_EQ(r.status, 400) << r.body;
  receiver->handler().wait_idle();
  EXPECT_EQ(receiver->handler().stats().failed_async, 0U);
  // Keys up to the documented bound are indexed and written.
  const std::string longest = random_key(kMaxIndexedValueBytes);
  EXPECT_EQ(post_signed(charge_event(charge(longest, 1))).status, 202);
  receiver->handler().wait_idle();
  EXPECT_EQ(receiver->handler().stats().failed_async, 0U);
  EXPECT_TRUE(env->find(longest));
}

// Values the server would refuse (an `integer` column: past int4, a
// fraction, an array; the version the update rule compares) are found before
// the answer: a 400, never a 202 followed by a failed write. A numeric string
// is a number PostgreSQL reads, so it is accepted.
TEST_F(AbusePg, ValuesTheServerWouldRefuseAre400BeforeAny202) {
  start();
  const std::vector<json> bad_amounts = {
      json(3'000'000'000LL), json(-2'147'483'649LL), json(1e300),   json(1.5),
      json("12x"),           json::array({1}),       json::object()};
  int i = 0;
  for (const auto& amount : bad_amounts) {
    json c = charge("ch_bad_" + std::to_string(i++), 1);
    c["amount"] = amount;
    const auto r = post_signed(charge_event(c));
    EXPECT_EQ(r.status, 400) << amount.dump() << ": " << r.body;
    EXPECT_NE(r.body.find("amount"), std::string::npos) << "names the column: " << r.body;
  }
  json huge_version = charge("ch_bad_version", 1);
  huge_version["version"] = 1e19;
  EXPECT_EQ(post_signed(charge_event(huge_version)).status, 400);
  receiver->handler().wait_idle();
  EXPECT_EQ(receiver->handler().stats().failed_async, 0U) << "nothing was accepted and then failed";
  json edge = charge("ch_edge", 1);
  edge["amount"] = 2'147'483'647;
  EXPECT_EQ(post_signed(charge_event(edge)).status, 202) << "int4's largest value is fine";
  json text_number = charge("ch_text_number", 1);
  text_number["amount"] = "12";
  EXPECT_EQ(post_signed(charge_event(text_number)).status, 202);
  receiver->handler().wait_idle();
  EXPECT_EQ(receiver->handler().stats().failed_async, 0U);
  EXPECT_TRUE(env->find("ch_edge"));
  EXPECT_TRUE(env->find("ch_text_number"));
}

TEST_F(AbusePg, KeyTooLargeForTheIndexIs400WhenSynchronous) {
  WebhookReceiverOptions options;
  options.handler.process_synchronously = true;
  start(options);
  const auto r = post_signed(charge_event(charge(random_key(8 * 1024), 1)));
  EXPECT_EQ(r.status, 400) << r.body;
}

TEST_F(AbusePg, LockedIntegrationsTableFreezesNothingElse) {
  WebhookReceiverOptions options;
  options.handler_deadline = std::chrono::milliseconds(700);
  // Every webhook looks its integration up (none is remembered), so each one
  // stalls on the lock.
  options.handler.integration_ttl = std::chrono::milliseconds(0);
  start(options);
  ASSERT_EQ(post_signed(charge_event(charge("ch_before", 1))).status, 202);

  TableLock lock(config(1), schema().quoted() + ".webhookdb_service_integrations");
  // More stalled webhooks than io threads: none of them may hold one.
  constexpr int kStalled = 6;
  std::vector<int> statuses(kStalled, 0);
  std::vector<std::string> retry_after(kStalled);
  std::vector<Clock::duration> took(kStalled);
  std::vector<std::thread> webhooks;
  for (int i = 0; i < kStalled; ++i) {
    webhooks.emplace_back([&, i] {
      const auto t0 = Clock::now();
      try {
        const auto r = post_signed(charge_event(charge("ch_stalled_" + std::to_string(i), 1)));
        retry_after[static_cast<std::size_t>(i)] = r.header("retry-after");
        statuses[static_cast<std::size_t>(i)] = r.status;
      } catch (const std::exception&) {
        statuses[static_cast<std::size_t>(i)] = -1;  // no answer within the client's timeout
      }
      took[static_cast<std::size_t>(i)] = Clock::now() - t0;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  // Needs no database: answered at once, even while webhooks wait.
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    try {
      TestConnection c(receiver->port(), std::chrono::seconds(5));
      const auto r = c.send(http::verb::get, "/nothing", "", {}, false);
      EXPECT_EQ(r.status, 404);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "GET /nothing: " << e.what();
    }
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  }
  for (auto& t : webhooks) t.join();
  for (std::size_t i = 0; i < kStalled; ++i) {
    EXPECT_EQ(statuses[i], 503) << i;
    EXPECT_FALSE(retry_after[i].empty()) << i;
    EXPECT_LT(took[i], std::chrono::milliseconds(700 + 1000)) << i;
  }
  lock.release();
  EXPECT_EQ(post_signed(charge_event(charge("ch_after", 1))).status, 202);
}

// The default: an integration looked up a moment ago is remembered
// (WebhookHandlerOptions::integration_ttl), so its webhooks go on being
// committed while the integrations table is locked.
TEST_F(AbusePg, ARememberedIntegrationIsServedWhileItsTableIsLocked) {
  WebhookReceiverOptions options;
  options.handler_deadline = std::chrono::milliseconds(5000);
  options.handler.integration_ttl = std::chrono::minutes(10);
  start(options);
  ASSERT_EQ(post_signed(charge_event(charge("ch_before", 1))).status, 202);
  TableLock lock(config(1), schema().quoted() + ".webhookdb_service_integrations");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(post_signed(charge_event(charge("ch_locked_" + std::to_string(i), 1))).status, 202) << i;
  }
  lock.release();
}

}  // namespace
}  // namespace webhookdb::webhooks
