// The fake replicators and the test harness, as a user's test would use them.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(FakeReplicator, FetchesPagesWithTheTokenInTheQuery) {
  TestHarness h;
  auto si = h.integration();
  auto r = h.fake_replicator(si);
  h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z")}, "next token/1"));
  const auto page = r->fetch_backfill_page("a b&c", std::nullopt, CancellationToken{});
  EXPECT_THAT(h.http->urls(), ElementsAre("https://api.example.test/fake_v1?token=a%20b%26c"));
  EXPECT_EQ(page.next, "next token/1");
  ASSERT_EQ(page.items.size(), 1U);
  EXPECT_GT(page.bytes, 0U);
}

TEST(FakeReplicator, AMissingItemsKeyIsANullPage) {
  TestHarness h;
  auto r = h.fake_replicator(h.integration());
  h.http->respond_json({{"data", nlohmann::json::array()}});
  EXPECT_TRUE(r->fetch_backfill_page("", std::nullopt, CancellationToken{}).items.is_null());
  h.http->respond(200, "<html>");
  EXPECT_THROW(r->fetch_backfill_page("", std::nullopt, CancellationToken{}), InvalidInput);
  h.http->respond_json({{"items", nlohmann::json::array()}, {"next", nullptr}});
  EXPECT_EQ(r->fetch_backfill_page("", std::nullopt, CancellationToken{}).next, "");
}

TEST(FakeReplicator, AnApiUrlWithAQueryGetsAnAmpersand) {
  TestHarness h;
  auto si = h.integration("fake_v1", [](ServiceIntegration& s) { s.api_url = "https://api.example.test/x?v=2"; });
  auto r = h.fake_replicator(si);
  h.http->respond_json(fake_page({}));
  (void)r->fetch_backfill_page("t", std::nullopt, CancellationToken{});
  EXPECT_THAT(h.http->urls(), ElementsAre("https://api.example.test/x?v=2&token=t"));
}

TEST(FakeReplicator, KnobsReachTheReplicator) {
  TestHarness h;
  auto r = h.fake_replicator(h.integration());
  EXPECT_EQ(r->backfill_options().server_error_retries, 2);
  EXPECT_EQ(r->backfill_options().server_error_backoff, std::chrono::seconds(63));
  h.fake->backfill_options.server_error_retries = 9;
  h.fake->backfill_options.server_error_backoff = std::chrono::seconds(1);
  h.fake->backfill_options.batch_size = 7;
  h.fake->backfill_options.pipelined = false;
  const BackfillOptions options = r->backfill_options();
  EXPECT_EQ(options.server_error_retries, 9);
  EXPECT_EQ(options.server_error_backoff, std::chrono::seconds(1));
  EXPECT_EQ(options.batch_size, 7U);
  EXPECT_FALSE(options.pipelined);
  EXPECT_EQ(options.retry_policy, nullptr);
}

TEST(FakeReplicator, OlderWebhooksDoNotOverwriteNewerRows) {
  TestHarness h;
  auto r = h.replicator(h.integration());
  r->upsert_webhook_body(fake_item("a", "2024-02-01T00:00:00Z", {{"v", "new"}}));
  r->upsert_webhook_body(fake_item("a", "2024-01-01T00:00:00Z", {{"v", "old"}}));
  const auto rows = h.rows(*r);
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].data["v"], "new");
}

TEST(TestHarness, AUsersBackfillTestInAFewLines) {
  TestHarness h;
  auto si = h.integration();
  h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z")}, "2"));
  h.http->respond_json(fake_page({fake_item("b", "2024-01-02T00:00:00Z")}));
  auto r = h.replicator(si);
  auto job = h.job(si);
  r->backfill(job);
  EXPECT_EQ(h.rows(*r).size(), 2U);
  EXPECT_TRUE(h.jobs->find_job(job.id)->finished_at);
  EXPECT_EQ(h.jobs->find_integration(si.id)->opaque_id, si.opaque_id);
  EXPECT_THAT(si.table_name, HasSubstr("fake_v1_"));
  EXPECT_EQ(h.context().clock, h.clock);
}

}  // namespace
}  // namespace webhookdb::testing
