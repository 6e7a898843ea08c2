// Concurrent page fetching over real loopback HTTP (issue 19 item 4): walks of
// the local API server whose pagination names the pages ahead (a Link header
// with rel="last", a total_pages field, a total for offsets), fetched several
// at once through the curl client, give the same items in the same order as a
// walk one page at a time; and the quota governor still draws one permit per
// request, so K fetches at once never exceed a quota.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "server_fixture.hpp"
#include "webhookdb/backfiller.hpp"
#include "webhookdb/converters.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/rate_limiter.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::test {
namespace {

using std::chrono::milliseconds;

// Counts the requests in flight through it.
class CountingClient final : public HttpClientDecorator {
 public:
  using HttpClientDecorator::HttpClientDecorator;
  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override {
    const int now = ++in_flight_;
    int seen = max_.load();
    while (now > seen && !max_.compare_exchange_weak(seen, now)) {
    }
    ++requests_;
    struct Leave {
      std::atomic<int>& n;
      ~Leave() { --n; }
    } leave{in_flight_};
    return next().send(request, cancel);
  }
  [[nodiscard]] int max_in_flight() const { return max_.load(); }
  [[nodiscard]] int requests() const { return requests_.load(); }

 private:
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_{0};
  std::atomic<int> requests_{0};
};

using Fetch = std::function<BackfillPage(HttpClient&, const std::string& token, const CancellationToken&)>;

// A page loop of its own (no replicator): collects every item's id in the
// order the loop hands them over.
class CollectingBackfiller final : public Backfiller {
 public:
  CollectingBackfiller(std::shared_ptr<HttpClient> http, Fetch fetch) : http_(std::move(http)), fetch_(std::move(fetch)) {}
  std::vector<std::string> ids;

 protected:
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& /*since*/,
                                   const CancellationToken& cancel) override {
    return fetch_(*http_, token, cancel);
  }
  void handle_item(const nlohmann::json& item) override { ids.push_back(item.at("id").dump()); }
  [[nodiscard]] bool pipelined() const override { return true; }

 private:
  std::shared_ptr<HttpClient> http_;
  Fetch fetch_;
};

struct Walk {
  std::vector<std::string> ids;
  int max_in_flight = 0;
  int requests = 0;
  milliseconds took{0};
};

Walk walk(const tools::ApiServer& /*server*/, std::size_t concurrent, const Fetch& fetch) {
  auto http = std::make_shared<CountingClient>(curl::make_curl_client());
  CollectingBackfiller b(http, fetch);
  BackfillRuntime runtime;
  runtime.concurrent_pages = concurrent;
  b.set_runtime(runtime);
  const auto start = std::chrono::steady_clock::now();
  b.backfill(std::nullopt);
  Walk out{std::move(b.ids), http->max_in_flight(), http->requests(), elapsed_ms(start)};
  std::cout << "[ measure  ] K=" << concurrent << ": " << out.ids.size() << " items, " << out.requests
            << " requests, at most " << out.max_in_flight << " at once, " << out.took.count() << " ms\n";
  return out;
}

tools::ApiServerOptions server_options() {
  tools::ApiServerOptions options;
  options.objects = 600;
  options.seed = 41;
  options.threads = 2;
  options.latency = milliseconds(20);  // an asynchronous wait: requests overlap at the server
  return options;
}

// Every id once, and the walk at K=4 equal to the walk at K=1, in order.
void expect_same_walks(const Walk& serial, const Walk& concurrent, std::size_t items) {
  EXPECT_EQ(serial.ids.size(), items);
  EXPECT_EQ(std::set<std::string>(serial.ids.begin(), serial.ids.end()).size(), items);
  EXPECT_EQ(concurrent.ids, serial.ids) << "the concurrent walk handed items over in another order";
  EXPECT_EQ(concurrent.requests, serial.requests) << "a page was fetched twice, or one was skipped";
  EXPECT_EQ(serial.max_in_flight, 1);
  EXPECT_GE(concurrent.max_in_flight, 2) << "the pages known ahead were fetched one at a time";
  EXPECT_LE(concurrent.max_in_flight, 4);
}

TEST(ConcurrentPagesWalk, GitHubLinkHeadersWithLastAreFetchedFourAtATimeInOrder) {
  auto server = start_server(server_options());
  pagination::LinkHeader pages;
  const HttpRequest first{.url = server->url("/repos/octocat/Hello-World/issues?state=all&per_page=20")};
  const Fetch fetch = [&](HttpClient& http, const std::string& token, const CancellationToken& cancel) {
    return pages.fetch(http, first, token, cancel);
  };
  const auto serial = walk(*server, 1, fetch);
  const auto concurrent = walk(*server, 4, fetch);
  expect_same_walks(serial, concurrent, 600);
}

TEST(ConcurrentPagesWalk, LinkHeadersOfThePageNumberEndpoint) {
  auto server = start_server(server_options());
  pagination::LinkHeader pages{{.items_path = {"data"}}};
  const HttpRequest first{.url = server->url("/pages?per_page=25")};
  const Fetch fetch = [&](HttpClient& http, const std::string& token, const CancellationToken& cancel) {
    return pages.fetch(http, first, token, cancel);
  };
  const auto serial = walk(*server, 1, fetch);
  const auto concurrent = walk(*server, 4, fetch);
  expect_same_walks(serial, concurrent, 600);
}

