// BulkBackfiller: buffering by remote key, flushing at the page size and at
// the end, skipped items, and the update rule only with conditional upsert.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support.hpp"
#include "webhookdb/bulk_backfiller.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb {
namespace {

using namespace webhookdb::testing;
using ::testing::ElementsAre;

// The fake, except that items with "skip": true map to no row.
class SkippingFake final : public FakeReplicator {
 public:
  using FakeReplicator::FakeReplicator;

 protected:
  std::optional<Row> prepare_for_insert(const Payload& payload) const override {
    if (payload.resource.value("skip", false)) return std::nullopt;
    return FakeReplicator::prepare_for_insert(payload);
  }
};

// Pages from a list; page size, conditional upsert and dry run as given.
class ListBackfiller final : public BulkBackfiller {
 public:
  ListBackfiller(Replicator& r, std::vector<std::vector<nlohmann::json>> pages, std::size_t page_size,
                 bool conditional, bool dry = false)
      : BulkBackfiller(r), pages_(std::move(pages)), page_size_(page_size), conditional_(conditional), dry_(dry) {}

 protected:
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>&,
                                   const CancellationToken& /*cancel*/) override {
    const std::size_t i = token.empty() ? 0 : std::stoul(token);
    BackfillPage page;
    page.items = nlohmann::json::array();
    for (const auto& item : pages_.at(i)) page.items.push_back(item);
    if (i + 1 < pages_.size()) page.next = std::to_string(i + 1);
    return page;
  }
  [[nodiscard]] std::size_t backfill_batch_size() const override { return page_size_; }
  [[nodiscard]] bool apply_update_rule() const override { return conditional_; }
  [[nodiscard]] bool dry_run() const override { return dry_; }

 private:
  std::vector<std::vector<nlohmann::json>> pages_;
  std::size_t page_size_;
  bool conditional_;
  bool dry_;
};

class BulkBackfillerTest : public ::testing::Test {
 protected:
  TestHarness h;
  ServiceIntegration si = h.integration();
  SkippingFake replicator{fake_v1(h.fake), si, h.context(), h.fake};

  void SetUp() override { replicator.create_table(); }

  void run(ListBackfiller& b) {
    b.set_runtime(test::runtime_with(h.sleeper));
    b.backfill(std::nullopt);
  }

  std::vector<std::size_t> batch_sizes() const {
    std::vector<std::size_t> out;
    for (const auto& c : h.replica->calls()) out.push_back(c.rows);
    return out;
  }
};

nlohmann::json item(const std::string& id, int day, nlohmann::json extra = nlohmann::json::object()) {
  return fake_item(id, "2024-01-" + std::string(day < 10 ? "0" : "") + std::to_string(day) + "T00:00:00Z", extra);
}

TEST_F(BulkBackfillerTest, FlushesAtThePageSizeAndAtTheEnd) {
  ListBackfiller b(replicator, {{item("a", 1), item("b", 1), item("c", 1)}, {item("d", 1), item("e", 1)}}, 2, false);
  run(b);
  EXPECT_THAT(batch_sizes(), ElementsAre(2U, 2U, 1U));
  EXPECT_EQ(h.replica->count(replicator.table_spec()), 5U);
  EXPECT_EQ(b.progress().rows_written, 5U);
}

TEST_F(BulkBackfillerTest, NothingIsWrittenBeforeThePageSizeIsReached) {
  ListBackfiller b(replicator, {{item("a", 1), item("b", 1)}, {item("c", 1)}}, 10, false);
  run(b);
  EXPECT_THAT(batch_sizes(), ElementsAre(3U)) << "one write at the end";
}

TEST_F(BulkBackfillerTest, ALaterDuplicateKeyReplacesTheEarlierOne) {
  ListBackfiller b(replicator, {{item("a", 5, {{"v", "first"}}), item("b", 1)}, {item("a", 2, {{"v", "second"}})}}, 10,
                   false);
  run(b);
  EXPECT_THAT(batch_sizes(), ElementsAre(2U)) << "the duplicate does not take a second slot";
  const auto row = h.replica->find(replicator.table_spec(), "a");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->data["v"], "second");
  EXPECT_EQ(row->values[0], "2024-01-02T00:00:00Z");
}

