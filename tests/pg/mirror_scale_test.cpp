// Issue 20: what the sweep costs on a large table, against the backfill
// itself, and whether webhook writes wait for it. A source of N rows (20,000
// here; WEBHOOKDB_SWEEP_ROWS=1000000 for the figures in the commit) is
// backfilled in full, 1% is deleted at the source, and a second full backfill
// (every row unchanged: the seen marks are all it writes) sweeps, while a
// thread sends webhooks and times each. Printed: each phase's time, the
// sweep's, and the slowest webhook.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include "pg/pg_support.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/testing/fake_replicator.hpp"
#include "webhookdb/testing/mock_http_client.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb::pg {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::size_t rows_wanted() {
  const char* env = std::getenv("WEBHOOKDB_SWEEP_ROWS");
  return env != nullptr ? static_cast<std::size_t>(std::strtoull(env, nullptr, 10)) : 20000;
}

// Pages of 1,000 items from a vector, the token an offset; `gone` items are skipped.
class BigSource {
 public:
  explicit BigSource(std::size_t n) {
    items_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      char id[32];
      std::snprintf(id, sizeof id, "o%08zu", i);
      items_.push_back(nlohmann::json{{"my_id", id}, {"at", "2024-05-01T10:00:00Z"}, {"amount", i}}.dump());
    }
    alive_.assign(n, true);
  }
  void remove_every(std::size_t k) {
    for (std::size_t i = 0; i < alive_.size(); i += k) alive_[i] = false;
  }
  [[nodiscard]] std::size_t alive() const { return static_cast<std::size_t>(std::count(alive_.begin(), alive_.end(), true)); }

  HttpResponse answer(const HttpRequest& request) const {
    const std::string token = url::query_param(request.url, "token").value_or("");
    std::size_t i = token.empty() ? 0 : std::stoul(token);
    std::string body = "{\"items\":[";
    std::size_t taken = 0;
    for (; i < items_.size() && taken < 1000; ++i) {
      if (!alive_[i]) continue;
      if (taken++ > 0) body += ',';
      body += items_[i];
    }
    body += "],\"next\":\"" + (i < items_.size() ? std::to_string(i) : std::string()) + "\"}";
    HttpResponse r;
    r.status = 200;
    r.body = std::move(body);
    return r;
  }

 private:
  std::vector<std::string> items_;
  std::vector<bool> alive_;
};

class PgMirrorScale : public test::PgTest, public ::testing::WithParamInterface<DeleteMode> {};

TEST_P(PgMirrorScale, TheSweepOfALargeTableAgainstItsBackfill) {
  const std::size_t n = rows_wanted();
  BigSource source(n);
  auto http = std::make_shared<testing::MockHttpClient>();
  http->on("api.example.test").call([&source](const HttpRequest& r, const CancellationToken&) {
    return source.answer(r);
  }).repeat();
  auto control = std::make_shared<testing::FakeControl>();
  control->delete_options.mode = GetParam();
  control->delete_options.sweep_margin = std::chrono::seconds(0);
  ReplicatorContext ctx;
  ctx.http = http;
  ctx.replica = std::make_shared<PgReplicaStore>(config(4));
  ctx.jobs = std::make_shared<memory::MemoryJobStore>();
  ServiceIntegration si;
  si.service_name = "fake_v1";
  si.table_name = "big";
  si.api_url = "https://api.example.test/big";
  si.backfill_key = "k";
  si.backfill_secret = "s";
  si = ctx.jobs->create_integration(si);
  const auto make = [&] { return std::make_unique<testing::FakeReplicator>(testing::fake_v1(control), si, ctx, control); };
  make()->create_table();
  const auto full = [&](std::optional<SweepReport>* report) {
    auto job = ctx.jobs->create_recursive(si, false, nlohmann::json::object());
    auto r = make();
    const auto start = Clock::now();
    r->backfill(job);
    if (report != nullptr) *report = r->last_sweep();
    return seconds_since(start);
  };

  const double first = full(nullptr);
  source.remove_every(100);

  // Unchanged re-backfill without a sweep: what a full backfill costs anyway.
  control->delete_options.sweep = Sweep::never;
  const double unswept = full(nullptr);
  control->delete_options.sweep = Sweep::after_full_backfill;

  // The sweeping one, with webhooks written all along.
  std::atomic<bool> stop{false};
  double slowest_webhook = 0;
  std::size_t webhooks = 0;
  std::thread writer([&] {
    auto r = make();
    std::mt19937 rng(7);
    while (!stop.load()) {
      char id[32];
      std::snprintf(id, sizeof id, "o%08zu", static_cast<std::size_t>(rng() % n) | 1U);  // odd: never deleted
      const auto start = Clock::now();
      (void)r->upsert_webhook_body({{"my_id", id}, {"at", "2024-05-01T10:00:00Z"}});
      slowest_webhook = std::max(slowest_webhook, seconds_since(start));
      ++webhooks;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::optional<SweepReport> report;
  const double sweeping = full(&report);
  stop = true;
  writer.join();

  ASSERT_TRUE(report);
  EXPECT_EQ(report->result.swept, n - source.alive());
  std::size_t live = 0;
  ctx.replica->for_each(make()->table_spec(), [&](const Row& row) {
    if (row.value(make()->table_spec(), kDeletedAtColumn).is_null()) ++live;
  });
  EXPECT_EQ(live, source.alive());
  const double sweep_s = std::chrono::duration<double>(report->took).count();
  std::printf(
      "[ sweep ] %s deletes, %zu rows: first full backfill %.2f s; unchanged full backfill without sweep %.2f s, "
      "with seen marks and sweep %.2f s (sweep %.3f s, %zu rows swept in %zu batches); %zu webhooks meanwhile, "
      "slowest %.1f ms\n",
      GetParam() == DeleteMode::soft ? "soft" : "hard", n, first, unswept, sweeping, sweep_s,
      report->result.swept, report->result.batches, webhooks, slowest_webhook * 1000);
  EXPECT_LT(sweep_s, first);
}

std::string mode_name(const ::testing::TestParamInfo<DeleteMode>& param) {
  return param.param == DeleteMode::soft ? "soft" : "hard";
}

INSTANTIATE_TEST_SUITE_P(Modes, PgMirrorScale, ::testing::Values(DeleteMode::soft, DeleteMode::hard), mode_name);

}  // namespace
}  // namespace webhookdb::pg
