// Micro-batched durable acknowledgement (issue 23), memory stores: an answer
// waits for its batch's commit, a batch is one upsert, a failed commit is a
// 503 with Retry-After for every member, a bad row is its own 400, and two
// versions of one key in a batch leave the newer.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "webhook_test_env.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/webhooks/webhook_handler.hpp"

namespace webhookdb::webhooks {
namespace {

using nlohmann::json;
using namespace test;
using namespace std::chrono_literals;

bool has_retry_after(const WebhookResponse& r) {
  return std::any_of(r.headers.begin(), r.headers.end(), [](const auto& h) { return h.first == "Retry-After"; });
}

// Answers collected from handle_async.
class Answers {
 public:
  std::function<void(WebhookResponse)> slot(std::size_t i) {
    {
      std::lock_guard lock(mutex_);
      if (answers_.size() <= i) answers_.resize(i + 1);
    }
    return [this, i](WebhookResponse r) {
      std::lock_guard lock(mutex_);
      answers_[i] = std::move(r);
      ++count_;
      cv_.notify_all();
    };
  }
  bool wait(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return count_ >= n; });
  }
  std::size_t count() {
    std::lock_guard lock(mutex_);
    return count_;
  }
  WebhookResponse at(std::size_t i) {
    std::lock_guard lock(mutex_);
    return answers_.at(i).value();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::optional<WebhookResponse>> answers_;
  std::size_t count_ = 0;
};

// A gate the store's commit waits at.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> arrived{0};
  void wait() {
    arrived.fetch_add(1);
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lock(mutex);
      open = true;
    }
    cv.notify_all();
  }
};

class Batch : public ::testing::Test {
 protected:
  std::shared_ptr<memory::MemoryReplicaStore> store = std::make_shared<memory::MemoryReplicaStore>();
  std::shared_ptr<memory::MemoryJobStore> jobs = std::make_shared<memory::MemoryJobStore>();
  Env env{store, jobs};
  std::atomic<int> upserts{0};

  WebhookHandlerOptions sync_options(std::chrono::milliseconds window = 100ms) {
    WebhookHandlerOptions options;
    options.process_synchronously = true;
    options.batch_window = window;
    options.batch_writers = 1;
    return options;
  }
  void send(WebhookHandler& handler, const json& body, std::function<void(WebhookResponse)> done) {
    handler.handle_async(env.charges.opaque_id, env.signed_request(body.dump()), std::move(done));
  }
};

TEST_F(Batch, AnswerWaitsForTheCommit) {
  Gate gate;
  store->set_before_upsert([&](const TableSpec&, std::span<const Row>) { gate.wait(); });
  WebhookHandler handler(env.context(), sync_options(1ms));
  Answers answers;
  send(handler, charge("a", 1), answers.slot(0));
  // The commit is held: no answer, however long we wait.
  for (int i = 0; i < 100 && gate.arrived.load() == 0; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(gate.arrived.load(), 1);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(answers.count(), 0U) << "answered before the row was committed";
  EXPECT_FALSE(env.find("a").has_value());
  gate.release();
  ASSERT_TRUE(answers.wait(1));
  EXPECT_EQ(answers.at(0).status, 200);
  EXPECT_TRUE(env.find("a").has_value());
}

TEST_F(Batch, InboxAnswerWaitsForTheInboxCommit) {
  struct BlockingInbox final : WebhookInbox {
    Gate gate;
    std::atomic<int> batches{0};
    std::atomic<int> stored{0};
    void push(const std::string&, const WebhookRequest&) override {
      gate.wait();
      stored.fetch_add(1);
    }
    void push_batch(const std::vector<Entry>& entries) override {
      gate.wait();
      batches.fetch_add(1);
      stored.fetch_add(static_cast<int>(entries.size()));
    }
  };
  auto inbox = std::make_shared<BlockingInbox>();
  WebhookHandlerOptions options;
  options.process_synchronously = false;
  options.inbox = inbox;
  options.batch_window = 100ms;
  options.batch_writers = 1;
  WebhookHandler handler(env.context(), options);
  Answers answers;
  for (std::size_t i = 0; i < 10; ++i) send(handler, charge("k" + std::to_string(i), 1), answers.slot(i));
  for (int i = 0; i < 100 && inbox->gate.arrived.load() == 0; ++i) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(answers.count(), 0U) << "answered 202 before the inbox stored the webhook";
  inbox->gate.release();
  ASSERT_TRUE(answers.wait(10));
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(answers.at(i).status, 202);
  EXPECT_EQ(inbox->stored.load(), 10);
  EXPECT_EQ(inbox->batches.load(), 1) << "ten webhooks within the window: one inbox transaction";
}

TEST_F(Batch, RequestsArrivingTogetherShareOneUpsert) {
  store->set_before_upsert([&](const TableSpec&, std::span<const Row>) { upserts.fetch_add(1); });
  WebhookHandler handler(env.context(), sync_options(100ms));
  Answers answers;
  std::vector<std::thread> senders;
  for (std::size_t i = 0; i < 20; ++i) {
    senders.emplace_back([&, i] { send(handler, charge("k" + std::to_string(i), 1), answers.slot(i)); });
  }
  for (auto& t : senders) t.join();
  ASSERT_TRUE(answers.wait(20));
  for (std::size_t i = 0; i < 20; ++i) EXPECT_EQ(answers.at(i).status, 200);
  EXPECT_EQ(env.count(), 20U);
  EXPECT_LE(upserts.load(), 2) << "twenty webhooks within one window took " << upserts.load() << " transactions";
  EXPECT_GE(handler.stats().batched, 20U);
}

TEST_F(Batch, MaxBatchClosesABatchBeforeTheWindow) {
  store->set_before_upsert([&](const TableSpec&, std::span<const Row> rows) {
    upserts.fetch_add(1);
    EXPECT_LE(rows.size(), 4U);
  });
  auto options = sync_options(10s);
  options.max_batch = 4;
  WebhookHandler handler(env.context(), options);
  Answers answers;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < 8; ++i) send(handler, charge("k" + std::to_string(i), 1), answers.slot(i));
  ASSERT_TRUE(answers.wait(8, 5s)) << "a full batch waited out its window";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(upserts.load(), 2);
}

