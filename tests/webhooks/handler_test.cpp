// WebhookHandler without HTTP: statuses, dispatch, synchronous and
// asynchronous processing, the bounded worker pool, drain, failures.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <latch>
#include <thread>

#include "webhook_test_env.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/webhooks/webhook_handler.hpp"

namespace webhookdb::webhooks {
namespace {

using nlohmann::json;
using namespace test;

// Forwards to a MemoryJobStore; integration lookups can be made to fail.
class FlakyJobStore final : public JobStore {
 public:
  std::atomic<bool> fail_lookups{false};
  std::atomic<int> lookups{0};  // find_integration_by_opaque_id calls
  memory::MemoryJobStore inner;

  ServiceIntegration create_integration(ServiceIntegration i) override { return inner.create_integration(std::move(i)); }
  std::optional<ServiceIntegration> find_integration(std::int64_t id) override { return inner.find_integration(id); }
  std::optional<ServiceIntegration> find_integration_by_opaque_id(const std::string& id) override {
    ++lookups;
    if (fail_lookups) {
      throw StoreError("connection to postgresql://app:hunter2@db/prod lost", true);
    }
    return inner.find_integration_by_opaque_id(id);
  }
  std::optional<ServiceIntegration> find_integration_by_table(const std::string& table) override {
    return inner.find_integration_by_table(table);
  }
  void update_integration(const ServiceIntegration& i) override { inner.update_integration(i); }
  std::vector<ServiceIntegration> dependents_of(std::int64_t id) override { return inner.dependents_of(id); }
  void delete_integration(std::int64_t id) override { inner.delete_integration(id); }
  BackfillJob create_job(BackfillJob job) override { return inner.create_job(std::move(job)); }
  BackfillJob create_recursive(const ServiceIntegration& i, bool inc, const nlohmann::json& c,
                               std::optional<std::int64_t> parent) override {
    return inner.create_recursive(i, inc, c, parent);
  }
  std::optional<BackfillJob> find_job(std::int64_t id) override { return inner.find_job(id); }
  void update_job(const BackfillJob& job) override { inner.update_job(job); }
  std::vector<BackfillJob> child_jobs(std::int64_t id) override { return inner.child_jobs(id); }
  void delete_job(std::int64_t id) override { inner.delete_job(id); }
  std::unique_ptr<IntegrationLock> try_lock_integration(std::int64_t id) override {
    return inner.try_lock_integration(id);
  }
};

class Handler : public ::testing::Test {
 protected:
  std::shared_ptr<memory::MemoryReplicaStore> store = std::make_shared<memory::MemoryReplicaStore>();
  std::shared_ptr<FlakyJobStore> jobs = std::make_shared<FlakyJobStore>();
  Env env{store, jobs};

  WebhookResponse post(WebhookHandler& handler, const json& body, const std::string& secret = kWebhookSecret) {
    return handler.handle(env.charges.opaque_id, env.signed_request(body.dump(), secret));
  }
  WebhookResponse post_raw(WebhookHandler& handler, const std::string& body) {
    return handler.handle(env.charges.opaque_id, env.signed_request(body));
  }
  void expect_no_secret_logged() {
    const std::string log = env.logger->text();
    EXPECT_EQ(log.find(kWebhookSecret), std::string::npos) << log;
    EXPECT_EQ(log.find("sk_test_backfill"), std::string::npos) << log;
  }
};

TEST_F(Handler, NeedsAJobStoreAndARegistry) {
  auto ctx = env.context();
  ctx.jobs = nullptr;
  EXPECT_THROW(WebhookHandler{ctx}, InvalidPrecondition);
  ctx = env.context();
  ctx.registry = nullptr;
  EXPECT_THROW(WebhookHandler{ctx}, InvalidPrecondition);
}

TEST_F(Handler, AsyncAnswers202ThenWrites) {
  WebhookHandler handler(env.context());
  const auto r = post(handler, charge_event(charge("ch_1", 1, 100)));
  EXPECT_EQ(r.status, 202);
  handler.wait_idle();
  auto row = env.find("ch_1");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->values[1], 100);
  const auto s = handler.stats();
  EXPECT_EQ(s.requests, 1U);
  EXPECT_EQ(s.accepted, 1U);
  EXPECT_EQ(s.processed_async, 1U);
  EXPECT_EQ(s.pending, 0U);
}

TEST_F(Handler, SynchronousByOptionAnswersWithTheRow) {
  WebhookHandlerOptions options;
  options.process_synchronously = true;
  WebhookHandler handler(env.context(), options);
  const auto r = post(handler, charge_event(charge("ch_1", 1, 100)));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), charge("ch_1", 1, 100));
  EXPECT_TRUE(env.find("ch_1"));  // written before the answer
  EXPECT_EQ(handler.stats().processed_async, 0U);
}

