#pragma once
// Test replicators, a fixed clock, and a tiny blocking HTTP client (Beast) for
// the webhooks tests.

#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/webhooks/event_payload.hpp"
#include "webhookdb/webhooks/verification.hpp"
#include "webhookdb/webhooks/webhook_policy.hpp"

namespace webhookdb::test {

using nlohmann::json;

// 2024-01-01T00:00:00Z unless set. Thread-safe.
class FixedClock final : public Clock {
 public:
  static constexpr std::int64_t kStart = 1'704'067'200;
  [[nodiscard]] Timestamp now() const override { return Timestamp{std::chrono::seconds(seconds_.load())}; }
  void set_unix(std::int64_t s) { seconds_.store(s); }
  [[nodiscard]] std::int64_t unix_now() const { return seconds_.load(); }

 private:
  std::atomic<std::int64_t> seconds_{kStart};
};

// What a dependent saw in on_dependency_webhook_upsert.
struct DependencyCall {
  std::string dependency;  // the dependency's opaque id
  json key;
  json version;
  bool changed = false;
};

class DependencyRecorder {
 public:
  void add(DependencyCall call) {
    std::lock_guard lock(mutex_);
    calls_.push_back(std::move(call));
  }
  [[nodiscard]] std::vector<DependencyCall> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    calls_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<DependencyCall> calls_;
};

enum class VerifyScheme { none, stripe, shopify };

// Knobs of the "charge" test replicator.
struct ChargeConfig {
  VerifyScheme verify = VerifyScheme::stripe;
  bool synchronous = false;
  bool enrichment = false;
  // When set: dispatch_request_to returns this (nullptr: itself).
  std::function<std::unique_ptr<Replicator>(Replicator& self, const WebhookRequest&)> dispatch;
  // Backfill pages: page i is pages[i]; the token is the next index.
  std::vector<json> pages;
  // Called before each page is returned (to interleave with webhooks).
  std::function<void(std::size_t page)> before_page;
  std::atomic<int> enrichments{0};
};

// Remote key "id" (text), "version" (integer, the update rule), "amount"
// (optional integer). Bodies may be Stripe-style events, bare objects or arrays.
class ChargeReplicator : public Replicator, public webhooks::WebhookPolicy {
 public:
  ChargeReplicator(const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& ctx,
                   std::shared_ptr<ChargeConfig> config)
      : Replicator(d, si, ctx), config_(std::move(config)) {}

  std::unique_ptr<Replicator> dispatch_request_to(const WebhookRequest& request) override {
    return config_->dispatch ? config_->dispatch(*this, request) : nullptr;
  }
  [[nodiscard]] bool process_webhooks_synchronously() const override { return config_->synchronous; }

  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& /*last*/,
                                   const CancellationToken& /*cancel*/) override {
    const std::size_t index = token.empty() ? 0 : std::stoul(token);
    if (config_->before_page) config_->before_page(index);
    BackfillPage page;
    page.items = index < config_->pages.size() ? config_->pages[index] : json::array();
    if (index + 1 < config_->pages.size()) page.next = std::to_string(index + 1);
    return page;
  }

 protected:
  [[nodiscard]] Column remote_key_column() const override { return {"id", ColumnType::text}; }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override {
    std::vector<Column> columns{Column("version", ColumnType::integer),
                                Column("amount", ColumnType::integer).optional()};
    // A column read from the enrichment gives the table its enrichment column.
    if (config_->enrichment) columns.push_back(Column("enriched", ColumnType::text).enrichment().optional());
    return columns;
  }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::when_newer("version"); }
  [[nodiscard]] std::optional<json> fetch_enrichment(const Payload& payload) const override {
    config_->enrichments.fetch_add(1);
    return json{{"enriched", payload.resource.value("id", "")}};
  }
  [[nodiscard]] std::pair<json, json> resource_and_event(const WebhookRequest& request) const override {
    return webhooks::event_wrapped_resource_and_event(request);
  }
  WebhookResponse verify_webhook(const WebhookRequest& request) override {
    switch (config_->verify) {
      case VerifyScheme::stripe:
        return webhooks::verify_stripe_signature(request, integration().webhook_secret, clock());
      case VerifyScheme::shopify:
        return webhooks::verify_shopify_hmac(request, integration().webhook_secret);
      case VerifyScheme::none:
        break;
    }
    return WebhookResponse::ok(202);
  }

 private:
  std::shared_ptr<ChargeConfig> config_;
};

// Depends on a charge integration; records every notification.
class RefundReplicator : public Replicator {
 public:
  RefundReplicator(const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& ctx,
                   std::shared_ptr<DependencyRecorder> recorder)
      : Replicator(d, si, ctx), recorder_(std::move(recorder)) {}

