// Malformed payloads through Replicator (upsert_webhook, upsert_webhook_body,
// row_for, a backfill) into a real PostgreSQL: malformed JSON, invalid UTF-8,
// NUL bytes, wrong types, missing keys, out-of-range numbers, hostile strings
// for converters. Each is a clear InvalidInput that says where (column, key,
// remote key), never a crash or another exception type, and nothing already
// written is lost: rows written before the bad one stay as they were.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "reliability/every_type_replicator.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/mock_http_client.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::test {
namespace {

using nlohmann::json;

json good(const std::string& id, const std::string& at = "2024-01-01T00:00:00Z") {
  return {{"id", id},
          {"info", {{"title", "title of " + id}}},
          {"count", 3},
          {"big", 9007199254740993LL},
          {"price", 12.5},
          {"ratio", 0.25},
          {"flag", true},
          {"at", at},
          {"created_unix", 1700000000},
          {"ms", 1700000000123LL},
          {"day", "2024-02-29"},
          {"meta", {{"nested", json::array({1, "two", nullptr})}}},
          {"tags", json::array({"a", "b"})},
          {"ints", json::array({1, 2})},
          {"bigs", json::array({9007199254740993LL})},
          {"uid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
          {"kind", "charge"},
          {"csv", "x, y,z"},
          {"num_text", "\"12\""},
          {"ref", "ch_abc123"}};
}

// The text of the InvalidInput thrown by `fn`; fails the test for anything else.
template <class Fn>
std::string invalid_input(const std::string& label, Fn&& fn) {
  try {
    fn();
  } catch (const InvalidInput& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": expected InvalidInput, got " << typeid(e).name() << ": " << e.what();
    return {};
  } catch (...) {
    ADD_FAILURE() << label << ": expected InvalidInput, got a non-std exception";
    return {};
  }
  ADD_FAILURE() << label << ": accepted";
  return {};
}

class MalformedInput : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    replica_ = std::make_shared<pg::PgReplicaStore>(config(2));
    registry_->add(EveryTypeReplicator::descriptor());
    ServiceIntegration si;
    si.id = 1;
    si.opaque_id = "svi_malformed";
    si.service_name = "every_type_v1";
    si.table_name = "every_type";
    si.api_url = "https://api.example.test/items";
    si.backfill_key = "k";
    si = jobs_->create_integration(si);
    integration_ = si;
    replicator_ = registry_->make(si, context());
    replicator_->create_table();
  }
  void TearDown() override {
    replicator_.reset();
    replica_.reset();
    test::PgTest::TearDown();
  }
  ReplicatorContext context() const {
    ReplicatorContext ctx;
    ctx.http = http_;
    ctx.replica = replica_;
    ctx.jobs = jobs_;
    ctx.clock = clock_;
    ctx.sleeper = std::make_shared<testing::RecordingSleeper>(clock_);
    ctx.registry = registry_;
    return ctx;
  }
  const TableSpec& spec() const { return replicator_->table_spec(); }
  std::vector<Row> all_rows() const {
    std::vector<Row> out;
    replica_->for_each(spec(), [&](const Row& r) { out.push_back(r); });
    return out;
  }
  std::size_t column(const std::string& name) const { return *spec().column_index(name); }

  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::shared_ptr<testing::MockHttpClient> http_ = std::make_shared<testing::MockHttpClient>();
  std::shared_ptr<memory::MemoryJobStore> jobs_ = std::make_shared<memory::MemoryJobStore>(clock_);
  std::shared_ptr<Registry> registry_ = std::make_shared<Registry>();
  std::shared_ptr<pg::PgReplicaStore> replica_;
  ServiceIntegration integration_;
  std::unique_ptr<Replicator> replicator_;
};