TEST_F(BulkBackfillerTest, WithTheUpdateRuleAnOlderDuplicateInTheBatchDoesNotReplaceTheNewer) {
  ListBackfiller b(replicator, {{item("a", 5, {{"v", "newer"}}), item("b", 1)}, {item("a", 2, {{"v", "older"}})}}, 10,
                   /*conditional=*/true);
  run(b);
  EXPECT_THAT(batch_sizes(), ElementsAre(2U));
  const auto row = h.replica->find(replicator.table_spec(), "a");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->data["v"], "newer");
  EXPECT_EQ(row->values[0], "2024-01-05T00:00:00Z");
}

TEST_F(BulkBackfillerTest, WithTheUpdateRuleANewerDuplicateInTheBatchReplacesTheOlder) {
  ListBackfiller b(replicator, {{item("a", 2, {{"v", "older"}})}, {item("a", 5, {{"v", "newer"}})}}, 10,
                   /*conditional=*/true);
  run(b);
  const auto row = h.replica->find(replicator.table_spec(), "a");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->data["v"], "newer");
}

TEST_F(BulkBackfillerTest, SkippedItemsAreNotWritten) {
  ListBackfiller b(replicator, {{item("a", 1), item("b", 1, {{"skip", true}}), item("c", 1)}}, 10, false);
  run(b);
  const auto rows = h.rows(replicator);
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows[0].key, "a");
  EXPECT_EQ(rows[1].key, "c");
  EXPECT_EQ(b.progress().items, 3U);
  EXPECT_EQ(b.progress().rows_written, 2U);
}

TEST_F(BulkBackfillerTest, WithoutConditionalUpsertOlderDataOverwrites) {
  replicator.upsert_webhook_body(item("a", 20, {{"v", "newer"}}));
  ListBackfiller b(replicator, {{item("a", 10, {{"v", "older"}})}}, 10, /*conditional=*/false);
  run(b);
  const auto calls = h.replica->calls();
  ASSERT_EQ(calls.size(), 2U);
  EXPECT_FALSE(calls[1].options.apply_update_rule);
  EXPECT_EQ(h.replica->find(replicator.table_spec(), "a")->data["v"], "older");
}

TEST_F(BulkBackfillerTest, WithConditionalUpsertTheUpdateRuleApplies) {
  replicator.upsert_webhook_body(item("a", 20, {{"v", "newer"}}));
  replicator.upsert_webhook_body(item("b", 5, {{"v", "old"}}));
  ListBackfiller b(replicator, {{item("a", 10, {{"v", "older"}}), item("b", 6, {{"v", "new"}})}}, 10,
                   /*conditional=*/true);
  run(b);
  const auto calls = h.replica->calls();
  ASSERT_EQ(calls.size(), 3U);
  EXPECT_TRUE(calls[2].options.apply_update_rule);
  EXPECT_EQ(calls[2].changed, 1U);
  EXPECT_EQ(h.replica->find(replicator.table_spec(), "a")->data["v"], "newer");
  EXPECT_EQ(h.replica->find(replicator.table_spec(), "b")->data["v"], "new");
  EXPECT_EQ(b.progress().rows_changed, 1U);
}

TEST_F(BulkBackfillerTest, DryRunWritesNothingAndKeepsTheRows) {
  ListBackfiller b(replicator, {{item("a", 1), item("b", 1)}, {item("a", 2)}}, 10, false, /*dry=*/true);
  run(b);
  EXPECT_EQ(h.replica->upsert_calls(), 0U);
  ASSERT_EQ(b.dry_run_rows().size(), 2U);
  EXPECT_EQ(b.dry_run_rows()[0].key, "a");
  EXPECT_EQ(b.dry_run_rows()[0].values[0], "2024-01-02T00:00:00Z");
}

TEST_F(BulkBackfillerTest, AnItemThatCannotBecomeARowFailsTheBackfill) {
  ListBackfiller b(replicator, {{item("a", 1), nlohmann::json{{"my_id", "b"}, {"at", "not a time"}}}}, 10, false);
  b.set_runtime(test::runtime_with(h.sleeper));
  EXPECT_THROW(b.backfill(std::nullopt), InvalidInput);
  EXPECT_EQ(h.replica->upsert_calls(), 0U);
}

TEST_F(BulkBackfillerTest, AFailedWriteFailsTheBackfill) {
  h.replica->fail_next_upserts(1, std::make_exception_ptr(StoreError("connection lost", true)));
  ListBackfiller b(replicator, {{item("a", 1)}}, 10, false);
  b.set_runtime(test::runtime_with(h.sleeper));
  EXPECT_THROW(b.backfill(std::nullopt), StoreError);
  EXPECT_EQ(h.replica->count(replicator.table_spec()), 0U);
}

}  // namespace
}  // namespace webhookdb
