// ServiceBackfiller: server-side faults become RetryOrDie for the job system;
// other HTTP errors go through the page loop's retries and propagate.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "support.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb {
namespace {

using namespace webhookdb::testing;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ServiceBackfillerTest : public ::testing::Test {
 protected:
  TestHarness h;

  // Runs a full backfill of a fresh fake_v1 integration and returns its error.
  std::exception_ptr backfill_error() {
    auto si = h.integration();
    auto r = h.replicator(si);
    auto job = h.job(si);
    try {
      r->backfill(job);
    } catch (...) {
      return std::current_exception();
    }
    return nullptr;
  }

  static RetryOrDie as_retry_or_die(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const RetryOrDie& r) {
      return r;
    } catch (const std::exception& other) {
      ADD_FAILURE() << "expected RetryOrDie, got: " << other.what();
    }
    return RetryOrDie(-1, 0s, nullptr, "none");
  }
};

TEST_F(ServiceBackfillerTest, TimeoutBecomesRetryOrDieWithTheDefaults) {
  h.http->timeout();
  auto e = as_retry_or_die(backfill_error());
  EXPECT_EQ(e.retries(), 2);
  EXPECT_EQ(e.backoff(), 63s);
  EXPECT_THROW(std::rethrow_exception(e.cause()), HttpTimeout);
  EXPECT_EQ(h.http->request_count(), 1U) << "RetryOrDie is not retried by the page loop";
  EXPECT_TRUE(h.sleeper->waits().empty());
}

TEST_F(ServiceBackfillerTest, ConnectionErrorBecomesRetryOrDie) {
  h.http->connection_error();
  auto e = as_retry_or_die(backfill_error());
  EXPECT_EQ(e.retries(), 2);
  EXPECT_THROW(std::rethrow_exception(e.cause()), HttpConnectionError);
  EXPECT_EQ(h.http->request_count(), 1U);
}

TEST_F(ServiceBackfillerTest, ServerErrorsBecomeRetryOrDie) {
  for (int status : {500, 502, 503, 504}) {
    h.http->reset();
    h.http->respond(status, "unavailable");
    auto e = as_retry_or_die(backfill_error());
    EXPECT_EQ(e.backoff(), 63s);
    try {
      std::rethrow_exception(e.cause());
    } catch (const HttpError& cause) {
      EXPECT_EQ(cause.status(), status);
    }
    EXPECT_EQ(h.http->request_count(), 1U) << status;
  }
}

TEST_F(ServiceBackfillerTest, TheReplicatorsRetriesAndBackoffAreUsed) {
  h.fake->backfill_options.server_error_retries = 5;
  h.fake->backfill_options.server_error_backoff = 10s;
  h.http->respond(503, "busy");
  auto e = as_retry_or_die(backfill_error());
  EXPECT_EQ(e.retries(), 5);
  EXPECT_EQ(e.backoff(), 10s);
}

TEST_F(ServiceBackfillerTest, NotFoundPropagatesAfterThreeTries) {
  h.http->respond(404, "no such thing").repeat();
  auto error = backfill_error();
  ASSERT_TRUE(error);
  try {
    std::rethrow_exception(error);
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_THAT(e.what(), HasSubstr("404"));
  }
  EXPECT_EQ(h.http->request_count(), 3U);
  EXPECT_THAT(h.sleeper->waits(), ElementsAre(1000ms, 2000ms));
}

TEST_F(ServiceBackfillerTest, UnauthorizedPropagatesAfterOneTry) {
  h.http->respond(401, "bad key").repeat();
  auto error = backfill_error();
  EXPECT_THROW(std::rethrow_exception(error), HttpError);
  EXPECT_EQ(h.http->request_count(), 1U);
}

TEST_F(ServiceBackfillerTest, AServerErrorAfterGoodPagesKeepsTheWrittenRows) {
  auto si = h.integration();
  h.fake->backfill_options.batch_size = 1;
  h.http->on("token=p2").respond(503, "busy");
  h.http->on("token=").respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z")}, "p2"));
  auto r = h.replicator(si);
  auto job = h.job(si);
  EXPECT_THROW(r->backfill(job), RetryOrDie);
  EXPECT_EQ(h.rows(*r).size(), 1U);
}

TEST_F(ServiceBackfillerTest, WithAPolitePolicyServerErrorsAreRetriedFirst) {
  h.fake->backfill_options.retry_policy = polite_retry_policy({.max_attempts = 3, .seed = 42});
  h.http->respond(503, "busy").repeat();
  auto e = as_retry_or_die(backfill_error());
  EXPECT_EQ(e.retries(), 2);
  EXPECT_EQ(h.http->request_count(), 3U);
  EXPECT_EQ(h.sleeper->waits().size(), 2U);
}

