#pragma once
// Deletes by webhook (issue 20 item 1), the same scenarios on every
// ReplicaStore: the memory store (tests/memory) and PostgreSQL (tests/pg).
// Run through the fake replicator (`at` is its update-rule column) opted in
// to soft or hard deletes; a body with "deleted": true is a deletion.
//
//   test::DeleteScenarios s(store, "items", DeleteMode::soft);
//   s.older_version_never_resurrects();

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "webhookdb/replicator.hpp"
#include "webhookdb/testing/fake_replicator.hpp"
#include "webhookdb/testing/manual_clock.hpp"

namespace webhookdb::test {

class DeleteScenarios {
 public:
  // existing: the table is already there (ensure_all_columns brings it up to date).
  enum class Table { create, existing };
  DeleteScenarios(std::shared_ptr<ReplicaStore> store, const std::string& table, DeleteMode mode,
                  Table create = Table::create)
      : mode_(mode) {
    auto control = std::make_shared<testing::FakeControl>();
    control->delete_options.mode = mode;
    ServiceIntegration si;
    si.id = 0;  // no job store: nothing to notify
    si.opaque_id = "svi_" + table;
    si.service_name = "fake_v1";
    si.table_name = table;
    ReplicatorContext ctx;
    ctx.replica = std::move(store);
    ctx.clock = clock_;
    replicator_ = std::make_unique<testing::FakeReplicator>(testing::fake_v1(control), si, ctx, control);
    if (create == Table::create) replicator_->create_table();
  }

  [[nodiscard]] Replicator& replicator() { return *replicator_; }
  [[nodiscard]] testing::ManualClock& clock() { return *clock_; }

  // Writes {"my_id": id, "at": at, ...} as a webhook; true when it changed the table.
  bool send(const std::string& id, const std::string& at, bool deleted = false, const std::string& note = "") {
    nlohmann::json body = {{"my_id", id}, {"at", at}, {"note", note}};
    if (deleted) body["deleted"] = true;
    return replicator_->upsert_webhook_body(body).changed_count() == 1;
  }
  // The stored row (soft deletes: also when deleted), nullopt when there is none.
  std::optional<Row> row(const std::string& id) { return replicator_->context().replica->find(spec(), id); }
  // Whether the source's object is alive in the mirror: a row without deleted_at.
  bool alive(const std::string& id) {
    auto r = row(id);
    return r && r->value(spec(), kDeletedAtColumn).is_null();
  }
  const TableSpec& spec() { return replicator_->table_spec(); }

  // A newer deletion removes or marks the row, at the clock's time.
  void deletion_marks_or_removes() {
    clock_->set(*parse_timestamp("2024-05-01T08:00:00Z"));
    ASSERT_TRUE(send("a", "2024-05-01T10:00:00Z"));
    ASSERT_TRUE(alive("a"));
    EXPECT_TRUE(send("a", "2024-05-01T11:00:00Z", true));
    EXPECT_FALSE(alive("a"));
    if (mode_ == DeleteMode::soft) {
      auto r = row("a");
      ASSERT_TRUE(r);
      EXPECT_EQ(r->value(spec(), kDeletedAtColumn), "2024-05-01T08:00:00Z");
      EXPECT_EQ(r->data["deleted"], true);
    } else {
      EXPECT_FALSE(row("a"));
    }
  }

  // An older version arriving after the deletion (a backfill page fetched
  // before it) changes nothing; a deletion older than the row is refused.
  void older_version_never_resurrects() {
    ASSERT_TRUE(send("b", "2024-05-01T10:00:00Z"));
    ASSERT_TRUE(send("b", "2024-05-01T11:00:00Z", true));
    EXPECT_FALSE(send("b", "2024-05-01T10:30:00Z", false, "stale"));
    EXPECT_FALSE(alive("b"));
    EXPECT_FALSE(send("b", "2024-05-01T11:00:00Z", false, "same time"));
    EXPECT_FALSE(alive("b"));

    ASSERT_TRUE(send("c", "2024-05-01T10:00:00Z"));
    EXPECT_FALSE(send("c", "2024-05-01T09:00:00Z", true));
    EXPECT_TRUE(alive("c"));
  }

  // A newer version (the object was restored) brings the row back.
  void newer_version_restores() {
    ASSERT_TRUE(send("d", "2024-05-01T10:00:00Z"));
    ASSERT_TRUE(send("d", "2024-05-01T11:00:00Z", true));
    EXPECT_TRUE(send("d", "2024-05-01T12:00:00Z", false, "restored"));
    ASSERT_TRUE(alive("d"));
    EXPECT_EQ(row("d")->data["note"], "restored");
    // Deleted again, then an update older than the second deletion: still deleted.
    EXPECT_TRUE(send("d", "2024-05-01T13:00:00Z", true));
    EXPECT_FALSE(send("d", "2024-05-01T12:30:00Z"));
    EXPECT_FALSE(alive("d"));
  }

  // A deletion of an object the mirror never saw still stops its older versions.
  void deletion_before_first_sight() {
    EXPECT_TRUE(send("e", "2024-05-01T11:00:00Z", true));
    EXPECT_FALSE(alive("e"));
    EXPECT_FALSE(send("e", "2024-05-01T10:00:00Z"));
    EXPECT_FALSE(alive("e"));
    EXPECT_TRUE(send("e", "2024-05-01T11:00:01Z"));
    EXPECT_TRUE(alive("e"));
  }

  // Rows of a batch (a backfill page) are judged one by one.
  void batch_with_deletions() {
    ASSERT_TRUE(send("f", "2024-05-01T10:00:00Z"));
    ASSERT_TRUE(send("g", "2024-05-01T10:00:00Z"));
    ASSERT_TRUE(send("g", "2024-05-01T11:00:00Z", true));
    const nlohmann::json page = nlohmann::json::array({
        {{"my_id", "f"}, {"at", "2024-05-01T12:00:00Z"}, {"deleted", true}},
        {{"my_id", "g"}, {"at", "2024-05-01T10:30:00Z"}},
        {{"my_id", "h"}, {"at", "2024-05-01T10:00:00Z"}},
    });
    const auto written = replicator_->upsert_webhook_body(page);
    EXPECT_EQ(written.changed_count(), 2U);
    EXPECT_FALSE(alive("f"));
    EXPECT_FALSE(alive("g"));
    EXPECT_TRUE(alive("h"));
  }

  void all() {
    deletion_marks_or_removes();
    older_version_never_resurrects();
    newer_version_restores();
    deletion_before_first_sight();
    batch_with_deletions();
  }

 private:
  DeleteMode mode_;
  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::unique_ptr<testing::FakeReplicator> replicator_;
};

}  // namespace webhookdb::test
