// Secrets never leak: failing backfills (401, 403, 5xx, 429, timeouts, refused
// connections, redirect loops, bodies that echo credentials) through the curl
// client and the real backfill path, failing webhooks (missing, malformed,
// forged, expired and replayed signatures) through the HTTP receiver, and
// failing database work with a password in the URL, including the worker's
// queue records. Known secret strings go into backfill keys and secrets,
// webhook secrets, URL query parameters, user:password@ in URLs, headers and
// the database URL; every log line, exception message, HTTP error field,
// webhook response and queue record is captured and searched for them.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api_server/api_server.hpp"
#include "support/mini_server.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/codec.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/job_runner.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/jobs/worker.hpp"
#include "webhookdb/jobs/worker_main.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/oauth2.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/oauth_token_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/pg/secret_key.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/testing/capturing_logger.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"
#include "webhookdb/webhooks/hmac.hpp"
#include "webhookdb/webhooks/verification.hpp"
#include "webhookdb/webhooks/webhook_receiver.hpp"

namespace webhookdb::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kBackfillKey = "sk_live_RELKEY_9f8e7d6c";
constexpr const char* kBackfillSecret = "bfsec_RELSECRET_0a1b2c3d";
constexpr const char* kWebhookSecret = "whsec_RELWEBHOOK_3c4d5e6f";
constexpr const char* kQuerySecret = "qs_RELQUERY_5e6f7a8b";
constexpr const char* kUrlPassword = "urlpw_RELURL_7a8b9c0d";
constexpr const char* kHeaderToken = "hdr_RELTOKEN_1e2f3a4b";
constexpr const char* kDbPassword = "dbpw_RELDB_9c0d1e2f";
constexpr const char* kOAuthClientSecret = "ocs_RELCLIENT_4d5e6f7a";
// Keys that encrypt secrets at rest (issue 21): base64 of 32 bytes each.
constexpr const char* kSecretKeyText = "UkVMS0VZLWF0LXJlc3QtMzItYnl0ZXMtbG9uZy4uLiE=";
constexpr const char* kOtherKeyText = "T1RIRVJLRVktYXQtcmVzdC0zMi1ieXRlcy1sb25nLiE=";

// Every secret, and the encodings in which it could travel.
std::vector<std::string> all_secrets() {
  std::vector<std::string> out = {kBackfillKey, kBackfillSecret, kWebhookSecret, kQuerySecret,
                                  kUrlPassword, kHeaderToken,    kDbPassword, kOAuthClientSecret};
  out.push_back(codec::base64_encode(std::string(kBackfillKey) + ":" + kBackfillSecret));
  out.push_back(codec::base64_encode(std::string("user:") + kUrlPassword));
  // The keys, as configured, as bytes and in hex; the test key ctest gives every test too.
  std::vector<std::string> keys = {kSecretKeyText, kOtherKeyText};
  if (const char* env = std::getenv("WEBHOOKDB_SECRET_KEY"); env != nullptr && *env != '\0') keys.emplace_back(env);
  for (const auto& text : keys) {
    out.push_back(text);
    const std::string raw = pg::SecretKey::parse(text, "key").bytes();
    out.push_back(raw);
    out.push_back(codec::hex_encode(raw));
    out.push_back(codec::base64_encode(raw));
  }
  return out;
}

