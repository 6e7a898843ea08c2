// The `webhookdb` admin CLI, run as a process against a real webhookdb-worker
// process, a real PostgreSQL and the local API server: enqueue a backfill,
// watch its progress move (persisted by the worker), cancel it (its worker
// stops within a second through LISTEN/NOTIFY, its checkpoints kept, the job
// cancelled, not failed), resume it with a later enqueue, retry a failed job;
// every --json output parses and no output shows the database password.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "api_server/api_server.hpp"
#include "jobs/demo_replicators.hpp"
#include "support/child_process.hpp"
#include "support/pg_test_env.hpp"
#include "support/sanitizers.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/pg/webhook_inbox.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::admin {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::wait_until;

// Sanitizers slow every process several times over; the bounds scale.
constexpr int kSlowdown = test::kSanitizerSlowdown;

constexpr std::size_t kObjects = 2000;
constexpr std::size_t kPages = kObjects / jobs::demo::kPageSize;
// Accepted by the test server (trust authentication) and never to be printed.
constexpr const char* kPassword = "hunter2-admin-secret";

struct CliRun {
  std::optional<int> code;
  std::string output;  // stdout and stderr
};

class AdminCliTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    pool_ = std::make_shared<pg::ConnectionPool>(config(4));
    jobs_ = std::make_shared<pg::PgJobStore>(pool_);
    jobs_->migrate();
    replica_ = std::make_shared<pg::PgReplicaStore>(pool_);
    replica_->migrate();
    queue_ = std::make_shared<pg::PgJobQueue>(pool_);
    registry_ = std::make_shared<Registry>();
    jobs::demo::register_demo_replicators(*registry_);
    char dir[] = "/tmp/webhookdb-admin-test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    // The URL with a password: the CLI reads it from the worker's variable.
    const std::string url = schema().url();
    const auto scheme = url.find("://");
    ASSERT_NE(scheme, std::string::npos) << "the test database URL is not a postgresql:// URL";
    const auto at = url.find('@', scheme);
    ASSERT_NE(at, std::string::npos) << "the test database URL names no user";
    ASSERT_EQ(url.substr(scheme + 3, at - scheme - 3).find(':'), std::string::npos)
        << "it has a password already";
    url_ = url.substr(0, at) + ":" + kPassword + url.substr(at);
    ::setenv("WEBHOOKDB_DATABASE_URL", url_.c_str(), 1);
  }

  void TearDown() override {
    const bool failed = HasFailure();
    if (worker_) {
      worker_->signal(SIGTERM);
      worker_->wait_exit(15s);
      if (failed) std::cerr << "---- worker ----\n" << worker_->log().substr(0, 20000) << "\n";
      EXPECT_EQ(worker_->log().find(kPassword), std::string::npos) << "the worker printed the password";
      worker_.reset();
    }
    ::unsetenv("WEBHOOKDB_DATABASE_URL");
    if (server_) server_->stop();
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
    test::PgTest::TearDown();
  }

  void start_server(std::chrono::milliseconds latency) {
    tools::ApiServerOptions o;
    o.objects = kObjects;
    o.latency = latency;
    o.threads = 4;
    server_ = std::make_unique<tools::ApiServer>(o);
    server_->start();
  }

  void spawn_worker() {
    // The URL through the environment, as the CLI gets it.
    const std::vector<std::string> args = {
        "--schema",        schema_name(), "--replica-schema", schema_name(), "--concurrency",        "1",
        "--lease-seconds", "5",           "--poll-seconds",   "0.5",         "--time-slice-seconds", "0",
        "--owner",         "w1"};
    worker_ = std::make_unique<test::ChildProcess>(WEBHOOKDB_WORKER_EXE, args, dir_ + "/worker.log");
    ASSERT_TRUE(worker_->wait_for_log("ready on", 20s)) << worker_->log();
  }

  ServiceIntegration integration() {
    ServiceIntegration si;
    si.service_name = jobs::demo::kChargeService;
    si.table_name = "t" + std::to_string(++tables_);
    si.api_url = server_->base_url();
    si.backfill_key = "sk_test_admin_" + std::to_string(tables_);
    si = jobs_->create_integration(si);
    ReplicatorContext ctx;
    ctx.replica = replica_;
    ctx.jobs = jobs_;
    ctx.registry = registry_;
    registry_->make(si, ctx)->create_table();
    return si;
  }

  // One run of the CLI; its output is checked for the password every time.
  CliRun cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--schema", schema_name()});
    test::ChildProcess p(WEBHOOKDB_CLI_EXE, args, dir_ + "/cli.log");
    CliRun run{p.wait_exit(30s * kSlowdown), p.log()};
    EXPECT_EQ(run.output.find(kPassword), std::string::npos) << "the CLI printed the password:\n"
                                                             << run.output;
    EXPECT_EQ(run.output.find(url_), std::string::npos) << "the CLI printed the database URL";
    return run;
  }

  // A --json command: exit 0 and JSON that parses.
  json cli_json(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    const CliRun run = cli(args);
    EXPECT_EQ(run.code, std::optional<int>(0)) << run.output;
    try {
      return json::parse(run.output);
    } catch (const json::exception& e) {
      ADD_FAILURE() << "not JSON (" << e.what() << "):\n" << run.output;
      return json();
    }
  }

  json job(std::int64_t id) { return cli_json({"job", std::to_string(id)}); }

  std::string state_of(std::int64_t id) {
    const auto e = queue_->entry(id);
    return e ? std::string(pg::to_string(e->state)) : "none";
  }

  std::size_t pages_checkpointed(std::int64_t job_id) {
    auto cps = replica_->load_checkpoints(job_id);
    if (cps.empty() || cps.begin()->second.next_token.empty()) return 0;
    const auto index = server_->dataset().index_of(cps.begin()->second.next_token);
    return index ? (*index + 1) / jobs::demo::kPageSize : 0;
  }

  std::shared_ptr<pg::ConnectionPool> pool_;
  std::shared_ptr<pg::PgJobStore> jobs_;
  std::shared_ptr<pg::PgReplicaStore> replica_;
  std::shared_ptr<pg::PgJobQueue> queue_;
  std::shared_ptr<Registry> registry_;
  std::unique_ptr<tools::ApiServer> server_;
  std::unique_ptr<test::ChildProcess> worker_;
  std::string dir_;
  std::string url_;
  int tables_ = 0;
};

