// Event-wrapped, bare and array payloads through Replicator::upsert_webhook,
// and the dependents' `changed` flag, on the memory store.

#include <gtest/gtest.h>

#include "webhook_test_env.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/webhooks/event_payload.hpp"

namespace webhookdb::webhooks {
namespace {

using nlohmann::json;
using namespace test;

TEST(UnwrapEvent, StripeStyleEvent) {
  const json event = charge_event(charge("ch_1", 3));
  auto [resource, ev] = unwrap_event(event);
  EXPECT_EQ(resource, charge("ch_1", 3));
  EXPECT_EQ(ev, event);
}

TEST(UnwrapEvent, BareResourceAndArrayPassThrough) {
  const json bare = charge("ch_1", 1);
  auto [r1, e1] = unwrap_event(bare);
  EXPECT_EQ(r1, bare);
  EXPECT_TRUE(e1.is_null());
  const json array = json::array({charge("a", 1), charge("b", 1)});
  auto [r2, e2] = unwrap_event(array);
  EXPECT_EQ(r2, array);
  EXPECT_TRUE(e2.is_null());
}

TEST(UnwrapEvent, DataWithoutAnObjectIsTreatedAsBare) {
  const json odd{{"type", "x"}, {"data", {{"object", "not an object"}}}};
  auto [resource, ev] = unwrap_event(odd);
  EXPECT_EQ(resource, odd);
  EXPECT_TRUE(ev.is_null());
}

TEST(UnwrapEvent, CustomPath) {
  const json body{{"event", "updated"}, {"payload", {{"id", "x"}}}};
  auto [resource, ev] = unwrap_event(body, {"payload"});
  EXPECT_EQ(resource, json({{"id", "x"}}));
  EXPECT_EQ(ev, body);
}

TEST(ParseWebhookBody, ParsesOrReportsWithoutEchoingTheBody) {
  WebhookRequest r;
  r.body = R"({"id":"x"})";
  EXPECT_EQ(parse_webhook_body(r), json({{"id", "x"}}));
  r.body = "{\"secret_looking\": tru";
  try {
    (void)parse_webhook_body(r, "test_charge_v1");
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& e) {
    EXPECT_EQ(std::string(e.what()).find("secret_looking"), std::string::npos);
    EXPECT_EQ(e.where(), "test_charge_v1");
  }
  r.body = "{\"id\":\"\xff\xfe\"}";
  EXPECT_THROW((void)parse_webhook_body(r), InvalidInput);
  // Already parsed: used as is.
  r.json = json{{"id", "pre"}};
  EXPECT_EQ(parse_webhook_body(r), json({{"id", "pre"}}));
}

class UpsertPayloads : public ::testing::Test {
 protected:
  Env env{std::make_shared<memory::MemoryReplicaStore>(), std::make_shared<memory::MemoryJobStore>()};
};

TEST_F(UpsertPayloads, EventWrappedResource) {
  auto r = env.make(env.charges);
  auto rows = r->upsert_webhook(env.signed_request(charge_event(charge("ch_1", 2, 500)).dump())).rows;
  ASSERT_EQ(rows.size(), 1U);
  auto stored = env.find("ch_1");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->values[0], 2);
  EXPECT_EQ(stored->values[1], 500);
  // The stored data is the resource, not the event envelope.
  EXPECT_EQ(stored->data, charge("ch_1", 2, 500));
}

TEST_F(UpsertPayloads, BareResource) {
  auto r = env.make(env.charges);
  r->upsert_webhook(env.signed_request(charge("ch_2", 1).dump()));
  auto stored = env.find("ch_2");
  ASSERT_TRUE(stored);
  EXPECT_TRUE(stored->values[1].is_null());
}

TEST_F(UpsertPayloads, ArrayOfResources) {
  auto r = env.make(env.charges);
  const json body = json::array({charge("a", 1), charge("b", 1), charge("c", 1)});
  auto rows = r->upsert_webhook(env.signed_request(body.dump())).rows;
  EXPECT_EQ(rows.size(), 3U);
  EXPECT_EQ(env.count(), 3U);
}

TEST_F(UpsertPayloads, MissingRemoteKeyIsInvalidInput) {
  auto r = env.make(env.charges);
  EXPECT_THROW(r->upsert_webhook(env.signed_request(json{{"version", 1}}.dump())), InvalidInput);
  EXPECT_EQ(env.count(), 0U);
}

TEST_F(UpsertPayloads, OlderVersionDoesNotOverwrite) {
  auto r = env.make(env.charges);
  r->upsert_webhook(env.signed_request(charge_event(charge("ch_1", 5, 1)).dump()));
  r->upsert_webhook(env.signed_request(charge_event(charge("ch_1", 4, 2)).dump()));
  EXPECT_EQ(env.find("ch_1")->values[0], 5);
  r->upsert_webhook(env.signed_request(charge_event(charge("ch_1", 6, 3)).dump()));
  EXPECT_EQ(env.find("ch_1")->values[0], 6);
}

// --- Dependents (core's notify_dependents, fed by the store's changed flags) ---

TEST_F(UpsertPayloads, DependentsSeeChangedForNewAndNewerRowsOnly) {
  const auto refunds = env.add_refunds(env.charges);
  (void)refunds;
  auto r = env.make(env.charges);
  r->upsert_webhook(env.signed_request(charge_event(charge("ch_1", 2)).dump()));  // new row
  r->upsert_webhook(env.signed_request(charge_event(charge("ch_1", 3)).dump()));  // newer
  r->upsert_webhook(env.signed_request(charge_event(charge("ch_1", 1)).dump()));  // older: not written
  r->upsert_webhook(env.signed_request(charge_event(charge("ch_1", 3)).dump()));  // same: not written
  const auto calls = env.recorder->calls();
  ASSERT_EQ(calls.size(), 4U);
  EXPECT_TRUE(calls[0].changed);
  EXPECT_EQ(calls[0].version, 2);
  EXPECT_TRUE(calls[1].changed);
  EXPECT_EQ(calls[1].version, 3);
  EXPECT_FALSE(calls[2].changed);
  EXPECT_EQ(calls[2].version, 1);
  EXPECT_FALSE(calls[3].changed);
  for (const auto& c : calls) {
    EXPECT_EQ(c.dependency, env.charges.opaque_id);
    EXPECT_EQ(c.key, "ch_1");
  }
  EXPECT_EQ(env.find("ch_1")->values[0], 3);
}

TEST_F(UpsertPayloads, DependentsOfAnArrayGetOneFlagPerRow) {
  env.add_refunds(env.charges);
  auto r = env.make(env.charges);
  r->upsert_webhook(env.signed_request(charge("a", 5).dump()));
  env.recorder->clear();
  r->upsert_webhook(env.signed_request(json::array({charge("a", 4), charge("b", 1)}).dump()));
  const auto calls = env.recorder->calls();
  ASSERT_EQ(calls.size(), 2U);
  EXPECT_EQ(calls[0].key, "a");
  EXPECT_FALSE(calls[0].changed);
  EXPECT_EQ(calls[1].key, "b");
  EXPECT_TRUE(calls[1].changed);
}

TEST_F(UpsertPayloads, NoDependentsNoNotifications) {
  auto r = env.make(env.charges);
  r->upsert_webhook(env.signed_request(charge("a", 1).dump()));
  EXPECT_TRUE(env.recorder->calls().empty());
}

}  // namespace
}  // namespace webhookdb::webhooks