// Texts to search, with where each came from.
class Evidence {
 public:
  void add(const std::string& source, const std::string& text) { texts_.emplace_back(source, text); }
  // Every message reachable from an exception: what(), HTTP fields, the
  // cause of a RetryOrDie, nested exceptions.
  void add_error(const std::string& source, const std::exception_ptr& error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const RetryOrDie& e) {
      add(source + " what()", e.what());
      add_error(source + " cause", e.cause());
    } catch (const HttpError& e) {
      add(source + " what()", e.what());
      add(source + " url()", e.url());
      add(source + " body_excerpt()", e.body_excerpt());
      for (const auto& [name, value] : e.headers()) add(source + " header " + name, name + ": " + value);
    } catch (const HttpBaseError& e) {
      add(source + " what()", e.what());
      add(source + " url()", e.url());
    } catch (const std::exception& e) {
      add(source + " what()", e.what());
    } catch (...) {
      add(source, "unknown exception");
    }
    try {
      std::rethrow_exception(error);
    } catch (const std::nested_exception& n) {
      add_error(source + " nested", n.nested_ptr());
    } catch (...) {
    }
  }
  [[nodiscard]] std::size_t size() const { return texts_.size(); }
  // One failure per (secret, text) found.
  void expect_no_secret() const {
    for (const auto& secret : all_secrets()) {
      for (const auto& [source, text] : texts_) {
        EXPECT_EQ(text.find(secret), std::string::npos) << "secret '" << secret << "' leaked in " << source << ":\n"
                                                       << text;
      }
    }
  }
  [[nodiscard]] bool any_contains(const std::string& needle) const {
    for (const auto& [source, text] : texts_) {
      if (text.find(needle) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::vector<std::pair<std::string, std::string>> texts_;
};

std::string with_userinfo(const std::string& url) {
  const auto scheme = url.find("://");
  return url.substr(0, scheme + 3) + "user:" + kUrlPassword + "@" + url.substr(scheme + 3);
}

std::string with_secret_query(const std::string& url) {
  return pagination::with_query(url, {{"api_key", kQuerySecret}, {"client_secret", kBackfillSecret}, {"x", "1"}});
}

// Pages from <api_url> (already holding the path and the secret query) with a
// secret header; items {"id": ...}.
class SecretiveReplicator final : public Replicator {
 public:
  using Replicator::Replicator;
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>&,
                                   const CancellationToken& cancel) override {
    HttpRequest first{.url = integration().api_url, .headers = {{"X-Api-Key", kHeaderToken}}};
    first.timeout = 400ms;
    return pages_.fetch(*context().http, first, token, cancel);
  }
  [[nodiscard]] WebhookResponse verify_webhook(const WebhookRequest& request) override {
    return webhooks::verify_stripe_signature(request, integration().webhook_secret, clock());
  }

 protected:
  [[nodiscard]] Column remote_key_column() const override { return Column("id", ColumnType::text); }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override {
    return {Column("amount", ColumnType::integer)};
  }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::always(); }

 private:
  pagination::Cursor pages_{{.limit = 10}};
};

Descriptor secretive_descriptor() {
  return {.name = "secretive_v1",
          .resource_name_singular = "Secretive",
          .resource_name_plural = "Secretives",
          .supports_webhooks = true,
          .supports_backfill = true,
          .factory = Descriptor::factory_for<SecretiveReplicator>()};
}

// A server that answers 401 repeating every credential it was sent, and the
// request target, in its body (some APIs do: "invalid api key sk_live_...").
MiniResponse echoing_401(const MiniRequest& request) {
  std::string body = R"({"error":"unauthorized","you_sent":{)";
  body += "\"target\":" + json(request.target).dump();
  for (const auto& [name, value] : request.headers) body += "," + json(name).dump() + ":" + json(value).dump();
  body += "}}";
  return MiniResponse{401, {{"Content-Type", "application/json"}}, body, {}};
}

MiniResponse echoing_garbage(const MiniRequest& request) {
  std::string body = "<html>proxy error for " + request.target;
  for (const auto& [name, value] : request.headers) body += " " + name + "=" + value;
  return MiniResponse{200, {{"Content-Type", "text/html"}}, body, {}};
}

