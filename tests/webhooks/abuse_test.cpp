// The receiver under abuse (issue 16, items 7, 8, 10, 11), with the memory
// stores over real HTTP on loopback: payloads that cannot become rows are
// refused before any 202, wrong JSON shapes are 4xx never 500, a flood of
// stalled large bodies stays within the in-flight budget while an ordinary
// client is still served, slow headers time out, and paths are exact.

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "webhook_test_env.hpp"
#include "support/sanitizers.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/memory/memory_webhook_inbox.hpp"
#include "webhookdb/webhooks/webhook_receiver.hpp"

namespace webhookdb::webhooks {
namespace {

using nlohmann::json;
using namespace test;
using Clock = std::chrono::steady_clock;

// Sanitizers slow the receiver several times over; the latency bound scales.
// TSan most (a CI rehearsal on a loaded 2-core machine took 4.9 s for the
// flood test's good request); its bound stays under the flood's 8 s idle
// timeout, so a request starved until the flood times out still fails.
constexpr int kSlowdown = test::kSanitizerSlowdown;

// Unwraps its envelope the way examples/github_issues does: whatever is
// under "issue" is the resource, the body the event (so "issue": [1] is an
// array of resources with an event).
class NaiveIssueReplicator : public Replicator {
 public:
  using Replicator::Replicator;

 protected:
  [[nodiscard]] Column remote_key_column() const override { return {"id", ColumnType::bigint}; }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override {
    return {Column("title", ColumnType::text).optional()};
  }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::always(); }
  [[nodiscard]] std::pair<json, json> resource_and_event(const WebhookRequest& request) const override {
    auto body = request.json.is_null() ? json::parse(request.body) : request.json;
    if (body.contains("issue")) return {body["issue"], body};
    return {body, nullptr};
  }
};

std::size_t rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6)) * 1024;
  }
  return 0;
}

