#pragma once
// A ready-wired set of ports for the webhooks tests: a registry with the test
// replicators, a "charges" integration with its table, signed requests.

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "webhook_test_support.hpp"
#include "webhookdb/job_store.hpp"
#include "webhookdb/logger.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replica_store.hpp"
#include "webhookdb/webhooks/verification.hpp"
#include "webhookdb/webhooks/webhook_receiver.hpp"

namespace webhookdb::test {

inline constexpr const char* kWebhookSecret = "whsec_9b1fd0c3e7a2_do_not_log";

class RecordingLogger final : public Logger {
 public:
  void log(LogLevel /*level*/, std::string_view message) override {
    std::lock_guard lock(mutex_);
    text_ += std::string(message) + "\n";
  }
  [[nodiscard]] std::string text() const {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  mutable std::mutex mutex_;
  std::string text_;
};

struct Env {
  std::shared_ptr<FixedClock> clock = std::make_shared<FixedClock>();
  std::shared_ptr<ReplicaStore> replica;
  std::shared_ptr<JobStore> jobs;
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
  std::shared_ptr<ChargeConfig> config = std::make_shared<ChargeConfig>();
  std::shared_ptr<DependencyRecorder> recorder = std::make_shared<DependencyRecorder>();
  std::shared_ptr<RecordingLogger> logger = std::make_shared<RecordingLogger>();
  std::string suffix;
  ServiceIntegration charges;

  Env(std::shared_ptr<ReplicaStore> replica_store, std::shared_ptr<JobStore> job_store, std::string table_suffix = "t")
      : replica(std::move(replica_store)), jobs(std::move(job_store)), suffix(std::move(table_suffix)) {
    registry->add(charge_descriptor("test_charge_v1", config));
    registry->add(refund_descriptor("test_refund_v1", "test_charge_v1", recorder));
    Descriptor no_webhooks = charge_descriptor("test_pull_only_v1", config);
    no_webhooks.supports_webhooks = false;
    registry->add(no_webhooks);
    charges = add_charges("charges");
  }

  [[nodiscard]] ReplicatorContext context() const {
    ReplicatorContext ctx;
    ctx.replica = replica;
    ctx.jobs = jobs;
    ctx.clock = clock;
    ctx.logger = logger;
    ctx.registry = registry;
    return ctx;
  }

  ServiceIntegration add_charges(const std::string& table, const std::string& secret = kWebhookSecret,
                                 const std::string& service = "test_charge_v1") {
    ServiceIntegration si;
    si.service_name = service;
    si.table_name = table + "_" + suffix;
    si.webhook_secret = secret;
    si.backfill_key = "sk_test_backfill";
    si = jobs->create_integration(si);
    make(si)->create_table();
    return si;
  }

  ServiceIntegration add_refunds(const ServiceIntegration& dependency) {
    ServiceIntegration si;
    si.service_name = "test_refund_v1";
    si.table_name = "refunds_" + suffix;
    si.depends_on = dependency.id;
    si = jobs->create_integration(si);
    make(si)->create_table();
    return si;
  }

  [[nodiscard]] std::unique_ptr<Replicator> make(const ServiceIntegration& si) const {
    return registry->make(si, context());
  }

  [[nodiscard]] std::optional<Row> find(const std::string& id, const ServiceIntegration* si = nullptr) const {
    auto r = make(si != nullptr ? *si : charges);
    return replica->find(r->table_spec(), id);
  }
  [[nodiscard]] std::size_t count(const ServiceIntegration* si = nullptr) const {
    auto r = make(si != nullptr ? *si : charges);
    return replica->count(r->table_spec());
  }

  [[nodiscard]] std::vector<std::pair<std::string, std::string>> signature(const std::string& body,
                                                                           const std::string& secret = kWebhookSecret) const {
    return {{"Stripe-Signature", webhooks::stripe_signature_header(secret, clock->unix_now(), body)}};
  }

