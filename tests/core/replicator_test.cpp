// Replicator: table spec, payload -> row, webhook upserts, dependents,
// verification and credential checks.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <span>
#include <type_traits>

#include "support.hpp"
#include "webhookdb/internal/replicator_gate.hpp"
#include "webhookdb/oauth2.hpp"
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

// The public surface is what a host calls: hooks and write steps are out of reach.
template <class R>
concept HookIsPublic = requires(R& r) {
  r.fetch_backfill_page("", std::nullopt, CancellationToken{});
};
template <class R>
concept WriteStepIsPublic = requires(R& r, std::span<const Row> rows) {
  r.check_rows(rows);
};
template <class R>
concept PayloadHookIsPublic = requires(const R& r, const Payload& p) {
  r.prepare_for_insert(p);
};
template <class R>
concept OptionsArePublic = requires(const R& r) {
  r.backfill_options();
};
static_assert(!HookIsPublic<Replicator> && !WriteStepIsPublic<Replicator> &&
              !PayloadHookIsPublic<Replicator> && !OptionsArePublic<Replicator>);
// The concepts can hold: the fake makes its fetch public for its tests.
static_assert(HookIsPublic<FakeReplicator>);
// Only the backfillers named in it may open the gate.
static_assert(!std::is_constructible_v<internal::ReplicatorGate, Replicator&>);

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
  const UpsertedRows written = r->upsert_webhook_body(fake_item("x", "2024-01-01T01:00:00+01:00"));
  const std::vector<Row>& rows = written.rows;
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_THAT(written.changed, ::testing::ElementsAre(true));
  EXPECT_EQ(rows[0].key, "x");
  EXPECT_EQ(rows[0].values[0], "2024-01-01T00:00:00Z") << "converted to UTC";
  const auto stored = h.replica->find(r->table_spec(), "x");
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, rows[0]);
}

TEST_F(ReplicatorTest, RowsForWebhookOnlyReturnsTheRow) {
  auto rows = r->rows_for_webhook_body(fake_item("x", "2024-01-01T00:00:00Z"));
  EXPECT_EQ(rows.size(), 1U);
  EXPECT_EQ(h.replica->count(r->table_spec()), 0U);
  // Checked as a write would check them: invalid UTF-8 is refused here.
  EXPECT_THROW((void)r->rows_for_webhook_body(fake_item("y", "2024-01-01T00:00:00Z", {{"v", "\xff"}})),
               InvalidInput);
  // write_webhook_rows writes them later (what a receiver does after its 2xx).
  const UpsertedRows written = r->write_webhook_rows(std::move(rows));
  EXPECT_THAT(written.changed, ::testing::ElementsAre(true));
  EXPECT_EQ(h.replica->count(r->table_spec()), 1U);
}

TEST_F(ReplicatorTest, ARowsValuesAreReadByColumnName) {
  const Row row = r->upsert_webhook_body(fake_item("x", "2024-01-01T01:00:00+01:00", {{"v", 1}})).rows.at(0);
  const TableSpec& spec = r->table_spec();
  EXPECT_EQ(row.value(spec, "at"), "2024-01-01T00:00:00Z");
  EXPECT_EQ(row.value(spec, "my_id"), "x");
  EXPECT_EQ(row.value(spec, "data")["v"], 1);
  try {
    (void)row.value(spec, "amount");
    FAIL() << "expected InvalidPrecondition";
  } catch (const InvalidPrecondition& e) {
    EXPECT_THAT(e.what(), HasSubstr("no column 'amount'"));
  }
  EXPECT_THROW((void)row.value(spec, "enrichment"), InvalidPrecondition) << "the fake's table has none";
}

TEST_F(ReplicatorTest, NewerWebhooksWinOlderOnesDoNot) {
  r->upsert_webhook_body(fake_item("x", "2024-01-02T00:00:00Z", {{"v", 2}}));
  r->upsert_webhook_body(fake_item("x", "2024-01-01T00:00:00Z", {{"v", 1}}));
  EXPECT_EQ(h.replica->find(r->table_spec(), "x")->data["v"], 2);
  r->upsert_webhook_body(fake_item("x", "2024-01-03T00:00:00Z", {{"v", 3}}));
  EXPECT_EQ(h.replica->find(r->table_spec(), "x")->data["v"], 3);
}