class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tools::ApiServerOptions o;
    o.objects = 50;
    api_ = std::make_unique<tools::ApiServer>(o);
    api_->start();
    registry_->add(secretive_descriptor());
  }

  ReplicatorContext context(std::shared_ptr<HttpClient> raw) const {
    ReplicatorContext ctx;
    // How a host wires credentials: in a decorator, logged by another.
    auto authed = std::make_shared<BasicAuth>(std::move(raw), kBackfillKey, kBackfillSecret);
    ctx.http = std::make_shared<LoggingHttpClient>(authed, logger_, LogLevel::info);
    ctx.replica = replica_;
    ctx.jobs = jobs_;
    ctx.clock = clock_;
    ctx.sleeper = sleeper_;
    ctx.logger = logger_;
    ctx.registry = registry_;
    return ctx;
  }

  ServiceIntegration integration(const std::string& api_url) {
    ServiceIntegration si;
    si.service_name = "secretive_v1";
    si.table_name = "secretive_" + std::to_string(++tables_);
    si.api_url = api_url;
    si.backfill_key = kBackfillKey;
    si.backfill_secret = kBackfillSecret;
    si.webhook_secret = kWebhookSecret;
    return jobs_->create_integration(si);
  }

  // Runs a backfill of `api_url` both directly and through the JobRunner;
  // both must fail. Returns the number of errors captured.
  void backfill_fails(const std::string& label, const std::string& api_url,
                      const std::shared_ptr<HttpClient>& raw) {
    const auto si = integration(api_url);
    auto ctx = context(raw);
    auto replicator = registry_->make(si, ctx);
    replicator->create_table();
    auto job = jobs_->create_recursive(si, false, json::object());
    try {
      replicator->backfill(job);
      ADD_FAILURE() << label << ": the backfill succeeded";
    } catch (...) {
      evidence_.add_error(label + " backfill", std::current_exception());
    }
    auto again = jobs_->create_recursive(si, false, json::object());
    JobRunner runner(registry_, ctx);
    try {
      runner.run(again.id);
      ADD_FAILURE() << label << ": the job succeeded";
    } catch (...) {
      evidence_.add_error(label + " job", std::current_exception());
    }
    // The credentials verification path reports a message too.
    const auto verification = replicator->verify_backfill_credentials();
    evidence_.add(label + " verify_backfill_credentials", verification.message);
  }

  std::unique_ptr<tools::ApiServer> api_;
  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::shared_ptr<testing::RecordingSleeper> sleeper_ = std::make_shared<testing::RecordingSleeper>(clock_);
  std::shared_ptr<testing::CapturingLogger> logger_ = std::make_shared<testing::CapturingLogger>();
  std::shared_ptr<memory::MemoryReplicaStore> replica_ = std::make_shared<memory::MemoryReplicaStore>();
  std::shared_ptr<memory::MemoryJobStore> jobs_ = std::make_shared<memory::MemoryJobStore>(clock_);
  std::shared_ptr<Registry> registry_ = std::make_shared<Registry>();
  Evidence evidence_;
  int tables_ = 0;
};

TEST_F(SecretsTest, FailingBackfillsNeverShowASecret) {
  curl::CurlOptions options;
  options.max_redirects = 2;
  options.connect_timeout = 2s;
  auto curl_client = curl::make_curl_client(options);
  const auto secret_url = [](const std::string& url) { return with_secret_query(with_userinfo(url)); };

  for (const int status : {401, 403, 404, 429, 500, 503}) {
    backfill_fails("HTTP " + std::to_string(status), secret_url(api_->url("/status/" + std::to_string(status))),
                   curl_client);
  }
  backfill_fails("timeout", secret_url(api_->url("/delay?ms=3000")), curl_client);
  backfill_fails("redirect loop", secret_url(api_->url("/redirect/5")), curl_client);
  backfill_fails("refused", secret_url("http://127.0.0.1:9/v1/charges"), curl_client);
  // A truncated page and a dropped connection from the fault injector.
  api_->inject(tools::Fault::truncated, 100);
  backfill_fails("truncated JSON", secret_url(api_->url("/cursor")), curl_client);
  api_->inject(tools::Fault::drop, 100);
  backfill_fails("dropped connection", secret_url(api_->url("/cursor")), curl_client);

  EXPECT_GT(evidence_.size(), 30U);
  EXPECT_TRUE(evidence_.any_contains("REDACTED")) << "the URLs are shown, redacted";
  evidence_.add("log", logger_->text());
  EXPECT_FALSE(logger_->text().empty()) << "the exchanges were logged";
  evidence_.expect_no_secret();
}

TEST_F(SecretsTest, ABodyThatEchoesTheCredentialsIsNotRepeated) {
  // The server repeats what it was sent; the client knows what it sent and
  // must not pass it on in HttpError's message or excerpt.
  MiniServer echo(echoing_401);
  auto curl_client = curl::make_curl_client();
  backfill_fails("echoing 401", with_secret_query(with_userinfo(echo.url("/v1/items"))), curl_client);
  ASSERT_FALSE(echo.requests().empty());
  evidence_.add("log", logger_->text());
  evidence_.expect_no_secret();
}

