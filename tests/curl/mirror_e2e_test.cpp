// Issue 20 end to end: the local API server deletes and restores charges
// (tools/api_server/mutations.hpp) and sends the matching webhooks to a
// loopback receiver; a replicator on the curl client mirrors /v1/charges into
// PostgreSQL with soft or hard deletes. After deletions at the source a full
// backfill with sweep leaves the table equal to the source; a failed
// backfiller prevents the sweep; a webhook restore during the run wins; a
// windowed backfill re-fetches only its range.

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>

#include "server_fixture.hpp"
#include "support/pg_test_env.hpp"
#include "pg/pg_support.hpp"
// The loopback server moves from tests/reliability to tests/support (and
// from webhookdb::reliability to webhookdb::test); either serves here.
#include "support/mini_server.hpp"
#include "webhookdb/converters.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/pg/secret_key.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb {
namespace {

// The API server's made-up charges: `updated` (unix seconds) orders
// versions, Stripe-style events carry the charge in data.object.
class LocalCharges : public Replicator {
 public:
  LocalCharges(const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& ctx, DeleteMode mode)
      : Replicator(d, si, ctx), mode_(mode) {}

 protected:
  Column remote_key_column() const override { return Column("charge_id", ColumnType::text).key("id"); }
  std::vector<Column> denormalized_columns() const override {
    return {Column("amount", ColumnType::bigint),
            Column("created", ColumnType::bigint),
            Column("updated", ColumnType::timestamptz).convert(converters::unix_timestamp()).indexed()};
  }
  UpdateRule update_rule() const override { return UpdateRule::when_newer("updated"); }
  BackfillOptions backfill_options() const override { return {.batch_size = 50}; }
  DeleteOptions delete_options() const override {
    return {.mode = mode_, .sweep_margin = std::chrono::seconds(0), .sweep_batch_rows = 100};
  }
  std::pair<nlohmann::json, nlohmann::json> resource_and_event(const WebhookRequest& request) const override {
    // Backfill items come parsed (request.json); webhooks as text.
    const nlohmann::json body = request.json.is_null() ? nlohmann::json::parse(request.body) : request.json;
    if (body.value("object", "") == "event") return {body["data"]["object"], body};
    return {body, nullptr};
  }
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& since,
                                   const CancellationToken& cancel) override {
    pagination::QueryParams query;
    if (since) query.emplace_back("updated_since", std::to_string(unix_seconds(*since)));
    return pages_.fetch(*context().http, {.url = pagination::with_query(integration().api_url + "/v1/charges", query)},
                        token, cancel);
  }
  // The made-up API filters by `updated` only: a window of updated times.
  BackfillPage fetch_window_page(const WindowPageRequest& request) override {
    pagination::QueryParams query;
    if (auto from = request.window.from_time()) query.emplace_back("updated_since", std::to_string(unix_seconds(*from)));
    auto page = pages_.fetch(*context().http,
                             {.url = pagination::with_query(integration().api_url + "/v1/charges", query)},
                             request.token, request.cancel);
    // The API has no upper bound: drop what is past the window's end.
    if (auto to = request.window.to_time(); to && page.items.is_array()) {
      nlohmann::json kept = nlohmann::json::array();
      for (auto& item : page.items) {
        if (item.value("updated", std::int64_t{0}) < unix_seconds(*to)) kept.push_back(std::move(item));
      }
      page.items = std::move(kept);
    }
    return page;
  }

 private:
  static std::int64_t unix_seconds(Timestamp t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  }
  DeleteMode mode_;
  pagination::StartingAfter pages_{{.limit = 50}};
};

