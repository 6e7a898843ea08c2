// The quota governor end to end (issue 19): a Stripe-like replicator on the
// real curl client backfills from the local API server while the server
// enforces a quota per API key, in each of its modes. With the governor the
// backfill gets every row and next to no refusals; without it, it is refused
// (and a 403 secondary limit, which is not retried, fails it).

#include <gtest/gtest.h>

#include <iostream>
#include <set>

#include "server_fixture.hpp"
#include "webhookdb/converters.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/rate_limiter.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::test {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t kObjects = 2000;
constexpr std::size_t kPageSize = 50;  // 40 pages

class QuotaChargeReplicator final : public Replicator {
 public:
  QuotaChargeReplicator(const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& c, RateLimit limit)
      : Replicator(d, si, c), limit_(limit) {}

  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& /*since*/,
                                   const CancellationToken& cancel) override {
    HttpRequest first;
    first.url = integration().api_url + "/v1/charges";
    first.timeout = milliseconds(5000);
    return pages_.fetch(*context().http, first, token, cancel);
  }

 protected:
  [[nodiscard]] BackfillOptions backfill_options() const override {
    // Polite retries: a 429 that slips through is waited out, not fatal.
    return {.retry_policy = polite_retry_policy(), .rate_limit = {.limit = limit_}};
  }
  [[nodiscard]] Column remote_key_column() const override { return Column("charge_id", ColumnType::text).key("id"); }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override {
    return {Column("amount", ColumnType::bigint),
            Column("updated", ColumnType::timestamptz).convert(converters::unix_timestamp())};
  }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::when_newer("updated"); }

 private:
  RateLimit limit_;
  pagination::StartingAfter pages_{{.limit = kPageSize}};
};

struct Outcome {
  std::size_t rows = 0;
  tools::QuotaCounts counts;
  milliseconds took{0};
  bool failed = false;
};

// One full backfill against a server enforcing `quota`; with or without a governor.
Outcome backfill(tools::QuotaOptions quota, bool governed, RateLimit declared = {}, std::size_t objects = kObjects) {
  tools::ApiServerOptions options;
  options.objects = objects;
  options.seed = 19;
  options.quota = quota;
  auto server = start_server(options);
  auto replica = std::make_shared<memory::MemoryReplicaStore>();
  ReplicatorContext context;
  context.http = curl::make_curl_client();
  context.replica = replica;
  if (governed) context.rate_limiter = std::make_shared<MemoryRateLimiter>();
  Descriptor d;
  d.name = "made_up_charge_v1";
  d.supports_backfill = true;
  ServiceIntegration si;
  si.id = 1;
  si.opaque_id = "svi_quota";
  si.table_name = "charges";
  si.api_url = server->base_url();
  si.backfill_key = "sk_test_quota";
  QuotaChargeReplicator replicator(d, si, context, declared);
  replicator.create_table();
  BackfillJob job;
  job.service_integration_id = 1;
  Outcome out;
  const auto start = std::chrono::steady_clock::now();
  try {
    replicator.backfill(job);
  } catch (const std::exception& e) {
    out.failed = true;
    std::cout << "[ measure  ] backfill failed: " << e.what() << "\n";
  }
  out.took = elapsed_ms(start);
  std::set<std::string> keys;
  for (const auto& row : replica->rows(replicator.table_spec())) keys.insert(row.key.get<std::string>());
  out.rows = keys.size();
  out.counts = server->quota_counts();
  std::cout << "[ measure  ] " << (governed ? "governed" : "ungoverned") << ": " << out.rows << " rows in "
            << out.took.count() << " ms, " << out.counts.served << " served, " << out.counts.refused << " refused\n";
  return out;
}

tools::QuotaOptions quota_of(tools::QuotaMode mode, tools::QuotaAlgorithm algorithm = tools::QuotaAlgorithm::fixed_window) {
  return {.limit = 20, .window = milliseconds(1000), .algorithm = algorithm, .mode = mode};
}

TEST(QuotaBackfill, GitHubHeadersEveryRowAndNoRefusal) {
  const auto governed = backfill(quota_of(tools::QuotaMode::github), true);
  EXPECT_FALSE(governed.failed);
  EXPECT_EQ(governed.rows, kObjects);
  EXPECT_LE(governed.counts.refused, 1U);
  // Without the governor, 60 pages fetched as fast as they come cannot fit
  // the 20 a window they cross (the polite retries then wait the refusals out).
  const auto ungoverned = backfill(quota_of(tools::QuotaMode::github), false, {}, 3 * kObjects / 2);
  EXPECT_EQ(ungoverned.rows, 3 * kObjects / 2);
  EXPECT_GE(ungoverned.counts.refused, 1U);
}

TEST(QuotaBackfill, IetfHeadersOnATokenBucket) {
  const auto out = backfill(quota_of(tools::QuotaMode::ietf, tools::QuotaAlgorithm::token_bucket), true);
  EXPECT_FALSE(out.failed);
  EXPECT_EQ(out.rows, kObjects);
  EXPECT_LE(out.counts.refused, 1U);
}

TEST(QuotaBackfill, NothingAdvertisedAimdFindsTheLimit) {
  // 429 + Retry-After only: the first refusals teach the governor the rate.
  const auto out = backfill(quota_of(tools::QuotaMode::retry_after), true);
  EXPECT_FALSE(out.failed);
  EXPECT_EQ(out.rows, kObjects);
  EXPECT_LE(out.counts.refused, 4U);
}

TEST(QuotaBackfill, ASecondaryLimitIsKeptByADeclaredStaticLimit) {
  // A 403 is not retried: only a governor that never crosses the limit finishes.
  const auto out = backfill(quota_of(tools::QuotaMode::secondary), true, {.per_second = 18, .burst = 2});
  EXPECT_FALSE(out.failed);
  EXPECT_EQ(out.rows, kObjects);
  EXPECT_EQ(out.counts.refused, 0U);
  const auto ungoverned = backfill(quota_of(tools::QuotaMode::secondary), false);
  EXPECT_TRUE(ungoverned.failed);
}

}  // namespace
}  // namespace webhookdb::test
