// OAuth2 across real webhookdb-worker processes (issue 21): the local API
// server issues 2-second access tokens and refresh tokens that work once;
// the workers (--oauth2 on, the default) read the integrations' grants from
// webhookdb_oauth_grants and refresh one at a time through its row lock.
//
// - Four workers backfill four integrations that share one OAuth client for a
//   while (WEBHOOKDB_OAUTH_FLEET_SECONDS, default 8; the issue's run is 60):
//   no job fails or runs twice, every table is complete, every refresh token
//   is presented once (the server's count), no secret in any worker's output.
// - kill -9 of the worker that is refreshing, while the token endpoint (a
//   gate in front of the server) holds its request: before the provider
//   answered, after it answered but before the commit, and after the commit.
//   While the killed worker holds the grant's row lock, another process that
//   needs the grant waits for the lock's deadline and gives up (retryable)
//   without asking the provider. The job is taken over after its lease; the
//   fleet goes on without
//   re-authorisation when the stored refresh token still works, and when it
//   cannot (the provider rotated a token that was never stored) the
//   integration is marked, its jobs fail with a clear error in the queue row,
//   and a new grant makes it work again.

#include <gtest/gtest.h>
#include <signal.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "api_server/api_server.hpp"
#include "jobs/demo_replicators.hpp"
#include "support/child_process.hpp"
#include "support/mini_server.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/jobs/worker_main.hpp"
#include "webhookdb/oauth2.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/oauth_token_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::jobs {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::wait_until;

constexpr std::size_t kObjects = 1000;  // 10 pages of 100
constexpr const char* kClientId = "worker-fleet-client";
constexpr const char* kClientSecret = "worker-fleet-SECRET-7f3a";

std::chrono::seconds fleet_seconds() {
  const char* s = std::getenv("WEBHOOKDB_OAUTH_FLEET_SECONDS");
  const int n = s != nullptr ? std::atoi(s) : 0;
  return std::chrono::seconds(n > 0 ? n : 8);
}

// The token endpoint seen by the workers: forwards to the API server's, and
// can hold ONE request (before forwarding it, or after the provider answered)
// until the test releases it, so that a worker can be killed mid-refresh.
class TokenGate {
 public:
  enum class Hold { none, before_provider, after_provider };

  explicit TokenGate(std::string provider_url)
      : provider_url_(std::move(provider_url)),
        http_(curl::make_curl_client()),
        server_([this](const test::MiniRequest& r) { return handle(r); }) {}
  ~TokenGate() {
    release();
    server_.stop();
  }
  TokenGate(const TokenGate&) = delete;
  TokenGate& operator=(const TokenGate&) = delete;

  [[nodiscard]] std::string url() const { return server_.url("/oauth/token"); }
  void arm(Hold hold) {
    std::lock_guard lock(mutex_);
    hold_ = hold;
  }
  bool wait_held(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return held_; });
  }
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    cv_.notify_all();
  }
  [[nodiscard]] int forwarded() const {
    std::lock_guard lock(mutex_);
    return forwarded_;
  }

 private:
  test::MiniResponse handle(const test::MiniRequest& r) {
    Hold hold = Hold::none;
    {
      std::lock_guard lock(mutex_);
      std::swap(hold, hold_);  // one request is held, the next ones pass
    }
    if (hold == Hold::before_provider) {
      wait_for_release();
      return {.status = 503, .body = R"({"error":"temporarily_unavailable"})"};
    }
    HttpRequest forward{.method = r.method, .url = provider_url_, .body = r.body};
    for (const auto& [name, value] : r.headers) {
      if (name == "Authorization" || name == "authorization" || name == "Content-Type" ||
          name == "content-type") {
        forward.headers.emplace_back(name, value);
      }
    }
    forward.raise_for_status = false;
    HttpResponse answer = http_->send(forward);
    {
      std::lock_guard lock(mutex_);
      ++forwarded_;
    }
    if (hold == Hold::after_provider) wait_for_release();
    return {.status = answer.status, .headers = {{"Content-Type", "application/json"}}, .body = answer.body};
  }
  void wait_for_release() {
    std::unique_lock lock(mutex_);
    held_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
  }

  std::string provider_url_;
  std::shared_ptr<HttpClient> http_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  Hold hold_ = Hold::none;
  bool held_ = false;
  bool released_ = false;
  int forwarded_ = 0;
  test::MiniServer server_;  // last: its threads stop before the members they use
};

class OAuthWorkerProcessTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    pool_ = std::make_shared<pg::ConnectionPool>(config(4));
    jobs_ = std::make_shared<pg::PgJobStore>(pool_);
    replica_ = std::make_shared<pg::PgReplicaStore>(pool_);
    queue_ = std::make_shared<pg::PgJobQueue>(pool_);
    grants_ =
        std::make_shared<pg::PgOAuthTokenStore>(pool_);  // the key ctest gives every test, as the workers
    registry_ = std::make_shared<Registry>();
    demo::register_demo_replicators(*registry_);
    char dir[] = "/tmp/webhookdb-oauth-worker-test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    log_dir_ = dir;
  }

  void TearDown() override {
    for (auto& [name, w] : workers_) {
      if (!w->wait_exit(0ms)) w->signal(SIGKILL);
      (void)w->wait_exit(10s);
      logs_[name] = w->log();
    }
    if (HasFailure()) {
      for (const auto& [name, text] : logs_)
        std::cerr << "---- " << name << " ----\n" << text.substr(0, 20000) << "\n";
    }
    workers_.clear();
    gate_.reset();
    if (server_) server_->stop();
    std::error_code ignored;
    std::filesystem::remove_all(log_dir_, ignored);
    test::PgTest::TearDown();
  }

  void start_server(std::chrono::milliseconds latency) {
    tools::ApiServerOptions o;
    o.objects = kObjects;
    o.latency = latency;
    o.threads = 4;
    o.oauth = {
        .enabled = true, .access_lifetime = 2000ms, .client_id = kClientId, .client_secret = kClientSecret};
    server_ = std::make_unique<tools::ApiServer>(o);
    server_->start();
  }

  void spawn(const std::string& name, int concurrency, double lease_seconds) {
    const std::vector<std::string> args = {"--database-url",
                                           schema().url(),
                                           "--schema",
                                           schema_name(),
                                           "--replica-schema",
                                           schema_name(),
                                           "--concurrency",
                                           std::to_string(concurrency),
                                           "--lease-seconds",
                                           std::to_string(lease_seconds),
                                           "--poll-seconds",
                                           "0.5",
                                           "--time-slice-seconds",
                                           "0",
                                           "--schedule-poll-seconds",
                                           "0",
                                           "--oauth2-lock-wait-seconds",
                                           "2",
                                           "--owner",
                                           name};
    workers_[name] =
        std::make_unique<test::ChildProcess>(WEBHOOKDB_WORKER_EXE, args, log_dir_ + "/" + name + ".log");
    EXPECT_TRUE(workers_[name]->wait_for_log("ready on", 20s)) << name << " did not start:\n"
                                                               << workers_[name]->log();
  }

  void terminate_all() {
    for (auto& [name, w] : workers_) {
      if (w->wait_exit(0ms)) continue;
      w->signal(SIGTERM);
      EXPECT_EQ(w->wait_exit(20s), std::optional<int>(0)) << name << " did not drain and exit 0";
    }
    for (auto& [name, w] : workers_) logs_[name] = w->log();
  }

  std::string first_refresh_token() {
    HttpRequest r{.method = "POST", .url = server_->url("/oauth/grant")};
    return json::parse(curl::make_curl_client()->send(r).body)["refresh_token"].get<std::string>();
  }
  json provider_stats() {
    HttpRequest r{.url = server_->url("/oauth/stats")};
    return json::parse(curl::make_curl_client()->send(r).body);
  }

  // A demo_charge_v1 integration without a backfill key: its requests carry
  // only what the worker's CredentialAuth adds from its grant.
  ServiceIntegration oauth_integration(const std::string& token_url, oauth2::ClientAuthentication how) {
    ServiceIntegration si;
    si.service_name = demo::kChargeService;
    si.table_name = "oauth_charges_" + std::to_string(++tables_);
    si.api_url = server_->base_url();
    si = jobs_->create_integration(si);
    registry_->make(si, context())->create_table();
    grants_->authorize(si.id,
                       {.token_url = token_url,
                        .client_id = kClientId,
                        .client_secret = kClientSecret,
                        .scopes = {"charges:read"},
                        .grant = oauth2::GrantType::refresh_token,
                        .authentication = how,
                        .resource_origin = server_->base_url()},
                       {.refresh_token = first_refresh_token()});
    return si;
  }

  std::int64_t enqueue_backfill(const ServiceIntegration& si) {
    const auto job = jobs_->create_recursive(si, false, json::object());
    queue_->enqueue(job.id);
    return job.id;
  }
  std::optional<pg::QueueEntry> entry(std::int64_t job_id) {
    for (auto& e : queue_->entries()) {
      if (e.job_id == job_id) return e;
    }
    return std::nullopt;
  }
  bool settled(std::int64_t job_id) {
    const auto e = entry(job_id);
    return e && (e->state == pg::QueueState::done || e->state == pg::QueueState::failed);
  }
  std::int64_t rows(const ServiceIntegration& si) {
    const std::string table = replica_->qualified_name(registry_->make(si, context())->table_spec());
    return std::stoll(admin_exec("SELECT count(*) FROM " + table).rows.at(0).at(0).value_or("0"));
  }
  // The table equals the source row for row (data as jsonb), compared in SQL
  // against the source loaded once into a table.
  void expect_table_equals_source(const ServiceIntegration& si) {
    const std::string source = schema().quoted() + ".source_objects";
    if (!source_loaded_) {
      json all = json::array();
      for (auto& object : server_->dataset().objects()) all.push_back(std::move(object));
      admin_exec("CREATE TABLE " + source + " (id text PRIMARY KEY, data jsonb NOT NULL)");
      admin_exec("INSERT INTO " + source + " SELECT x->>'id', x FROM jsonb_array_elements($1::jsonb) x", {all.dump()});
      source_loaded_ = true;
    }
    const std::string table = replica_->qualified_name(registry_->make(si, context())->table_spec());
    const auto diff = admin_exec("SELECT count(*) FILTER (WHERE t.stripe_id IS NOT NULL) AS mirrored, "
                                 "count(*) FILTER (WHERE t.data IS DISTINCT FROM s.data) AS differing FROM " +
                                 table + " t FULL JOIN " + source + " s ON s.id = t.stripe_id");
    EXPECT_EQ(diff.at(0, "mirrored").value_or(""), std::to_string(kObjects)) << si.table_name;
    EXPECT_EQ(diff.at(0, "differing").value_or(""), "0") << si.table_name << ": rows differ from the source";
  }
  bool source_loaded_ = false;

  // The worker whose backend holds the grants' row lock (SELECT ... FOR
  // UPDATE takes RowShareLock on the table for the transaction): "w2".
  std::string refreshing_worker() {
    const auto r = admin_exec(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.relation = to_regclass($1) AND l.mode = 'RowShareLock'",
        {schema().quoted() + ".webhookdb_oauth_grants"});
    if (r.rows.size() != 1) return {};
    const std::string app = r.rows[0].at(0).value_or("");
    const std::string prefix = "webhookdb-worker ";
    return app.rfind(prefix, 0) == 0 ? app.substr(prefix.size()) : std::string();
  }

  // No access token, refresh token, client secret or key in any worker's
  // output or in any job's error.
  void expect_no_secret_anywhere(const std::vector<ServiceIntegration>& integrations) {
    std::string seen;
    for (const auto& [name, text] : logs_) seen += text;
    for (const auto& e : queue_->entries()) seen += e.last_error + "\n";
    const std::regex token(R"((at|rt)_[0-9]+_[0-9]+)");
    std::smatch m;
    EXPECT_FALSE(std::regex_search(seen, m, token))
        << "a token in a worker's output or a job error: " << m.str(0);
    EXPECT_EQ(seen.find(kClientSecret), std::string::npos) << "the client secret in a worker's output";
    if (const char* key = std::getenv("WEBHOOKDB_SECRET_KEY");
        key != nullptr && std::string(key).size() > 8) {
      EXPECT_EQ(seen.find(key), std::string::npos) << "the secret key in a worker's output";
    }
    for (const auto& si : integrations) {
      const auto grant = grants_->load(si.id);
      ASSERT_TRUE(grant);
      for (const std::string& secret : {grant->tokens.access_token, grant->tokens.refresh_token}) {
        if (!secret.empty()) {
          EXPECT_EQ(seen.find(secret), std::string::npos);
        }
      }
    }
  }

  ReplicatorContext context() const {
    ReplicatorContext ctx;
    ctx.replica = replica_;
    ctx.jobs = jobs_;
    ctx.registry = registry_;
    return ctx;
  }

  enum class KillAt { before_provider_answered, after_answer_before_commit, after_commit };
  void kill_mid_refresh(KillAt when);

  std::shared_ptr<pg::ConnectionPool> pool_;
  std::shared_ptr<pg::PgJobStore> jobs_;
  std::shared_ptr<pg::PgReplicaStore> replica_;
  std::shared_ptr<pg::PgJobQueue> queue_;
  std::shared_ptr<pg::PgOAuthTokenStore> grants_;
  std::shared_ptr<Registry> registry_;
  std::unique_ptr<tools::ApiServer> server_;
  std::unique_ptr<TokenGate> gate_;
  std::map<std::string, std::unique_ptr<test::ChildProcess>> workers_;
  std::map<std::string, std::string> logs_;
  std::string log_dir_;
  int tables_ = 0;
};

