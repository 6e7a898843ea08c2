// Replicator: table spec, payload -> row, webhook upserts, dependents,
// verification and credential checks.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb {
namespace {

using namespace webhookdb::testing;
using ::testing::HasSubstr;

// Its webhooks carry an array of resources plus an event, which is invalid.
class ArrayWithEventFake final : public FakeReplicator {
 public:
  using FakeReplicator::FakeReplicator;

 protected:
  std::pair<nlohmann::json, nlohmann::json> resource_and_event(const WebhookRequest& request) const override {
    return {request.json["items"], request.json["event"]};
  }
};

class ReplicatorTest : public ::testing::Test {
 protected:
  TestHarness h;
  ServiceIntegration si = h.integration();
  std::unique_ptr<Replicator> r = h.replicator(si);
};

TEST_F(ReplicatorTest, TheFakesTableSpec) {
  const auto& spec = r->table_spec();
  EXPECT_EQ(spec.table, si.table_name);
  EXPECT_EQ(spec.remote_key.name, "my_id");
  EXPECT_EQ(spec.remote_key.type, ColumnType::text);
  ASSERT_EQ(spec.columns.size(), 1U);
  EXPECT_EQ(spec.columns[0].name, "at");
  EXPECT_EQ(spec.columns[0].type, ColumnType::timestamptz);
  EXPECT_EQ(spec.update_rule.kind, UpdateRule::Kind::newer);
  const auto indexes = spec.indexes();
  ASSERT_EQ(indexes.size(), 1U);
  EXPECT_EQ(indexes[0].name, si.opaque_id + "_at_idx");
}

TEST_F(ReplicatorTest, UpsertWebhookBodyWritesAndReturnsTheRow) {
  auto rows = r->upsert_webhook_body(fake_item("x", "2024-01-01T01:00:00+01:00"));
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].key, "x");
  EXPECT_EQ(rows[0].values[0], "2024-01-01T00:00:00Z") << "converted to UTC";
  const auto stored = h.replica->find(r->table_spec(), "x");
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, rows[0]);
}

TEST_F(ReplicatorTest, UpsertFalseOnlyReturnsTheRow) {
  auto rows = r->upsert_webhook_body(fake_item("x", "2024-01-01T00:00:00Z"), /*upsert=*/false);
  EXPECT_EQ(rows.size(), 1U);
  EXPECT_EQ(h.replica->count(r->table_spec()), 0U);
}

TEST_F(ReplicatorTest, NewerWebhooksWinOlderOnesDoNot) {
  r->upsert_webhook_body(fake_item("x", "2024-01-02T00:00:00Z", {{"v", 2}}));
  r->upsert_webhook_body(fake_item("x", "2024-01-01T00:00:00Z", {{"v", 1}}));
  EXPECT_EQ(h.replica->find(r->table_spec(), "x")->data["v"], 2);
  r->upsert_webhook_body(fake_item("x", "2024-01-03T00:00:00Z", {{"v", 3}}));
  EXPECT_EQ(h.replica->find(r->table_spec(), "x")->data["v"], 3);
}

TEST_F(ReplicatorTest, AMissingRequiredKeyIsInvalidInputNamingTheColumn) {
  try {
    r->upsert_webhook_body({{"my_id", "x"}});
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("at"));
  }
  EXPECT_THROW(r->upsert_webhook_body({{"at", "2024-01-01T00:00:00Z"}}), InvalidInput);
}

TEST_F(ReplicatorTest, AnArrayOfResourcesWithAnEventIsInvalidPostcondition) {
  ArrayWithEventFake fake(fake_v1(h.fake), si, h.context(), h.fake);
  WebhookRequest request = WebhookRequest::from_json(
      {{"items", {fake_item("a", "2024-01-01T00:00:00Z")}}, {"event", {{"type", "updated"}}}});
  EXPECT_THROW(fake.upsert_webhook(request), InvalidPostcondition);

  WebhookRequest ok = WebhookRequest::from_json(
      {{"items", {fake_item("a", "2024-01-01T00:00:00Z"), fake_item("b", "2024-01-01T00:00:00Z")}},
       {"event", nullptr}});
  EXPECT_EQ(fake.upsert_webhook(ok).size(), 2U);
  EXPECT_EQ(h.replica->count(r->table_spec()), 2U);
}

TEST_F(ReplicatorTest, AnUnparsedBodyIsParsed) {
  WebhookRequest request;
  request.body = fake_item("p", "2024-01-01T00:00:00Z").dump();
  EXPECT_EQ(r->upsert_webhook(request).size(), 1U);
  WebhookRequest broken;
  broken.body = "{not json";
  EXPECT_THROW(r->upsert_webhook(broken), InvalidInput);
}

TEST_F(ReplicatorTest, DependentsAreNotifiedOfUpserts) {
  auto dependent = h.integration("fake_dependent_v1", [&](ServiceIntegration& s) { s.depends_on = si.id; });
  (void)dependent;
  r->upsert_webhook_body(fake_item("x", "2024-01-02T00:00:00Z"));
  r->upsert_webhook_body(fake_item("x", "2024-01-01T00:00:00Z"));
  const auto calls = h.fake->dependency_upserts();
  ASSERT_EQ(calls.size(), 2U);
  EXPECT_EQ(calls[0].dependent_service, "fake_dependent_v1");
  EXPECT_EQ(calls[0].dependency_service, "fake_v1");
  EXPECT_EQ(calls[0].key, "x");
  EXPECT_TRUE(calls[0].changed);
  EXPECT_FALSE(calls[1].changed) << "the older webhook changed nothing";
}

TEST_F(ReplicatorTest, WebhookResponseSkipsVerificationWhenConfigured) {
  h.fake->verify_webhook = [](const WebhookRequest&) { return WebhookResponse::error(401, "bad signature"); };
  WebhookRequest request = WebhookRequest::from_json(fake_item("x", "2024-01-01T00:00:00Z"));
  EXPECT_EQ(r->webhook_response(request).status, 401);
  auto trusting = h.integration("fake_v1", [](ServiceIntegration& s) { s.skip_webhook_verification = true; });
  EXPECT_EQ(h.replicator(trusting)->webhook_response(request).status, 201);
}

TEST_F(ReplicatorTest, VerifyBackfillCredentials) {
  h.http->respond(401, "bad key");
  auto failed = r->verify_backfill_credentials();
  EXPECT_FALSE(failed.verified);
  EXPECT_EQ(failed.status, 401);

  h.http->respond_json({{"unexpected", "shape"}});
  EXPECT_TRUE(r->verify_backfill_credentials().verified) << "a shape problem still proves the credentials";

  h.http->respond_json(fake_page({}));
  auto ok = r->verify_backfill_credentials();
  EXPECT_TRUE(ok.verified);
  EXPECT_EQ(ok.status, 0);
}

TEST_F(ReplicatorTest, EnsureAllColumnsOnAnExistingTable) {
  r->upsert_webhook_body(fake_item("x", "2024-01-01T00:00:00Z"));
  EXPECT_NO_THROW(r->ensure_all_columns());
  EXPECT_EQ(h.replica->count(r->table_spec()), 1U);
}

TEST_F(ReplicatorTest, WithoutAReplicaStoreWritingIsInvalidPrecondition) {
  auto ctx = h.context();
  ctx.replica = nullptr;
  FakeReplicator bare(fake_v1(h.fake), si, ctx, h.fake);
  EXPECT_THROW(bare.create_table(), InvalidPrecondition);
}

}  // namespace
}  // namespace webhookdb
