// Issue 20 on the memory stores: backfill windows (only the range fetched,
// last_backfilled_at kept, never a sweep) and the sweep after a full backfill
// (what the source lost is marked or removed; failures, cancellation and
// windows prevent it; resumed jobs and webhooks during the run are right).
// tests/pg/mirror_pg_test.cpp runs the same scenarios on PostgreSQL.

#include <gtest/gtest.h>

#include "../support/mirror_scenarios.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"

namespace webhookdb {
namespace {

ReplicatorContext memory_context() {
  ReplicatorContext ctx;
  ctx.replica = std::make_shared<memory::MemoryReplicaStore>();
  ctx.jobs = std::make_shared<memory::MemoryJobStore>();
  return ctx;
}

class MemoryMirror : public ::testing::TestWithParam<DeleteMode> {
 protected:
  test::MirrorScenarios s{memory_context(), "items", GetParam()};
};

TEST_P(MemoryMirror, WindowFetchesOnlyItsRangeAndKeepsTheMark) { s.window_fetches_only_its_range_and_keeps_the_mark(); }
TEST_P(MemoryMirror, WindowNeverSweeps) { s.window_never_sweeps(); }
TEST_P(MemoryMirror, MalformedWindowIsRefused) { s.malformed_window_is_refused(); }
TEST_P(MemoryMirror, SweepMarksWhatTheSourceLost) { s.sweep_marks_what_the_source_lost(); }
TEST_P(MemoryMirror, UnchangedRowsAreSeen) { s.unchanged_rows_are_seen(); }
TEST_P(MemoryMirror, FailurePreventsTheSweep) { s.failure_prevents_the_sweep(); }
TEST_P(MemoryMirror, ResumeCountsRowsSeenBeforeTheCrash) { s.resume_counts_rows_seen_before_the_crash(); }
TEST_P(MemoryMirror, WebhooksDuringTheRunWin) { s.webhooks_during_the_run_win(); }

std::string mode_name(const ::testing::TestParamInfo<DeleteMode>& param) {
  return param.param == DeleteMode::soft ? "soft" : "hard";
}

INSTANTIATE_TEST_SUITE_P(Modes, MemoryMirror, ::testing::Values(DeleteMode::soft, DeleteMode::hard), mode_name);

// The base's fetch_window_page, as a replicator that does not fetch windows has it.
class WindowlessReplicator final : public testing::FakeReplicator {
 public:
  using FakeReplicator::FakeReplicator;
  BackfillPage fetch_window_page(const WindowPageRequest& request) override {
    return Replicator::fetch_window_page(request);
  }
};

// A replicator that does not fetch windows refuses a windowed job instead of
// fetching everything.
TEST(WindowedJob, AReplicatorWithoutFetchWindowPageRefusesIt) {
  test::MirrorScenarios s{memory_context(), "items", DeleteMode::none};
  s.fill(3);
  auto j = s.job(false, with_window({}, BackfillWindow::id_range("o01", nullptr)));
  WindowlessReplicator r(testing::fake_v1(s.control_ptr()), s.integration(), s.context(), s.control_ptr());
  try {
    r.backfill(j);
    FAIL() << "expected InvalidPrecondition";
  } catch (const InvalidPrecondition& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("fetch_window_page"));
  }
  EXPECT_TRUE(s.source().served().empty());
}

TEST(BackfillWindowTest, RoundTripsThroughCriteriaAndNormalisesTimes) {
  const auto c = with_window({{"other", 1}}, BackfillWindow::time_range(*parse_timestamp("2024-01-01T01:00:00+01:00"),
                                                                         std::nullopt));
  EXPECT_EQ(c["other"], 1);
  const auto w = backfill_window(c);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->axis, WindowAxis::time);
  EXPECT_EQ(w->from, "2024-01-01T00:00:00Z");
  EXPECT_TRUE(w->to.is_null());
  EXPECT_FALSE(backfill_window(nlohmann::json::object()));
  EXPECT_THROW((void)backfill_window({{"window", {{"axis", "size"}, {"from", 1}}}}), InvalidInput);
  EXPECT_THROW((void)backfill_window({{"window", {{"axis", "id"}, {"from", 1}, {"to", "b"}}}}), InvalidInput);
  EXPECT_THROW((void)backfill_window({{"window", {{"axis", "id"}, {"from", 1.5}}}}), InvalidInput);
}

}  // namespace
}  // namespace webhookdb