TEST(WorkerOAuth2Settings, OnByDefaultTheFlagsAreCheckedAndNoValueIsEchoed) {
  const std::string url = "postgresql://app:pw@db/app";
  const WorkerSettings defaults = parse_worker_args({"--database-url", url});
  EXPECT_TRUE(defaults.oauth2);
  EXPECT_EQ(defaults.oauth2_lock_wait, 30s);
  EXPECT_EQ(defaults.oauth2_refresh_margin, 60s);
  const WorkerSettings s =
      parse_worker_args({"--database-url", url, "--oauth2", "off", "--oauth2-lock-wait-seconds", "1.5",
                         "--oauth2-refresh-margin-seconds", "0"});
  EXPECT_FALSE(s.oauth2);
  EXPECT_EQ(s.oauth2_lock_wait, 1500ms);
  EXPECT_EQ(s.oauth2_refresh_margin, 0ms);
  for (const auto& bad :
       std::vector<std::vector<std::string>>{{"--oauth2", "secret-ish"},
                                             {"--oauth2-lock-wait-seconds", "0"},
                                             {"--oauth2-refresh-margin-seconds", "secret-ish"}}) {
    std::vector<std::string> args{"--database-url", url};
    args.insert(args.end(), bad.begin(), bad.end());
    try {
      (void)parse_worker_args(args);
      ADD_FAILURE() << bad[0] << " accepted";
    } catch (const InvalidPrecondition& e) {
      EXPECT_NE(std::string(e.what()).find(bad[0]), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find("secret-ish"), std::string::npos) << e.what();
    }
  }
  EXPECT_NE(worker_usage("w").find("--oauth2"), std::string::npos);
}