TEST_F(Batch, FailedCommitIs503WithRetryAfterForEveryMemberAndNothingAnswered2xxIsLost) {
  store->fail_next_upserts(1, std::make_exception_ptr(StoreError("connection lost", true)));
  WebhookHandler handler(env.context(), sync_options(100ms));
  Answers answers;
  for (std::size_t i = 0; i < 10; ++i) send(handler, charge("f" + std::to_string(i), 1), answers.slot(i));
  ASSERT_TRUE(answers.wait(10));
  for (std::size_t i = 0; i < 10; ++i) {
    const auto r = answers.at(i);
    EXPECT_EQ(r.status, 503) << i;
    EXPECT_TRUE(has_retry_after(r)) << i;
  }
  EXPECT_EQ(env.count(), 0U);
  EXPECT_EQ(handler.stats().batch_failures, 1U);
  // The senders retry: now all are stored, each answered only after that.
  Answers again;
  for (std::size_t i = 0; i < 10; ++i) send(handler, charge("f" + std::to_string(i), 1), again.slot(i));
  ASSERT_TRUE(again.wait(10));
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(again.at(i).status, 200);
    EXPECT_TRUE(env.find("f" + std::to_string(i)).has_value());
  }
}

TEST_F(Batch, ABadPayloadIsItsOwn400AndItsNeighboursAreWritten) {
  WebhookHandler handler(env.context(), sync_options(100ms));
  Answers answers;
  send(handler, charge("good1", 1), answers.slot(0));
  handler.handle_async(env.charges.opaque_id, env.signed_request(R"({"id": "bad", "version": "not a number"})"),
                       answers.slot(1));
  send(handler, charge("good2", 1), answers.slot(2));
  ASSERT_TRUE(answers.wait(3));
  EXPECT_EQ(answers.at(0).status, 200);
  EXPECT_EQ(answers.at(1).status, 400) << answers.at(1).body;
  EXPECT_EQ(answers.at(2).status, 200);
  EXPECT_EQ(env.count(), 2U);
}

TEST_F(Batch, ARowTheStoreRefusesIsItsOwn400AndItsNeighboursAreWritten) {
  store->set_before_upsert([&](const TableSpec&, std::span<const Row> rows) {
    upserts.fetch_add(1);
    for (const Row& row : rows) {
      if (row.key == "refused") throw InvalidInput("the store refuses this row", "column 'id'");
    }
  });
  WebhookHandler handler(env.context(), sync_options(100ms));
  Answers answers;
  send(handler, charge("n1", 1), answers.slot(0));
  send(handler, charge("refused", 1), answers.slot(1));
  send(handler, charge("n2", 1), answers.slot(2));
  ASSERT_TRUE(answers.wait(3));
  EXPECT_EQ(answers.at(0).status, 200);
  EXPECT_EQ(answers.at(1).status, 400);
  EXPECT_EQ(answers.at(2).status, 200);
  EXPECT_TRUE(env.find("n1").has_value());
  EXPECT_TRUE(env.find("n2").has_value());
  EXPECT_FALSE(env.find("refused").has_value());
}

TEST_F(Batch, TheNewerVersionOfAKeyWinsWithinABatch) {
  store->set_before_upsert([&](const TableSpec&, std::span<const Row>) { upserts.fetch_add(1); });
  WebhookHandler handler(env.context(), sync_options(100ms));
  Answers answers;
  // Newer first, older last: a store keeping the last duplicate would keep version 1.
  send(handler, charge("dup", 3, 300), answers.slot(0));
  send(handler, charge("dup", 1, 100), answers.slot(1));
  send(handler, charge("dup", 2, 200), answers.slot(2));
  ASSERT_TRUE(answers.wait(3));
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(answers.at(i).status, 200);
  EXPECT_EQ(upserts.load(), 1);
  auto row = env.find("dup");
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->data.value("version", 0), 3) << row->data.dump();
}

TEST_F(Batch, AFullQueueIs503WithRetryAfter) {
  Gate gate;
  store->set_before_upsert([&](const TableSpec&, std::span<const Row>) { gate.wait(); });
  auto options = sync_options(0ms);
  options.max_queued = 2;
  options.max_batch = 1;
  options.queue_wait = 50ms;
  WebhookHandler handler(env.context(), options);
  Answers answers;
  send(handler, charge("q0", 1), answers.slot(0));  // taken by the writer, held at the gate
  for (int i = 0; i < 100 && gate.arrived.load() == 0; ++i) std::this_thread::sleep_for(5ms);
  send(handler, charge("q1", 1), answers.slot(1));
  send(handler, charge("q2", 1), answers.slot(2));
  EXPECT_TRUE(handler.queue_above(1.0));
  send(handler, charge("q3", 1), answers.slot(3));  // waits 50 ms for room, then 503
  ASSERT_TRUE(answers.wait(1));
  EXPECT_EQ(answers.at(3).status, 503);
  EXPECT_TRUE(has_retry_after(answers.at(3)));
  gate.release();
  ASSERT_TRUE(answers.wait(4));
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(answers.at(i).status, 200) << i;
}

}  // namespace
}  // namespace webhookdb::webhooks