TEST_F(MalformedInput, AGoodResourceFillsEveryColumn) {
  auto rows = replicator_->upsert_webhook_body(good("ch_1")).rows;
  ASSERT_EQ(rows.size(), 1U);
  auto stored = replica_->find(spec(), "ch_1");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->values[column("title")], json("title of ch_1"));
  EXPECT_EQ(stored->values[column("count")], json(3));
  EXPECT_EQ(stored->values[column("big")], json(9007199254740993LL));
  EXPECT_EQ(stored->values[column("flag")], json(true));
  EXPECT_EQ(stored->values[column("at")], json("2024-01-01T00:00:00Z"));
  EXPECT_EQ(stored->values[column("day_of")], json("2024-01-01"));
  EXPECT_EQ(stored->values[column("status")], json("unknown"));
  EXPECT_EQ(stored->values[column("csv")], json::array({"x", "y", "z"}));
  EXPECT_EQ(stored->values[column("num")], json(12));
  EXPECT_EQ(stored->values[column("code")], json("abc123"));
  EXPECT_EQ(stored->values[column("uid")], json("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
}

TEST_F(MalformedInput, BadResourcesAreInvalidInputNamingWhereAndKeepEarlierRows) {
  replicator_->upsert_webhook_body(good("ch_1"));
  replicator_->upsert_webhook_body(good("ch_2"));
  const auto before = all_rows();
  ASSERT_EQ(before.size(), 2U);

  struct Case {
    std::string label;
    json resource;
    std::string must_mention;  // a column or key name
  };
  auto with = [](json r, const std::string& key, json value) {
    r[key] = std::move(value);
    return r;
  };
  auto without = [](json r, const std::string& key) {
    r.erase(key);
    return r;
  };
  // Every case updates ch_1 with a newer `at`, so only the error keeps it out.
  const json base = good("ch_1", "2030-01-01T00:00:00Z");
  const std::vector<Case> cases = {
      {"missing remote key", without(base, "id"), "id"},
      {"null remote key", with(base, "id", nullptr), "id"},
      {"object remote key", with(base, "id", json::object()), "id"},
      {"missing nested key", with(base, "info", json::object()), "title"},
      {"info is a string", with(base, "info", "oops"), "title"},
      {"missing required column", without(base, "count"), "count"},
      {"integer as text", with(base, "count", "three"), "count"},
      {"integer as float", with(base, "count", 1.5), "count"},
      {"integer as bool", with(base, "count", true), "count"},
      {"integer overflow", with(base, "count", 4294967296LL), "count"},
      {"bigint overflow", with(base, "big", 18446744073709551615ULL), "big"},
      {"bigint as float", with(base, "big", 1e300), "big"},
      {"numeric as text", with(base, "price", "a lot"), "price"},
      {"double as object", with(base, "ratio", json::object()), "ratio"},
      {"boolean as text", with(base, "flag", "yes"), "flag"},
      {"timestamp garbage", with(base, "at", "not a time"), "at"},
      {"timestamp as number", with(base, "at", 12), "at"},
      {"timestamp month 13", with(base, "at", "2024-13-01T00:00:00Z"), "at"},
      {"unix timestamp as text", with(base, "created_unix", "yesterday"), "created"},
      {"date garbage", with(base, "day", "2024-02-30x"), "day"},
      {"text array of objects", with(base, "tags", json::array({json::object()})), "tags"},
      {"integer array of text", with(base, "ints", json::array({"a"})), "ints"},
      {"integer array not an array", with(base, "ints", 5), "ints"},
      {"bigint array overflow", with(base, "bigs", json::array({18446744073709551615ULL})), "bigs"},
      {"uuid garbage", with(base, "uid", "not-a-uuid'; DROP TABLE x; --"), "uid"},
      {"uuid as number", with(base, "uid", 7), "uid"},
      {"to_integer garbage", with(base, "num_text", "twelve"), "num"},
      {"comma list as number", with(base, "csv", 5), "csv"},
  };
  for (const auto& c : cases) {
    const std::string message =
        invalid_input(c.label, [&] { (void)replicator_->upsert_webhook_body(c.resource); });
    EXPECT_NE(message.find(c.must_mention), std::string::npos) << c.label << ": " << message;
    // row_for says the same, without writing.
    (void)invalid_input(c.label + " (row_for)", [&] { (void)replicator_->row_for(Payload{.resource = c.resource}); });
  }
  EXPECT_EQ(all_rows(), before) << "a rejected resource changed stored rows";
}

TEST_F(MalformedInput, MalformedBodiesAndNonObjectsAreInvalidInput) {
  replicator_->upsert_webhook_body(good("ch_1"));
  const auto before = all_rows();
  const std::string secret_like = "sk_live_NOT_IN_MESSAGES";
  int n = 0;
  for (const std::string& body :
       {std::string("{\"id\": \"ch_9\", "), std::string("not json ") + secret_like, std::string(""),
        std::string("{\"id\":\"ch_9\"} trailing"), std::string("{\"id\":\"\xff\xfe\"}"),
        std::string("[1, 2", 5), std::string("{\"id\":\"a\0b\"}", 13)}) {
    WebhookRequest request;
    request.body = body;
    const std::string message =
        invalid_input("body #" + std::to_string(++n), [&] { (void)replicator_->upsert_webhook(request); });
    EXPECT_EQ(message.find(secret_like), std::string::npos) << message;
  }
  for (const json& resource : {json(1), json("ch_1"), json(true), json::array({1, 2}), json::array({json::array()})}) {
    (void)invalid_input("resource " + resource.dump(), [&] { (void)replicator_->upsert_webhook_body(resource); });
  }
  // null is "no resource": nothing written, no error.
  EXPECT_TRUE(replicator_->upsert_webhook_body(nullptr).rows.empty());
  EXPECT_EQ(all_rows(), before);
}

TEST_F(MalformedInput, InvalidUtf8InAValueIsInvalidInputNamingTheKeyAndWritesNothing) {
  replicator_->upsert_webhook_body(good("ch_1"));
  const auto before = all_rows();
  json bad = good("ch_2");
  bad["info"]["title"] = "caf\xC3";  // cut in the middle of a character
  // Through the webhook path: the body is serialized for the request.
  std::string message = invalid_input("utf8 body", [&] { (void)replicator_->upsert_webhook_body(bad); });
  EXPECT_EQ(all_rows(), before);
  // Through row_for + write_rows with a good row first: the batch is atomic.
  auto row_good = replicator_->row_for(good("ch_3"));
  auto row_bad = replicator_->row_for(Payload{.resource = bad});
  ASSERT_TRUE(row_good && row_bad);
  for (auto method : {WriteMethod::single_row, WriteMethod::multi_row, WriteMethod::staging_copy}) {
    UpsertOptions options;
    options.method = method;
    message = invalid_input("utf8 batch", [&] {
      (void)replicator_->write_rows(std::vector<Row>{*row_good, *row_bad}, options);
    });
    EXPECT_NE(message.find("ch_2"), std::string::npos) << "names the remote key: " << message;
    EXPECT_NE(message.find("UTF-8"), std::string::npos) << message;
    EXPECT_EQ(all_rows(), before) << "half a batch was written";
  }
  // Invalid UTF-8 in the remote key, with another column wrong: still an
  // InvalidInput (the key is quoted in the message).
  json bad_key = good("ch_\xFF");
  bad_key["count"] = "three";
  (void)invalid_input("utf8 key", [&] { (void)replicator_->row_for(Payload{.resource = bad_key}); });
  EXPECT_EQ(all_rows(), before);
}

TEST_F(MalformedInput, NulBytesAreRemovedNotTruncating) {
  json r = good("ch_nul");
  r["info"]["title"] = std::string("before\0after", 12);
  r["meta"] = {{std::string("k\0ey", 4), std::string("v\0al", 4)}};
  r["tags"] = json::array({std::string("a\0b", 3)});
  replicator_->upsert_webhook_body(r);
  auto stored = replica_->find(spec(), "ch_nul");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->values[column("title")], json("beforeafter")) << "cut at the NUL instead of removing it";
  EXPECT_EQ(stored->values[column("meta")], json({{"key", "val"}}));
  EXPECT_EQ(stored->values[column("tags")], json::array({"ab"}));
  EXPECT_EQ(stored->data["info"]["title"], json("beforeafter"));
  // An escaped backslash followed by u0000 is text, and kept.
  json escaped = good("ch_esc");
  escaped["info"]["title"] = "\\u0000 is not a NUL";
  replicator_->upsert_webhook_body(escaped);
  EXPECT_EQ(replica_->find(spec(), "ch_esc")->data["info"]["title"], json("\\u0000 is not a NUL"));
}

