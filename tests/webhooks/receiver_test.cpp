// The Beast receiver over real HTTP on loopback, with the memory stores.

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <thread>

#include "webhook_test_env.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/webhooks/webhook_receiver.hpp"

namespace webhookdb::webhooks {
namespace {

using nlohmann::json;
using namespace test;

using Receiver = MemoryReceiverTest;

TEST_F(Receiver, StartsOnAnEphemeralLoopbackPort) {
  start();
  EXPECT_NE(receiver->port(), 0);
  EXPECT_EQ(receiver->url_for("svi_x"),
            "http://127.0.0.1:" + std::to_string(receiver->port()) + "/v1/webhooks/svi_x");
  EXPECT_THROW(receiver->start(), InvalidPrecondition);
}

TEST_F(Receiver, PortInUseIsAClearError) {
  start();
  WebhookReceiverOptions taken;
  taken.port = receiver->port();
  WebhookReceiver second(env.context(), taken);
  try {
    second.start();
    FAIL() << "expected InvalidPrecondition";
  } catch (const InvalidPrecondition& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(receiver->port())), std::string::npos) << e.what();
  }
}

TEST_F(Receiver, BadPathPrefixIsRejected) {
  options.path_prefix = "hooks";
  EXPECT_THROW(WebhookReceiver(env.context(), options), InvalidPrecondition);
}

TEST_F(Receiver, ValidWebhookIs202AndLands) {
  start();
  const auto r = post_signed(charge_event(charge("ch_1", 1, 250)));
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, "ok");
  receiver->handler().wait_idle();
  auto row = env.find("ch_1");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->values[1], 250);
}

TEST_F(Receiver, QueryStringIsAllowedASubpathIsNot) {
  start();
  const std::string body = charge("q1", 1).dump();
  EXPECT_EQ(post_once(receiver->port(), target() + "?source=stripe", body, env.signature(body)).status, 202);
  EXPECT_EQ(post_once(receiver->port(), target() + "/events", body, env.signature(body)).status, 404);
  receiver->handler().wait_idle();
  EXPECT_TRUE(env.find("q1"));
}

TEST_F(Receiver, SynchronousAnswerCarriesTheRow) {
  options.handler.process_synchronously = true;
  start();
  const auto r = post_signed(charge_event(charge("ch_1", 1, 250)));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(json::parse(r.body), charge("ch_1", 1, 250));
}

