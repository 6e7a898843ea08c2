// Payload limits: a response larger than CurlOptions::max_response_bytes
// (declared, streamed without end, or a small gzip that inflates to a huge
// body) fails promptly with a clear curl::ResponseTooLarge, having read little
// more than the limit; a deeply nested JSON document through the page parsing
// path and the webhook parsing path is a clear error, never a stack overflow.

#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <string>

#include "api_server/api_server.hpp"
#include "reliability/every_type_replicator.hpp"
#include "support/mini_server.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr std::size_t kLimit = 1024 * 1024;

std::string gzip(std::size_t zeros) {
  z_stream z{};
  // 15 + 16: a gzip wrapper.
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("zlib");
  const std::string chunk(1 << 20, '\0');
  std::string out;
  std::string buffer(1 << 16, '\0');
  std::size_t left = zeros;
  while (true) {
    const std::size_t n = std::min(left, chunk.size());
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(chunk.data()));
    z.avail_in = static_cast<uInt>(n);
    left -= n;
    const int flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    int rc = Z_OK;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buffer.data());
      z.avail_out = static_cast<uInt>(buffer.size());
      rc = deflate(&z, flush);
      out.append(buffer.data(), buffer.size() - z.avail_out);
    } while (z.avail_out == 0);
    if (flush == Z_FINISH && rc == Z_STREAM_END) break;
  }
  deflateEnd(&z);
  return out;
}

std::string limit_error(const curl::CurlOptions& options, const std::string& url) {
  curl::CurlHttpClient client(options);
  try {
    (void)client.get(url);
  } catch (const curl::ResponseTooLarge& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected curl::ResponseTooLarge, got " << e.what();
    return {};
  }
  ADD_FAILURE() << "an oversized response was accepted";
  return {};
}

