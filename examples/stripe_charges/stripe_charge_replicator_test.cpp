// The Stripe example against Stripe's shapes, into PostgreSQL: Stripe's published charge and event
// (fixtures/) backfilled from a list walked with starting_after, incrementally with created[gte], and
// as webhook events whose `created` decides which write wins; then a whole backfill of the local API
// server's Stripe-shaped charges list over loopback HTTP. Needs WEBHOOKDB_TEST_DATABASE_URL.
#include "stripe_charge_replicator.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include <webhookdb/curl/curl_http_client.hpp>
#include <webhookdb/pg/replica_store.hpp>
#include <webhookdb/testing/test_harness.hpp>

#include "api_server/api_server.hpp"
#include "api_server/shapes.hpp"
#include "support/pg_test_env.hpp"

namespace {

using namespace webhookdb;
using examples::StripeChargeReplicator;
using nlohmann::json;

json fixture(const std::string& name) {
  const std::string path = std::string(STRIPE_FIXTURES_DIR) + "/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read fixture " + path);
  return json::parse(in);
}

// Stripe's published charge ({"id": "ch_1PgafuB7WZ01zgkWXYmPNZs8", "created": 1234567890, ...}).
const json& charge_fixture() {
  static const json charge = fixture("charge.json");
  return charge;
}
// Stripe's published event envelope (created 1234567890) around `charge`, as a `type` event.
json event(const json& charge, const std::string& type, long long created) {
  json e = fixture("event.json");
  e["type"] = type;
  e["created"] = created;
  e["data"]["object"] = charge;
  return e;
}

class StripeCharges : public webhookdb::test::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    published = charge_fixture();
    store = std::make_shared<pg::PgReplicaStore>(config());
    h.registry->add(StripeChargeReplicator::descriptor());
    si = h.integration("stripe_charge_v1");
  }
  std::unique_ptr<Replicator> replicator(const ServiceIntegration& integration,
                                         std::shared_ptr<HttpClient> http = nullptr) {
    ReplicatorContext ctx = h.context();
    ctx.replica = store;
    if (http) ctx.http = std::move(http);
    auto r = h.registry->make(integration, ctx);
    r->create_table();
    return r;
  }
  Row row(const Replicator& r, const std::string& id) {
    auto found = store->find(r.table_spec(), id);
    if (!found) throw std::runtime_error("no row " + id);
    return *found;
  }

  webhookdb::testing::TestHarness h;
  std::shared_ptr<pg::PgReplicaStore> store;
  ServiceIntegration si;
  json published;
};

TEST_F(StripeCharges, BackfillWalksTheListWithStartingAfterAndTakesUpdatedFromCreated) {
  json older = published;  // a second charge: the fixture, older and with another id and amount
  older["id"] = "ch_older";
  older["created"] = 1234560000;
  older["amount"] = 250;
  const std::string first_id = published["id"];
  h.http->on("starting_after=" + first_id)
      .respond_json({{"object", "list"}, {"data", {older}}, {"has_more", false}, {"url", "/v1/charges"}});
  h.http->on("/v1/charges")
      .respond_json({{"object", "list"}, {"data", {published}}, {"has_more", true}, {"url", "/v1/charges"}});
  auto r = replicator(si);
  auto job = h.job(si);
  r->backfill(job);

  EXPECT_EQ(store->count(r->table_spec()), 2U);
  const TableSpec& spec = r->table_spec();
  const Row charge = row(*r, first_id);
  EXPECT_EQ(charge.value(spec, "amount"), 100);
  EXPECT_EQ(charge.value(spec, "currency"), "usd");
  EXPECT_TRUE(charge.value(spec, "customer").is_null());
  EXPECT_EQ(charge.value(spec, "status"), "succeeded");
  EXPECT_EQ(charge.value(spec, "created"), "2009-02-13T23:31:30Z");
  EXPECT_EQ(charge.value(spec, "updated"), "2009-02-13T23:31:30Z");  // a charge has no `updated`
  EXPECT_EQ(charge.data, published);
  EXPECT_EQ(row(*r, "ch_older").value(spec, "updated"), "2009-02-13T21:20:00Z");

  const auto& requests = h.http->requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(pagination::query_param(requests[0].url, "limit"), "100");
  EXPECT_FALSE(pagination::query_param(requests[0].url, "created[gte]")) << "a full backfill: " << requests[0].url;
  EXPECT_EQ(pagination::query_param(requests[1].url, "starting_after"), first_id);
  EXPECT_EQ(find_header(requests[0].headers, "Authorization"), "Bearer bfkey");
}

