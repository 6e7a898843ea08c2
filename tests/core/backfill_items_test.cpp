// A ported WebhookDB replicator whose resource_and_event unwraps an envelope
// or skips resources behaves the same on backfill items as on webhooks (as
// WebhookDB does: its backfills upsert each item as a webhook body), on the
// batched write path and the per-item one. Before, the batched path made
// rows from the raw items, skipping the override.
#include <gtest/gtest.h>

#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb::test {
namespace {

using nlohmann::json;
using testing::FakeControl;
using testing::FakeReplicator;
using testing::TestHarness;

// Items and webhooks may come as {"object": {...}}; "internal": true ones are skipped.
class UnwrappingFake : public FakeReplicator {
 public:
  using FakeReplicator::FakeReplicator;

 protected:
  std::pair<json, json> resource_and_event(const WebhookRequest& request) const override {
    auto body = Replicator::resource_and_event(request).first;
    if (body.value("internal", false)) return {nullptr, nullptr};
    if (body.contains("object")) {
      auto inner = body["object"];
      return {std::move(inner), std::move(body)};
    }
    return {std::move(body), nullptr};
  }
};

class BackfillItems : public ::testing::TestWithParam<BackfillWriteMode> {
 protected:
  void SetUp() override {
    control->backfill_options.write_mode = GetParam();
    Descriptor d = testing::fake_v1();
    d.name = "unwrapping_fake_v1";
    auto c = control;
    d.factory = [c](const Descriptor& desc, const ServiceIntegration& si, const ReplicatorContext& ctx) {
      return std::unique_ptr<Replicator>(std::make_unique<UnwrappingFake>(desc, si, ctx, c));
    };
    h.registry->add(d);
  }

  std::shared_ptr<FakeControl> control = std::make_shared<FakeControl>();
  TestHarness h;
};

const json kItems = json::array({
    {{"object", {{"my_id", "wrapped"}, {"at", "2024-01-01T00:00:00Z"}}}, {"type", "thing.updated"}},
    {{"my_id", "bare"}, {"at", "2024-01-01T00:00:00Z"}},
    {{"my_id", "secret"}, {"at", "2024-01-01T00:00:00Z"}, {"internal", true}},
});

TEST_P(BackfillItems, GoThroughResourceAndEventLikeWebhooks) {
  const auto by_backfill = h.integration("unwrapping_fake_v1");
  h.http->respond_json({{"items", kItems}, {"next", nullptr}});
  auto r = h.replicator(by_backfill);
  auto job = h.job(by_backfill);
  r->backfill(job);

  const auto by_webhook = h.integration("unwrapping_fake_v1");
  auto w = h.replicator(by_webhook);
  for (const auto& item : kItems) (void)w->upsert_webhook_body(item);

  const auto backfilled = h.rows(*r);
  ASSERT_EQ(backfilled.size(), 2U) << "the internal item is skipped, the others kept";
  EXPECT_EQ(backfilled[0].key, "bare");
  EXPECT_EQ(backfilled[1].key, "wrapped");
  EXPECT_EQ(backfilled[1].data, kItems[0]["object"]) << "the envelope is unwrapped";
  const auto hooked = h.rows(*w);
  ASSERT_EQ(hooked.size(), backfilled.size());
  for (std::size_t i = 0; i < hooked.size(); ++i) {
    EXPECT_EQ(hooked[i].key, backfilled[i].key);
    EXPECT_EQ(hooked[i].values, backfilled[i].values);
    EXPECT_EQ(hooked[i].data, backfilled[i].data);
  }
}

TEST_P(BackfillItems, AnArrayForOneItemIsRefusedByName) {
  class Splitting : public FakeReplicator {
   public:
    using FakeReplicator::FakeReplicator;

   protected:
    std::pair<json, json> resource_and_event(const WebhookRequest& request) const override {
      auto body = Replicator::resource_and_event(request).first;
      return {json::array({body, body}), nullptr};
    }
  };
  Descriptor d = testing::fake_v1();
  d.name = "splitting_fake_v1";
  auto c = control;
  d.factory = [c](const Descriptor& desc, const ServiceIntegration& si, const ReplicatorContext& ctx) {
    return std::unique_ptr<Replicator>(std::make_unique<Splitting>(desc, si, ctx, c));
  };
  h.registry->add(d);
  const auto si = h.integration("splitting_fake_v1");
  h.http->respond_json({{"items", json::array({{{"my_id", "a"}, {"at", "2024-01-01T00:00:00Z"}}})}, {"next", nullptr}});
  auto r = h.replicator(si);
  auto job = h.job(si);
  if (GetParam() == BackfillWriteMode::batched) {
    try {
      r->backfill(job);
      FAIL() << "an array for one backfill item was accepted";
    } catch (const InvalidPostcondition& e) {
      EXPECT_NE(std::string(e.what()).find("splitting_fake_v1"), std::string::npos) << e.what();
    }
  } else {
    // The per-item path is upsert_webhook_body: an array of resources is a webhook's right.
    r->backfill(job);
    EXPECT_EQ(h.rows(*r).size(), 1U);
  }
}

// An override written for webhooks alone (it parses the raw body) fails a
// batched backfill with an error that says what to do, not a parser's.
TEST(BackfillItemsBody, AnOverrideParsingTheRawBodyIsToldWhatToRead) {
  class RawBody : public FakeReplicator {
   public:
    using FakeReplicator::FakeReplicator;

   protected:
    std::pair<json, json> resource_and_event(const WebhookRequest& request) const override {
      return {json::parse(request.body), nullptr};
    }
  };
  TestHarness h;
  auto control = std::make_shared<FakeControl>();
  Descriptor d = testing::fake_v1();
  d.name = "raw_body_fake_v1";
  d.factory = [control](const Descriptor& desc, const ServiceIntegration& si, const ReplicatorContext& ctx) {
    return std::unique_ptr<Replicator>(std::make_unique<RawBody>(desc, si, ctx, control));
  };
  h.registry->add(d);
  const auto si = h.integration("raw_body_fake_v1");
  h.http->respond_json({{"items", json::array({{{"my_id", "a"}, {"at", "2024-01-01T00:00:00Z"}}})}, {"next", nullptr}});
  auto r = h.replicator(si);
  auto job = h.job(si);
  try {
    r->backfill(job);
    FAIL() << "the empty body parsed";
  } catch (const InvalidPostcondition& e) {
    EXPECT_NE(std::string(e.what()).find("request.json"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(WriteModes, BackfillItems,
                         ::testing::Values(BackfillWriteMode::batched, BackfillWriteMode::per_item),
                         [](const ::testing::TestParamInfo<BackfillWriteMode>& mode) {
                           return std::string(mode.param == BackfillWriteMode::batched ? "batched" : "per_item");
                         });

}  // namespace
}  // namespace webhookdb::test
