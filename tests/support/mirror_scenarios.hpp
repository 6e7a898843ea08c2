#pragma once
// Issue 20: backfill windows and the sweep, the same scenarios on every
// ReplicaStore (tests/core runs them on memory, tests/pg on PostgreSQL).
// The fake replicator (soft or hard deletes, `at` its update-rule column)
// backfills from a made-up source served through the mock HTTP client: items
// {"my_id", "at"} in id order, `page_size` a page, the token an offset; a
// windowed request (axis, from, to) gets only the items in its range.
//
//   test::MirrorScenarios s(context, "items", DeleteMode::soft);
//   s.sweep_marks_what_the_source_lost();

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "webhookdb/errors.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/testing/fake_replicator.hpp"
#include "webhookdb/testing/mock_http_client.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb::test {

// The made-up source: thread-safe, counts what it served.
class FakeSource {
 public:
  void put(const std::string& id, const std::string& at) {
    std::lock_guard lock(mutex_);
    items_[id] = at;
  }
  void remove(const std::string& id) {
    std::lock_guard lock(mutex_);
    items_.erase(id);
  }
  [[nodiscard]] std::set<std::string> ids() const {
    std::lock_guard lock(mutex_);
    std::set<std::string> out;
    for (const auto& [id, at] : items_) out.insert(id);
    return out;
  }
  [[nodiscard]] std::vector<std::string> served() const {
    std::lock_guard lock(mutex_);
    return served_;
  }
  void clear_served() {
    std::lock_guard lock(mutex_);
    served_.clear();
  }
  // The page at offset `fail_at_offset` answers 404 (retried, then the backfill fails).
  void fail_at(std::optional<std::size_t> offset) {
    std::lock_guard lock(mutex_);
    fail_at_ = offset;
  }
  // Called (outside the lock) before the page at `offset` is answered.
  void before_page(std::size_t offset, std::function<void()> hook) {
    std::lock_guard lock(mutex_);
    hooks_[offset] = std::move(hook);
  }
  std::size_t page_size = 3;

  HttpResponse answer(const HttpRequest& request) {
    const auto param = [&](const char* name) { return url::query_param(request.url, name).value_or(""); };
    const std::size_t offset = param("token").empty() ? 0 : std::stoul(param("token"));
    std::function<void()> hook;
    {
      std::lock_guard lock(mutex_);
      if (auto it = hooks_.find(offset); it != hooks_.end()) hook = std::move(it->second), hooks_.erase(it);
    }
    if (hook) hook();
    std::lock_guard lock(mutex_);
    if (fail_at_ && *fail_at_ == offset) {
      HttpResponse r;
      r.status = 404;
      r.body = "{}";
      return r;
    }
    const std::string axis = param("axis");
    const std::string from = param("from");
    const std::string to = param("to");
    std::vector<std::pair<std::string, std::string>> matching;
    for (const auto& [id, at] : items_) {
      const std::string& v = axis == "id" ? id : at;
      if (!axis.empty() && ((!from.empty() && v < from) || (!to.empty() && v >= to))) continue;
      matching.emplace_back(id, at);
    }
    nlohmann::json page{{"items", nlohmann::json::array()}, {"next", ""}};
    for (std::size_t i = offset; i < matching.size() && i < offset + page_size; ++i) {
      page["items"].push_back({{"my_id", matching[i].first}, {"at", matching[i].second}});
      served_.push_back(matching[i].first);
    }
    if (offset + page_size < matching.size()) page["next"] = std::to_string(offset + page_size);
    HttpResponse r;
    r.status = 200;
    r.body = page.dump();
    return r;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string> items_;  // id -> at (ISO-8601, so text order is time order)
  std::vector<std::string> served_;
  std::optional<std::size_t> fail_at_;
  std::map<std::size_t, std::function<void()>> hooks_;
};

class MirrorScenarios {
 public:
  // `context` brings the stores (replica and jobs); http, clock and logger
  // are the scenarios' own.
  MirrorScenarios(ReplicatorContext context, const std::string& table, DeleteMode mode) : mode_(mode) {
    control_->delete_options.mode = mode;
    control_->delete_options.sweep_margin = std::chrono::seconds(0);
    control_->delete_options.sweep_batch_rows = 4;  // several sweep batches even in small tables
    control_->backfill_options.batch_size = 3;      // a checkpoint per page
    control_->backfill_options.pipelined = false;
    http_->on("api.example.test").call([this](const HttpRequest& request, const CancellationToken&) {
      return source_.answer(request);
    }).repeat();
    context.http = http_;
    if (!context.sleeper) context.sleeper = std::make_shared<testing::RecordingSleeper>();  // retries never wait
    context_ = std::move(context);
    ServiceIntegration si;
    si.service_name = "fake_v1";
    si.table_name = table;
    si.api_url = "https://api.example.test/items";
    si.backfill_key = "key";
    si.backfill_secret = "secret";
    si.skip_webhook_verification = true;
    integration_ = context_.jobs->create_integration(si);
    replicator()->create_table();
  }