// An older webhook the update rule refuses is returned, but not as written.
TEST_F(ReplicatorTest, UpsertWebhookSaysWhichRowsChanged) {
  EXPECT_THAT(r->upsert_webhook_body(fake_item("x", "2024-01-02T00:00:00Z")).changed,
              ::testing::ElementsAre(true));
  const UpsertedRows older = r->upsert_webhook_body(fake_item("x", "2024-01-01T00:00:00Z"));
  ASSERT_EQ(older.rows.size(), 1U);
  EXPECT_THAT(older.changed, ::testing::ElementsAre(false));
  EXPECT_EQ(older.changed_count(), 0U);
  const UpsertedRows both = r->upsert_webhook(WebhookRequest::from_json(nlohmann::json::array(
      {fake_item("x", "2024-01-03T00:00:00Z"), fake_item("y", "2024-01-01T00:00:00Z")})));
  EXPECT_THAT(both.changed, ::testing::ElementsAre(true, true));
  EXPECT_THAT(r->upsert_webhook_body(fake_item("y", "2024-01-01T00:00:00Z")).changed,
              ::testing::ElementsAre(false))
      << "the same version again changes nothing";
}

// --- BackfillOptions: returned once, validated once ---

TEST_F(ReplicatorTest, NonsenseBackfillOptionsAreABrokenSpecificationNamingTheField) {
  const auto refused = [&](const std::function<void(BackfillOptions&)>& set, const std::string& field) {
    h.fake->backfill_options = {};
    set(h.fake->backfill_options);
    auto fresh = h.replicator(si);
    auto job = h.job(si);
    try {
      fresh->backfill(job);
      ADD_FAILURE() << field << ": expected BrokenSpecification";
    } catch (const BrokenSpecification& e) {
      EXPECT_THAT(e.what(), HasSubstr(field));
    }
    EXPECT_FALSE(job.started_at) << field << ": refused before the job started";
    EXPECT_TRUE(h.http->urls().empty()) << field << ": no page fetched";
  };
  refused([](BackfillOptions& o) { o.batch_size = 0; }, "batch_size");
  refused([](BackfillOptions& o) { o.parallel = -1; }, "parallel");
  refused([](BackfillOptions& o) { o.server_error_retries = -1; }, "server_error_retries");
  refused([](BackfillOptions& o) { o.server_error_backoff = std::chrono::seconds(-1); },
          "server_error_backoff");
  refused([](BackfillOptions& o) { o.limits.max_pages = 0; }, "limits.max_pages");
  refused([](BackfillOptions& o) { o.limits.max_consecutive_empty_pages = 0; },
          "max_consecutive_empty_pages");
}

TEST_F(ReplicatorTest, BackfillOptionsAreReadOnce) {
  h.fake->backfill_options.batch_size = 1;
  auto fresh = h.replicator(si);
  h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z")}));
  auto job = h.job(si);
  fresh->backfill(job);
  h.fake->backfill_options.batch_size = 0;  // too late: the first run cached them
  h.http->respond_json(fake_page({fake_item("b", "2024-01-01T00:00:00Z")}));
  auto again = h.job(si);
  EXPECT_NO_THROW(fresh->backfill(again));
  EXPECT_EQ(h.rows(*fresh).size(), 2U);
}

TEST_F(ReplicatorTest, BackfillOptionsLimitsReachTheDefaultBackfillers) {
  h.fake->backfill_options.limits.max_consecutive_empty_pages = 2;
  auto fresh = h.replicator(si);
  for (int i = 0; i < 5; ++i) h.http->respond_json(fake_page({}, "t" + std::to_string(i)));
  auto job = h.job(si);
  try {
    fresh->backfill(job);
    FAIL() << "expected InvariantViolation";
  } catch (const InvariantViolation& e) {
    EXPECT_THAT(e.what(), HasSubstr("2 consecutive empty pages"));
  }
  EXPECT_EQ(h.http->urls().size(), 2U);
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
  EXPECT_EQ(fake.upsert_webhook(ok).rows.size(), 2U);
  EXPECT_EQ(h.replica->count(r->table_spec()), 2U);
}

TEST_F(ReplicatorTest, AnUnparsedBodyIsParsed) {
  WebhookRequest request;
  request.body = fake_item("p", "2024-01-01T00:00:00Z").dump();
  EXPECT_EQ(r->upsert_webhook(request).rows.size(), 1U);
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

  // A credential that could not be had at all is not verified, whatever its kind.
  h.http->fail(std::make_exception_ptr(oauth2::ReauthorizationRequired(7, "invalid_grant")));
  auto refused = r->verify_backfill_credentials();
  EXPECT_FALSE(refused.verified) << "a grant refused for good was reported verified";
  EXPECT_NE(refused.message.find("invalid_grant"), std::string::npos) << refused.message;
  h.http->fail(std::make_exception_ptr(oauth2::TokenEndpointError("the token endpoint answered 400")));
  EXPECT_FALSE(r->verify_backfill_credentials().verified);
  h.http->fail(std::make_exception_ptr(CredentialsMissing("no key")));
  EXPECT_FALSE(r->verify_backfill_credentials().verified);

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