TEST_F(AdminCliTest, EnqueueWatchProgressCancelWithinASecondResumeAtCheckpoints) {
  start_server(400ms);  // 20 pages: 8 s of backfill at least; cancelled after 2 to 4 s
  const auto si = integration();
  spawn_worker();
  ASSERT_FALSE(HasFatalFailure());

  const json enqueued = cli_json({"backfill", si.opaque_id});
  ASSERT_EQ(enqueued.value("action", ""), "enqueued") << enqueued.dump();
  const std::int64_t id = enqueued.at("job_id").get<std::int64_t>();

  // Progress the worker persisted (about once a second) moves.
  std::uint64_t first = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        const json j = job(id);
        first = j.is_object() ? j["progress"].value("pages", 0U) : 0U;
        return first >= 1 && j.value("state", "") == "running";
      },
      20s * kSlowdown))
      << "no progress persisted: " << job(id).dump(2);
  json moving;
  ASSERT_TRUE(wait_until(
      [&] {
        moving = job(id);
        return moving["progress"].value("pages", 0U) > first;
      },
      10s * kSlowdown))
      << "progress did not move past " << first << " pages";
  EXPECT_EQ(moving.value("worker", ""), "w1") << "the job shows the worker holding it";
  EXPECT_GT(moving["progress"].value("rows_written", 0U), 0U);
  EXPECT_GT(moving["progress"].value("rows_per_second", 0.0), 0.0);
  // Cancel: the holder stops within a second (plus the sanitizers' slowdown).
  const auto asked = std::chrono::steady_clock::now();
  const json cancel = cli_json({"cancel", std::to_string(id)});
  EXPECT_EQ(cancel.value("action", ""), "cancel_requested") << cancel.dump();
  ASSERT_TRUE(wait_until([&] { return state_of(id) != "running"; }, 15s))
      << "the worker did not stop the cancelled job";
  const auto wall =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - asked);
  EXPECT_EQ(state_of(id), "cancelled") << "cancelled, not failed";
  // From the request's commit to the job's end, in the database's time.
  const auto took =
      admin_exec("SELECT (extract(epoch from q.finished_at - c.requested_at) * 1000)::bigint FROM " +
                     schema().quoted() + ".webhookdb_job_queue q JOIN " + schema().quoted() +
                     ".webhookdb_job_cancels c USING (job_id) WHERE job_id = $1::bigint",
                 {std::to_string(id)});
  ASSERT_EQ(took.rows.size(), 1U);
  const auto stopped_in = std::chrono::milliseconds(std::stoll(took.rows[0][0].value_or("-1")));
  std::cerr << "cancelled job stopped " << stopped_in.count() << " ms after the request (" << wall.count()
            << " ms including the CLI's run)\n";
  EXPECT_GE(stopped_in.count(), 0);
  EXPECT_LT(stopped_in, 1000ms * kSlowdown) << "not aborted within a second";
  const json cancelled = job(id);
  EXPECT_EQ(cancelled.value("state", ""), "cancelled");
  EXPECT_TRUE(cancelled["finished_at"].is_null()) << "a cancelled job is not finished";
  EXPECT_TRUE(cancelled["last_error"].is_null()) << cancelled.dump(2);
  const std::size_t checkpointed = pages_checkpointed(id);
  EXPECT_GE(checkpointed, 1U) << "its checkpoints are kept";
  EXPECT_LT(checkpointed, kPages);
  EXPECT_TRUE(worker_->wait_for_log("cancelled by an operator", 5s)) << worker_->log();
  EXPECT_EQ(cli({"cancel", std::to_string(id)}).code, std::optional<int>(1)) << "nothing left to cancel";
  const CliRun table = cli({"jobs"});
  EXPECT_EQ(table.code, std::optional<int>(0));
  EXPECT_NE(table.output.find("cancelled"), std::string::npos) << table.output;

  // The same backfill asked again resumes the cancelled job at its checkpoints.
  const auto requests_before = server_->stats().data_requests;
  const json resumed = cli_json({"backfill", std::to_string(si.id)});
  EXPECT_EQ(resumed.value("action", ""), "resumed") << resumed.dump();
  EXPECT_EQ(resumed.value("job_id", std::int64_t{0}), id);
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "done"; }, 60s * kSlowdown)) << job(id).dump(2);
  EXPECT_EQ(server_->stats().data_requests - requests_before, kPages - checkpointed)
      << "pages before the checkpoint were not fetched again";
  const json done = job(id);
  EXPECT_FALSE(done["finished_at"].is_null());
  ASSERT_EQ(done["backfillers"].size(), 1U) << done.dump(2);
  EXPECT_TRUE(done["backfillers"][0].value("done", false)) << "the final report is persisted";
  EXPECT_EQ(admin_exec("SELECT count(*) FROM " + schema().quoted() + ".t1").rows.at(0).at(0),
            std::to_string(kObjects));

  const json listed = cli_json({"jobs", "--integration", si.opaque_id});
  ASSERT_TRUE(listed.is_array());
  EXPECT_EQ(listed.size(), 1U) << "no second job was created";
  const json integrations = cli_json({"integrations"});
  ASSERT_TRUE(integrations.is_array());
  EXPECT_EQ(integrations.dump().find("sk_test_admin"), std::string::npos) << "no credential is shown";
}

