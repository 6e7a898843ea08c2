// The conformance kit must be able to fail: a replicator that overwrites new
// with old fails its update-rule checks, saying so, while the same replicator
// with its update rule passes them; a replicator whose incremental pages do
// not ask for changes fails the incremental check. The kit's PostgreSQL side
// (ThrowawayPostgres) starts a server of its own when none is configured.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/testing/conformance.hpp"
#include "webhookdb/testing/pg_harness.hpp"
#include "webhookdb/testing/throwaway_postgres.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb::test {
namespace {

using nlohmann::json;
using testing::FakeControl;
using testing::FakeReplicator;
using testing::TestHarness;

// fake_v1 with the update rule a careless author writes: the last write wins.
class OverwritingFake : public FakeReplicator {
 public:
  using FakeReplicator::FakeReplicator;

 protected:
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::always(); }
};

template <bool kBroken>
struct FakeFixture {
  static void register_replicators(Registry& registry) {
    Descriptor d = testing::fake_v1();
    d.name = service_name;
    auto control = std::make_shared<FakeControl>();
    d.factory = [control](const Descriptor& desc, const ServiceIntegration& si, const ReplicatorContext& ctx) {
      if constexpr (kBroken) return std::unique_ptr<Replicator>(std::make_unique<OverwritingFake>(desc, si, ctx, control));
      return std::unique_ptr<Replicator>(std::make_unique<FakeReplicator>(desc, si, ctx, control));
    };
    registry.add(d);
  }
  static constexpr const char* service_name = kBroken ? "overwriting_fake_v1" : "careful_fake_v1";

  static json resource(std::size_t i) {
    return {{"my_id", "r" + std::to_string(i)}, {"at", "2024-01-01T00:00:00Z"}};
  }
  static json older() { return {{"my_id", "versioned"}, {"at", "2024-01-01T00:00:00Z"}, {"v", 1}}; }
  static json newer() { return {{"my_id", "versioned"}, {"at", "2024-01-02T00:00:00Z"}, {"v", 2}}; }
  static HttpResponse page(const std::vector<json>& items, bool more) {
    const json body = {{"items", items}, {"next", more ? json("after_" + items.back()["my_id"].get<std::string>())
                                                       : json(nullptr)}};
    return {.status = 200, .headers = {}, .body = body.dump()};
  }
  // The fake asks <api_url>?token=...: it never names a since.
  static bool asks_only_since(const HttpRequest& request, Timestamp /*mark*/) {
    return request.url.find("since=") != std::string::npos;
  }
  static WebhookRequest webhook(const json& resource, const ServiceIntegration& /*integration*/) {
    return WebhookRequest::from_json(resource);
  }
};

using Careful = FakeFixture<false>;
using Overwriting = FakeFixture<true>;

TEST(ConformanceKit, AReplicatorThatOverwritesNewWithOldFailsSayingWhy) {
  for (int check = 0; check < 3; ++check) {
    TestHarness careful;
    Careful::register_replicators(*careful.registry);
    TestHarness broken;
    Overwriting::register_replicators(*broken.registry);
    ::testing::AssertionResult good = ::testing::AssertionSuccess();
    ::testing::AssertionResult bad = ::testing::AssertionSuccess();
    switch (check) {
      case 0:
        good = testing::conformance::backfill_keeps_newer<Careful>(careful);
        bad = testing::conformance::backfill_keeps_newer<Overwriting>(broken);
        break;
      case 1:
        good = testing::conformance::webhook_keeps_newer<Careful>(careful);
        bad = testing::conformance::webhook_keeps_newer<Overwriting>(broken);
        break;
      default:
        good = testing::conformance::race_keeps_newer<Careful>(careful);
        bad = testing::conformance::race_keeps_newer<Overwriting>(broken);
        break;
    }
    EXPECT_TRUE(good) << "check " << check;
    EXPECT_FALSE(bad) << "check " << check;
    EXPECT_NE(std::string(bad.message()).find("overwrote the newer one"), std::string::npos)
        << "check " << check << ": " << bad.message();
  }
}

TEST(ConformanceKit, PagesThatIgnoreTheMarkFailTheIncrementalCheck) {
  TestHarness h;
  Careful::register_replicators(*h.registry);
  const auto result = testing::conformance::incremental_asks_only_for_changes<Careful>(h);
  EXPECT_FALSE(result);
  EXPECT_NE(std::string(result.message()).find("asked for everything"), std::string::npos) << result.message();
}

TEST(ConformanceKit, TheFakePassesTheChecksItIsBuiltFor) {
  TestHarness h;
  Careful::register_replicators(*h.registry);
  EXPECT_TRUE(testing::conformance::backfills_every_page<Careful>(h));
  TestHarness h2;
  Careful::register_replicators(*h2.registry);
  EXPECT_TRUE(testing::conformance::resumes_from_checkpoint<Careful>(h2));
  TestHarness h3;
  Careful::register_replicators(*h3.registry);
  EXPECT_TRUE(testing::conformance::unauthorized_is_not_retried<Careful>(h3));
  TestHarness h4;
  Careful::register_replicators(*h4.registry);
  EXPECT_TRUE(testing::conformance::webhook_row_matches_backfill_row<Careful>(h4));
}

// Ignores WEBHOOKDB_TEST_DATABASE_URL: starts a server from the machine's
// PostgreSQL binaries, uses it through the kit, and removes it.
TEST(ThrowawayPostgresTest, StartsAServerOfItsOwnAndRemovesIt) {
  std::filesystem::path directory;
  {
    testing::ThrowawayPostgres server(testing::ThrowawayPostgres::Options{.use_environment = false});
    ASSERT_TRUE(server.started());
    directory = server.directory();
    EXPECT_TRUE(std::filesystem::exists(directory / "data"));
    EXPECT_EQ(server.url().rfind("postgresql://postgres@127.0.0.1:", 0), 0U) << server.url();
    TestHarness h;
    testing::PgSchema schema(server.url());
    schema.attach(h);
    Careful::register_replicators(*h.registry);
    EXPECT_TRUE(testing::conformance::backfills_every_page<Careful>(h));
    pg::Config c;
    c.url = server.url();
    pg::ConnectionPool pool(c);
    EXPECT_EQ(pool.exec("SELECT current_setting('fsync') AS fsync").at(0, "fsync"), "off");
  }
  EXPECT_FALSE(std::filesystem::exists(directory));
}

}  // namespace
}  // namespace webhookdb::test
