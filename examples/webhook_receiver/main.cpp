// A host that receives webhooks for the example replicators (Stripe-style
// charges, GitHub-style issues) and writes them into the memory store, or into
// PostgreSQL with --database-url.
//
//   webhook_receiver [--port N] [--secret S] [--sync] [--database-url URL [--inbox]]
//                    [--batch-window-us N] [--max-batch N] [--batch-writers N] [--self-test]
//
// Every 2xx is sent after its webhook is committed: with --sync as its row,
// with --inbox as an entry of the durable inbox (PostgreSQL), which a
// processor thread here drains in batches. Requests arriving together share
// one transaction (a micro-batch: --batch-window-us, --max-batch).
//
// It prints the port and one URL per integration, then serves until SIGINT or
// SIGTERM. Sign a Stripe-style request with webhooks::stripe_signature_header,
// or with openssl:
//   t=$(date +%s); body='{"type":"charge.updated","data":{"object":{...}}}'
//   sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$SECRET" -hex | cut -d' ' -f2)
//   curl -H "Stripe-Signature: t=$t,v1=$sig" -d "$body" http://127.0.0.1:PORT/v1/webhooks/svi_example_charges
// --self-test sends signed webhooks to itself, checks they landed, and exits.

#include <chrono>
#include <csignal>
#include <functional>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <webhookdb/memory/memory_job_store.hpp>
#include <webhookdb/memory/memory_replica_store.hpp>
#include <webhookdb/metrics.hpp>
#include <webhookdb/registry.hpp>
#include <webhookdb/webhooks/webhooks.hpp>

#ifdef WEBHOOKDB_EXAMPLE_WITH_PG
#include <thread>

#include <webhookdb/cancellation.hpp>
#include <webhookdb/jobs/metrics_server.hpp>
#include <webhookdb/jobs/webhook_inbox_processor.hpp>
#include <webhookdb/pg/job_store.hpp>
#include <webhookdb/pg/replica_store.hpp>
#include <webhookdb/pg/webhook_inbox.hpp>
#endif

#include "github_issues/github_replicators.hpp"
#include "stripe_charges/stripe_charge_replicator.hpp"

namespace {

using namespace webhookdb;
using nlohmann::json;

// The example replicators plus what a webhook needs: verification, and for
// charges an answer carrying the stored row when --sync is given.
class VerifiedStripeCharges : public examples::StripeChargeReplicator, public webhooks::WebhookPolicy {
 public:
  using StripeChargeReplicator::StripeChargeReplicator;

 protected:
  WebhookResponse verify_webhook(const WebhookRequest& request) override {
    return webhooks::verify_stripe_signature(request, integration().webhook_secret, clock());
  }
};

class VerifiedGithubIssues : public examples::GithubIssueReplicator {
 public:
  using GithubIssueReplicator::GithubIssueReplicator;