class MirrorEndToEnd : public test::PgTest, public ::testing::WithParamInterface<DeleteMode> {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    server = test::start_server({.objects = 300, .base_time = 1'700'000'000});
    auto pool = std::make_shared<pg::ConnectionPool>(config(4));
    ctx.replica = std::make_shared<pg::PgReplicaStore>(pool);
    ctx.jobs = std::make_shared<pg::PgJobStore>(pool, nullptr, pg::SecretKeys::plain_text_for_tests());
    ctx.http = curl::make_curl_client({});
    ctx.sleeper = std::make_shared<testing::RecordingSleeper>();
    descriptor.name = "local_charge_e2e_v1";
    descriptor.supports_backfill = true;
    descriptor.supports_webhooks = true;
    ServiceIntegration si;
    si.service_name = descriptor.name;
    si.table_name = "charges";
    si.api_url = server->base_url();
    si.backfill_key = "sk_test";
    integration = ctx.jobs->create_integration(si);
    replicator()->create_table();
    receiver = std::make_unique<test::MiniServer>([this](const test::MiniRequest& req) {
      WebhookRequest w;
      w.body = req.body;
      (void)replicator()->upsert_webhook(w);
      return test::MiniResponse{.status = 200, .headers = {}, .body = "{}", .stream = nullptr};
    });
  }
  void TearDown() override {
    receiver.reset();
    server.reset();
    test::PgTest::TearDown();
  }

  std::unique_ptr<Replicator> replicator(const ServiceIntegration* si = nullptr) {
    return std::make_unique<LocalCharges>(descriptor, si != nullptr ? *si : integration, ctx, GetParam());
  }
  // POST /admin/<what>?id=..&updated=..[&webhook=..]; the reply's JSON.
  nlohmann::json mutate(const std::string& what, std::size_t index, std::int64_t updated, bool webhook) {
    std::string url = server->url("/admin/" + what + "?id=" + server->dataset().id(index) +
                                  "&updated=" + std::to_string(updated));
    if (webhook) url += "&webhook=" + receiver->url("/webhooks");
    const auto r = ctx.http->send({.method = "POST", .url = url}, CancellationToken{});
    return nlohmann::json::parse(r.body);
  }
  std::optional<SweepReport> full_backfill() {
    auto job = ctx.jobs->create_recursive(*ctx.jobs->find_integration(integration.id), false, nlohmann::json::object());
    auto r = replicator();
    r->backfill(job);
    return r->last_sweep();
  }
  std::set<std::string> mirrored() {
    std::set<std::string> out;
    auto r = replicator();
    ctx.replica->for_each(r->table_spec(), [&](const Row& row) {
      if (row.value(r->table_spec(), kDeletedAtColumn).is_null()) out.insert(row.key.get<std::string>());
    });
    return out;
  }
  std::set<std::string> at_source() {
    std::set<std::string> out;
    for (std::size_t i = 0; i < server->dataset().size(); ++i) {
      if (!server->dataset().deleted(i)) out.insert(server->dataset().id(i));
    }
    return out;
  }

  std::unique_ptr<tools::ApiServer> server;
  std::unique_ptr<test::MiniServer> receiver;
  ReplicatorContext ctx;
  Descriptor descriptor;
  ServiceIntegration integration;
};

// Deletions at the source, some announced by webhook, some not: the webhook
// ones are mirrored at once, the others by the sweep of the next full backfill.
TEST_P(MirrorEndToEnd, AFullBackfillWithSweepLeavesTheTableEqualToTheSource) {
  full_backfill();
  ASSERT_EQ(mirrored(), at_source());
  const std::int64_t later = 1'800'000'000;
  EXPECT_EQ(mutate("delete", 10, later, true)["webhook_status"], 200);
  EXPECT_FALSE(mirrored().count(server->dataset().id(10)));  // the webhook deleted it
  for (std::size_t i : {20U, 21U, 150U, 299U}) (void)mutate("delete", i, later, false);
  EXPECT_EQ(mirrored().size(), 299U);
  const auto report = full_backfill();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->result.swept, 4U);
  EXPECT_EQ(mirrored(), at_source());
  // A restore at the source, announced: back in the mirror, and the next sweep keeps it.
  EXPECT_EQ(mutate("restore", 20, later + 10, true)["webhook_status"], 200);
  EXPECT_TRUE(mirrored().count(server->dataset().id(20)));
  EXPECT_EQ(full_backfill()->result.swept, 0U);
  EXPECT_EQ(mirrored(), at_source());
}

