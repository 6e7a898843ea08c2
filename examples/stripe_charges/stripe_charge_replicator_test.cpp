// How a user tests a replicator: webhookdb::testing's harness, a mock API, no network.
#include "stripe_charge_replicator.hpp"

#include <gtest/gtest.h>

#include <webhookdb/testing/test_harness.hpp>

namespace {

using namespace webhookdb;
using examples::StripeChargeReplicator;
using nlohmann::json;

json charge(const std::string& id, long long updated, long long amount = 100) {
  return {{"id", id}, {"object", "charge"}, {"amount", amount}, {"currency", "usd"}, {"customer", "cus_1"},
          {"status", "succeeded"}, {"created", 1700000000}, {"updated", updated}};
}

class StripeChargeTest : public ::testing::Test {
 protected:
  StripeChargeTest() {
    h.registry->add(StripeChargeReplicator::descriptor());
    si = h.integration("stripe_charge_v1");
  }
  webhookdb::testing::TestHarness h;
  ServiceIntegration si;
};

TEST_F(StripeChargeTest, BackfillFollowsStartingAfterAndWritesColumns) {
  h.http->on("starting_after=ch_2").respond_json({{"data", {charge("ch_3", 1700000300)}}, {"has_more", false}});
  h.http->on("/v1/charges").respond_json({{"data", {charge("ch_1", 1700000100), charge("ch_2", 1700000200, 250)}},
                                          {"has_more", true}});
  auto r = h.replicator(si);
  auto job = h.job(si);
  r->backfill(job);

  const auto rows = h.rows(*r);
  ASSERT_EQ(rows.size(), 3U);
  EXPECT_EQ(rows[1].key, "ch_2");
  const TableSpec& spec = r->table_spec();
  EXPECT_EQ(rows[1].value(spec, "amount"), 250);
  EXPECT_EQ(rows[1].value(spec, "updated"), "2023-11-14T22:16:40Z");  // from unix seconds
  ASSERT_EQ(h.http->requests().size(), 2U);
  EXPECT_NE(h.http->requests()[0].url.find("limit=100"), std::string::npos);
  EXPECT_EQ(h.http->requests()[0].headers.at(0).second, "Bearer bfkey");
}

TEST_F(StripeChargeTest, IncrementalBackfillAsksOnlyForUpdatedSinceLastRun) {
  h.http->on("/v1/charges").respond_json({{"data", json::array()}, {"has_more", false}}).repeat();
  auto r = h.replicator(si);
  auto first = h.job(si, /*incremental=*/true);
  r->backfill(first);
  EXPECT_EQ(h.http->requests()[0].url.find("updated_since"), std::string::npos);

  auto second_si = *h.jobs->find_integration(si.id);
  auto r2 = h.replicator(second_si);
  auto second = h.job(second_si, true);
  r2->backfill(second);
  const auto since = std::chrono::duration_cast<std::chrono::seconds>(
      second_si.last_backfilled_at->time_since_epoch()).count();
  EXPECT_NE(h.http->requests()[1].url.find("updated_since=" + std::to_string(since)), std::string::npos);
}

TEST_F(StripeChargeTest, WebhookEventsUpsertAndOlderNeverOverwritesNewer) {
  auto r = h.replicator(si);
  auto event = [](const json& obj) { return json{{"type", "charge.updated"}, {"data", {{"object", obj}}}}; };
  const TableSpec& spec = r->table_spec();
  EXPECT_EQ(r->upsert_webhook_body(event(charge("ch_9", 2000, 500))).changed_count(), 1U);
  EXPECT_EQ(r->upsert_webhook_body(event(charge("ch_9", 1000, 1))).changed_count(), 0U);  // older: ignored
  auto rows = h.rows(*r);
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].value(spec, "amount"), 500);
  EXPECT_EQ(r->upsert_webhook_body(event(charge("ch_9", 3000, 700))).changed_count(), 1U);  // newer: wins
  EXPECT_EQ(h.rows(*r)[0].value(spec, "amount"), 700);
}

TEST_F(StripeChargeTest, ServerErrorsAreRetriedPolitelyThenBecomeRetryOrDie) {
  h.http->on("/v1/charges").respond(503, "busy", {{"Retry-After", "7"}}).repeat();
  auto r = h.replicator(si);
  auto job = h.job(si);
  EXPECT_THROW(r->backfill(job), RetryOrDie);
  ASSERT_FALSE(h.sleeper->waits().empty());
  EXPECT_EQ(h.sleeper->waits()[0], std::chrono::seconds(7));  // Retry-After honoured
}

}  // namespace