  [[nodiscard]] WebhookRequest signed_request(const std::string& body, const std::string& secret = kWebhookSecret) const {
    WebhookRequest r;
    r.path = "/v1/webhooks/" + charges.opaque_id;
    r.body = body;
    for (auto& [k, v] : signature(body, secret)) r.headers.emplace_back(k, v);
    return r;
  }
};

// A backfill and webhooks (over HTTP, through `receiver`) write the same keys
// at the same time. For even keys the backfill has the newer version, for odd
// keys the webhook does; whatever the interleaving, each key must end with
// version 2 from the right source.
inline void run_webhook_backfill_race(Env& env, webhooks::WebhookReceiver& receiver, int pages = 10, int per_page = 20) {
  auto key = [](int i) { return "race_" + std::to_string(i); };
  const int total = pages * per_page;
  env.config->pages.clear();
  for (int p = 0; p < pages; ++p) {
    nlohmann::json items = nlohmann::json::array();
    for (int i = p * per_page; i < (p + 1) * per_page; ++i) {
      auto c = charge(key(i), i % 2 == 0 ? 2 : 1);
      c["source"] = "backfill";
      items.push_back(c);
    }
    env.config->pages.push_back(items);
  }
  env.config->before_page = [](std::size_t) { std::this_thread::sleep_for(std::chrono::milliseconds(1)); };

  std::atomic<int> not_accepted{0};
  std::vector<std::thread> senders;
  constexpr int kSenders = 4;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      TestConnection connection(receiver.port());
      const std::string target = "/v1/webhooks/" + env.charges.opaque_id;
      for (int i = s; i < total; i += kSenders) {
        auto c = charge(key(i), i % 2 == 0 ? 1 : 2);
        c["source"] = "webhook";
        const std::string body = charge_event(c).dump();
        if (connection.post(target, body, env.signature(body)).status >= 300) not_accepted.fetch_add(1);
      }
    });
  }
  std::exception_ptr backfill_error;
  std::thread backfill([&] {
    try {
      BackfillJob job;
      job.service_integration_id = env.charges.id;
      job = env.jobs->create_job(job);
      env.make(env.charges)->backfill(job);
    } catch (...) {
      backfill_error = std::current_exception();
    }
  });
  for (auto& t : senders) t.join();
  backfill.join();
  receiver.handler().wait_idle();
  env.config->before_page = nullptr;

  ASSERT_FALSE(backfill_error) << describe(backfill_error);
  EXPECT_EQ(not_accepted.load(), 0);
  EXPECT_EQ(env.count(), static_cast<std::size_t>(total));
  for (int i = 0; i < total; ++i) {
    auto row = env.find(key(i));
    ASSERT_TRUE(row) << key(i);
    EXPECT_EQ(row->values[0], 2) << key(i);
    EXPECT_EQ(row->data.value("source", ""), i % 2 == 0 ? "backfill" : "webhook") << key(i);
  }
}

// A receiver on the memory stores. SetUp sets small limits; a test changes
// `options` as it needs, then start()s it. No log line may hold the secret.
class MemoryReceiverTest : public ::testing::Test {
 protected:
  std::shared_ptr<memory::MemoryReplicaStore> store = std::make_shared<memory::MemoryReplicaStore>();
  Env env{store, std::make_shared<memory::MemoryJobStore>()};
  webhooks::WebhookReceiverOptions options;
  std::unique_ptr<webhooks::WebhookReceiver> receiver;

  void SetUp() override {
    options.max_body_bytes = 64 * 1024;
    options.idle_timeout = std::chrono::seconds(5);
  }
  void start() {
    receiver = std::make_unique<webhooks::WebhookReceiver>(env.context(), options);
    receiver->start();
  }
  void TearDown() override {
    if (receiver) receiver->stop();
    const std::string log = env.logger->text();
    EXPECT_EQ(log.find(kWebhookSecret), std::string::npos) << log;
  }
  [[nodiscard]] std::string target() const { return "/v1/webhooks/" + env.charges.opaque_id; }
  ClientResponse post_signed(const nlohmann::json& body, const std::string& path = "") {
    return post_signed_raw(body.dump(), path);
  }
  ClientResponse post_signed_raw(const std::string& text, const std::string& path = "") {
    return post_once(receiver->port(), path.empty() ? target() : path, text, env.signature(text));
  }
};

}  // namespace webhookdb::test