TEST_P(MirrorEndToEnd, AFailedBackfillerPreventsTheSweep) {
  full_backfill();
  for (std::size_t i : {5U, 6U, 7U}) (void)mutate("delete", i, 1'800'000'000, false);
  server->inject(tools::Fault::http500, 1000);  // every page: RetryOrDie
  EXPECT_THROW(full_backfill(), RetryOrDie);
  EXPECT_EQ(mirrored().size(), 300U);
}

// Restored at the source while the backfill runs (after the listing passed
// it), announced by webhook: the sweep leaves it alone.
TEST_P(MirrorEndToEnd, AWebhookRestoreDuringTheRunWins) {
  full_backfill();
  (void)mutate("delete", 3, 1'800'000'000, true);
  ASSERT_FALSE(mirrored().count(server->dataset().id(3)));
  auto job = ctx.jobs->create_recursive(*ctx.jobs->find_integration(integration.id), false, nlohmann::json::object());
  // Deleted at the source before the run, the listing skips it; restored by a
  // webhook once the run has begun (its mark taken).
  (void)mutate("delete", 4, 1'800'000'000, false);
  struct Restoring final : LocalCharges {
    Restoring(const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& c, DeleteMode m,
              std::function<void()> once)
        : LocalCharges(d, si, c, m), once_(std::move(once)) {}
    BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& since,
                                     const CancellationToken& cancel) override {
      if (!token.empty() && once_) std::exchange(once_, nullptr)();
      return LocalCharges::fetch_backfill_page(token, since, cancel);
    }
    std::function<void()> once_;
  };
  // On the second page, once the listing has passed it, the object comes back
  // at the source and says so by webhook: this run's listing never shows it.
  Restoring r(descriptor, integration, ctx, GetParam(),
              [this] { EXPECT_EQ(mutate("restore", 3, 1'800'000'100, true)["webhook_status"], 200); });
  r.backfill(job);
  ASSERT_TRUE(r.last_sweep());
  EXPECT_TRUE(mirrored().count(server->dataset().id(3)));   // restored by webhook during the run: kept
  EXPECT_FALSE(mirrored().count(server->dataset().id(4)));  // gone at the source, unannounced: swept
}

TEST_P(MirrorEndToEnd, AWindowedBackfillRefetchesOnlyItsRange) {
  full_backfill();
  const std::int64_t later = 1'800'000'000;
  // Three charges change at the source without webhooks, in two periods.
  server->touch({30, 31}, later);
  server->touch({40}, later + 7200);
  (void)mutate("delete", 50, later, false);
  server->reset_stats();
  const auto mark = ctx.jobs->find_integration(integration.id)->last_backfilled_at;
  const auto updated_of = [this](std::size_t i) {
    auto r = replicator();
    return ctx.replica->find(r->table_spec(), server->dataset().id(i))->value(r->table_spec(), "updated");
  };
  const auto before_40 = updated_of(40);
  auto job = ctx.jobs->create_recursive(
      *ctx.jobs->find_integration(integration.id), false,
      with_window({}, BackfillWindow::time_range(Timestamp{std::chrono::seconds(later)},
                                                 Timestamp{std::chrono::seconds(later + 3600)})));
  auto r = replicator();
  r->backfill(job);
  EXPECT_FALSE(r->last_sweep());
  // Listed: what the API returns for updated_since=from (it has no upper
  // bound), not the 300 of a full backfill; written: the two in the window.
  EXPECT_EQ(server->stats().items, 3U);
  EXPECT_EQ(updated_of(30), "2027-01-15T08:00:00Z");
  EXPECT_EQ(updated_of(31), "2027-01-15T08:00:00Z");
  EXPECT_EQ(updated_of(40), before_40);
  EXPECT_EQ(ctx.jobs->find_integration(integration.id)->last_backfilled_at, mark);
  EXPECT_TRUE(mirrored().count(server->dataset().id(50)));  // no sweep from a window
}

// A worker killed with SIGKILL mid-backfill (a forked process with its own
// connections), the job resumed by another from its checkpoints: the rows
// the dead worker saw count as seen, so the sweep takes exactly what the
// source lost, and the resumed run does not start over.
TEST_P(MirrorEndToEnd, KilledMidBackfillAndResumedElsewhereSweepsExactlyWhatTheSourceLost) {
  full_backfill();
  for (std::size_t i : {2U, 60U, 61U, 200U, 298U}) (void)mutate("delete", i, 1'800'000'000, false);
  auto job = ctx.jobs->create_recursive(*ctx.jobs->find_integration(integration.id), false, nlohmann::json::object());
  server->set_latency(std::chrono::milliseconds(150));  // 6 pages: about a second
  server->reset_stats();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child: its own pool, stores and client; only the job's id is shared.
    ReplicatorContext own;
    auto pool = std::make_shared<pg::ConnectionPool>(config(2));
    own.replica = std::make_shared<pg::PgReplicaStore>(pool);
    own.jobs = std::make_shared<pg::PgJobStore>(pool, nullptr, pg::SecretKeys::plain_text_for_tests());
    own.http = curl::make_curl_client({});
    own.sleeper = std::make_shared<testing::RecordingSleeper>();
    try {
      auto j = *own.jobs->find_job(job.id);
      LocalCharges r(descriptor, *own.jobs->find_integration(integration.id), own, GetParam());
      r.backfill(j);
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(0);
  }
  // Killed once two pages are checkpointed.
  const std::string checkpoints = schema_name() + ".webhookdb_backfill_checkpoints";
  const bool checkpointed = test::eventually(
      [&] {
        return !admin_exec("SELECT 1 FROM " + checkpoints + " WHERE job_id = $1 AND next_token <> ''",
                           {std::to_string(job.id)})
                    .rows.empty() &&
               server->stats().items >= 100;
      },
      std::chrono::seconds(20));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(checkpointed) << "the child wrote no checkpoint";
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child finished before it was killed";
  const auto listed_by_the_dead = server->stats().items;
  server->set_latency(std::chrono::milliseconds(0));
  auto resumed = *ctx.jobs->find_job(job.id);
  auto r = replicator();
  r->backfill(resumed);
  ASSERT_TRUE(r->last_sweep());
  EXPECT_EQ(r->last_sweep()->result.swept, 5U);
  EXPECT_EQ(mirrored(), at_source());
  EXPECT_LT(server->stats().items, listed_by_the_dead + 295U);  // resumed, not started over
}

std::string mode_name(const ::testing::TestParamInfo<DeleteMode>& param) {
  return param.param == DeleteMode::soft ? "soft" : "hard";
}

INSTANTIATE_TEST_SUITE_P(Modes, MirrorEndToEnd, ::testing::Values(DeleteMode::soft, DeleteMode::hard), mode_name);

}  // namespace
}  // namespace webhookdb