TEST_F(OAuthWorkerProcessTest, FourWorkersShareRotatingTokensWithoutAnAuthFailureOrALeak) {
  start_server(20ms);  // 10 pages of 20 ms and more: a job lasts a fraction of a token's life
  std::vector<ServiceIntegration> integrations;
  for (int i = 0; i < 4; ++i) {
    integrations.push_back(
        oauth_integration(server_->url("/oauth/token"), i % 2 == 0 ? oauth2::ClientAuthentication::basic
                                                                   : oauth2::ClientAuthentication::body));
  }
  for (const auto* name : {"w1", "w2", "w3", "w4"}) spawn(name, 2, 5);

  // Backfill every integration again as soon as its last backfill is done.
  const auto seconds = fleet_seconds();
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::int64_t> all_jobs;
  std::map<std::int64_t, std::int64_t> latest;  // integration -> job
  while (std::chrono::steady_clock::now() - started < seconds) {
    for (const auto& si : integrations) {
      if (latest.count(si.id) == 0 || settled(latest[si.id])) {
        latest[si.id] = enqueue_backfill(si);
        all_jobs.push_back(latest[si.id]);
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(wait_until(
      [&] { return std::all_of(all_jobs.begin(), all_jobs.end(), [&](auto id) { return settled(id); }); },
      60s))
      << "not every job finished";
  const auto elapsed = std::chrono::steady_clock::now() - started;
  terminate_all();

  int done = 0;
  for (const auto& e : queue_->entries()) {
    EXPECT_EQ(e.state, pg::QueueState::done) << "job " << e.job_id << ": " << e.last_error;
    EXPECT_EQ(e.attempts, 1) << "job " << e.job_id << " ran more than once: " << e.last_error;
    EXPECT_EQ(e.last_error, "") << "job " << e.job_id;
    done += e.state == pg::QueueState::done ? 1 : 0;
  }
  std::int64_t refreshes = 0;
  for (const auto& si : integrations) {
    expect_table_equals_source(si);
    const auto count = grants_->refresh_count(si.id);
    EXPECT_GE(count, 2) << "integration " << si.id << " refreshed " << count << " times in "
                        << seconds.count() << " s of 2-second tokens";
    refreshes += count;
  }
  const json stats = provider_stats();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
  std::cerr << "4 workers, 4 integrations, " << seconds.count() << " s of backfills (" << ms
            << " ms to settle): " << done << " jobs done, " << server_->stats().data_requests
            << " data requests, " << refreshes << " refreshes; provider: " << stats.dump() << "\n";
  EXPECT_EQ(stats["refresh_tokens_used_more_than_once"], 0) << stats.dump();
  EXPECT_EQ(stats["reuses_refused"], 0) << stats.dump();
  EXPECT_EQ(stats["invalid_client"], 0) << stats.dump();
  EXPECT_EQ(stats["refresh_tokens_used_once"], refreshes) << "every stored refresh spent one token, once";
  EXPECT_EQ(stats["refresh_tokens_unused"], 4) << "each integration holds its current one";
  EXPECT_TRUE(grants_->needing_reauthorization().empty());
  std::set<std::string> busy;
  const std::regex taken(R"(job (\d+) taken by (\S+))");
  for (const auto& [name, text] : logs_) {
    if (std::regex_search(text, taken)) busy.insert(name);
  }
  EXPECT_GE(busy.size(), 2U) << "the jobs were shared between the processes";
  expect_no_secret_anywhere(integrations);
}

// One integration, three workers, the token endpoint behind a gate. The grant
// starts with a refresh token only, so the first page makes its worker refresh.
void OAuthWorkerProcessTest::kill_mid_refresh(KillAt when) {
  start_server(100ms);  // a job of 10 pages outlives the kill after the first refresh
  gate_ = std::make_unique<TokenGate>(server_->url("/oauth/token"));
  const auto si = oauth_integration(gate_->url(), oauth2::ClientAuthentication::basic);
  const auto bystander = oauth_integration(server_->url("/oauth/token"), oauth2::ClientAuthentication::body);
  if (when != KillAt::after_commit) {
    gate_->arm(when == KillAt::before_provider_answered ? TokenGate::Hold::before_provider
                                                        : TokenGate::Hold::after_provider);
  }
  for (const auto* name : {"w1", "w2", "w3"}) spawn(name, 1, 2);
  const std::int64_t job = enqueue_backfill(si);
  const std::int64_t other = enqueue_backfill(bystander);

  std::string victim;
  if (when == KillAt::after_commit) {
    ASSERT_TRUE(wait_until([&] { return grants_->refresh_count(si.id) >= 1; }, 20s)) << "no refresh stored";
    const auto e = entry(job);
    ASSERT_TRUE(e && e->state == pg::QueueState::running) << "the job ended before the kill";
    victim = e->lease_owner;
  } else {
    ASSERT_TRUE(gate_->wait_held(20s)) << "no refresh reached the token endpoint";
    // Read in one go: the bystander's own refresh takes the table's lock for
    // a moment too, and two holders read as none (a CI run lost the race
    // between a check and a second read).
    std::string owner;
    const bool held = wait_until(
        [&] {
          victim = refreshing_worker();
          const auto e = entry(job);
          owner = e ? e->lease_owner : std::string();
          return !victim.empty() && victim == owner;
        },
        5s);
    ASSERT_TRUE(held) << "the grant's row lock is held by '" << victim << "', the job's lease by '" << owner
                      << "': the row lock should be the job's worker's";
  }
  ASSERT_EQ(workers_.count(victim), 1U) << "unknown worker '" << victim << "'";
  // Another process that needs the same grant meanwhile (as a host's webhook
  // receiver would): it waits for the row lock until its deadline, then gives
  // up with a retryable error, never asking the provider itself.
  auto plain = curl::make_curl_client();
  auto contender_store = std::make_shared<pg::PgOAuthTokenStore>(
      std::make_shared<pg::ConnectionPool>(config(2)), pg::SecretKeys::from_environment(),
      pg::OAuthTokenStoreOptions{.lock_wait = 1000ms});
  CredentialAuth contender(plain, std::make_shared<oauth2::OAuth2Credentials>(plain, contender_store));
  HttpRequest page{.url = server_->url("/v1/charges?limit=1")};
  page.integration_id = si.id;
  if (when == KillAt::before_provider_answered) {
    const auto asked = std::chrono::steady_clock::now();
    try {
      (void)contender.send(page);
      ADD_FAILURE() << "a second process refreshed while the first held the grant";
    } catch (const Error& e) {
      EXPECT_TRUE(e.retryable()) << e.what();
    }
    EXPECT_GE(std::chrono::steady_clock::now() - asked, 900ms) << "it waited for the lock's deadline";
    EXPECT_EQ(gate_->forwarded(), 0) << "nobody but the lock holder went to the token endpoint";
  }
  workers_[victim]->signal(SIGKILL);
  ASSERT_EQ(workers_[victim]->wait_exit(10s), std::optional<int>(128 + SIGKILL));
  gate_->release();  // the held request is answered to a dead process
  if (when == KillAt::before_provider_answered) {
    // The lock went with the dead worker's session: the stored (unspent)
    // refresh token works for the next process that asks.
    EXPECT_EQ(contender.send(page).status, 200);
    EXPECT_EQ(grants_->refresh_count(si.id), 1);
  }

  ASSERT_TRUE(wait_until([&] { return settled(job) && settled(other); }, 60s))
      << "the job was not taken over";
  const auto e = entry(job).value();
  EXPECT_GE(e.attempts, 2) << "taken over after the dead worker's lease";
  const json stats = provider_stats();
  std::cerr << "kill -9 of " << victim << ": job " << (e.state == pg::QueueState::done ? "done" : "failed")
            << " after " << e.attempts << " attempts, refreshes stored " << grants_->refresh_count(si.id)
            << ", provider: " << stats.dump() << "\n";
  EXPECT_EQ(entry(other).value().state, pg::QueueState::done) << "the other integration is untouched";

  if (when != KillAt::after_answer_before_commit) {
    // The stored refresh token still works: no re-authorisation, nothing refused.
    EXPECT_EQ(e.state, pg::QueueState::done) << e.last_error;
    EXPECT_EQ(rows(si), static_cast<std::int64_t>(kObjects));
    EXPECT_TRUE(grants_->needing_reauthorization().empty());
    EXPECT_EQ(stats["reuses_refused"], 0) << stats.dump();
    EXPECT_EQ(stats["refresh_tokens_used_more_than_once"], 0) << stats.dump();
    // And it goes on working: one more backfill after the tokens expired.
    std::this_thread::sleep_for(2100ms);
    const std::int64_t again = enqueue_backfill(si);
    ASSERT_TRUE(wait_until([&] { return settled(again); }, 30s));
    EXPECT_EQ(entry(again).value().state, pg::QueueState::done) << entry(again).value().last_error;
  } else {
    // The provider rotated a token that was never stored: the stored one is
    // spent. The next refresh is refused, the integration is marked (and only
    // it), the job fails for good with an error that says what to do.
    EXPECT_EQ(e.state, pg::QueueState::failed);
    EXPECT_NE(e.last_error.find("needs re-authorisation"), std::string::npos) << e.last_error;
    EXPECT_NE(e.last_error.find("invalid_grant"), std::string::npos) << e.last_error;
    EXPECT_EQ(grants_->needing_reauthorization(), std::vector<std::int64_t>{si.id});
    EXPECT_EQ(stats["reuses_refused"], 1) << stats.dump();
    // Later jobs of the integration fail at once, without asking the provider.
    const std::int64_t again = enqueue_backfill(si);
    ASSERT_TRUE(wait_until([&] { return settled(again); }, 30s));
    EXPECT_EQ(entry(again).value().state, pg::QueueState::failed);
    EXPECT_NE(entry(again).value().last_error.find("needs re-authorisation"), std::string::npos);
    EXPECT_EQ(provider_stats()["reuses_refused"], 1) << "the stored mark answered, not the provider";
    // A person authorises again: the integration works.
    grants_->authorize(si.id, grants_->load(si.id).value().client, {.refresh_token = first_refresh_token()});
    const std::int64_t after = enqueue_backfill(si);
    ASSERT_TRUE(wait_until([&] { return settled(after); }, 30s));
    EXPECT_EQ(entry(after).value().state, pg::QueueState::done) << entry(after).value().last_error;
    EXPECT_EQ(rows(si), static_cast<std::int64_t>(kObjects));
    EXPECT_TRUE(grants_->needing_reauthorization().empty());
  }
  terminate_all();
  expect_no_secret_anywhere({si, bystander});
}

TEST_F(OAuthWorkerProcessTest, KillDuringRefreshBeforeTheProviderAnsweredKeepsTheGrant) {
  kill_mid_refresh(KillAt::before_provider_answered);
}

TEST_F(OAuthWorkerProcessTest, KillAfterTheProviderRotatedButBeforeTheCommitAsksForReauthorisation) {
  kill_mid_refresh(KillAt::after_answer_before_commit);
}

TEST_F(OAuthWorkerProcessTest, KillAfterTheRefreshWasCommittedKeepsTheGrant) {
  kill_mid_refresh(KillAt::after_commit);
}

}  // namespace
}  // namespace webhookdb::jobs