TEST_F(Handler, SynchronousByReplicatorPolicy) {
  env.config->synchronous = true;
  WebhookHandler handler(env.context());
  const auto r = post(handler, json::array({charge("a", 1), charge("b", 1)}));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), json::array({charge("a", 1), charge("b", 1)}));
  EXPECT_EQ(env.count(), 2U);
}

TEST_F(Handler, OptionOverridesThePolicy) {
  env.config->synchronous = true;
  WebhookHandlerOptions options;
  options.process_synchronously = false;
  WebhookHandler handler(env.context(), options);
  EXPECT_EQ(post(handler, charge("a", 1)).status, 202);
  handler.wait_idle();
  EXPECT_EQ(env.count(), 1U);
}

TEST_F(Handler, UnknownIntegrationIs404) {
  WebhookHandler handler(env.context());
  const auto r = handler.handle("svi_doesnotexist", env.signed_request(charge("a", 1).dump()));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(handler.stats().rejected, 1U);
}

TEST_F(Handler, IntegrationWithoutWebhookSupportIs404) {
  const auto pull_only = env.add_charges("pull", kWebhookSecret, "test_pull_only_v1");
  WebhookHandler handler(env.context());
  EXPECT_EQ(handler.handle(pull_only.opaque_id, env.signed_request(charge("a", 1).dump())).status, 404);
}

TEST_F(Handler, BadSignatureIs401AndWritesNothing) {
  WebhookHandler handler(env.context());
  const auto r = post(handler, charge("a", 1), "whsec_wrong");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body.find(kWebhookSecret), std::string::npos);
  WebhookRequest unsigned_request;
  unsigned_request.body = charge("a", 1).dump();
  EXPECT_EQ(handler.handle(env.charges.opaque_id, unsigned_request).status, 401);
  handler.wait_idle();
  EXPECT_EQ(env.count(), 0U);
  expect_no_secret_logged();
}

TEST_F(Handler, SkipVerificationAnswers201) {
  env.charges.skip_webhook_verification = true;
  jobs->update_integration(env.charges);
  WebhookHandler handler(env.context());
  WebhookRequest unsigned_request;
  unsigned_request.body = charge("a", 1).dump();
  EXPECT_EQ(handler.handle(env.charges.opaque_id, unsigned_request).status, 201);
  handler.wait_idle();
  EXPECT_EQ(env.count(), 1U);
}

TEST_F(Handler, MalformedBodiesAre400) {
  WebhookHandler handler(env.context());
  const std::string deep = std::string(1000, '[') + std::string(1000, ']');
  for (const std::string& body : {
           std::string(""),
           std::string("{"),
           std::string("{\"id\": \"a\", }"),
           std::string("{\"id\": \"\xc3\x28\", \"version\": 1}"),  // invalid UTF-8
           std::string("\"just a string\""),
           std::string("42"),
           std::string("null"),
           std::string("{\"version\": 1}"),                  // no remote key
           std::string("{\"id\": \"a\", \"version\": \"x\"}"),  // wrong type
           std::string("[1, 2]"),                            // array of non-objects
           deep,
           "{\"id\":\"a\",\"version\":1,\"x\":" + deep + "}",
       }) {
    const auto r = post_raw(handler, body);
    EXPECT_EQ(r.status, 400) << body.substr(0, 60) << " -> " << r.status << " " << r.body;
  }
  handler.wait_idle();
  EXPECT_EQ(env.count(), 0U);
  EXPECT_EQ(handler.stats().failed, 0U);
}