TEST_F(MalformedInput, ConvertersSurviveHostileStrings) {
  // Long and pathological strings through every converter: an error or a
  // value, never a crash (std::regex recursion would overflow the stack on
  // long input).
  const std::string long_ref = "ch_" + std::string(200'000, 'a');
  json r = good("ch_long");
  r["ref"] = long_ref;
  r["csv"] = std::string(100'000, ',');
  r["num_text"] = std::string(10'000, '9');
  r["at"] = std::string(100'000, '2');
  try {
    (void)replicator_->row_for(Payload{.resource = r});
  } catch (const InvalidInput&) {
  }
  json r2 = good("ch_long2");
  r2["ref"] = long_ref;
  auto row = replicator_->row_for(Payload{.resource = r2});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->values[column("code")], json(long_ref.substr(3)));
  for (const std::string t : {"9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2024-02-29T24:00:00Z",
                              "+275760-09-13T00:00:00Z", "2024-01-01T00:00:00+99:99", "1e308", "-0",
                              "2024-01-01T00:00:00.99999999999999999999Z"}) {
    json x = good("ch_t");
    x["at"] = t;
    try {
      auto rr = replicator_->row_for(Payload{.resource = x});
      ASSERT_TRUE(rr);
      replicator_->write_rows(std::vector<Row>{*rr}, {});
    } catch (const InvalidInput&) {
      // rejected clearly: fine
    }
  }
  for (const json& n : {json(1e300), json(-1e300), json(9223372036854775807LL), json(18446744073709551615ULL),
                       json("99999999999999999999"), json(-9223372036854775807LL - 1)}) {
    json x = good("ch_n");
    x["created_unix"] = n;
    x["ms"] = n;
    try {
      auto rr = replicator_->row_for(Payload{.resource = x});
      ASSERT_TRUE(rr);
      replicator_->write_rows(std::vector<Row>{*rr}, {});
    } catch (const InvalidInput&) {
    }
  }
}

TEST_F(MalformedInput, ABadItemInABackfillStopsItAndEarlierPagesStay) {
  // Batches of 2: page 1 (2 items) is written before page 2 is looked at.
  http_->respond_json({{"data", json::array({good("p1_a"), good("p1_b")})}, {"next_cursor", "p2"}});
  json bad = good("p2_b");
  bad["count"] = "not a number";
  http_->on("cursor=p2").respond_json({{"data", json::array({good("p2_a"), bad, good("p2_c")})}, {"next_cursor", "p3"}});
  auto job = jobs_->create_recursive(integration_, false, json::object());
  const std::string message = invalid_input("backfill", [&] { replicator_->backfill(job); });
  EXPECT_NE(message.find("count"), std::string::npos) << message;
  EXPECT_NE(message.find("p2_b"), std::string::npos) << "names the remote key: " << message;
  std::set<std::string> keys;
  for (const auto& row : all_rows()) keys.insert(row.key.get<std::string>());
  EXPECT_TRUE(keys.count("p1_a") && keys.count("p1_b")) << "the written page was lost";
  EXPECT_FALSE(keys.count("p2_c")) << "an item after the bad one was written";
  EXPECT_EQ(http_->request_count(), 2U) << "a bad item is not an HTTP error: no retry";
  EXPECT_FALSE(jobs_->find_job(job.id)->finished_at);
}

}  // namespace
}  // namespace webhookdb::test