TEST_F(Receiver, BadSignatureIs401) {
  start();
  const std::string body = charge("a", 1).dump();
  const auto r = post_once(receiver->port(), target(), body, env.signature(body, "whsec_wrong"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body.find(kWebhookSecret), std::string::npos);
  EXPECT_EQ(post_once(receiver->port(), target(), body).status, 401);  // unsigned
  EXPECT_EQ(post_once(receiver->port(), target(), body, {{"Stripe-Signature", "t=1,v1=zz"}}).status, 401);
}

TEST_F(Receiver, UnknownIntegrationIs404) {
  start();
  const std::string body = charge("a", 1).dump();
  EXPECT_EQ(post_once(receiver->port(), "/v1/webhooks/svi_nope", body, env.signature(body)).status, 404);
  EXPECT_EQ(post_once(receiver->port(), "/v1/webhooks/", body, env.signature(body)).status, 404);
  EXPECT_EQ(post_once(receiver->port(), "/v1/webhooks/bad%20id", body, env.signature(body)).status, 404);
  EXPECT_EQ(post_once(receiver->port(), "/elsewhere", body, env.signature(body)).status, 404);
}

TEST_F(Receiver, WrongMethodIs405) {
  start();
  for (auto verb : {http::verb::get, http::verb::put, http::verb::delete_}) {
    TestConnection c(receiver->port());
    const auto r = c.send(verb, target(), verb == http::verb::get ? "" : "{}");
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(r.header("allow"), "POST");
  }
}

TEST_F(Receiver, OversizedBodyByContentLengthIs413BeforeTheBodyIsRead) {
  start();
  TestConnection c(receiver->port());
  // Announce 10 MB but send nothing: the answer comes from the headers alone.
  c.send_raw("POST " + target() +
             " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: 10000000\r\n\r\n");
  const auto r = c.read_response();
  EXPECT_EQ(r.status, 413);
  EXPECT_FALSE(r.keep_alive);
}

TEST_F(Receiver, OversizedBodySentAnywayIs413) {
  start();
  const std::string big = "{\"id\":\"big\",\"version\":1,\"pad\":\"" + std::string(200 * 1024, 'x') + "\"}";
  const auto r = post_signed_raw(big);
  EXPECT_EQ(r.status, 413);
  receiver->handler().wait_idle();
  EXPECT_FALSE(env.find("big"));
}

TEST_F(Receiver, OversizedChunkedBodyIs413WhileReading) {
  start();
  TestConnection c(receiver->port());
  std::string request = "POST " + target() + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk(16 * 1024, 'a');
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
  for (int i = 0; i < 6; ++i) request += std::string(size_line) + chunk + "\r\n";  // 96 KiB > 64 KiB
  request += "0\r\n\r\n";
  c.send_raw(request);
  EXPECT_EQ(c.read_response().status, 413);
}

TEST_F(Receiver, ChunkedBodyUnderTheLimitWorks) {
  start();
  const std::string body = charge("chunky", 1).dump();
  TestConnection c(receiver->port());
  std::string request = "POST " + target() + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n";
  for (const auto& [k, v] : env.signature(body)) request += k + ": " + v + "\r\n";
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", body.size() - 5);
  request += "\r\n" + std::string(size_line) + body.substr(0, body.size() - 5) + "\r\n5\r\n" +
             body.substr(body.size() - 5) + "\r\n0\r\n\r\n";
  c.send_raw(request);
  EXPECT_EQ(c.read_response().status, 202);
  receiver->handler().wait_idle();
  EXPECT_TRUE(env.find("chunky"));
}

TEST_F(Receiver, MalformedBodiesAre400) {
  start();
  for (const std::string& body :
       {std::string("{not json"), std::string("{\"id\":\"\xff\xfe\",\"version\":1}"), std::string("[\"a\"]"),
        std::string("123"), std::string("{\"version\":1}"), std::string(500, '[') + std::string(500, ']')}) {
    const auto r = post_signed_raw(body);
    EXPECT_EQ(r.status, 400) << body.substr(0, 40) << " -> " << r.body;
  }
  receiver->handler().wait_idle();
  EXPECT_EQ(env.count(), 0U);
  EXPECT_EQ(receiver->handler().stats().failed, 0U);
}

TEST_F(Receiver, GarbageThatIsNotHttpIs400) {
  start();
  TestConnection c(receiver->port());
  c.send_raw("HELLO THERE\r\n\r\n");
  EXPECT_EQ(c.read_response().status, 400);
}

TEST_F(Receiver, OversizedHeadersAre431) {
  start();
  TestConnection c(receiver->port());
  c.send_raw("POST " + target() + " HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(32 * 1024, 'h') +
             "\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(c.read_response().status, 431);
}

TEST_F(Receiver, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  TestConnection c(receiver->port());
  for (int i = 0; i < 5; ++i) {
    const std::string body = charge("ka" + std::to_string(i), 1).dump();
    const auto r = c.post(target(), body, env.signature(body));
    EXPECT_EQ(r.status, 202);
    EXPECT_TRUE(r.keep_alive);
  }
  // Errors that leave the stream in a known state keep it open too.
  const auto bad = c.post(target(), "{}", env.signature("{}", "whsec_wrong"));
  EXPECT_EQ(bad.status, 401);
  const std::string body = charge("ka_last", 1).dump();
  EXPECT_EQ(c.post(target(), body, env.signature(body)).status, 202);
  receiver->handler().wait_idle();
  EXPECT_EQ(env.count(), 6U);
}

TEST_F(Receiver, ExpectContinueIsAnswered) {
  start();
  const std::string body = charge("cont", 1).dump();
  TestConnection c(receiver->port());
  std::string head = "POST " + target() + " HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n";
  for (const auto& [k, v] : env.signature(body)) head += k + ": " + v + "\r\n";
  c.send_raw(head + "\r\n");
  EXPECT_EQ(c.read_response().status, 100);
  c.send_raw(body);
  EXPECT_EQ(c.read_response().status, 202);
}

TEST_F(Receiver, StopClosesIdleKeepAliveConnectionsPromptly) {
  start();
  TestConnection c(receiver->port());
  const std::string body = charge("s", 1).dump();
  EXPECT_EQ(c.post(target(), body, env.signature(body)).status, 202);
  const auto t0 = std::chrono::steady_clock::now();
  receiver->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_TRUE(c.closed_by_peer());
  // Accepted work was drained, not dropped.
  EXPECT_TRUE(env.find("s"));
  receiver->stop();  // idempotent
}

TEST_F(Receiver, StopWithoutStartIsFine) {
  receiver = std::make_unique<WebhookReceiver>(env.context(), options);
  receiver->stop();
}

TEST_F(Receiver, HundredConcurrentRequestsEachLandOnce) {
  options.io_threads = 4;
  options.handler.worker_threads = 2;
  start();
  constexpr int kRequests = 100;
  std::latch go(kRequests);
  std::vector<std::thread> clients;
  std::atomic<int> accepted{0};
  std::atomic<int> other{0};
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([&, i] {
      const std::string body = charge_event(charge("cc_" + std::to_string(i), 1, i)).dump();
      const auto headers = env.signature(body);
      TestConnection c(receiver->port());
      go.arrive_and_wait();
      const auto r = c.post(target(), body, headers, false);
      (r.status == 202 ? accepted : other).fetch_add(1);
    });
  }
  for (auto& t : clients) t.join();
  receiver->handler().wait_idle();
  EXPECT_EQ(accepted.load(), kRequests);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(env.count(), static_cast<std::size_t>(kRequests));
  EXPECT_EQ(store->rows_written(), static_cast<std::size_t>(kRequests));
  for (int i = 0; i < kRequests; ++i) {
    auto row = env.find("cc_" + std::to_string(i));
    ASSERT_TRUE(row) << i;
    EXPECT_EQ(row->values[1], i);
  }
}

}  // namespace
}  // namespace webhookdb::webhooks

namespace webhookdb::webhooks {
namespace {

TEST_F(Receiver, WebhookAndBackfillRacingEndWithTheNewest) {
  start();
  test::run_webhook_backfill_race(env, *receiver);
}

}  // namespace
}  // namespace webhookdb::webhooks