 protected:
  WebhookResponse verify_webhook(const WebhookRequest& request) override {
    return webhooks::verify_hmac_sha256_hex(request, integration().webhook_secret, "X-Hub-Signature-256", "sha256=");
  }
};

struct Args {
  unsigned short port = 0;
  std::string secret = "whsec_example_local_only";
  std::string database_url;
  bool sync = false;
  bool inbox = false;
  long batch_window_us = -1;
  long max_batch = -1;
  long batch_writers = -1;
  bool self_test = false;
  int metrics_port = -1;
};

// Exits (0 for --help, 2 for a bad argument) when the line does not parse.
Args parse_args(int argc, char** argv) {
  Args args;
  CLI::App app{"A host receiving webhooks for the example replicators", "webhook_receiver"};
  app.add_option("--port", args.port, "port to listen on (0: any free one)");
  app.add_option("--secret", args.secret, "webhook secret of the example integrations");
  app.add_flag("--sync", args.sync, "answer each webhook with its stored row, after the commit");
  auto* database = app.add_option("--database-url", args.database_url, "PostgreSQL (default: the memory store)");
  app.add_flag("--inbox", args.inbox, "answer once queued in the durable inbox")->needs(database);
  app.add_option("--batch-window-us", args.batch_window_us, "micro-batch window")->check(CLI::NonNegativeNumber);
  app.add_option("--max-batch", args.max_batch, "requests a micro-batch holds at most")->check(CLI::PositiveNumber);
  app.add_option("--batch-writers", args.batch_writers, "threads committing batches")->check(CLI::PositiveNumber);
  app.add_flag("--self-test", args.self_test, "send signed webhooks to itself, check they landed, exit");
  app.add_option("--metrics-port", args.metrics_port, "serve Prometheus metrics on 127.0.0.1:PORT/metrics (0: any)")
      ->check(CLI::Range(0, 65535));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  return args;
}

// The integration with this opaque id, created (with its table) when absent.
ServiceIntegration ensure_integration(JobStore& jobs, const Registry& registry, const ReplicatorContext& ctx,
                                      const std::string& opaque_id, const std::string& service,
                                      const std::string& table, const std::string& secret) {
  auto si = jobs.find_integration_by_opaque_id(opaque_id);
  if (!si) {
    ServiceIntegration fresh;
    fresh.opaque_id = opaque_id;
    fresh.service_name = service;
    fresh.table_name = table;
    fresh.webhook_secret = secret;
    si = jobs.create_integration(fresh);
  } else if (si->webhook_secret != secret) {
    si->webhook_secret = secret;
    jobs.update_integration(*si);
  }
  registry.make(*si, ctx)->create_table();
  return *si;
}

// One POST to ourselves over loopback; returns the status.
int post(unsigned short port, const std::string& target, const std::string& body,
         const std::vector<std::pair<std::string, std::string>>& headers) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket socket(ioc);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::write(socket, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  return static_cast<int>(res.result_int());
}

// GET over loopback; the body ("" when the status is not 200).
std::string get_text(unsigned short port, const std::string& target) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket socket(ioc);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(socket, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  return res.result_int() == 200 ? res.body() : std::string();
}

int self_test(webhooks::WebhookReceiver& receiver, ReplicaStore& replica, const Registry& registry,
              const ReplicatorContext& ctx, const ServiceIntegration& charges, const ServiceIntegration& issues,
              const std::string& secret, const std::function<void()>& wait_written, int metrics_port) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  const json charge{{"id", "ch_selftest_1"}, {"amount", 1234}, {"currency", "usd"}, {"status", "succeeded"},
                    {"object", "charge"}, {"created", now - 60}};
  // A Stripe event: the charge in data.object, the event's time in `created`.
  const std::string event = json{{"id", "evt_selftest_1"}, {"object", "event"}, {"created", now},
                                 {"type", "charge.succeeded"}, {"data", {{"object", charge}}}}.dump();
  const json issue{{"id", 424242}, {"number", 7}, {"title", "Self-test"}, {"state", "open"},
                   {"user", {{"login", "octo"}}}, {"labels", json::array()}, {"updated_at", "2024-05-01T10:00:00Z"}};
  const std::string issue_event = json{{"action", "opened"}, {"issue", issue}}.dump();

  int failures = 0;
  auto expect = [&](const char* what, int got, int want) {
    std::cout << "self-test: " << what << " -> " << got << (got == want ? "" : " (expected " + std::to_string(want) + ")")
              << "\n";
    if (got != want) ++failures;
  };
  const std::string charges_path = "/v1/webhooks/" + charges.opaque_id;
  const std::string issues_path = "/v1/webhooks/" + issues.opaque_id;
  // Asynchronous processing answers 202, --sync answers 200 with the row.
  auto accepted = [](int status) { return status >= 200 && status < 300 ? 202 : status; };
  expect("signed charge event",
         accepted(post(receiver.port(), charges_path, event,
                       {{"Stripe-Signature", webhooks::stripe_signature_header(secret, now, event)}})),
         202);
  expect("signed issue event",
         accepted(post(receiver.port(), issues_path, issue_event,
                       {{"X-Hub-Signature-256", "sha256=" + webhooks::hmac_sha256_hex(secret, issue_event)}})),
         202);
  expect("forged charge event",
         post(receiver.port(), charges_path, event,
              {{"Stripe-Signature", webhooks::stripe_signature_header("whsec_wrong", now, event)}}),
         401);
  expect("malformed body",
         post(receiver.port(), charges_path, "{oops",
              {{"Stripe-Signature", webhooks::stripe_signature_header(secret, now, "{oops")}}),
         400);
  expect("unknown integration", post(receiver.port(), "/v1/webhooks/svi_nobody", event, {}), 404);
  receiver.handler().wait_idle();
  if (wait_written) wait_written();