TEST_F(SecretsTest, ANonJsonPageThatEchoesTheCredentialsIsNotRepeated) {
  MiniServer echo(echoing_garbage);
  auto curl_client = curl::make_curl_client();
  backfill_fails("echoing HTML page", with_secret_query(with_userinfo(echo.url("/v1/items"))), curl_client);
  ASSERT_FALSE(echo.requests().empty());
  evidence_.add("log", logger_->text());
  evidence_.expect_no_secret();
}

TEST_F(SecretsTest, FailingWebhooksNeverShowASecret) {
  const auto si = integration("https://api.example.test/items");
  ReplicatorContext ctx = context(curl::make_curl_client());
  // Webhook signatures are checked against real time.
  ctx.clock = system_clock();
  // The valid webhook must be written: its table exists, as for any set-up integration.
  registry_->make(si, ctx)->create_table();
  std::vector<std::string> async_errors;
  std::mutex async_mutex;
  webhooks::WebhookReceiverOptions options;
  options.handler.process_synchronously = true;
  options.handler.on_async_error = [&](const std::string&, std::exception_ptr e) {
    std::lock_guard lock(async_mutex);
    async_errors.push_back(describe(e));
  };
  webhooks::WebhookReceiver receiver(ctx, options);
  receiver.start();
  auto client = curl::make_curl_client();

  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  struct Attempt {
    std::string label;
    std::string body;
    std::optional<std::string> signature;
    int expected_status;
  };
  const std::string good_body = R"({"id":"evt_1","amount":5})";
  const auto sign = [&](std::string_view secret, std::int64_t t, const std::string& body) {
    return webhooks::stripe_signature_header(secret, t, body);
  };
  std::vector<Attempt> attempts = {
      {"no signature", good_body, std::nullopt, 401},
      {"garbage header", good_body, "garbage", 401},
      {"secret as signature", good_body, std::string("t=1,v1=") + kWebhookSecret, 401},
      {"secret as timestamp", good_body, std::string("t=") + kWebhookSecret + ",v1=00", 401},
      {"forged with another secret", good_body, sign("whsec_wrong", now_s, good_body), 401},
      {"expired", good_body, sign(kWebhookSecret, now_s - 3600, good_body), 401},
      {"signed, not JSON", "{not json", sign(kWebhookSecret, now_s, "{not json"), 400},
      {"signed, missing key", R"({"amount":5})", sign(kWebhookSecret, now_s, R"({"amount":5})"), 400},
      {"signed, wrong type", R"({"id":"x","amount":"lots"})",
       sign(kWebhookSecret, now_s, R"({"id":"x","amount":"lots"})"), 400},
      {"signed and valid", good_body, sign(kWebhookSecret, now_s, good_body), 200},
  };
  for (const auto& a : attempts) {
    HttpRequest request;
    request.method = "POST";
    request.url = receiver.url_for(si.opaque_id);
    request.body = a.body;
    request.headers = {{"Content-Type", "application/json"}};
    if (a.signature) request.headers.emplace_back("Stripe-Signature", *a.signature);
    request.raise_for_status = false;
    const HttpResponse response = client->send(request);
    EXPECT_EQ(response.status, a.expected_status) << a.label << ": " << response.body;
    evidence_.add(a.label + " response body", response.body);
    for (const auto& [name, value] : response.headers) evidence_.add(a.label + " response header", name + ": " + value);
    // The signature the secret makes for this body and time is secret too:
    // with it a forger could replay the body.
    const std::string expected = webhooks::hmac_sha256_hex(kWebhookSecret, std::to_string(now_s) + "." + a.body);
    EXPECT_EQ(response.body.find(expected), std::string::npos) << a.label;
    EXPECT_EQ(logger_->text().find(expected), std::string::npos) << a.label;
  }
  // The same, straight to the verifier: its reasons are what gets logged.
  for (const auto& a : attempts) {
    WebhookRequest request;
    request.body = a.body;
    if (a.signature) request.headers.emplace_back("Stripe-Signature", *a.signature);
    const auto v = webhooks::verify_stripe_signature(request, kWebhookSecret, SystemClock());
    evidence_.add(a.label + " verification reason", v.reason);
  }
  receiver.stop();
  evidence_.add("log", logger_->text());
  for (const auto& e : async_errors) evidence_.add("async error", e);
  evidence_.expect_no_secret();
}

