// Replicator::backfill(job): DESIGN's backfill contract, through the fake
// replicator, memory stores and the mock HTTP client.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support.hpp"
#include "webhookdb/testing/scripted_backfiller.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb {
namespace {

using namespace webhookdb::testing;
using test::ts;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kUrl = "https://api.example.test/fake_v1";

class BackfillContract : public ::testing::Test {
 protected:
  TestHarness h;
};

TEST_F(BackfillContract, JobForAnotherIntegrationIsInvalidPrecondition) {
  auto si = h.integration();
  auto other = h.integration();
  auto r = h.replicator(si);
  auto job = h.job(other);
  try {
    r->backfill(job);
    FAIL() << "expected InvalidPrecondition";
  } catch (const InvalidPrecondition& e) {
    EXPECT_STREQ(e.what(), "job is for different service integration");
  }
  EXPECT_EQ(h.http->request_count(), 0U);
  EXPECT_FALSE(h.jobs->find_job(job.id)->started_at);
}

TEST_F(BackfillContract, UnsupportedBackfillIsInvariantViolation) {
  auto si = h.integration("fake_webhooks_only_v1");
  auto r = h.replicator(si);
  auto job = h.job(si);
  try {
    r->backfill(job);
    FAIL() << "expected InvariantViolation";
  } catch (const InvariantViolation& e) {
    EXPECT_STREQ(e.what(), "manual backfill not supported");
  }
  EXPECT_EQ(h.http->request_count(), 0U);
}

TEST_F(BackfillContract, BlankCredentialsAreCredentialsMissing) {
  auto si = h.integration("fake_v1", [](ServiceIntegration& s) {
    s.backfill_key = "";
    s.backfill_secret = "  ";
  });
  auto r = h.replicator(si);
  auto job = h.job(si);
  EXPECT_THROW(r->backfill(job), CredentialsMissing);
  EXPECT_EQ(h.http->request_count(), 0U);
}

TEST_F(BackfillContract, OneCredentialIsEnough) {
  auto si = h.integration("fake_v1", [](ServiceIntegration& s) { s.backfill_secret = ""; });
  h.http->respond_json(fake_page({}));
  auto r = h.replicator(si);
  auto job = h.job(si);
  EXPECT_NO_THROW(r->backfill(job));
  EXPECT_TRUE(job.finished_at);
}

TEST_F(BackfillContract, DependentWithoutCredentialsStillBackfills) {
  auto parent = h.integration("fake_v1");
  auto child = h.integration("fake_dependent_v1", [&](ServiceIntegration& s) {
    s.backfill_key.clear();
    s.backfill_secret.clear();
    s.depends_on = parent.id;
  });
  h.http->respond_json(fake_page({fake_item("d1", "2024-01-01T00:00:00Z")}));
  auto r = h.replicator(child);
  auto job = h.job(child);
  r->backfill(job);
  EXPECT_EQ(h.rows(*r).size(), 1U);
  EXPECT_TRUE(job.finished_at);
}

TEST_F(BackfillContract, StartedAndFinishedAtAreSetAndPersisted) {
  auto si = h.integration();
  const auto t0 = h.clock->now();
  h.http->call([&](const HttpRequest&, const CancellationToken&) {
    h.clock->advance(std::chrono::minutes(5));
    return HttpResponse{200, {}, fake_page({}).dump(), {}};
  });
  auto r = h.replicator(si);
  auto job = h.job(si);
  r->backfill(job);
  ASSERT_TRUE(job.started_at);
  ASSERT_TRUE(job.finished_at);
  EXPECT_EQ(*job.started_at, t0);
  EXPECT_EQ(*job.finished_at, t0 + std::chrono::minutes(5));
  const auto stored = h.jobs->find_job(job.id);
  EXPECT_EQ(stored->started_at, job.started_at);
  EXPECT_EQ(stored->finished_at, job.finished_at);
}

TEST_F(BackfillContract, IncrementalPassesLastBackfilledAndSetsItToTheTimeBeforeTheFirstFetch) {
  const auto previous = ts("2023-06-01T00:00:00Z");
  auto si = h.integration("fake_v1", [&](ServiceIntegration& s) { s.last_backfilled_at = previous; });
  const auto before_fetch = h.clock->now();
  // Every fetch takes an hour of (manual) time: the new mark must not include it.
  h.http->call([&](const HttpRequest&, const CancellationToken&) {
    h.clock->advance(std::chrono::hours(1));
    return HttpResponse{200, {}, fake_page({fake_item("a", "2024-01-01T00:00:00Z")}, "p2").dump(), {}};
  });
  h.http->call([&](const HttpRequest&, const CancellationToken&) {
    h.clock->advance(std::chrono::hours(1));
    return HttpResponse{200, {}, fake_page({}).dump(), {}};
  });
  auto r = h.replicator(si);
  auto job = h.job(si, /*incremental=*/true);
  r->backfill(job);

  const auto fetches = h.fake->fetches();
  ASSERT_EQ(fetches.size(), 2U);
  // The mark less the default incremental_lookback (1 s; tests/core/lookback_test.cpp).
  EXPECT_EQ(fetches[0].last_backfilled, previous - std::chrono::seconds(1));
  EXPECT_EQ(fetches[1].last_backfilled, previous - std::chrono::seconds(1));
  EXPECT_EQ(r->integration().last_backfilled_at, before_fetch);
  EXPECT_EQ(h.jobs->find_integration(si.id)->last_backfilled_at, before_fetch);
  EXPECT_EQ(*job.finished_at, before_fetch + std::chrono::hours(2));
}

TEST_F(BackfillContract, FullBackfillPassesNothingAndLeavesLastBackfilledAlone) {
  const auto previous = ts("2023-06-01T00:00:00Z");
  auto si = h.integration("fake_v1", [&](ServiceIntegration& s) { s.last_backfilled_at = previous; });
  h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z")}));
  auto r = h.replicator(si);
  auto job = h.job(si, /*incremental=*/false);
  h.clock->advance(std::chrono::hours(3));
  r->backfill(job);
  const auto fetches = h.fake->fetches();
  ASSERT_EQ(fetches.size(), 1U);
  EXPECT_FALSE(fetches[0].last_backfilled);
  EXPECT_EQ(r->integration().last_backfilled_at, previous);
  EXPECT_EQ(h.jobs->find_integration(si.id)->last_backfilled_at, previous);
}

TEST_F(BackfillContract, FollowsPagesAndWritesEveryRow) {
  auto si = h.integration();
  h.http->on("token=p3").respond_json(fake_page({fake_item("e", "2024-01-05T00:00:00Z")}));
  h.http->on("token=p2").respond_json(
      fake_page({fake_item("c", "2024-01-03T00:00:00Z"), fake_item("d", "2024-01-04T00:00:00Z")}, "p3"));
  h.http->on("token=").respond_json(
      fake_page({fake_item("b", "2024-01-02T00:00:00Z"), fake_item("a", "2024-01-01T00:00:00Z")}, "p2"));
  auto r = h.replicator(si);
  auto job = h.job(si);
  r->backfill(job);
  EXPECT_THAT(h.http->urls(), ElementsAre(kUrl + "?token=", kUrl + "?token=p2", kUrl + "?token=p3"));
  const auto rows = h.rows(*r);
  ASSERT_EQ(rows.size(), 5U);
  EXPECT_EQ(rows[0].key, "a");
  EXPECT_EQ(rows[0].values[0], "2024-01-01T00:00:00Z");
  EXPECT_EQ(rows[4].key, "e");
  EXPECT_EQ(rows[4].data, fake_item("e", "2024-01-05T00:00:00Z"));
}

TEST_F(BackfillContract, CriteriaReachBackfillers) {
  auto si = h.integration();
  h.http->respond_json(fake_page({}));
  auto r = h.replicator(si);
  const nlohmann::json criteria = {{"since", "2024-01-01"}, {"kind", "all"}};
  auto job = h.job(si, false, criteria);
  r->backfill(job);
  EXPECT_THAT(h.fake->criteria_seen(), ElementsAre(criteria));
}

TEST_F(BackfillContract, CriteriaVariantRunsOneBackfillerPerPartition) {
  auto si = h.integration("fake_with_criteria_v1");
  const std::string base = "https://api.example.test/fake_with_criteria_v1";
  h.http->on("partition=east&token=").respond_json(fake_page({fake_item("e1", "2024-01-01T00:00:00Z")}));
  h.http->on("partition=west&token=").respond_json(fake_page({fake_item("w1", "2024-01-01T00:00:00Z")}));
  auto r = h.replicator(si);
  auto job = h.job(si, false, {{"partitions", {"east", "west"}}});
  r->backfill(job);
  EXPECT_THAT(h.http->urls(), ElementsAre(base + "?partition=east&token=", base + "?partition=west&token="));
  const auto rows = h.rows(*r);
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows[0].key, "e1");
  EXPECT_EQ(rows[1].key, "w1");
}