TEST_F(ServiceBackfillerTest, PerItemModeUpsertsEachItemThroughTheWebhookPath) {
  h.fake->backfill_options.write_mode = BackfillWriteMode::per_item;
  h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z"), fake_item("b", "2024-01-02T00:00:00Z")}));
  auto si = h.integration();
  auto r = h.replicator(si);
  auto job = h.job(si);
  r->backfill(job);
  const auto calls = h.replica->calls();
  ASSERT_EQ(calls.size(), 2U);
  EXPECT_EQ(calls[0].rows, 1U);
  EXPECT_TRUE(calls[0].options.apply_update_rule);
  EXPECT_EQ(h.rows(*r).size(), 2U);
}

TEST_F(ServiceBackfillerTest, BatchedModeWritesWithTheUpdateRule) {
  auto si = h.integration();
  auto r = h.replicator(si);
  r->upsert_webhook_body(fake_item("a", "2024-06-01T00:00:00Z", {{"v", "newer"}}));
  h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z", {{"v", "older"}}),
                                  fake_item("b", "2024-01-01T00:00:00Z")}));
  auto job = h.job(si);
  r->backfill(job);
  const auto calls = h.replica->calls();
  ASSERT_EQ(calls.size(), 2U);
  EXPECT_EQ(calls[1].rows, 2U);
  EXPECT_TRUE(calls[1].options.apply_update_rule);
  EXPECT_EQ(h.replica->find(r->table_spec(), "a")->data["v"], "newer");
}

// A pipelined backfill of six pages of five items in batches of ten: three
// batches, each flushed by the last item of an even page.
void six_pages_in_batches_of_ten(TestHarness& h) {
  h.fake->backfill_options.batch_size = 10;
  h.fake->backfill_options.pipelined = true;
  for (int page = 0; page < 6; ++page) {
    std::vector<nlohmann::json> items;
    for (int i = 0; i < 5; ++i) items.push_back(fake_item("k" + std::to_string(page * 5 + i), "2024-01-01T00:00:00Z"));
    const std::string next = page < 5 ? "p" + std::to_string(page + 1) : "";
    h.http->on(page == 0 ? "token=" : "token=p" + std::to_string(page)).respond_json(fake_page(items, next));
  }
}

TEST_F(ServiceBackfillerTest, APipelinedBackfillBuildsTheNextBatchWhileOneIsWritten) {
  auto si = h.integration();
  six_pages_in_batches_of_ten(h);
  std::atomic<int> upserts{0};
  std::atomic<bool> overlapped{false};
  auto progress = h.progress;
  h.replica->set_before_upsert([&](const TableSpec&, std::span<const Row>) {
    if (upserts++ != 0) return;
    // The first batch's write waits until page 3 (the next batch's items) was
    // handled: only possible when the write does not block the page loop.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto last = progress->last();
      if (last && last->pages >= 3) {
        overlapped = true;
        return;
      }
      std::this_thread::sleep_for(1ms);
    }
  });
  auto r = h.replicator(si);
  auto job = h.job(si);
  r->backfill(job);
  EXPECT_TRUE(overlapped) << "the page loop waited for the first batch's write";
  EXPECT_EQ(h.rows(*r).size(), 30U);
  // Batches and their checkpoints in page order.
  std::vector<std::string> tokens;
  for (const auto& call : h.replica->calls()) {
    if (call.options.checkpoint) tokens.push_back(call.options.checkpoint->next_token);
  }
  EXPECT_THAT(tokens, ElementsAre("p1", "p3", "p5"));
}

TEST_F(ServiceBackfillerTest, AWriteBehindErrorFailsTheBackfillAndLaterBatchesAreNotWritten) {
  auto si = h.integration();
  six_pages_in_batches_of_ten(h);
  std::atomic<int> upserts{0};
  h.replica->set_before_upsert([&](const TableSpec&, std::span<const Row>) {
    if (++upserts == 2) throw InvalidInput("rejected by the test", "batch 2");
  });
  auto r = h.replicator(si);
  auto job = h.job(si);
  EXPECT_THROW(r->backfill(job), InvalidInput);
  EXPECT_EQ(h.rows(*r).size(), 10U);
  EXPECT_EQ(upserts.load(), 2) << "a batch was written after the failed one";
  const auto saved = h.replica->load_checkpoints(job.id);
  ASSERT_EQ(saved.size(), 1U);
  EXPECT_EQ(saved.begin()->second.next_token, "p2");  // page 2 ended with batch 1 written
}

}  // namespace
}  // namespace webhookdb