TEST_F(Handler, ModeratelyNestedJsonIsFine) {
  WebhookHandler handler(env.context());
  json nested = charge("a", 1);
  json inner = json::object();
  for (int i = 0; i < 50; ++i) inner = json{{"level", inner}, {"s", "[[[{{{"}};
  nested["deep"] = inner;
  EXPECT_EQ(post(handler, nested).status, 202);
  handler.wait_idle();
  EXPECT_EQ(env.count(), 1U);
}

TEST_F(Handler, SkippedResourceIsAccepted) {
  WebhookHandler handler(env.context());
  EXPECT_EQ(post(handler, json::array()).status, 202);
  handler.wait_idle();
  EXPECT_EQ(handler.stats().processed_async, 0U);
}

TEST_F(Handler, DispatchHandsTheRequestToAnotherIntegration) {
  const auto other = env.add_charges("other_charges", "whsec_other_secret");
  env.config->dispatch = [&](Replicator& self, const WebhookRequest& request) -> std::unique_ptr<Replicator> {
    if (find_header(request.headers, "X-Route-To").value_or("") != "other") return nullptr;
    return replicator_for(self, other);
  };
  WebhookHandler handler(env.context());
  // Routed: verified with the other integration's secret, written to its table.
  auto routed = env.signed_request(charge("r1", 1).dump(), "whsec_other_secret");
  routed.headers.emplace_back("X-Route-To", "other");
  EXPECT_EQ(handler.handle(env.charges.opaque_id, routed).status, 202);
  // Signed for the first integration but routed: the other secret applies.
  auto wrong = env.signed_request(charge("r2", 1).dump());
  wrong.headers.emplace_back("X-Route-To", "other");
  EXPECT_EQ(handler.handle(env.charges.opaque_id, wrong).status, 401);
  // Not routed: itself.
  EXPECT_EQ(post(handler, charge("s1", 1)).status, 202);
  handler.wait_idle();
  EXPECT_TRUE(env.find("r1", &other));
  EXPECT_FALSE(env.find("r1"));
  EXPECT_FALSE(env.find("r2", &other));
  EXPECT_TRUE(env.find("s1"));
  EXPECT_FALSE(env.find("s1", &other));
}

TEST_F(Handler, FullQueueAnswers503) {
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> entered{0};
  store->set_before_upsert([&](const TableSpec&, std::span<const Row>) {
    entered.fetch_add(1);
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return release; });
  });
  WebhookHandlerOptions options;
  options.worker_threads = 1;
  options.max_pending = 2;
  WebhookHandler handler(env.context(), options);
  EXPECT_EQ(post(handler, charge("a", 1)).status, 202);  // running (blocked)
  EXPECT_EQ(post(handler, charge("b", 1)).status, 202);  // queued
  const auto busy = post(handler, charge("c", 1));
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(find_header(busy.headers, "Retry-After"), "1");
  EXPECT_EQ(handler.stats().unavailable, 1U);
  EXPECT_EQ(handler.stats().pending, 2U);
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  handler.wait_idle();
  EXPECT_EQ(env.count(), 2U);
  EXPECT_FALSE(env.find("c"));
  // Room again.
  EXPECT_EQ(post(handler, charge("c", 1)).status, 202);
  handler.wait_idle();
  EXPECT_EQ(env.count(), 3U);
}

TEST_F(Handler, DrainFinishesQueuedWorkThenRefuses) {
  store->set_before_upsert([](const TableSpec&, std::span<const Row>) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  WebhookHandlerOptions options;
  options.worker_threads = 2;
  WebhookHandler handler(env.context(), options);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(post(handler, charge("k" + std::to_string(i), 1)).status, 202);
  handler.drain();
  EXPECT_EQ(env.count(), 20U);  // nothing accepted was dropped
  EXPECT_EQ(handler.stats().processed_async, 20U);
  EXPECT_EQ(post(handler, charge("late", 1)).status, 503);
  handler.drain();  // idempotent
}

TEST_F(Handler, StoreFailureIs503WithRetryAfterAndAGenericMessage) {
  WebhookHandlerOptions options;
  options.process_synchronously = true;
  WebhookHandler handler(env.context(), options);
  store->fail_next_upserts(1, std::make_exception_ptr(StoreError("db at postgresql://u:hunter2@h/db failed", true)));
  const auto r = post(handler, charge("a", 1));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body.find("hunter2"), std::string::npos) << r.body;
  EXPECT_TRUE(std::any_of(r.headers.begin(), r.headers.end(), [](const auto& h) { return h.first == "Retry-After"; }));
  EXPECT_EQ(handler.stats().unavailable, 1U);
  expect_no_secret_logged();
}

