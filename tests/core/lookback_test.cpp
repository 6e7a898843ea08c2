// Issue 20 item 4: what an incremental backfill asks its pages for. The
// default must not lose a row of a source whose timestamps are whole seconds
// (Shopify's updated_at) while our last_backfilled_at carries microseconds;
// BackfillOptions::incremental_lookback asks for an earlier time.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>

#include "support.hpp"
#include "webhookdb/testing/scripted_backfiller.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb {
namespace {

using namespace webhookdb::testing;
using namespace std::chrono_literals;
using test::ts;
using ::testing::Contains;
using ::testing::HasSubstr;

// A made-up orders API in Shopify's manner: updated_at in whole seconds, and
// an updated-since filter that is inclusive (Shopify's updated_at_min) or
// exclusive, as some APIs have it.
enum class Filter { inclusive, exclusive };

struct WholeSecondOrders {
  std::mutex mutex;
  std::vector<nlohmann::json> orders;
  std::vector<std::optional<Timestamp>> asked;
  std::vector<std::string> delivered;

  void put(const std::string& id, Timestamp updated) {
    const std::lock_guard lock(mutex);
    // The source keeps whole seconds: 12:00:00.7 is stored as 12:00:00.
    const auto whole = std::chrono::floor<std::chrono::seconds>(updated);
    orders.push_back({{"my_id", id}, {"at", format_timestamp(whole)}});
  }

  BackfillPage page(const std::optional<Timestamp>& since, Filter filter) {
    const std::lock_guard lock(mutex);
    asked.push_back(since);
    BackfillPage out;
    out.items = nlohmann::json::array();
    for (const auto& order : orders) {
      const Timestamp at = ts(order["at"].get<std::string>());
      const bool match = !since || (filter == Filter::inclusive ? at >= *since : at > *since);
      if (match) {
        out.items.push_back(order);
        delivered.push_back(order["my_id"].get<std::string>());
      }
    }
    return out;
  }
};

class Lookback : public ::testing::Test {
 protected:
  void use_source(Filter filter) {
    h.fake->make_backfillers = [this, filter](Replicator&, const nlohmann::json&) {
      std::vector<std::unique_ptr<Backfiller>> out;
      out.push_back(std::make_unique<ScriptedBackfiller>(
          [this, filter](const std::string&, const std::optional<Timestamp>& since, const CancellationToken&) {
            return source.page(since, filter);
          }));
      return out;
    };
  }

  // An incremental run at the clock's time; returns the integration after it.
  ServiceIntegration run_incremental(const ServiceIntegration& si) {
    auto r = h.replicator(*h.jobs->find_integration(si.id));
    auto job = h.job(si, /*incremental=*/true);
    r->backfill(job);
    return r->integration();
  }

  TestHarness h;
  WholeSecondOrders source;
};

// The bug as a new user met it: the previous run started at 12:00:00.3, the
// order was updated at 12:00:00.7 and the source says "12:00:00". Asking for
// changes since 12:00:00.3 (the old code) never returns it, now or later.
TEST_F(Lookback, DefaultCatchesAnOrderUpdatedInTheSecondThePreviousRunStarted) {
  for (const Filter filter : {Filter::inclusive, Filter::exclusive}) {
    SCOPED_TRACE(filter == Filter::inclusive ? "updated_at >= since" : "updated_at > since");
    source.orders.clear();
    source.delivered.clear();
    use_source(filter);
    auto si = h.integration("fake_v1", [](ServiceIntegration& s) { s.last_backfilled_at = ts("2024-03-01T11:00:00Z"); });
    source.put("old", ts("2024-03-01T11:30:00Z"));
    h.clock->set(ts("2024-03-01T12:00:00.300000Z"));
    si = run_incremental(si);
    ASSERT_EQ(si.last_backfilled_at, ts("2024-03-01T12:00:00.300000Z"));
    source.put("o1", ts("2024-03-01T12:00:00.700000Z"));
    h.clock->set(ts("2024-03-01T12:15:00Z"));
    run_incremental(si);
    EXPECT_THAT(source.delivered, Contains("o1"));
  }
}

TEST_F(Lookback, IncrementalAsksForTheMarkMinusTheLookbackTruncatedToTheSecond) {
  h.fake->backfill_options.incremental_lookback = 10min;
  use_source(Filter::inclusive);
  auto si = h.integration("fake_v1", [](ServiceIntegration& s) { s.last_backfilled_at = ts("2024-03-01T12:00:00.300000Z"); });
  run_incremental(si);
  ASSERT_EQ(source.asked.size(), 1U);
  EXPECT_EQ(source.asked[0], ts("2024-03-01T11:50:00Z"));
}

TEST_F(Lookback, ZeroLookbackStillTruncatesToTheSecond) {
  h.fake->backfill_options.incremental_lookback = 0s;
  use_source(Filter::inclusive);
  auto si = h.integration("fake_v1", [](ServiceIntegration& s) { s.last_backfilled_at = ts("2024-03-01T12:00:00.300000Z"); });
  run_incremental(si);
  ASSERT_EQ(source.asked.size(), 1U);
  EXPECT_EQ(source.asked[0], ts("2024-03-01T12:00:00Z"));
}

TEST_F(Lookback, FullBackfillAsksForEverything) {
  use_source(Filter::inclusive);
  auto si = h.integration("fake_v1", [](ServiceIntegration& s) { s.last_backfilled_at = ts("2024-03-01T12:00:00Z"); });
  auto r = h.replicator(si);
  auto job = h.job(si, /*incremental=*/false);
  r->backfill(job);
  ASSERT_EQ(source.asked.size(), 1U);
  EXPECT_FALSE(source.asked[0]);
}

TEST(IncrementalSince, FloorsBefore1970AndStopsAtTheFirstTimestamp) {
  BackfillOptions options;
  options.incremental_lookback = 0s;
  EXPECT_EQ(incremental_since(ts("1969-12-31T23:59:59.500000Z"), options), ts("1969-12-31T23:59:59Z"));
  EXPECT_FALSE(incremental_since(std::nullopt, options));
  options.incremental_lookback = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::years(10000));
  EXPECT_EQ(incremental_since(ts("2024-01-01T00:00:00Z"), options), kFirstTimestamp);
}

TEST(IncrementalSince, NegativeLookbackIsABrokenSpecification) {
  BackfillOptions options;
  options.incremental_lookback = -1s;
  try {
    options.validate("replicator shop_orders_v1");
    FAIL() << "expected BrokenSpecification";
  } catch (const BrokenSpecification& e) {
    EXPECT_THAT(e.what(), HasSubstr("shop_orders_v1"));
    EXPECT_THAT(e.what(), HasSubstr("incremental_lookback"));
  }
}

}  // namespace
}  // namespace webhookdb