TEST_F(BackfillContract, ChildJobsAreEnqueuedOnSuccess) {
  auto parent = h.integration("fake_v1");
  auto child = h.integration("fake_dependent_v1", [&](ServiceIntegration& s) { s.depends_on = parent.id; });
  auto grandchild = h.integration("fake_dependent_v1", [&](ServiceIntegration& s) { s.depends_on = child.id; });
  (void)grandchild;
  h.http->respond_json(fake_page({}));
  auto r = h.replicator(parent);
  auto job = h.job(parent);
  const auto children = h.jobs->child_jobs(job.id);
  ASSERT_EQ(children.size(), 1U);
  r->backfill(job);
  // Only the direct child: it enqueues its own children when it succeeds.
  EXPECT_THAT(h.queue->job_ids(), ElementsAre(children[0].id));
}

TEST_F(BackfillContract, ChildJobsAreNotEnqueuedOnFailure) {
  auto parent = h.integration("fake_v1");
  h.integration("fake_dependent_v1", [&](ServiceIntegration& s) { s.depends_on = parent.id; });
  h.http->respond(401, "no");
  auto r = h.replicator(parent);
  auto job = h.job(parent, true);
  EXPECT_THROW(r->backfill(job), HttpError);
  EXPECT_TRUE(h.queue->job_ids().empty());
  EXPECT_FALSE(job.finished_at);
  EXPECT_FALSE(h.jobs->find_integration(parent.id)->last_backfilled_at);
}