  const auto charge_row = replica.find(registry.make(charges, ctx)->table_spec(), "ch_selftest_1");
  const auto issue_row = replica.find(registry.make(issues, ctx)->table_spec(), 424242);
  std::cout << "self-test: charge row " << (charge_row ? "landed" : "MISSING") << ", issue row "
            << (issue_row ? "landed" : "MISSING") << "\n";
  if (!charge_row || !issue_row) ++failures;
  if (metrics_port > 0) {
    // What the receiver answered, as Prometheus reads it: one 401 and one 404 above.
    const std::string text = get_text(static_cast<unsigned short>(metrics_port), "/metrics");
    const bool counted = text.find("webhookdb_webhook_requests_total{status=\"401\"} 1\n") != std::string::npos &&
                         text.find("webhookdb_webhook_requests_total{status=\"404\"} 1\n") != std::string::npos &&
                         text.find("webhookdb_webhook_request_duration_seconds_count{status=\"401\"} 1\n") !=
                             std::string::npos;
    std::cout << "self-test: metrics " << (counted ? "counted the answers" : "MISSING the answers") << "\n";
    if (!counted) {
      std::cout << text;
      ++failures;
    }
  }
  std::cout << (failures == 0 ? "self-test ok\n" : "self-test FAILED\n");
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);

  // Block the stop signals before any thread starts, then wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    auto registry = std::make_shared<Registry>();
    Descriptor charges_d = examples::StripeChargeReplicator::descriptor();
    charges_d.factory = Descriptor::factory_for<VerifiedStripeCharges>();
    registry->add(charges_d);
    Descriptor issues_d = examples::GithubIssueReplicator::descriptor();
    issues_d.factory = Descriptor::factory_for<VerifiedGithubIssues>();
    registry->add(issues_d);

    ReplicatorContext ctx;
    ctx.registry = registry;
    ctx.logger = std::make_shared<StderrLogger>(LogLevel::info);
    if (args.database_url.empty()) {
      ctx.replica = std::make_shared<memory::MemoryReplicaStore>();
      ctx.jobs = std::make_shared<memory::MemoryJobStore>();
    } else {
#ifdef WEBHOOKDB_EXAMPLE_WITH_PG
      pg::Config config;
      config.url = args.database_url;
      auto pool = std::make_shared<pg::ConnectionPool>(config);
      ctx.replica = std::make_shared<pg::PgReplicaStore>(pool);
      ctx.jobs = std::make_shared<pg::PgJobStore>(pool);
#else
      std::cerr << "this build has no PostgreSQL adapter; run without --database-url\n";
      return 2;
#endif
    }

    const auto charges = ensure_integration(*ctx.jobs, *registry, ctx, "svi_example_charges", charges_d.name,
                                            "example_stripe_charges", args.secret);
    const auto issues = ensure_integration(*ctx.jobs, *registry, ctx, "svi_example_issues", issues_d.name,
                                           "example_github_issues", args.secret);

    webhooks::WebhookReceiverOptions options;
    options.port = args.port;
    if (args.sync) options.handler.process_synchronously = true;
    if (args.batch_window_us >= 0) options.handler.batch_window = std::chrono::microseconds(args.batch_window_us);
    if (args.max_batch > 0) options.handler.max_batch = static_cast<std::size_t>(args.max_batch);
    if (args.batch_writers > 0) options.handler.batch_writers = static_cast<std::size_t>(args.batch_writers);
    std::function<void()> wait_written;