TEST(PayloadLimits, APageLargerThanTheMaximumIsAClearError) {
  tools::ApiServerOptions o;
  o.objects = 1500;  // ~1 KB each
  o.max_limit = 2000;
  tools::ApiServer api(o);
  api.start();
  curl::CurlOptions options;
  options.max_response_bytes = 64 * 1024;
  const std::string message = limit_error(options, api.url("/v1/charges?limit=1500"));
  EXPECT_NE(message.find("larger than 65536 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("/v1/charges"), std::string::npos) << "names the request: " << message;
  // Under the limit the same client is fine.
  curl::CurlHttpClient client(options);
  EXPECT_EQ(client.get(api.url("/v1/charges?limit=10")).status, 200);
}

TEST(PayloadLimits, AnEndlessBodyIsCutOffNearTheLimit) {
  MiniServer endless([](const MiniRequest&) {
    MiniResponse r;
    r.headers = {{"Content-Type", "application/json"}};
    r.stream = [](const BodyWriter& write) {
      const std::string chunk = "[" + std::string(64 * 1024 - 2, ' ') + "]";
      // Up to 2 GiB unless the client hangs up first.
      for (int i = 0; i < 32 * 1024; ++i) {
        if (!write(chunk)) return;
      }
    };
    return r;
  });
  curl::CurlOptions options;
  options.max_response_bytes = kLimit;
  const auto start = std::chrono::steady_clock::now();
  const std::string message = limit_error(options, endless.url("/stream"));
  EXPECT_NE(message.find("larger than"), std::string::npos) << message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  endless.stop();
  // What the server managed to push: the limit plus socket buffers, not gigabytes.
  EXPECT_LT(endless.bytes_streamed(), 64U * 1024U * 1024U) << "the client kept reading past its limit";
}

TEST(PayloadLimits, AGzipBombIsMeasuredInflated) {
  const std::string bomb = gzip(64U * 1024U * 1024U);  // 64 MiB of zeros in ~64 KiB
  ASSERT_LT(bomb.size(), kLimit);
  MiniServer server([&](const MiniRequest&) {
    return MiniResponse{200, {{"Content-Type", "application/json"}, {"Content-Encoding", "gzip"}}, bomb, {}};
  });
  curl::CurlOptions options;
  options.max_response_bytes = kLimit;
  const std::string message = limit_error(options, server.url("/bomb"));
  EXPECT_NE(message.find("larger than"), std::string::npos) << message;
}

// --- Deep JSON through the parsing paths ---

std::string deep_item_page(std::size_t depth) {
  std::string page = R"({"data":[{"id":"deep","info":{"title":"t"},"count":1,"at":"2024-01-01T00:00:00Z","meta":)";
  page += std::string(depth, '[');
  page += std::string(depth, ']');
  page += R"(}],"next_cursor":null})";
  return page;
}

class DeepJson : public ::testing::Test {
 protected:
  ReplicatorContext context(std::shared_ptr<HttpClient> http) const {
    ReplicatorContext ctx;
    ctx.http = std::move(http);
    ctx.replica = replica_;
    ctx.jobs = jobs_;
    ctx.clock = clock_;
    ctx.sleeper = std::make_shared<testing::RecordingSleeper>(clock_);
    return ctx;
  }
  ServiceIntegration integration(const std::string& api_url) {
    ServiceIntegration si;
    si.service_name = "every_type_v1";
    si.table_name = "deep_" + std::to_string(++tables_);
    si.api_url = api_url;
    si.backfill_key = "k";
    return jobs_->create_integration(si);
  }

  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::shared_ptr<memory::MemoryReplicaStore> replica_ = std::make_shared<memory::MemoryReplicaStore>();
  std::shared_ptr<memory::MemoryJobStore> jobs_ = std::make_shared<memory::MemoryJobStore>(clock_);
  int tables_ = 0;
};

TEST_F(DeepJson, ADeeplyNestedPageIsAClearErrorNotAStackOverflow) {
  // A million levels: 2 MB of brackets inside one item. Anything that
  // recursed per level (dump, copy, compare) would overflow the stack.
  const std::string page = deep_item_page(1'000'000);
  MiniServer server([&](const MiniRequest&) {
    return MiniResponse{200, {{"Content-Type", "application/json"}}, page, {}};
  });
  const auto si = integration(server.url("/items"));
  const auto descriptor = EveryTypeReplicator::descriptor();
  auto replicator = descriptor.factory(descriptor, si, context(curl::make_curl_client()));
  replicator->create_table();
  auto job = jobs_->create_recursive(si, false, json::object());
  try {
    replicator->backfill(job);
    FAIL() << "a page nested a million levels deep was accepted";
  } catch (const RetryOrDie& e) {
    // Acceptable only if the cause says what was wrong.
    EXPECT_NE(describe(e.cause()).find("deeper than"), std::string::npos) << describe(e.cause());
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("deeper than"), std::string::npos) << e.what();
  }
  EXPECT_EQ(replica_->count(replicator->table_spec()), 0U);
}

TEST_F(DeepJson, ADeeplyNestedWebhookBodyIsInvalidInputNotAStackOverflow) {
  const std::string body = R"({"id":"deep","info":{"title":"t"},"count":1,"at":"2024-01-01T00:00:00Z","meta":)" +
                           std::string(1'000'000, '[') + std::string(1'000'000, ']') + "}";
  const auto si = integration("https://api.example.test/items");
  const auto descriptor = EveryTypeReplicator::descriptor();
  auto replicator = descriptor.factory(descriptor, si, context(nullptr));
  replicator->create_table();
  WebhookRequest request;
  request.body = body;
  try {
    (void)replicator->upsert_webhook(request);
    FAIL() << "a body nested a million levels deep was accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("deeper than"), std::string::npos) << e.what();
  }
  EXPECT_EQ(replica_->count(replicator->table_spec()), 0U);
}

TEST_F(DeepJson, ModeratelyNestedDataWithinTheLimitIsStoredIntact) {
  // 200 levels: legal JSON that real APIs never reach, but within the
  // default limit of 512, so it must go through unchanged.
  const std::string page = deep_item_page(200);
  MiniServer server([&](const MiniRequest&) {
    return MiniResponse{200, {{"Content-Type", "application/json"}}, page, {}};
  });
  const auto si = integration(server.url("/items"));
  const auto descriptor = EveryTypeReplicator::descriptor();
  auto replicator = descriptor.factory(descriptor, si, context(curl::make_curl_client()));
  replicator->create_table();
  auto job = jobs_->create_recursive(si, false, json::object());
  replicator->backfill(job);
  auto row = replica_->find(replicator->table_spec(), "deep");
  ASSERT_TRUE(row);
  EXPECT_EQ(json_depth(row->data["meta"]), 200U);
}

}  // namespace
}  // namespace webhookdb::test