TEST_F(AdminCliTest, AFailedJobIsRetriedAndAWindowIsEnqueued) {
  start_server(0ms);
  const auto si = integration();
  // The worker knows no such replicator: the job fails for good.
  admin_exec("UPDATE " + schema().quoted() +
                 ".webhookdb_service_integrations SET service_name = 'demo_missing_v1' WHERE id = $1::bigint",
             {std::to_string(si.id)});
  spawn_worker();
  ASSERT_FALSE(HasFatalFailure());
  const json enqueued = cli_json({"backfill", si.opaque_id});
  const std::int64_t id = enqueued.value("job_id", std::int64_t{0});
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "failed"; }, 30s * kSlowdown)) << job(id).dump(2);
  const json failed = cli_json({"jobs", "--state", "failed"});
  ASSERT_EQ(failed.size(), 1U) << failed.dump(2);
  EXPECT_NE(failed[0].value("last_error", "").find("demo_missing_v1"), std::string::npos) << failed.dump(2);

  admin_exec("UPDATE " + schema().quoted() +
                 ".webhookdb_service_integrations SET service_name = $2 WHERE id = $1::bigint",
             {std::to_string(si.id), jobs::demo::kChargeService});
  const json retried = cli_json({"retry", std::to_string(id)});
  EXPECT_EQ(retried["job_ids"], json::array({id})) << retried.dump();
  ASSERT_TRUE(wait_until([&] { return state_of(id) == "done"; }, 60s * kSlowdown)) << job(id).dump(2);
  EXPECT_EQ(cli({"retry", std::to_string(id)}).code, std::optional<int>(1)) << "a done job is not retried";

  // A window: its own job, with the window in its criteria.
  const json window =
      cli_json({"backfill", si.opaque_id, "--from", "2020-09-13T12:26:40Z", "--to", "2020-09-14T00:00:00Z"});
  ASSERT_EQ(window.value("action", ""), "enqueued") << window.dump();
  EXPECT_NE(window.value("job_id", std::int64_t{0}), id);
  EXPECT_EQ(window["job"]["criteria"]["window"]["from"], "2020-09-13T12:26:40Z") << window.dump(2);
  EXPECT_EQ(
      cli({"backfill", si.opaque_id, "--from", "2020-09-14T00:00:00Z", "--to", "2020-09-13T00:00:00Z"}).code,
      std::optional<int>(2))
      << "from after to is refused";
}