TEST_F(Handler, IntegrationLookupFailureIs500) {
  WebhookHandler handler(env.context());
  jobs->fail_lookups = true;
  const auto r = post(handler, charge("a", 1));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("hunter2"), std::string::npos);
}

// integration_ttl: a known integration is looked up once per ttl, not once
// per webhook (at thousands a second each lookup was a statement); an unknown
// id every time (nothing a sender makes up is kept).
TEST_F(Handler, KnownIntegrationsAreLookedUpOncePerTtl) {
  WebhookHandlerOptions options;
  options.integration_ttl = std::chrono::minutes(10);
  WebhookHandler handler(env.context(), options);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(post(handler, charge_event(charge("ch_" + std::to_string(i), 1))).status, 202);
  EXPECT_EQ(jobs->lookups.load(), 1);
  EXPECT_TRUE(handler.handles_without_waiting(env.charges.opaque_id));
  EXPECT_FALSE(handler.handles_without_waiting("svi_nobody"));
  EXPECT_EQ(handler.handle("svi_nobody", env.signed_request(charge("a", 1).dump())).status, 404);
  EXPECT_EQ(handler.handle("svi_nobody", env.signed_request(charge("a", 1).dump())).status, 404);
  EXPECT_EQ(jobs->lookups.load(), 3);
  // Within the ttl a rotated secret is not seen yet: the old one still verifies.
  const std::string old_secret = env.charges.webhook_secret;
  env.charges.webhook_secret = "whsec_rotated";
  jobs->update_integration(env.charges);
  EXPECT_EQ(post(handler, charge_event(charge("ch_old", 1)), old_secret).status, 202);
  handler.wait_idle();
}

TEST_F(Handler, ARotatedSecretIsSeenOnceTheTtlHasPassed) {
  WebhookHandlerOptions options;
  options.integration_ttl = std::chrono::milliseconds(1);
  WebhookHandler handler(env.context(), options);
  EXPECT_EQ(post(handler, charge_event(charge("ch_1", 1))).status, 202);
  env.charges.webhook_secret = "whsec_rotated";
  jobs->update_integration(env.charges);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(post(handler, charge_event(charge("ch_2", 1))).status, 401);
  EXPECT_EQ(post(handler, charge_event(charge("ch_3", 1)), "whsec_rotated").status, 202);
  handler.wait_idle();

  options.integration_ttl = std::chrono::milliseconds(0);
  WebhookHandler uncached(env.context(), options);
  const int before = jobs->lookups.load();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(post(uncached, charge_event(charge("ch_u", 1)), "whsec_rotated").status, 202);
  EXPECT_EQ(jobs->lookups.load() - before, 3);
  EXPECT_FALSE(uncached.handles_without_waiting(env.charges.opaque_id));
  uncached.wait_idle();
}

TEST_F(Handler, AsyncFailureIsReportedNotLost) {
  std::mutex m;
  std::vector<std::string> failures;
  WebhookHandlerOptions options;
  options.on_async_error = [&](const std::string& opaque_id, std::exception_ptr error) {
    std::lock_guard lock(m);
    failures.push_back(opaque_id + ": " + describe(error));
  };
  WebhookHandler handler(env.context(), options);
  store->fail_next_upserts(1, std::make_exception_ptr(StoreError("disk full", false)));
  EXPECT_EQ(post(handler, charge("a", 1)).status, 202);
  handler.wait_idle();
  EXPECT_EQ(handler.stats().failed_async, 1U);
  ASSERT_EQ(failures.size(), 1U);
  EXPECT_NE(failures[0].find(env.charges.opaque_id), std::string::npos);
  EXPECT_NE(failures[0].find("disk full"), std::string::npos);
  EXPECT_NE(env.logger->text().find("asynchronous write failed"), std::string::npos);
}