#ifdef WEBHOOKDB_EXAMPLE_WITH_PG
    std::shared_ptr<pg::PgWebhookInbox> inbox;
    std::unique_ptr<jobs::WebhookInboxProcessor> processor;
    CancellationSource stop_processor;
    std::thread processor_thread;
    if (args.inbox) {
      if (args.database_url.empty()) {
        std::cerr << "--inbox needs --database-url (the inbox is a PostgreSQL table)\n";
        return 2;
      }
      pg::Config config;
      config.url = args.database_url;
      inbox = std::make_shared<pg::PgWebhookInbox>(config);
      options.handler.inbox = inbox;
      processor = std::make_unique<jobs::WebhookInboxProcessor>(inbox, ctx);
      processor_thread = std::thread([&] { processor->run(stop_processor.token()); });
      wait_written = [&] {
        for (int i = 0; i < 500 && inbox->pending_count() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      };
    }
    struct JoinProcessor {
      CancellationSource& source;
      std::thread& thread;
      ~JoinProcessor() {
        source.cancel();
        if (thread.joinable()) thread.join();
      }
    } join_processor{stop_processor, processor_thread};
#else
    if (args.inbox) {
      std::cerr << "this build has no PostgreSQL adapter; --inbox needs it\n";
      return 2;
    }
#endif
    std::shared_ptr<Metrics> metrics;
#ifdef WEBHOOKDB_EXAMPLE_WITH_PG
    if (args.metrics_port >= 0) {
      metrics = std::make_shared<Metrics>();
      options.metrics = metrics;
    }
#else
    if (args.metrics_port >= 0) {
      std::cerr << "this build has no jobs component; --metrics-port needs it\n";
      return 2;
    }
#endif
    webhooks::WebhookReceiver receiver(ctx, options);
    receiver.start();
    int metrics_port = 0;
#ifdef WEBHOOKDB_EXAMPLE_WITH_PG
    std::unique_ptr<jobs::MetricsServer> metrics_server;
    if (metrics) {
      metrics->describe("webhookdb_webhook_connections", MetricKind::gauge, "Open connections.");
      metrics->describe("webhookdb_webhook_refused_busy_total", MetricKind::gauge,
                        "Requests answered 503 because the body budget was spent (since start).");
      metrics->describe("webhookdb_webhook_inbox_pending", MetricKind::gauge, "Webhooks queued in the inbox.");
      metrics->on_collect([&receiver, inbox](Metrics& m) {
        const auto stats = receiver.stats();
        m.set("webhookdb_webhook_connections", static_cast<double>(stats.connections));
        m.set("webhookdb_webhook_refused_busy_total", static_cast<double>(stats.refused_busy));
        if (inbox) m.set("webhookdb_webhook_inbox_pending", static_cast<double>(inbox->pending_count()));
      });
      metrics_server = std::make_unique<jobs::MetricsServer>(metrics, "127.0.0.1",
                                                             static_cast<std::uint16_t>(args.metrics_port));
      metrics_port = metrics_server->port();
      std::cout << "metrics: GET http://127.0.0.1:" << metrics_port << "/metrics\n";
    }
#endif
    std::cout << "port " << receiver.port() << "\n"
              << "charges: POST " << receiver.url_for(charges.opaque_id) << "  (Stripe-Signature)\n"
              << "issues:  POST " << receiver.url_for(issues.opaque_id) << "  (X-Hub-Signature-256)\n"
              << std::flush;

    if (args.self_test) {
      const int code =
          self_test(receiver, *ctx.replica, *registry, ctx, charges, issues, args.secret, wait_written, metrics_port);
      receiver.stop();
      return code;
    }

    int signal = 0;
    sigwait(&stop_signals, &signal);
    std::cout << "stopping (signal " << signal << ")\n";
    receiver.stop();
    const auto stats = receiver.handler().stats();
    std::cout << "requests " << stats.requests << ", accepted " << stats.accepted << ", rejected " << stats.rejected
              << ", written " << stats.processed_async << ", failed " << stats.failed_async << "\n"
              << "rows: charges " << ctx.replica->count(registry->make(charges, ctx)->table_spec()) << ", issues "
              << ctx.replica->count(registry->make(issues, ctx)->table_spec()) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "webhook_receiver: " << e.what() << "\n";
    return 1;
  }
}