TEST_F(AdminCliTest, FailedWebhooksAreListedAndQueuedAgain) {
  pg::PgWebhookInbox inbox(pool_);
  WebhookRequest request;
  request.path = "/webhooks/svi_x";
  request.body = R"({"id":"ch_1"})";
  inbox.push("svi_x", request);
  const auto taken = inbox.take("test");
  ASSERT_EQ(taken.size(), 1U);
  ASSERT_EQ(inbox.fail(taken[0], "no integration svi_x", true), pg::InboxFailure::failed);

  const json failed = cli_json({"inbox", "failed"});
  ASSERT_EQ(failed.size(), 1U) << failed.dump(2);
  EXPECT_EQ(failed[0].value("integration", ""), "svi_x");
  EXPECT_EQ(failed[0].value("last_error", ""), "no integration svi_x");
  const CliRun table = cli({"inbox", "failed"});
  EXPECT_NE(table.output.find("svi_x"), std::string::npos) << table.output;
  const json retried = cli_json({"inbox", "retry", "--all"});
  EXPECT_EQ(retried.value("count", 0), 1) << retried.dump();
  EXPECT_EQ(inbox.pending_count(), 1U) << "queued again";
  EXPECT_TRUE(cli_json({"inbox", "failed"}).empty());
}

TEST_F(AdminCliTest, CommandLineAndErrorsNeverShowTheUrl) {
  CliRun help = cli({"--help"});
  EXPECT_EQ(help.code, std::optional<int>(0));
  EXPECT_NE(help.output.find("WEBHOOKDB_DATABASE_URL"), std::string::npos);
  EXPECT_EQ(cli({"jobs", "--state", "bogus"}).code, std::optional<int>(2));
  EXPECT_EQ(cli({"job", "999999"}).code, std::optional<int>(1));
  EXPECT_EQ(cli({}).code, std::optional<int>(2));
  // Unreachable database: exit 1, and neither URL nor password is printed.
  const std::string bad = std::string("postgresql://someone:") + kPassword + "@127.0.0.1:1/nowhere";
  CliRun unreachable = cli({"--database-url", bad, "jobs"});
  EXPECT_EQ(unreachable.code, std::optional<int>(1)) << unreachable.output;
  EXPECT_EQ(unreachable.output.find("postgresql://someone"), std::string::npos) << unreachable.output;
  EXPECT_NE(unreachable.output.find("<database url>"), std::string::npos) << unreachable.output;
  // The URL where a command was expected is not echoed either.
  CliRun misplaced = cli({bad});
  EXPECT_EQ(misplaced.code, std::optional<int>(2)) << misplaced.output;
}

}  // namespace
}  // namespace webhookdb::admin