TEST_F(StripeCharges, IncrementalBackfillAsksForChargesCreatedSinceTheLastRun) {
  h.http->on("/v1/charges")
      .respond_json({{"object", "list"}, {"data", json::array()}, {"has_more", false}, {"url", "/v1/charges"}})
      .repeat();
  auto r = replicator(si);
  auto first = h.job(si, /*incremental=*/true);
  r->backfill(first);
  EXPECT_FALSE(pagination::query_param(h.http->requests()[0].url, "created[gte]"));

  auto second_si = *h.jobs->find_integration(si.id);
  auto r2 = replicator(second_si);
  auto second = h.job(second_si, true);
  r2->backfill(second);
  const std::string url = h.http->requests()[1].url;
  // The mark less the default incremental_lookback, whole seconds (webhookdb/backfill_options.hpp).
  EXPECT_EQ(pagination::query_param(url, "created[gte]"),
            std::to_string(unix_seconds(*incremental_since(second_si.last_backfilled_at, BackfillOptions{}))));
  EXPECT_EQ(url.find("updated"), std::string::npos) << "Stripe has no updated filter: " << url;
}

TEST_F(StripeCharges, WebhookEventsUseTheEventsCreatedSoALateOlderEventNeverWins) {
  auto r = replicator(si);
  const TableSpec& spec = r->table_spec();
  const std::string id = published["id"];
  // Sent as Stripe sends it: the raw body, parsed by the replicator.
  WebhookRequest succeeded;
  succeeded.body = event(published, "charge.succeeded", 1234567890).dump();
  EXPECT_EQ(r->upsert_webhook(succeeded).changed_count(), 1U);
  EXPECT_EQ(row(*r, id).value(spec, "updated"), "2009-02-13T23:31:30Z");

  json refunded_charge = published;
  refunded_charge["refunded"] = true;
  refunded_charge["amount_refunded"] = 100;
  EXPECT_EQ(r->upsert_webhook_body(event(refunded_charge, "charge.refunded", 1234571490)).changed_count(), 1U);
  Row now = row(*r, id);
  EXPECT_EQ(now.value(spec, "updated"), "2009-02-14T00:31:30Z");  // the event's time
  EXPECT_EQ(now.value(spec, "created"), "2009-02-13T23:31:30Z");  // the charge's
  EXPECT_EQ(now.data["refunded"], true);

  // charge.succeeded delivered again, late: older than what is stored.
  EXPECT_EQ(r->upsert_webhook(succeeded).changed_count(), 0U);
  EXPECT_EQ(row(*r, id).data["refunded"], true);
  EXPECT_EQ(store->count(spec), 1U);
}

TEST_F(StripeCharges, BackfillsTheLocalStripeShapedApiOverLoopback) {
  tools::ApiServer server({.objects = 250, .seed = 3});
  server.start();
  si = h.integration("stripe_charge_v1", [&](ServiceIntegration& s) { s.api_url = server.url("/stripe"); });
  auto http = curl::make_curl_client();
  auto r = replicator(si, http);
  auto job = h.job(si, true);
  r->backfill(job);

  const TableSpec& spec = r->table_spec();
  ASSERT_EQ(store->count(spec), 250U);
  EXPECT_EQ(server.stats().pages, 3U);  // 100 + 100 + 50, newest first, by starting_after
  const tools::Dataset& source = server.dataset();
  for (const std::size_t i : {0UL, 99UL, 100UL, 249UL}) {
    const Row charge = row(*r, source.id(i));
    EXPECT_EQ(charge.data, tools::shapes::stripe_charge(source, i));
    EXPECT_FALSE(charge.data.contains("updated"));
    EXPECT_EQ(charge.value(spec, "updated"), tools::shapes::iso8601(source.created(i)));
  }

  // Incremental: only the charges created since the last run (created[gte]), here the newest 30.
  auto next = *h.jobs->find_integration(si.id);
  next.last_backfilled_at = Timestamp{std::chrono::seconds{source.created(220)}};
  server.reset_stats();
  auto r2 = replicator(next, http);
  auto second = h.job(next, true);
  r2->backfill(second);
  EXPECT_EQ(server.stats().items, 30U);
  EXPECT_EQ(server.stats().pages, 1U);
}

TEST_F(StripeCharges, ServerErrorsAreRetriedPolitelyThenBecomeRetryOrDie) {
  h.http->on("/v1/charges").respond(503, "busy", {{"Retry-After", "7"}}).repeat();
  auto r = replicator(si);
  auto job = h.job(si);
  EXPECT_THROW(r->backfill(job), RetryOrDie);
  ASSERT_FALSE(h.sleeper->waits().empty());
  EXPECT_EQ(h.sleeper->waits()[0], std::chrono::seconds(7));  // Retry-After honoured
}

}  // namespace