// --- The database password, and the worker's records ---

std::string url_with_password(const std::string& url, const std::string& password) {
  // postgresql://user@host... -> postgresql://user:password@host...
  const auto scheme = url.find("://");
  const auto at = url.find('@', scheme);
  if (at == std::string::npos) return url.substr(0, scheme + 3) + "postgres:" + password + "@" + url.substr(scheme + 3);
  const auto colon = url.find(':', scheme + 3);
  const std::string user = url.substr(scheme + 3, (colon != std::string::npos && colon < at ? colon : at) - scheme - 3);
  return url.substr(0, scheme + 3) + user + ":" + password + url.substr(at);
}

class DatabaseSecretsTest : public test::PgTest {
 protected:
  Evidence evidence_;
};

TEST_F(DatabaseSecretsTest, TheDatabasePasswordIsInNoErrorMessage) {
  // The test server trusts local connections, so the password is accepted
  // and ignored: the stores work, and fail where we make them fail.
  pg::Config c = config(2);
  c.url = url_with_password(schema().url(), kDbPassword);
  c.statement_timeout = 100ms;
  c.acquire_timeout = 3s;
  {
    auto pool = std::make_shared<pg::ConnectionPool>(c);
    pg::PgReplicaStore store(pool);
    TableSpec spec;
    spec.table = "pw_table";
    spec.opaque_id = "svi_pw";
    spec.remote_key = Column("id", ColumnType::text);
    spec.columns = {Column("at", ColumnType::timestamptz)};
    Row bad;
    bad.key = "k";
    bad.values = {"not a timestamp"};
    bad.data = {{"id", "k"}};
    auto capture = [&](const std::string& label, const std::function<void()>& fn) {
      try {
        fn();
        ADD_FAILURE() << label << " succeeded";
      } catch (...) {
        evidence_.add_error(label, std::current_exception());
      }
    };
    capture("upsert before create_table", [&] { store.upsert(spec, std::vector<Row>{bad}); });
    store.create_table(spec);
    for (auto m : {WriteMethod::single_row, WriteMethod::multi_row, WriteMethod::staging_copy}) {
      capture("bad timestamp", [&] {
        UpsertOptions o;
        o.method = m;
        store.upsert(spec, std::vector<Row>{bad}, o);
      });
    }
    capture("statement timeout", [&] { pool->exec("SELECT pg_sleep(2)"); });
    capture("syntax error", [&] { pool->exec("SELEC 1"); });
    capture("terminated backend", [&] {
      pool->transaction([&](pg::Session& s) {
        s.exec("SELECT pg_terminate_backend(pg_backend_pid())");
      });
    });
  }
  // Unreachable servers and URLs libpq cannot parse (some libpq messages
  // repeat the whole URL).
  const std::string host_url = url_with_password(schema().url(), kDbPassword);
  const std::vector<std::string> unreachable = {
      "postgresql://postgres:" + std::string(kDbPassword) + "@127.0.0.1:1/db",
      "postgresql://postgres:" + std::string(kDbPassword) + "@[::1/db",
      "postgresql://postgres:" + std::string(kDbPassword) + "@127.0.0.1:notaport/db",
      "postgresql://postgres:" + std::string(kDbPassword) + "@127.0.0.1:1/db?bogus_option=1",
      "postgres://postgres:" + std::string(kDbPassword) + "@127.0.0.1:1/db?sslmode=nonsense",
      "host=127.0.0.1 port=1 user=postgres password=" + std::string(kDbPassword),
      "host=127.0.0.1 port=1 password='" + std::string(kDbPassword) + "' bogus",
      "host=127.0.0.1 port=1 password=" + std::string(kDbPassword) + " sslmode=nonsense",
      host_url + "?options=-c%20statement_timeout%3Dbogus",
  };
  for (const auto& url : unreachable) {
    pg::Config bad = config(1);
    bad.url = url;
    bad.acquire_timeout = 2s;
    try {
      pg::PgReplicaStore store(bad);
      store.migrate();
      ADD_FAILURE() << "connected with a broken URL";
    } catch (...) {
      evidence_.add_error("connect", std::current_exception());
    }
    evidence_.add("redact_database_url", pg::redact_database_url(url));
    try {
      (void)jobs::parse_worker_args({"--database-url", url, "--concurrency", "zero"});
      ADD_FAILURE() << "bad arguments accepted";
    } catch (...) {
      evidence_.add_error("worker args", std::current_exception());
    }
  }
  EXPECT_GE(evidence_.size(), 25U);
  evidence_.expect_no_secret();
}