TEST_F(Handler, EnrichmentRunsOnTheWorker) {
  env.config->enrichment = true;
  const auto enriched = env.add_charges("enriched");
  WebhookHandler handler(env.context());
  auto request = env.signed_request(charge("e1", 1).dump());
  EXPECT_EQ(handler.handle(enriched.opaque_id, request).status, 202);
  handler.wait_idle();
  auto row = env.find("e1", &enriched);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->enrichment, json({{"enriched", "e1"}}));
  EXPECT_EQ(env.config->enrichments.load(), 1);
}

TEST_F(Handler, DependentsNotifiedWithChangedThroughTheHandler) {
  env.add_refunds(env.charges);
  WebhookHandler async_handler(env.context());
  EXPECT_EQ(post(async_handler, charge_event(charge("ch", 2))).status, 202);
  async_handler.wait_idle();
  EXPECT_EQ(post(async_handler, charge_event(charge("ch", 3))).status, 202);
  async_handler.wait_idle();
  EXPECT_EQ(post(async_handler, charge_event(charge("ch", 1))).status, 202);
  async_handler.wait_idle();
  WebhookHandlerOptions sync;
  sync.process_synchronously = true;
  WebhookHandler sync_handler(env.context(), sync);
  EXPECT_EQ(post(sync_handler, charge_event(charge("ch", 0))).status, 200);
  EXPECT_EQ(post(sync_handler, charge_event(charge("ch", 9))).status, 200);
  const auto calls = env.recorder->calls();
  ASSERT_EQ(calls.size(), 5U);
  const std::vector<bool> expected{true, true, false, false, true};
  for (std::size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].changed, expected[i]) << i;
}

TEST_F(Handler, ManyThreadsAtOnceEachRowOnce) {
  WebhookHandlerOptions options;
  options.worker_threads = 3;
  WebhookHandler handler(env.context(), options);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::latch go(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> accepted{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      go.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) {
        if (post(handler, charge("t" + std::to_string(t) + "_" + std::to_string(i), 1)).status == 202) ++accepted;
      }
    });
  }
  for (auto& th : threads) th.join();
  handler.wait_idle();
  EXPECT_EQ(accepted.load(), kThreads * kPerThread);
  EXPECT_EQ(env.count(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(store->rows_written(), static_cast<std::size_t>(kThreads * kPerThread));
}

// --- The webhook topic reaches the replicator's hooks ---

// Shopify-style orders: the topic is in X-Shopify-Topic (or, for the Stripe-style
// descriptor, the event's "type"). orders/* topics become rows that remember
// their topic; anything else is acknowledged and ignored.
class TopicOrders final : public Replicator {
 public:
  using Replicator::Replicator;

  static Descriptor descriptor(std::string name, WebhookTopic topic) {
    return Descriptor{.name = std::move(name),
                      .resource_name_singular = "order",
                      .resource_name_plural = "orders",
                      .supports_webhooks = true,
                      .webhook_topic = std::move(topic),
                      .factory = Descriptor::factory_for<TopicOrders>()};
  }

 protected:
  [[nodiscard]] Column remote_key_column() const override { return {"id", ColumnType::bigint}; }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override { return {}; }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::always(); }
  [[nodiscard]] std::pair<json, json> resource_and_event(const WebhookRequest& request) const override {
    return event_wrapped_resource_and_event(request);
  }
  [[nodiscard]] std::optional<Row> prepare_for_insert(const Payload& payload) const override {
    if (!payload.topic.starts_with("orders/")) return std::nullopt;
    return Replicator::prepare_for_insert(payload);
  }
  [[nodiscard]] std::optional<json> resource_to_data(const Payload& payload) const override {
    json data = payload.resource;
    data["_topic"] = std::string(payload.topic);
    return data;
  }
};