  [[nodiscard]] FakeSource& source() { return source_; }
  [[nodiscard]] testing::FakeControl& control() { return *control_; }
  [[nodiscard]] std::shared_ptr<testing::FakeControl> control_ptr() { return control_; }
  [[nodiscard]] const ReplicatorContext& context() const { return context_; }
  [[nodiscard]] ServiceIntegration integration() { return *context_.jobs->find_integration(integration_.id); }
  // A new replicator (as a worker process makes one per job), reading the integration afresh.
  [[nodiscard]] std::unique_ptr<testing::FakeReplicator> replicator() {
    auto si = context_.jobs->find_integration(integration_.id).value();
    return std::make_unique<testing::FakeReplicator>(testing::fake_v1(control_), si, context_, control_);
  }
  [[nodiscard]] const TableSpec& spec() {
    if (!spec_holder_) spec_holder_ = replicator();
    return spec_holder_->table_spec();
  }
  [[nodiscard]] BackfillJob job(bool incremental, const nlohmann::json& criteria = nlohmann::json::object()) {
    return context_.jobs->create_recursive(*context_.jobs->find_integration(integration_.id), incremental, criteria);
  }
  // Runs `job` on a new replicator; returns its sweep report.
  std::optional<SweepReport> run(BackfillJob& job) {
    auto r = replicator();
    r->backfill(job);
    return r->last_sweep();
  }
  std::optional<SweepReport> full_backfill() {
    auto j = job(false);
    return run(j);
  }
  // The ids with a live row (soft: deleted_at null).
  [[nodiscard]] std::set<std::string> alive() {
    std::set<std::string> out;
    context_.replica->for_each(spec(), [&](const Row& row) {
      if (row.value(spec(), kDeletedAtColumn).is_null()) out.insert(row.key.get<std::string>());
    });
    return out;
  }
  [[nodiscard]] std::optional<Row> row(const std::string& id) { return context_.replica->find(spec(), id); }
  // A webhook for `id` at `at`.
  bool webhook(const std::string& id, const std::string& at) {
    return replicator()->upsert_webhook_body({{"my_id", id}, {"at", at}}).changed_count() == 1;
  }
  void fill(int n, const std::string& at = "2024-05-01T10:00:00Z") {
    for (int i = 0; i < n; ++i) source_.put(id(i), at);
  }
  static std::string id(int i) { return "o" + std::string(i < 10 ? "0" : "") + std::to_string(i); }

  // --- Windows ---

  // A windowed job fetches only its range, rewrites only those rows, keeps
  // last_backfilled_at, and the replicator is told the window.
  void window_fetches_only_its_range_and_keeps_the_mark() {
    fill(10);
    source_.put("o03", "2024-05-02T10:00:00Z");
    source_.put("o07", "2024-05-03T10:00:00Z");
    auto inc = job(true);
    run(inc);
    const auto mark = context_.jobs->find_integration(integration_.id)->last_backfilled_at;
    ASSERT_TRUE(mark);
    source_.clear_served();
    auto windowed = job(true, with_window({}, BackfillWindow::time_range(*parse_timestamp("2024-05-02T00:00:00Z"),
                                                                          *parse_timestamp("2024-05-03T00:00:00Z"))));
    run(windowed);
    EXPECT_THAT(source_.served(), ::testing::ElementsAre("o03"));
    EXPECT_EQ(context_.jobs->find_integration(integration_.id)->last_backfilled_at, mark);
    const auto fetches = control_->fetches();
    ASSERT_FALSE(fetches.empty());
    ASSERT_TRUE(fetches.back().window);
    EXPECT_EQ(fetches.back().window->from, "2024-05-02T00:00:00Z");
    EXPECT_EQ(fetches.back().window->to, "2024-05-03T00:00:00Z");
    // Stored with the job: a job store reads it back.
    EXPECT_EQ(backfill_window(context_.jobs->find_job(windowed.id)->criteria), fetches.back().window);

    source_.clear_served();
    auto by_id = job(false, with_window({}, BackfillWindow::id_range("o05", "o08")));
    run(by_id);
    EXPECT_THAT(source_.served(), ::testing::ElementsAre("o05", "o06", "o07"));
  }

  // A windowed full backfill never sweeps, though the source lost rows.
  void window_never_sweeps() {
    fill(6);
    full_backfill();
    source_.remove("o01");
    source_.remove("o04");
    auto windowed = job(false, with_window({}, BackfillWindow::id_range("o00", "o09")));
    EXPECT_FALSE(run(windowed));
    EXPECT_EQ(alive().size(), 6U);
  }

  // A malformed window is refused when the job is created, naming the field.
  void malformed_window_is_refused() {
    try {
      (void)job(false, {{"window", {{"axis", "time"}, {"from", "yesterday"}}}});
      ADD_FAILURE() << "expected InvalidInput";
    } catch (const InvalidInput& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("criteria.window.from"));
    }
    EXPECT_THROW((void)job(false, {{"window", {{"axis", "id"}}}}), InvalidInput);
    EXPECT_THROW((void)job(false, {{"window", {{"axis", "id"}, {"from", "b"}, {"to", "a"}}}}), InvalidInput);
  }