TEST_F(DatabaseSecretsTest, TheWorkerRecordsFailedJobsWithoutSecrets) {
  tools::ApiServerOptions o;
  o.objects = 20;
  tools::ApiServer api(o);
  api.start();
  pg::Config c = config(6);
  c.url = url_with_password(schema().url(), kDbPassword);
  auto pool = std::make_shared<pg::ConnectionPool>(c);
  auto jobs = std::make_shared<pg::PgJobStore>(pool);
  auto replica = std::make_shared<pg::PgReplicaStore>(pool);
  auto logger = std::make_shared<testing::CapturingLogger>();
  auto registry = std::make_shared<Registry>();
  registry->add(secretive_descriptor());
  pg::PgJobQueueOptions qo;
  qo.logger = logger;
  qo.lease = 5s;
  auto queue = std::make_shared<pg::PgJobQueue>(pool, qo);

  ReplicatorContext ctx;
  auto authed = std::make_shared<BasicAuth>(curl::make_curl_client(), kBackfillKey, kBackfillSecret);
  ctx.http = std::make_shared<LoggingHttpClient>(authed, logger, LogLevel::info);
  ctx.replica = replica;
  ctx.jobs = jobs;
  ctx.logger = logger;
  ctx.registry = registry;
  auto clock = std::make_shared<testing::ManualClock>();
  ctx.sleeper = std::make_shared<testing::RecordingSleeper>(clock);

  std::vector<std::int64_t> ids;
  int n = 0;
  for (const std::string path : {"/status/401", "/status/500", "/status/404"}) {
    ServiceIntegration si;
    si.service_name = "secretive_v1";
    si.table_name = "worker_secret_" + std::to_string(++n);
    si.api_url = with_secret_query(with_userinfo(api.url(path)));
    si.backfill_key = kBackfillKey;
    si.backfill_secret = kBackfillSecret;
    si.webhook_secret = kWebhookSecret;
    si = jobs->create_integration(si);
    registry->make(si, ctx)->create_table();
    auto job = jobs->create_recursive(si, false, json::object());
    ids.push_back(job.id);
    queue->enqueue(job.id);
  }
  std::mutex mutex;
  std::vector<jobs::JobReport> reports;
  std::condition_variable cv;
  jobs::WorkerOptions wo;
  wo.concurrency = 2;
  wo.poll_interval = 100ms;
  wo.on_job_done = [&](const jobs::JobReport& r) {
    std::lock_guard lock(mutex);
    reports.push_back(r);
    cv.notify_all();
  };
  {
    jobs::Worker worker(registry, ctx, queue, wo);
    worker.start();
    std::unique_lock lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return reports.size() >= ids.size(); }));
    lock.unlock();
    worker.stop();
  }
  for (const auto& r : reports) {
    EXPECT_NE(r.result, jobs::RunResult::completed) << "job " << r.job_id << " should have failed";
    EXPECT_FALSE(r.error.empty());
    evidence_.add("job report", r.error);
  }
  for (const auto& e : queue->entries()) {
    EXPECT_FALSE(e.last_error.empty()) << "job " << e.job_id << " has no recorded reason";
    evidence_.add("queue last_error", e.last_error);
  }
  evidence_.add("log", logger->text());
  evidence_.expect_no_secret();
}