TEST_F(BackfillContract, HandledErrorFinishesTheJobWithoutAdvancingOrChildren) {
  const auto previous = ts("2023-06-01T00:00:00Z");
  auto parent = h.integration("fake_v1", [&](ServiceIntegration& s) { s.last_backfilled_at = previous; });
  h.integration("fake_dependent_v1", [&](ServiceIntegration& s) { s.depends_on = parent.id; });
  h.fake->on_backfill_error = [](const std::exception& e) {
    return dynamic_cast<const HttpError*>(&e) != nullptr;
  };
  h.http->respond(401, "expired key");
  auto r = h.replicator(parent);
  auto job = h.job(parent, /*incremental=*/true);
  h.clock->advance(std::chrono::hours(1));
  ASSERT_NO_THROW(r->backfill(job));
  ASSERT_TRUE(job.finished_at);
  EXPECT_EQ(*job.finished_at, h.clock->now());
  EXPECT_EQ(h.jobs->find_job(job.id)->finished_at, job.finished_at);
  EXPECT_EQ(r->integration().last_backfilled_at, previous);
  EXPECT_EQ(h.jobs->find_integration(parent.id)->last_backfilled_at, previous);
  EXPECT_TRUE(h.queue->job_ids().empty());
  ASSERT_EQ(h.fake->backfill_errors().size(), 1U);
  EXPECT_THAT(h.fake->backfill_errors()[0], HasSubstr("401"));
}