  // --- The sweep ---

  // After a full backfill the table holds what the source holds.
  void sweep_marks_what_the_source_lost() {
    fill(10);
    EXPECT_TRUE(full_backfill());
    ASSERT_EQ(alive(), source_.ids());
    source_.remove("o00");
    source_.remove("o04");
    source_.remove("o09");
    const auto report = full_backfill();
    ASSERT_TRUE(report);
    EXPECT_EQ(report->result.swept, 3U);
    EXPECT_GE(report->result.batches, 2U);
    EXPECT_EQ(alive(), source_.ids());
    if (mode_ == DeleteMode::soft) {
      ASSERT_TRUE(row("o04"));
      EXPECT_FALSE(row("o04")->value(spec(), kDeletedAtColumn).is_null());
    } else {
      EXPECT_FALSE(row("o04"));
    }
    // Swept rows stay swept (the next sweep finds nothing); the rule still
    // judges: an older version never resurrects, a newer one restores.
    EXPECT_EQ(full_backfill()->result.swept, 0U);
    EXPECT_FALSE(webhook("o04", "2024-05-01T09:00:00Z"));
    EXPECT_TRUE(webhook("o04", "2024-05-01T11:00:00Z"));
    EXPECT_TRUE(alive().count("o04"));
  }

  // Rows the update rule leaves alone (the source has not changed them) were
  // still seen: an unchanged re-backfill sweeps nothing.
  void unchanged_rows_are_seen() {
    fill(8);
    full_backfill();
    const auto report = full_backfill();
    ASSERT_TRUE(report);
    EXPECT_EQ(report->result.swept, 0U);
    EXPECT_EQ(alive().size(), 8U);
  }

  // A backfiller that fails (its error rethrown, or handled by
  // on_backfill_error) or is cancelled prevents any sweep.
  void failure_prevents_the_sweep() {
    fill(9);
    full_backfill();
    source_.remove("o01");
    source_.remove("o07");
    source_.fail_at(3);
    EXPECT_ANY_THROW(full_backfill());
    EXPECT_EQ(alive().size(), 9U);
    control_->on_backfill_error = [](const std::exception&) { return true; };
    EXPECT_FALSE(full_backfill());
    EXPECT_EQ(alive().size(), 9U);
    control_->on_backfill_error = nullptr;
    source_.fail_at(std::nullopt);
    CancellationSource cancel;
    cancel.cancel();
    auto cancelled = job(false);
    auto r = replicator();
    EXPECT_ANY_THROW(r->backfill(cancelled, cancel.token()));
    EXPECT_FALSE(r->last_sweep());
    EXPECT_EQ(alive().size(), 9U);
    // Once a run completes, the sweep happens.
    EXPECT_EQ(full_backfill()->result.swept, 2U);
    EXPECT_EQ(alive(), source_.ids());
  }

  // A job that died after its first pages is resumed by another replicator
  // (another process) from its checkpoint: the rows seen before the crash
  // count as seen, so only what the source lost is swept.
  void resume_counts_rows_seen_before_the_crash() {
    fill(12);
    full_backfill();
    source_.remove("o02");
    source_.remove("o10");
    auto j = job(false);
    source_.fail_at(6);
    EXPECT_ANY_THROW(run(j));  // pages 0 and 3 written and checkpointed
    source_.fail_at(std::nullopt);
    source_.clear_served();
    const auto report = run(j);
    ASSERT_TRUE(report);
    EXPECT_THAT(source_.served(), ::testing::Not(::testing::Contains("o00")));  // resumed, not restarted
    EXPECT_EQ(report->result.swept, 2U);
    EXPECT_EQ(alive(), source_.ids());
  }

  // Rows a webhook writes or restores while the backfill runs are left alone
  // by its sweep, though the backfill's listing does not hold them.
  void webhooks_during_the_run_win() {
    fill(9);
    full_backfill();
    ASSERT_TRUE(webhook("x-gone", "2024-05-01T10:00:00Z"));  // before the run: swept
    source_.remove("o05");
    source_.before_page(6, [this] {
      EXPECT_TRUE(webhook("x-new", "2024-05-01T12:00:00Z"));  // created after the listing passed it
      EXPECT_TRUE(webhook("o05", "2024-05-01T12:00:00Z"));    // updated at the source mid-run
    });
    const auto report = full_backfill();
    ASSERT_TRUE(report);
    EXPECT_EQ(report->result.swept, 1U);
    const auto live = alive();
    EXPECT_TRUE(live.count("x-new"));
    EXPECT_TRUE(live.count("o05"));
    EXPECT_FALSE(live.count("x-gone"));
  }

 private:
  DeleteMode mode_;
  std::shared_ptr<testing::FakeControl> control_ = std::make_shared<testing::FakeControl>();
  std::shared_ptr<testing::MockHttpClient> http_ = std::make_shared<testing::MockHttpClient>();
  ReplicatorContext context_;
  ServiceIntegration integration_;
  FakeSource source_;
  std::unique_ptr<testing::FakeReplicator> spec_holder_;
};

}  // namespace webhookdb::test