// Issue 21 item 3: secrets encrypted at rest. Every failure of the key
// handling and of decryption (a bad key, a key given twice, a missing key, a
// wrong key, a tampered or moved ciphertext, no key at all) is captured and
// searched for the secrets and for the keys in every encoding.
TEST_F(DatabaseSecretsTest, EncryptionAtRestErrorsHoldNoKeyOrSecret) {
  const auto capture = [&](const std::string& source, const std::function<void()>& action) {
    try {
      action();
      ADD_FAILURE() << source << " did not fail";
    } catch (...) {
      evidence_.add_error(source, std::current_exception());
    }
  };
  const std::string bad_key = std::string(kSecretKeyText).substr(0, 40);
  capture("parse a short key", [&] { (void)pg::SecretKey::parse(bad_key, "WEBHOOKDB_SECRET_KEY"); });
  capture("environment, key and file", [&] {
    (void)pg::SecretKeys::from_environment([](const char* name) -> const char* {
      const std::string n = name;
      if (n == "WEBHOOKDB_SECRET_KEY") return kSecretKeyText;
      if (n == "WEBHOOKDB_SECRET_KEY_FILE") return "/nonexistent/key";
      return nullptr;
    });
  });
  capture("environment, bad previous key", [&] {
    (void)pg::SecretKeys::from_environment([&](const char* name) -> const char* {
      return std::string(name) == "WEBHOOKDB_PREVIOUS_SECRET_KEYS" ? bad_key.c_str() : nullptr;
    });
  });
  pg::SecretKeys keys;
  keys.current = pg::SecretKey::parse(kSecretKeyText, "key");
  pg::PgJobStore store(config(2), system_clock(), keys);
  ServiceIntegration si;
  si.service_name = "secretive_v1";
  si.table_name = "at_rest";
  si.backfill_key = kBackfillKey;
  si.backfill_secret = kBackfillSecret;
  si.webhook_secret = kWebhookSecret;
  si = store.create_integration(si);
  ServiceIntegration second = si;
  second.opaque_id.clear();
  second.table_name = "at_rest_2";
  second = store.create_integration(second);

  pg::SecretKeys other;
  other.current = pg::SecretKey::parse(kOtherKeyText, "other");
  capture("read with another key", [&] { (void)pg::PgJobStore(config(1), system_clock(), other).find_integration(si.id); });
  capture("read without a key", [&] {
    (void)pg::PgJobStore(config(1), system_clock(), pg::SecretKeys::plain_text_for_tests()).find_integration(si.id);
  });
  capture("store without a key", [&] {
    ServiceIntegration fresh = si;
    fresh.opaque_id.clear();
    fresh.table_name = "refused";
    (void)pg::PgJobStore(config(1), system_clock(), pg::SecretKeys{}).create_integration(fresh);
  });
  capture("re-encrypt without a key", [&] {
    (void)pg::PgJobStore(config(1), system_clock(), pg::SecretKeys::plain_text_for_tests()).reencrypt_secrets();
  });
  const std::string t = schema().quoted() + ".webhookdb_service_integrations";
  admin_exec("UPDATE " + t + " SET webhook_secret = (SELECT webhook_secret FROM " + t + " WHERE id = $2) WHERE id = $1",
             {std::to_string(si.id), std::to_string(second.id)});
  capture("read a moved ciphertext", [&] { (void)store.find_integration(si.id); });
  admin_exec("UPDATE " + t + " SET backfill_key = backfill_key || 'AAAA' WHERE id = $1", {std::to_string(second.id)});
  capture("read a tampered ciphertext", [&] { (void)store.find_integration(second.id); });
  EXPECT_TRUE(evidence_.any_contains(si.opaque_id)) << "the errors name the integration";
  EXPECT_FALSE(evidence_.any_contains(bad_key.substr(0, 16))) << "a malformed key is not repeated either";
  EXPECT_GE(evidence_.size(), 9U);
  evidence_.expect_no_secret();
}