// A replica store whose checkpoints cannot be read (the database went away).
class CheckpointsUnreadable final : public ReplicaStore {
 public:
  explicit CheckpointsUnreadable(std::shared_ptr<ReplicaStore> next) : next_(std::move(next)) {}
  void create_table(const TableSpec& spec) override { next_->create_table(spec); }
  void ensure_all_columns(const TableSpec& spec) override { next_->ensure_all_columns(spec); }
  void drop_table(const TableSpec& spec) override { next_->drop_table(spec); }
  UpsertResult upsert(const TableSpec& spec, std::span<const Row> rows, const UpsertOptions& options) override {
    return next_->upsert(spec, rows, options);
  }
  std::optional<Row> find(const TableSpec& spec, const nlohmann::json& key) override { return next_->find(spec, key); }
  std::size_t count(const TableSpec& spec) override { return next_->count(spec); }
  void for_each(const TableSpec& spec, const std::function<void(const Row&)>& visit) override {
    next_->for_each(spec, visit);
  }
  std::map<std::string, Checkpoint> load_checkpoints(std::int64_t job_id) override {
    throw StoreError("checkpoints of job " + std::to_string(job_id) + " unreadable: connection lost", true);
  }
  void save_checkpoint(const Checkpoint& checkpoint) override { next_->save_checkpoint(checkpoint); }
  void clear_checkpoints(std::int64_t job_id) override { next_->clear_checkpoints(job_id); }

 private:
  std::shared_ptr<ReplicaStore> next_;
};

// A replica store that counts what a backfill does with checkpoints.
class CountingCheckpoints final : public ReplicaStore {
 public:
  explicit CountingCheckpoints(std::shared_ptr<ReplicaStore> next) : next_(std::move(next)) {}
  void create_table(const TableSpec& spec) override { next_->create_table(spec); }
  void ensure_all_columns(const TableSpec& spec) override { next_->ensure_all_columns(spec); }
  void drop_table(const TableSpec& spec) override { next_->drop_table(spec); }
  UpsertResult upsert(const TableSpec& spec, std::span<const Row> rows, const UpsertOptions& options) override {
    if (options.checkpoint) ++written;
    if (options.durable_later) ++unwaited;
    return next_->upsert(spec, rows, options);
  }
  std::optional<Row> find(const TableSpec& spec, const nlohmann::json& key) override { return next_->find(spec, key); }
  std::size_t count(const TableSpec& spec) override { return next_->count(spec); }
  void for_each(const TableSpec& spec, const std::function<void(const Row&)>& visit) override {
    next_->for_each(spec, visit);
  }
  std::map<std::string, Checkpoint> load_checkpoints(std::int64_t job_id) override {
    ++loads;
    return next_->load_checkpoints(job_id);
  }
  void save_checkpoint(const Checkpoint& checkpoint) override {
    ++written;
    next_->save_checkpoint(checkpoint);
  }
  void clear_checkpoints(std::int64_t job_id) override {
    ++clears;
    next_->clear_checkpoints(job_id);
  }
  int loads = 0;
  int written = 0;
  int clears = 0;
  int unwaited = 0;  // batches that need not wait for the disk (UpsertOptions::durable_later)

 private:
  std::shared_ptr<ReplicaStore> next_;
};