  void on_dependency_webhook_upsert(Replicator& dependency, const Row& row, bool changed) override {
    recorder_->add({dependency.integration().opaque_id, row.key, row.data.value("version", json()), changed});
  }

 protected:
  [[nodiscard]] Column remote_key_column() const override { return {"id", ColumnType::text}; }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override { return {}; }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::always(); }

 private:
  std::shared_ptr<DependencyRecorder> recorder_;
};

inline Descriptor charge_descriptor(const std::string& name, std::shared_ptr<ChargeConfig> config) {
  Descriptor d;
  d.name = name;
  d.resource_name_singular = "charge";
  d.resource_name_plural = "charges";
  d.supports_webhooks = true;
  d.supports_backfill = true;
  d.factory = [config](const Descriptor& desc, const ServiceIntegration& si, const ReplicatorContext& ctx) {
    return std::unique_ptr<Replicator>(std::make_unique<ChargeReplicator>(desc, si, ctx, config));
  };
  return d;
}

inline Descriptor refund_descriptor(const std::string& name, const std::string& dependency,
                                    std::shared_ptr<DependencyRecorder> recorder) {
  Descriptor d;
  d.name = name;
  d.resource_name_singular = "refund";
  d.resource_name_plural = "refunds";
  d.supports_webhooks = true;
  d.dependency_descriptor = dependency;
  d.factory = [recorder](const Descriptor& desc, const ServiceIntegration& si, const ReplicatorContext& ctx) {
    return std::unique_ptr<Replicator>(std::make_unique<RefundReplicator>(desc, si, ctx, recorder));
  };
  return d;
}

// `n` random letters and digits: a key PostgreSQL cannot compress below the
// btree limit the way a run of one letter compresses.
inline std::string random_key(std::size_t n) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::mt19937 gen(static_cast<std::mt19937::result_type>(n));
  std::uniform_int_distribution<std::size_t> pick(0, sizeof kChars - 2);
  std::string out(n, ' ');
  for (char& c : out) c = kChars[pick(gen)];
  return out;
}

inline json charge(const std::string& id, int version, std::optional<int> amount = std::nullopt) {
  json c{{"id", id}, {"object", "charge"}, {"version", version}};
  if (amount) c["amount"] = *amount;
  return c;
}

inline json charge_event(const json& object, const std::string& type = "charge.updated") {
  return json{
      {"id", "evt_" + object.value("id", std::string())}, {"type", type}, {"data", {{"object", object}}}};
}

// --- A blocking HTTP/1.1 client for loopback tests ---

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct ClientResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  bool keep_alive = false;

  [[nodiscard]] std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class TestConnection {
 public:
  explicit TestConnection(std::uint16_t port, std::chrono::seconds timeout = std::chrono::seconds(10))
      : socket_(ioc_), port_(port) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(timeout.count());
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }

  ClientResponse send(http::verb verb, const std::string& target, const std::string& body,
                      const std::vector<std::pair<std::string, std::string>>& headers = {},
                      bool keep_alive = true) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port_));
    req.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : headers) req.set(name, value);
    req.keep_alive(keep_alive);
    req.body() = body;
    req.prepare_payload();
    http::write(socket_, req);
    return read_response();
  }

  ClientResponse post(const std::string& target, const std::string& body,
                      const std::vector<std::pair<std::string, std::string>>& headers = {},
                      bool keep_alive = true) {
    return send(http::verb::post, target, body, headers, keep_alive);
  }

  void send_raw(const std::string& bytes) { net::write(socket_, net::buffer(bytes)); }

  ClientResponse read_response() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(socket_, buffer_, parser);
    auto res = parser.release();
    ClientResponse out;
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    out.keep_alive = res.keep_alive();
    for (const auto& field : res) {
      std::string name(field.name_string());
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out.headers[name] = std::string(field.value());
    }
    return out;
  }

  // True when the server closed the connection (EOF or reset on the next read).
  bool closed_by_peer() {
    if (buffer_.size() > 0) return false;
    std::array<char, 1> one{};
    beast::error_code ec;
    const std::size_t n = socket_.read_some(net::buffer(one), ec);
    return n == 0 && ec;
  }

  tcp::socket& socket() { return socket_; }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  std::uint16_t port_;
  beast::flat_buffer buffer_;
};

inline ClientResponse post_once(std::uint16_t port, const std::string& target, const std::string& body,
                                const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  TestConnection connection(port);
  return connection.post(target, body, headers, /*keep_alive=*/false);
}

}  // namespace webhookdb::test