TEST(ConcurrentPagesWalk, TotalPagesInTheBody) {
  auto server = start_server(server_options());
  pagination::PageNumber pages{{.per_page = 25, .total_pages_path = {"total_pages"}}};
  const HttpRequest first{.url = server->url("/pages")};
  const Fetch fetch = [&](HttpClient& http, const std::string& token, const CancellationToken& cancel) {
    return pages.fetch(http, first, token, cancel);
  };
  const auto serial = walk(*server, 1, fetch);
  const auto concurrent = walk(*server, 4, fetch);
  expect_same_walks(serial, concurrent, 600);
}

TEST(ConcurrentPagesWalk, TotalCountAndOffsets) {
  auto server = start_server(server_options());
  pagination::PageNumber by_count{{.per_page = 25, .total_count_path = {"total"}}};
  pagination::Offset offsets{{.limit = 25, .total_path = {"total"}}};
  const HttpRequest pages_first{.url = server->url("/pages")};
  const HttpRequest offset_first{.url = server->url("/offset")};
  const Fetch count_fetch = [&](HttpClient& http, const std::string& token, const CancellationToken& cancel) {
    return by_count.fetch(http, pages_first, token, cancel);
  };
  const Fetch offset_fetch = [&](HttpClient& http, const std::string& token, const CancellationToken& cancel) {
    return offsets.fetch(http, offset_first, token, cancel);
  };
  expect_same_walks(walk(*server, 1, count_fetch), walk(*server, 4, count_fetch), 600);
  expect_same_walks(walk(*server, 1, offset_fetch), walk(*server, 4, offset_fetch), 600);
}

TEST(ConcurrentPagesWalk, CursorPaginationStaysSerial) {
  auto server = start_server(server_options());
  pagination::Cursor pages{{.limit = 50}};
  const HttpRequest first{.url = server->url("/cursor")};
  const auto concurrent = walk(*server, 4, [&](HttpClient& http, const std::string& token, const CancellationToken& cancel) {
    return pages.fetch(http, first, token, cancel);
  });
  EXPECT_EQ(concurrent.max_in_flight, 1);
  EXPECT_GE(concurrent.ids.size(), 600U);
}

// Through a replicator: K=8 fetches at once under a quota the server enforces
// with 403s. The governor's static limit keeps every fetch within it.
class LinkChargeReplicator final : public Replicator {
 public:
  LinkChargeReplicator(const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& c)
      : Replicator(d, si, c) {}
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& /*since*/,
                                   const CancellationToken& cancel) override {
    HttpRequest first;
    first.url = integration().api_url + "/pages?per_page=20";
    first.timeout = milliseconds(5000);
    return pages_.fetch(*context().http, first, token, cancel);
  }

 protected:
  [[nodiscard]] BackfillOptions backfill_options() const override {
    return {.concurrent_pages = 8, .rate_limit = {.limit = {.per_second = 18, .burst = 2}}};
  }
  [[nodiscard]] Column remote_key_column() const override { return Column("charge_id", ColumnType::text).key("id"); }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override {
    return {Column("amount", ColumnType::bigint)};
  }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::always(); }

 private:
  pagination::LinkHeader pages_{{.items_path = {"data"}}};
};

struct QuotaRun {
  std::size_t rows = 0;
  tools::QuotaCounts counts;
  bool failed = false;
};

QuotaRun quota_run(bool governed) {
  tools::ApiServerOptions options;
  options.objects = 1000;  // 50 pages: 2.5 windows of the quota
  options.seed = 43;
  options.quota = {.limit = 20, .window = milliseconds(1000), .mode = tools::QuotaMode::secondary};
  auto server = start_server(options);
  auto replica = std::make_shared<memory::MemoryReplicaStore>();
  auto counting = std::make_shared<CountingClient>(curl::make_curl_client());
  ReplicatorContext context;
  context.http = counting;
  context.replica = replica;
  if (governed) context.rate_limiter = std::make_shared<MemoryRateLimiter>();
  Descriptor d;
  d.name = "link_charge_v1";
  d.supports_backfill = true;
  ServiceIntegration si;
  si.id = 1;
  si.opaque_id = "svi_link";
  si.table_name = "link_charges";
  si.api_url = server->base_url();
  si.backfill_key = "sk_test_link";
  LinkChargeReplicator replicator(d, si, context);
  replicator.create_table();
  BackfillJob job;
  job.service_integration_id = 1;
  QuotaRun out;
  try {
    replicator.backfill(job);
  } catch (const std::exception& e) {
    out.failed = true;
    std::cout << "[ measure  ] backfill failed: " << e.what() << "\n";
  }
  out.rows = replica->rows(replicator.table_spec()).size();
  out.counts = server->quota_counts();
  std::cout << "[ measure  ] " << (governed ? "governed" : "ungoverned") << " K=8: " << out.rows << " rows, "
            << out.counts.served << " served, " << out.counts.refused << " refused, at most "
            << counting->max_in_flight() << " at once\n";
  return out;
}

TEST(ConcurrentPagesWalk, EightAtOnceStillDrawOnePermitPerRequest) {
  const auto governed = quota_run(true);
  EXPECT_FALSE(governed.failed);
  EXPECT_EQ(governed.rows, 1000U);
  EXPECT_EQ(governed.counts.refused, 0U) << "concurrent fetches went past the quota";
  // Without the governor, 8 at once cross the limit (the page loop's own
  // retries then wait the 403s out).
  const auto ungoverned = quota_run(false);
  EXPECT_GE(ungoverned.counts.refused, 1U);
}

}  // namespace
}  // namespace webhookdb::test