// Issue 18: a job's first run reads no checkpoints (none can exist before it
// is marked started), and one of one page writes none and deletes none; a
// run of a job that ran before reads them, and two pages need them.
TEST_F(BackfillContract, AFirstRunOfOnePageNeitherReadsNorWritesCheckpoints) {
  h.fake->backfill_options.write_mode = BackfillWriteMode::batched;
  auto si = h.integration();
  auto ctx = h.context();
  auto counting = std::make_shared<CountingCheckpoints>(h.replica);
  ctx.replica = counting;
  auto r = h.registry->make(si, ctx);
  r->create_table();
  h.http->respond_json(fake_page({fake_item("a", "2024-01-01T00:00:00Z")}));
  auto job = h.job(si);
  r->backfill(job);
  EXPECT_TRUE(job.finished_at);
  EXPECT_EQ(counting->loads, 0);
  EXPECT_EQ(counting->written, 0);
  EXPECT_EQ(counting->clears, 0);
  EXPECT_EQ(counting->unwaited, 1) << "its one batch: the job's end, written later, makes it durable";
  EXPECT_TRUE(h.replica->load_checkpoints(job.id).empty());

  h.http->respond_json(fake_page({fake_item("b", "2024-01-01T00:00:00Z")}));
  r->backfill(job);  // it ran before: its checkpoints are read
  EXPECT_EQ(counting->loads, 1);
  EXPECT_EQ(counting->clears, 1);
  EXPECT_EQ(counting->unwaited, 1) << "not a first run: its batch is checkpointed";

  auto two_pages = h.job(si);
  h.http->respond_json(fake_page({fake_item("c", "2024-01-01T00:00:00Z")}, "next"));
  h.http->respond_json(fake_page({fake_item("d", "2024-01-01T00:00:00Z")}));
  r->backfill(two_pages);
  EXPECT_EQ(counting->loads, 1) << "a first run";
  EXPECT_GE(counting->written, 1) << "the first page's checkpoint";
  EXPECT_EQ(counting->clears, 2);
  EXPECT_EQ(counting->unwaited, 2) << "its last batch, whose final checkpoint was left out";
  EXPECT_TRUE(h.replica->load_checkpoints(two_pages.id).empty());
}

TEST_F(BackfillContract, CheckpointLoadErrorGoesThroughOnBackfillError) {
  auto si = h.integration();
  auto ctx = h.context();
  ctx.replica = std::make_shared<CheckpointsUnreadable>(h.replica);
  auto r = h.registry->make(si, ctx);
  r->create_table();
  auto job = h.job(si);
  ASSERT_NE(job.id, 0) << "checkpoints are loaded only for a stored job";
  // ... that ran before: a first run has none to load (Replicator::backfill).
  job.started_at = h.clock->now();
  h.jobs->update_job(job);

  h.fake->on_backfill_error = [](const std::exception& e) { return dynamic_cast<const StoreError*>(&e) != nullptr; };
  ASSERT_NO_THROW(r->backfill(job));
  EXPECT_TRUE(job.finished_at);
  ASSERT_EQ(h.fake->backfill_errors().size(), 1U);
  EXPECT_THAT(h.fake->backfill_errors()[0], HasSubstr("unreadable"));
  EXPECT_EQ(h.http->request_count(), 0U);

  // Unhandled, it is still seen by on_backfill_error first, then rethrown.
  auto again = h.job(si);
  again.started_at = h.clock->now();
  h.jobs->update_job(again);
  h.fake->on_backfill_error = [](const std::exception&) { return false; };
  EXPECT_THROW(r->backfill(again), StoreError);
  EXPECT_EQ(h.fake->backfill_errors().size(), 2U);
  EXPECT_FALSE(again.finished_at);
}

TEST_F(BackfillContract, UnhandledErrorIsRethrownUnchanged) {
  auto si = h.integration();
  auto original = std::make_exception_ptr(test::CustomError("the original", 42));
  const test::CustomError* original_address = nullptr;
  try {
    std::rethrow_exception(original);
  } catch (const test::CustomError& e) {
    original_address = &e;
  }
  h.fake->make_backfillers = [&](Replicator&, const nlohmann::json&) {
    std::vector<std::unique_ptr<Backfiller>> out;
    out.push_back(std::make_unique<ScriptedBackfiller>(
        [original](const std::string&, const std::optional<Timestamp>&, const CancellationToken&) -> BackfillPage {
          std::rethrow_exception(original);
        }));
    return out;
  };
  h.fake->on_backfill_error = [](const std::exception&) { return false; };
  auto r = h.replicator(si);
  auto job = h.job(si);
  try {
    r->backfill(job);
    FAIL() << "expected the original error";
  } catch (const test::CustomError& e) {
    EXPECT_STREQ(e.what(), "the original");
    EXPECT_EQ(e.code, 42);
    EXPECT_EQ(&e, original_address) << "the very same exception object";
  }
  EXPECT_EQ(h.fake->backfill_errors().size(), 1U);
  EXPECT_FALSE(job.finished_at);
}