// A raw loopback socket that never blocks: a flood client writes what the
// kernel takes and walks on.
int open_nonblocking(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

void send_some(int fd, const std::string& bytes) {
  std::size_t sent = 0;
  const auto until = Clock::now() + std::chrono::milliseconds(50);
  while (sent < bytes.size() && Clock::now() < until) {
    const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

using Abuse = MemoryReceiverTest;

// --- item 7: everything checkable is checked before the 202 ---

TEST_F(Abuse, RemoteKeyTooLongToIndexIs400BeforeAny202) {
  start();
  const auto r = post_signed(charge_event(charge(random_key(8 * 1024), 1)));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("remote key"), std::string::npos) << r.body;
  receiver->handler().wait_idle();
  EXPECT_EQ(receiver->handler().stats().failed_async, 0U);
  // A key at the documented bound is still fine.
  EXPECT_EQ(post_signed(charge_event(charge(random_key(kMaxIndexedValueBytes), 1))).status, 202);
}

TEST_F(Abuse, WithAnInboxAnUnstorablePayloadIsRefusedNotStored) {
  auto inbox = std::make_shared<memory::MemoryWebhookInbox>();
  options.handler.inbox = inbox;
  start();
  const auto r = post_signed(charge_event(charge(random_key(8 * 1024), 1)));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(inbox->size(), 0U);
  EXPECT_EQ(post_signed(charge_event(charge("ch_ok", 1))).status, 202);
  EXPECT_EQ(inbox->size(), 1U);
}

TEST_F(Abuse, SynchronousUnstorablePayloadIs400) {
  options.handler.process_synchronously = true;
  start();
  const auto r = post_signed(charge_event(charge(random_key(8 * 1024), 1)));
  EXPECT_EQ(r.status, 400) << r.body;
}

// --- item 8: wrong JSON shapes are 4xx with a message, never 500 ---

TEST_F(Abuse, WrongJsonShapesAre4xxNever500) {
  Descriptor naive;
  naive.name = "test_naive_issue_v1";
  naive.supports_webhooks = true;
  naive.factory = [](const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& ctx) {
    return std::unique_ptr<Replicator>(std::make_unique<NaiveIssueReplicator>(d, si, ctx));
  };
  env.registry->add(naive);
  ServiceIntegration issues;
  issues.service_name = naive.name;
  issues.table_name = "naive_issues";
  issues.skip_webhook_verification = true;
  issues = env.jobs->create_integration(issues);
  env.make(issues)->create_table();
  start();

  const std::string issues_target = "/v1/webhooks/" + issues.opaque_id;
  for (const char* body : {R"({"action":"opened","issue":[1]})", R"({"issue":[{"id":1}]})",
                           R"({"issue":"x"})", R"({"issue":{"id":[1]}})", R"({"issue":{"id":"one"}})",
                           R"({"issue":{"id":1,"title":{"a":1}}})", R"([[1],[2]])"}) {
    const auto r = post_once(receiver->port(), issues_target, body);
    EXPECT_GE(r.status, 400) << body;
    EXPECT_LT(r.status, 500) << body << " -> " << r.status << " " << r.body;
    EXPECT_FALSE(r.body.empty()) << body;
  }
  for (const json& body : {json{{"data", {{"object", json::array({1, 2})}}}},
                           json{{"data", {{"object", {{"id", json::array({1})}, {"version", 1}}}}}},
                           charge_event(json{{"id", "c"}, {"version", "two"}}),
                           charge_event(json{{"id", "c"}, {"version", 1}, {"amount", json::object()}}),
                           json::array({json::array({1, 2})})}) {
    const auto r = post_signed(body);
    EXPECT_GE(r.status, 400) << body;
    EXPECT_LT(r.status, 500) << body << " -> " << r.status << " " << r.body;
  }
  EXPECT_EQ(receiver->handler().stats().failed, 0U);
}

// --- item 11: paths are exact ---

TEST_F(Abuse, PathsAreExact) {
  start();
  const std::string body = charge("p1", 1).dump();
  for (const std::string& path : {target() + "/../../x", target() + "/extra", target() + "/", target() + "//",
                                  "/v1/webhooks//" + env.charges.opaque_id, target() + "%2F..",
                                  "/v1/webhooks/../webhooks/" + env.charges.opaque_id}) {
    EXPECT_EQ(post_once(receiver->port(), path, body, env.signature(body)).status, 404) << path;
  }
  EXPECT_EQ(post_once(receiver->port(), target() + "?source=stripe", body, env.signature(body)).status, 202);
  EXPECT_EQ(post_once(receiver->port(), target(), body, env.signature(body)).status, 202);
}

// --- item 10: bounded memory under a flood of stalled large bodies ---

TEST_F(Abuse, FloodOfStalledLargeBodiesStaysWithinTheBudget) {
  constexpr std::size_t kBody = 1024 * 1024;
  constexpr int kFlood = 400;
  options.max_body_bytes = kBody;
  options.max_connections = 1024;
  options.max_body_bytes_in_flight = 24 * kBody;
  options.idle_timeout = std::chrono::seconds(8);
  start();
  const std::size_t rss_before = rss_bytes();

  const std::string head =
      "POST " + target() +
      " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(kBody) +
      "\r\n\r\n";
  const std::string most(kBody - 1024, ' ');
  std::vector<int> flood;
  const auto started = Clock::now();
  for (int i = 0; i < kFlood && Clock::now() - started < std::chrono::seconds(6); ++i) {
    const int fd = open_nonblocking(receiver->port());
    ASSERT_GE(fd, 0);
    flood.push_back(fd);
    send_some(fd, head);
    send_some(fd, most);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  const auto before_good = Clock::now();
  const auto r = post_signed(charge_event(charge("ch_good", 1)));
  const auto took = Clock::now() - before_good;
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_LT(took, std::chrono::seconds(1) * kSlowdown);

  const std::size_t rss_after = rss_bytes();
  EXPECT_LT(rss_after - std::min(rss_after, rss_before), 256U * 1024 * 1024)
      << "RSS before " << rss_before << ", after " << rss_after;
  const auto stats = receiver->stats();
  EXPECT_LE(stats.peak_body_bytes_in_flight, options.max_body_bytes_in_flight);
  EXPECT_LE(stats.peak_connections, options.max_connections);
  EXPECT_GT(stats.refused_busy, 0U);
  for (int fd : flood) ::close(fd);
}

TEST_F(Abuse, ConnectionsPastTheCapWaitUntilOneCloses) {
  options.max_connections = 4;
  start();
  std::vector<std::unique_ptr<TestConnection>> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<TestConnection>(receiver->port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(receiver->stats().connections, 4U);
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    idle.front()->socket().close();
  });
  const auto r = post_signed(charge_event(charge("ch_cap", 1)));
  closer.join();
  EXPECT_EQ(r.status, 202);
  EXPECT_LE(receiver->stats().peak_connections, 4U);
}

TEST_F(Abuse, TrickledHeadersTimeOut) {
  options.idle_timeout = std::chrono::seconds(30);
  options.header_timeout = std::chrono::milliseconds(800);
  start();
  TestConnection slow(receiver->port());
  const auto started = Clock::now();
  bool closed = false;
  slow.send_raw("POST " + target() + " HTTP/1.1\r\n");
  for (int i = 0; i < 40 && !closed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    beast::error_code ec;
    const std::string line = "X-Slow-" + std::to_string(i) + ": a\r\n";
    net::write(slow.socket(), net::buffer(line), ec);
    if (ec) closed = true;
  }
  if (!closed) closed = slow.closed_by_peer();
  EXPECT_TRUE(closed);
  EXPECT_LT(Clock::now() - started, std::chrono::milliseconds(2500));
}

}  // namespace
}  // namespace webhookdb::webhooks