class HandlerTopic : public Handler {
 protected:
  void SetUp() override {
    env.registry->add(TopicOrders::descriptor("test_shopify_order_v1", {.header = "X-Shopify-Topic"}));
    env.registry->add(TopicOrders::descriptor("test_stripe_order_v1", {.event_path = {"type"}}));
    orders = add("test_shopify_order_v1");
    events = add("test_stripe_order_v1");
  }
  ServiceIntegration add(const std::string& service) {
    ServiceIntegration si;
    si.service_name = service;
    si.table_name = service + "_" + env.suffix;
    si = env.jobs->create_integration(si);
    env.make(si)->create_table();
    return si;
  }
  static WebhookRequest with_topic(const json& body, const std::string& topic) {
    WebhookRequest request;
    request.body = body.dump();
    if (!topic.empty()) request.headers = {{"X-Shopify-Topic", topic}};
    return request;
  }
  std::optional<Row> find(const ServiceIntegration& si, std::int64_t id) {
    return env.replica->find(env.make(si)->table_spec(), json(id));
  }
  ServiceIntegration orders;
  ServiceIntegration events;
};

TEST_F(HandlerTopic, TheTopicHeaderReachesTheHooksWhichRouteOrIgnoreByIt) {
  WebhookHandlerOptions options;
  options.process_synchronously = true;
  WebhookHandler handler(env.context(), options);
  EXPECT_EQ(handler.handle(orders.opaque_id, with_topic({{"id", 1}}, " orders/updated ")).status, 200);
  EXPECT_EQ(handler.handle(orders.opaque_id, with_topic({{"id", 2}}, "customers/create")).status, 200);
  EXPECT_EQ(handler.handle(orders.opaque_id, with_topic({{"id", 3}}, "")).status, 200);
  const auto written = find(orders, 1);
  ASSERT_TRUE(written);
  EXPECT_EQ(written->data.at("_topic"), "orders/updated");
  EXPECT_FALSE(find(orders, 2)) << "another topic is acknowledged and ignored";
  EXPECT_FALSE(find(orders, 3)) << "no topic header: ignored too";
  // Header names are case-insensitive, and the asynchronous path sees the topic as well.
  WebhookHandler async(env.context());
  auto lower = with_topic({{"id", 4}}, "");
  lower.headers = {{"x-shopify-topic", "orders/create"}};
  EXPECT_EQ(async.handle(orders.opaque_id, lower).status, 202);
  async.wait_idle();
  ASSERT_TRUE(find(orders, 4));
  EXPECT_EQ(find(orders, 4)->data.at("_topic"), "orders/create");
}

TEST_F(HandlerTopic, AnEventFieldCanNameTheTopicAndBackfillsHaveNone) {
  auto replicator = env.make(events);
  const json event{{"type", "orders/paid"}, {"data", {{"object", {{"id", 7}}}}}};
  ASSERT_EQ(replicator->upsert_webhook(WebhookRequest::from_json(event)).changed_count(), 1U);
  EXPECT_EQ(find(events, 7)->data.at("_topic"), "orders/paid");
  const json other{{"type", "refund.created"}, {"data", {{"object", {{"id", 8}}}}}};
  EXPECT_TRUE(replicator->upsert_webhook(WebhookRequest::from_json(other)).rows.empty());
  // A backfill item has no topic: this replicator skips it.
  EXPECT_FALSE(replicator->row_for(json{{"id", 9}}));
}

TEST(WebhookTopicSpec, AHeaderNameThatIsNotATokenIsABrokenSpecification) {
  Registry registry;
  try {
    registry.add(TopicOrders::descriptor("bad_topic_v1", {.header = "X-Shopify Topic:"}));
    FAIL() << "accepted";
  } catch (const BrokenSpecification& e) {
    EXPECT_NE(std::string(e.what()).find("descriptor 'bad_topic_v1'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("webhook_topic.header"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(registry.add(TopicOrders::descriptor("good_topic_v1", {.header = "X-GitHub-Event"})));
  EXPECT_EQ((WebhookTopic{.header = "X-GitHub-Event"}.of(
                WebhookRequest{.headers = {{"X-GitHub-Event", "issues"}}})),
            "issues");
  const json number_type{{"type", 42}};
  EXPECT_EQ((WebhookTopic{.event_path = {"type"}}.of(WebhookRequest{}, &number_type)), "42");
}

}  // namespace
}  // namespace webhookdb::webhooks