TEST_F(BackfillContract, TwoBackfillersWithOneCheckpointKeyAreRefusedBeforeAnyFetch) {
  auto si = h.integration();
  int fetches = 0;
  h.fake->make_backfillers = [&](Replicator&, const nlohmann::json&) {
    std::vector<std::unique_ptr<Backfiller>> out;
    for (int i = 0; i < 2; ++i) {
      out.push_back(std::make_unique<ScriptedBackfiller>(
          [&](const std::string&, const std::optional<Timestamp>&, const CancellationToken&) {
            ++fetches;
            return BackfillPage{nlohmann::json::array(), "", 0};
          }));
      out.back()->set_checkpoint_key("created:2024-01");
    }
    return out;
  };
  auto r = h.replicator(si);
  auto job = h.job(si);
  try {
    r->backfill(job);
    FAIL() << "expected InvariantViolation";
  } catch (const InvariantViolation& e) {
    EXPECT_THAT(e.what(), HasSubstr("created:2024-01"));
  }
  EXPECT_EQ(fetches, 0);
}

TEST_F(BackfillContract, ScriptedBackfillersSeeTheJobsRuntime) {
  auto si = h.integration();
  auto pages = ScriptedBackfiller::pages({{fake_item("a", "2024-01-01T00:00:00Z")}, {}});
  std::vector<ScriptedFetch> seen;
  h.fake->make_backfillers = [&](Replicator&, const nlohmann::json&) {
    std::vector<std::unique_ptr<Backfiller>> out;
    out.push_back(std::make_unique<ScriptedBackfiller>(
        [&](const std::string& token, const std::optional<Timestamp>& last, const CancellationToken&) {
          seen.push_back({token, last});
          return token.empty() ? pages[0] : pages[1];
        }));
    return out;
  };
  const auto previous = ts("2023-01-01T00:00:00Z");
  si.last_backfilled_at = previous;
  h.jobs->update_integration(si);
  auto r = h.replicator(si);
  auto job = h.job(si, true);
  r->backfill(job);
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0].token, "");
  EXPECT_EQ(seen[1].token, "page1");
  EXPECT_EQ(seen[0].last_backfilled, previous - std::chrono::seconds(1));  // default lookback
}

TEST_F(BackfillContract, ProgressIsReportedToTheSink) {
  auto si = h.integration();
  h.http->on("token=p2").respond_json(fake_page({fake_item("c", "2024-01-03T00:00:00Z")}));
  h.http->on("token=").respond_json(
      fake_page({fake_item("a", "2024-01-01T00:00:00Z"), fake_item("b", "2024-01-02T00:00:00Z")}, "p2"));
  auto r = h.replicator(si);
  auto job = h.job(si);
  r->backfill(job);
  const auto last = h.progress->last();
  ASSERT_TRUE(last);
  EXPECT_TRUE(last->done);
  EXPECT_EQ(last->pages, 2U);
  EXPECT_EQ(last->items, 3U);
  EXPECT_EQ(last->rows_written, 3U);
  EXPECT_EQ(last->job_id, job.id);
  EXPECT_EQ(last->integration, si.opaque_id);
}

TEST_F(BackfillContract, SecretsNeverReachTheLog) {
  auto si = h.integration("fake_v1", [](ServiceIntegration& s) {
    s.api_url = "https://user:hunter2@api.example.test/items?api_key=sk_live_123";
  });
  h.http->respond(500, "boom").times(1);
  h.http->respond(401, "denied");
  h.fake->backfill_options.retry_policy = polite_retry_policy({.max_attempts = 3, .seed = 7});
  auto r = h.replicator(si);
  auto job = h.job(si);
  EXPECT_THROW(r->backfill(job), HttpError);
  const auto log = h.logger->text();
  EXPECT_THAT(log, HasSubstr("retrying"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("hunter2")));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("sk_live_123")));
}

}  // namespace
}  // namespace webhookdb