// OAuth2 (issue 21): a grant used, rotated, refused (spent refresh token, wrong
// client secret), an unreachable token endpoint, a grant without a key and one
// read with the wrong key: no access token, refresh token, client secret or
// key in any log line (the exchanges logged by LoggingHttpClient) or error.
TEST_F(DatabaseSecretsTest, OAuthTokensAndClientSecretsAreInNoLogOrError) {
  tools::ApiServerOptions options;
  options.oauth = {.enabled = true, .access_lifetime = 300ms, .client_id = "rel-client", .client_secret = kOAuthClientSecret};
  tools::ApiServer server(options);
  server.start();
  auto curl_client = curl::make_curl_client();
  std::vector<std::string> tokens;
  const auto grant = [&] {
    HttpRequest r{.method = "POST", .url = server.url("/oauth/grant")};
    tokens.push_back(json::parse(curl_client->send(r).body)["refresh_token"].get<std::string>());
    return tokens.back();
  };
  pg::SecretKeys keys;
  keys.current = pg::SecretKey::parse(kSecretKeyText, "key");
  auto store = std::make_shared<pg::PgOAuthTokenStore>(std::make_shared<pg::ConnectionPool>(config(2)), keys);
  auto logger = std::make_shared<testing::CapturingLogger>();
  auto logged = std::make_shared<LoggingHttpClient>(curl_client, logger, LogLevel::info);
  CredentialAuth http(logged, std::make_shared<oauth2::OAuth2Credentials>(logged, store));
  const oauth2::ClientConfig client{.token_url = server.url("/oauth/token"), .client_id = "rel-client",
                                    .client_secret = kOAuthClientSecret,
                                    .grant = oauth2::GrantType::refresh_token};
  const auto send = [&](std::int64_t id, const std::string& source) {
    HttpRequest r{.url = server.url("/v1/charges?limit=5")};
    r.integration_id = id;
    try {
      (void)http.send(r);
    } catch (...) {
      evidence_.add_error(source, std::current_exception());
    }
  };
  store->authorize(1, client, {.refresh_token = grant()});
  for (int i = 0; i < 3; ++i) {
    send(1, "a rotating grant");
    std::this_thread::sleep_for(250ms);
  }
  EXPECT_GE(store->refresh_count(1), 2) << "the tokens rotated";
  const std::string spent = grant();
  HttpRequest spend{.method = "POST", .url = server.url("/oauth/token"),
                    .body = "grant_type=refresh_token&refresh_token=" + spent +
                            "&client_id=rel-client&client_secret=" + std::string(kOAuthClientSecret)};
  tokens.push_back(json::parse(curl_client->send(spend).body)["refresh_token"].get<std::string>());
  store->authorize(2, client, {.refresh_token = spent});
  send(2, "a spent refresh token");
  oauth2::ClientConfig wrong = client;
  wrong.client_secret = std::string(kOAuthClientSecret) + "-wrong";
  store->authorize(3, wrong, {.refresh_token = grant()});
  send(3, "a wrong client secret");
  oauth2::ClientConfig nowhere = client;
  nowhere.token_url = server.url("/oauth/nowhere");
  store->authorize(4, nowhere, {.refresh_token = grant()});
  send(4, "a token endpoint that is not one");
  try {
    pg::PgOAuthTokenStore(std::make_shared<pg::ConnectionPool>(config(1)), pg::SecretKeys{})
        .authorize(5, client, {.refresh_token = grant()});
  } catch (...) {
    evidence_.add_error("a grant without a key", std::current_exception());
  }
  pg::SecretKeys other;
  other.current = pg::SecretKey::parse(kOtherKeyText, "other");
  try {
    (void)pg::PgOAuthTokenStore(std::make_shared<pg::ConnectionPool>(config(1)), other).load(1);
  } catch (...) {
    evidence_.add_error("a grant read with another key", std::current_exception());
  }
  evidence_.add("the HTTP log", logger->text());
  EXPECT_TRUE(evidence_.any_contains("/oauth/token")) << "the exchanges are logged";
  EXPECT_TRUE(evidence_.any_contains("invalid_grant"));
  EXPECT_TRUE(evidence_.any_contains("invalid_client"));
  EXPECT_GE(evidence_.size(), 6U);
  evidence_.expect_no_secret();
  const auto one = store->load(1).value();
  tokens.push_back(one.tokens.access_token);
  tokens.push_back(one.tokens.refresh_token);
  for (const auto& token : tokens) {
    EXPECT_FALSE(evidence_.any_contains(token)) << "token " << token << " leaked";
  }
  server.stop();
}

}  // namespace
}  // namespace webhookdb::test
