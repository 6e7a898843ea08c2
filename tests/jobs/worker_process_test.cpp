// webhookdb-worker processes against a real PostgreSQL and the local API
// server (in this test process): several workers sharing one queue, a worker
// killed with SIGKILL mid-job, a worker drained with SIGTERM.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "api_server/api_server.hpp"
#include "jobs/demo_replicators.hpp"
#include "support/child_process.hpp"
#include "support/pg_test_env.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::jobs {
namespace {

using namespace std::chrono_literals;
using tools::ApiServer;
using tools::ApiServerOptions;

constexpr std::size_t kObjects = 2000;
constexpr std::size_t kPages = kObjects / demo::kPageSize;

using test::read_file;
using test::wait_until;

// One webhookdb-worker process.
class WorkerProcess : public test::ChildProcess {
 public:
  WorkerProcess(const std::vector<std::string>& args, std::string log_path)
      : ChildProcess(WEBHOOKDB_WORKER_EXE, args, std::move(log_path)) {}
};

class JobsProcessTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    pool_ = std::make_shared<pg::ConnectionPool>(config(6));
    jobs_ = std::make_shared<pg::PgJobStore>(pool_);
    replica_ = std::make_shared<pg::PgReplicaStore>(pool_);
    queue_ = std::make_shared<pg::PgJobQueue>(pool_);
    registry_ = std::make_shared<Registry>();
    demo::register_demo_replicators(*registry_);
    char dir[] = "/tmp/webhookdb-worker-test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    log_dir_ = dir;
  }

  void TearDown() override {
    const bool failed = HasFailure();
    workers_.clear();
    if (server_) server_->stop();
    if (failed) {
      for (const auto& [name, text] : logs_) std::cerr << "---- " << name << " ----\n" << text.substr(0, 20000) << "\n";
    }
    // WEBHOOKDB_KEEP_WORKER_LOGS=1 keeps the workers' logs for a look.
    if (std::getenv("WEBHOOKDB_KEEP_WORKER_LOGS") != nullptr) {
      std::cerr << "worker logs kept in " << log_dir_ << "\n";
    } else if (!log_dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(log_dir_, ignored);
    }
    test::PgTest::TearDown();
  }

  void start_server(std::chrono::milliseconds latency = 0ms) {
    ApiServerOptions o;
    o.objects = kObjects;
    o.latency = latency;
    o.threads = 4;
    server_ = std::make_unique<ApiServer>(o);
    server_->start();
  }

  WorkerProcess& spawn(const std::string& name, int concurrency, double lease_seconds) {
    std::vector<std::string> args = {"--database-url", schema().url(),
                                     "--schema", schema_name(),
                                     "--replica-schema", schema_name(),
                                     "--concurrency", std::to_string(concurrency),
                                     "--lease-seconds", std::to_string(lease_seconds),
                                     "--poll-seconds", "0.5",
                                     // These tests count attempts and page fetches of each job:
                                     // a job that yields its slice is taken again (another attempt,
                                     // and its prefetched page fetched again). Slicing has its own
                                     // tests (JobsWorkerTest.LongJobsYield...); under ASan every job
                                     // here runs past the 5 s default while others wait.
                                     "--time-slice-seconds", "0",
                                     "--owner", name};
    workers_[name] = std::make_unique<WorkerProcess>(args, log_dir_ + "/" + name + ".log");
    auto& w = *workers_[name];
    EXPECT_TRUE(w.wait_for_log("ready on", 20s)) << name << " did not start:\n" << w.log();
    return w;
  }

  // Keeps the logs for the failure report, then stops the worker with SIGTERM.
  void terminate(const std::string& name) {
    auto& w = *workers_.at(name);
    w.signal(SIGTERM);
    EXPECT_EQ(w.wait_exit(15s), std::optional<int>(0)) << name << " did not drain and exit 0";
    logs_[name] = w.log();
  }

  ServiceIntegration integration(const std::string& service, std::optional<std::int64_t> depends_on = std::nullopt) {
    ServiceIntegration si;
    si.service_name = service;
    si.table_name = "t" + std::to_string(++tables_) + "_" + service;
    si.api_url = server_->base_url();
    if (!depends_on) si.backfill_key = "sk_test_" + std::to_string(tables_);
    si.depends_on = depends_on;
    si = jobs_->create_integration(si);
    registry_->make(si, context())->create_table();
    return si;
  }

  ReplicatorContext context() const {
    ReplicatorContext ctx;
    ctx.replica = replica_;
    ctx.jobs = jobs_;
    ctx.registry = registry_;
    return ctx;
  }

  bool all_done(const std::vector<std::int64_t>& ids, std::chrono::milliseconds timeout) {
    return wait_until(
        [&] {
          auto done = queue_->entries(pg::QueueState::done);
          std::set<std::int64_t> ids_done;
          for (const auto& e : done) ids_done.insert(e.job_id);
          return std::all_of(ids.begin(), ids.end(), [&](auto id) { return ids_done.count(id) > 0; });
        },
        timeout);
  }

  // Compared in SQL against the source loaded once into a table: row for
  // row, data as jsonb (fast enough for 30 tables).
  void expect_table_equals_source(const ServiceIntegration& si) {
    const std::string source = schema().quoted() + ".source_objects";
    if (!source_loaded_) {
      nlohmann::json all = nlohmann::json::array();
      for (auto& object : server_->dataset().objects()) all.push_back(std::move(object));
      admin_exec("CREATE TABLE " + source + " (id text PRIMARY KEY, data jsonb NOT NULL)");
      admin_exec("INSERT INTO " + source + " SELECT x->>'id', x FROM jsonb_array_elements($1::jsonb) x", {all.dump()});
      source_loaded_ = true;
    }
    auto r = registry_->make(si, context());
    const std::string table = replica_->qualified_name(r->table_spec());
    auto diff = admin_exec("SELECT count(*) FILTER (WHERE t.stripe_id IS NOT NULL), "
                           "count(*) FILTER (WHERE t.data IS DISTINCT FROM s.data) FROM " +
                           table + " t FULL JOIN " + source + " s ON s.id = t.stripe_id");
    EXPECT_EQ(diff.rows.at(0).at(0).value_or(""), std::to_string(kObjects)) << si.table_name;
    EXPECT_EQ(diff.rows.at(0).at(1).value_or(""), "0") << si.table_name << ": rows differ from the source";
  }

  std::size_t pages_checkpointed(std::int64_t job_id) {
    auto cps = replica_->load_checkpoints(job_id);
    if (cps.empty() || cps.begin()->second.next_token.empty()) return 0;
    const auto index = server_->dataset().index_of(cps.begin()->second.next_token);
    EXPECT_TRUE(index);
    return index ? (*index + 1) / demo::kPageSize : 0;
  }

  std::shared_ptr<pg::ConnectionPool> pool_;
  std::shared_ptr<pg::PgJobStore> jobs_;
  std::shared_ptr<pg::PgReplicaStore> replica_;
  std::shared_ptr<pg::PgJobQueue> queue_;
  std::shared_ptr<Registry> registry_;
  std::unique_ptr<ApiServer> server_;
  std::map<std::string, std::unique_ptr<WorkerProcess>> workers_;
  std::map<std::string, std::string> logs_;
  bool source_loaded_ = false;
  std::string log_dir_;
  int tables_ = 0;
};

TEST_F(JobsProcessTest, ThreeWorkersRunThirtyIntegrationsEachJobOnceChildrenAfterParents) {
  start_server();
  std::vector<ServiceIntegration> integrations;
  std::vector<BackfillJob> roots;
  for (int i = 0; i < 10; ++i) {  // 10 integrations with a dependent
    auto parent = integration(demo::kChargeService);
    auto child = integration(demo::kMirrorService, parent.id);
    integrations.push_back(parent);
    integrations.push_back(child);
  }
  for (int i = 0; i < 10; ++i) integrations.push_back(integration(demo::kChargeService));
  for (const auto& si : integrations) {
    if (!si.depends_on) roots.push_back(jobs_->create_recursive(si, false, nlohmann::json::object()));
  }
  std::vector<std::int64_t> all_ids;
  std::map<std::int64_t, std::int64_t> parent_of;
  for (const auto& root : roots) {
    all_ids.push_back(root.id);
    for (const auto& child : jobs_->child_jobs(root.id)) {
      all_ids.push_back(child.id);
      parent_of[child.id] = root.id;
    }
  }
  ASSERT_EQ(all_ids.size(), 30U);
  ASSERT_EQ(parent_of.size(), 10U);

  for (const auto* name : {"w1", "w2", "w3"}) spawn(name, 2, 5);
  const auto started = std::chrono::steady_clock::now();
  for (const auto& root : roots) queue_->enqueue(root.id);  // NOTIFY wakes the idle workers
  ASSERT_TRUE(all_done(all_ids, 90s)) << "not every job finished";
  const auto elapsed = std::chrono::steady_clock::now() - started;
  std::cerr << "30 jobs, " << 30 * kObjects << " rows, 3 workers: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms\n";

  for (const auto& e : queue_->entries()) {
    EXPECT_EQ(e.state, pg::QueueState::done) << e.job_id;
    EXPECT_EQ(e.attempts, 1) << "job " << e.job_id << " ran more than once";
  }
  for (auto id : all_ids) {
    auto job = jobs_->find_job(id);
    ASSERT_TRUE(job && job->started_at && job->finished_at) << id;
    if (auto it = parent_of.find(id); it != parent_of.end()) {
      auto parent = jobs_->find_job(it->second);
      EXPECT_GE(*job->started_at, *parent->finished_at) << "child " << id << " started before its parent finished";
    }
  }
  const auto verify_started = std::chrono::steady_clock::now();
  for (const auto& si : integrations) expect_table_equals_source(si);
  std::cerr << "verified 30 tables in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - verify_started)
                   .count()
            << " ms\n";
  EXPECT_EQ(server_->stats().data_requests, 30 * kPages) << "every page of every job fetched exactly once";

  for (const auto* name : {"w1", "w2", "w3"}) terminate(name);
  // Each job was taken exactly once, by one of the processes; the work was shared.
  std::map<std::int64_t, int> takes;
  std::set<std::string> busy;
  const std::regex taken(R"(job (\d+) taken by (\S+))");
  for (const auto& [name, text] : logs_) {
    for (std::sregex_iterator it(text.begin(), text.end(), taken), end; it != end; ++it) {
      ++takes[std::stoll((*it)[1].str())];
      busy.insert((*it)[2].str());
    }
  }
  EXPECT_EQ(takes.size(), 30U);
  for (const auto& [id, n] : takes) EXPECT_EQ(n, 1) << "job " << id;
  EXPECT_GE(busy.size(), 2U) << "the jobs were shared between the processes";
  EXPECT_TRUE(queue_->entries(pg::QueueState::running).empty());
}

TEST_F(JobsProcessTest, AKilledWorkersJobIsFinishedByAnotherAfterItsLeaseWithoutRefetchingCheckpointedPages) {
  start_server(40ms);
  auto si = integration(demo::kChargeService);
  auto job = jobs_->create_recursive(si, false, nlohmann::json::object());
  spawn("doomed", 1, 2);
  queue_->enqueue(job.id);
  // Killed once a few pages are checkpointed (the page loop prefetches, so
  // pages served run ahead of pages written by a load-dependent amount).
  ASSERT_TRUE(wait_until([&] { return pages_checkpointed(job.id) >= 4; }, 30s));

  auto& doomed = *workers_.at("doomed");
  doomed.signal(SIGKILL);
  ASSERT_EQ(doomed.wait_exit(5s), std::optional<int>(128 + SIGKILL));
  const auto killed_at = std::chrono::steady_clock::now();
  logs_["doomed"] = doomed.log();
  // What the dead process had sent can still land after its death: a COMMIT
  // (a later checkpoint) its backend had not yet run, a request the server
  // had not yet read. Both are settled once its backends have exited and the
  // server has closed its connections; only then is the count taken.
  EXPECT_TRUE(wait_until(
      [&] {
        return admin_exec("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'webhookdb-worker doomed'")
                       .rows.at(0)
                       .at(0) == std::optional<std::string>("0") &&
               server_->stats().open_connections == 0;
      },
      10s))
      << "the dead worker's connections did not close";
  const auto requests_at_kill = server_->stats().data_requests;
  const std::size_t checkpointed = pages_checkpointed(job.id);
  EXPECT_GE(checkpointed, 4U);
  EXPECT_LT(checkpointed, kPages);
  auto e = queue_->entry(job.id);
  EXPECT_EQ(e->state, pg::QueueState::running);
  EXPECT_EQ(e->lease_owner, "doomed") << "the dead worker still holds the lease until it expires";

  spawn("heir1", 1, 2);
  spawn("heir2", 1, 2);
  ASSERT_TRUE(all_done({job.id}, 30s));
  const auto recovered_after = std::chrono::steady_clock::now() - killed_at;
  EXPECT_GE(recovered_after, 1s) << "taken over only once the 2 s lease expired";

  e = queue_->entry(job.id);
  EXPECT_EQ(e->attempts, 2);
  expect_table_equals_source(si);
  EXPECT_EQ(server_->stats().data_requests - requests_at_kill, kPages - checkpointed)
      << "pages before the last checkpoint were not fetched again";
  EXPECT_TRUE(replica_->load_checkpoints(job.id).empty());
  terminate("heir1");
  terminate("heir2");
  const std::string heirs = logs_["heir1"] + logs_["heir2"];
  EXPECT_NE(heirs.find("recovered from doomed"), std::string::npos);
}

TEST_F(JobsProcessTest, SigtermDrainsCleanlyAndTheNextWorkerResumes) {
  start_server(40ms);
  auto si = integration(demo::kChargeService);
  auto job = jobs_->create_recursive(si, false, nlohmann::json::object());
  spawn("first", 2, 5);
  queue_->enqueue(job.id);
  ASSERT_TRUE(wait_until([&] { return server_->stats().pages >= 6; }, 30s));
  terminate("first");

  auto e = queue_->entry(job.id);
  EXPECT_EQ(e->state, pg::QueueState::queued) << "given back to the queue";
  EXPECT_TRUE(e->lease_owner.empty());
  EXPECT_FALSE(e->lease_expires_at);
  EXPECT_TRUE(queue_->entries(pg::QueueState::running).empty()) << "no job left leased";
  EXPECT_FALSE(jobs_->find_job(job.id)->finished_at);

  const std::size_t checkpointed = pages_checkpointed(job.id);
  EXPECT_GE(checkpointed, 4U);
  auto spec = registry_->make(si, context())->table_spec();
  const std::size_t rows = replica_->count(spec);
  EXPECT_EQ(rows, checkpointed * demo::kPageSize) << "no half-written page";
  std::size_t outside = 0;
  replica_->for_each(spec, [&](const Row& row) {
    auto i = server_->dataset().index_of(row.key.get<std::string>());
    if (!i || *i >= rows) ++outside;
  });
  EXPECT_EQ(outside, 0U) << "the rows are exactly the checkpointed pages";

  const auto requests_before = server_->stats().data_requests;
  spawn("second", 2, 5);
  ASSERT_TRUE(all_done({job.id}, 30s));
  expect_table_equals_source(si);
  EXPECT_EQ(server_->stats().data_requests - requests_before, kPages - checkpointed);
  terminate("second");
}

TEST_F(JobsProcessTest, SigintDrainsAndExitsZeroLikeSigterm) {
  start_server(200ms);  // 20 pages: the job is still running when SIGINT comes
  auto si = integration(demo::kChargeService);
  auto job = jobs_->create_recursive(si, false, nlohmann::json::object());
  auto& w = spawn("interrupted", 1, 5);
  queue_->enqueue(job.id);
  ASSERT_TRUE(wait_until([&] { return pages_checkpointed(job.id) >= 2; }, 30s));
  w.signal(SIGINT);
  EXPECT_EQ(w.wait_exit(15s), std::optional<int>(0));
  logs_["interrupted"] = w.log();
  EXPECT_NE(logs_["interrupted"].find("received SIGINT"), std::string::npos);
  EXPECT_TRUE(queue_->entries(pg::QueueState::running).empty()) << "no job left leased";
  EXPECT_EQ(queue_->entry(job.id)->state, pg::QueueState::queued) << "given back to the queue";
}

TEST_F(JobsProcessTest, CommandLine) {
  auto run = [&](const std::vector<std::string>& args) {
    WorkerProcess p(args, log_dir_ + "/cli.log");
    auto code = p.wait_exit(20s);
    logs_["cli"] += p.log();
    return code;
  };
  EXPECT_EQ(run({"--help"}), std::optional<int>(0));
  EXPECT_NE(logs_["cli"].find("--database-url"), std::string::npos);
  EXPECT_EQ(run({}), std::optional<int>(2));
  EXPECT_EQ(run({"--database-url", schema().url(), "--concurrency", "0"}), std::optional<int>(2));
  EXPECT_EQ(run({"--database-url", schema().url(), "--bogus", "1"}), std::optional<int>(2));
  // Unreachable database: start-up fails, and the password is not printed.
  logs_["cli"].clear();
  EXPECT_EQ(run({"--database-url", "postgresql://user:hunter2secret@127.0.0.1:1/db"}), std::optional<int>(1));
  EXPECT_EQ(logs_["cli"].find("hunter2secret"), std::string::npos) << logs_["cli"];
}

// The database URL's password never reaches the terminal, whichever way it
// came in; the URL can come from the environment or a file, out of `ps`'s sight.
TEST_F(JobsProcessTest, TheDatabasePasswordIsNeverPrinted) {
  const std::string secret = "pw-Never-Printed-7";
  auto run = [&](const std::vector<std::string>& args) {
    WorkerProcess p(args, log_dir_ + "/cli.log");
    auto code = p.wait_exit(20s);
    const std::string log = p.log();
    logs_["cli"] += log;
    EXPECT_EQ(log.find(secret), std::string::npos) << log;
    EXPECT_EQ(log.find("pw-Never"), std::string::npos) << log;  // not even cut short
    return code;
  };
  // A URL given without --database-url, in every spelling libpq accepts.
  EXPECT_EQ(run({"postgresql://app:" + secret + "@db/x"}), std::optional<int>(2));
  EXPECT_EQ(run({"--schema", "s", "postgres://app:" + secret + "@db/x"}), std::optional<int>(2));
  EXPECT_EQ(run({"host=db password=" + secret}), std::optional<int>(2));
  EXPECT_EQ(run({"--database-url", "postgresql://app@127.0.0.1:1/x", secret}), std::optional<int>(2));
  EXPECT_EQ(run({"--database-url"}), std::optional<int>(2));
  EXPECT_EQ(run({"--concurrency", secret}), std::optional<int>(2));
  EXPECT_EQ(run({"--database-url=postgresql://app:" + secret + "@127.0.0.1:1/x"}), std::optional<int>(1));
  EXPECT_EQ(run({"--database-url", "host=127.0.0.1 port=1 password = '" + secret + "'"}),
            std::optional<int>(1));
  EXPECT_EQ(run({"--database-url", "postgresql://app@127.0.0.1:1/x?password=" + secret}),
            std::optional<int>(1));

  // From the environment: the worker starts and says where, without the password.
  std::string url = schema().url();
  const auto at = url.find('@');
  ASSERT_NE(at, std::string::npos) << "the test database URL has no user@";
  url.insert(at, ":" + secret);
  ::setenv("WEBHOOKDB_DATABASE_URL", url.c_str(), 1);
  std::vector<std::string> args = {"--schema",    schema_name(), "--replica-schema",
                                   schema_name(), "--owner",     "env"};
  WorkerProcess from_env(args, log_dir_ + "/env.log");
  ::unsetenv("WEBHOOKDB_DATABASE_URL");
  EXPECT_TRUE(from_env.wait_for_log("ready on", 20s)) << from_env.log();
  from_env.signal(SIGTERM);
  EXPECT_EQ(from_env.wait_exit(15s), std::optional<int>(0));
  EXPECT_EQ(from_env.log().find(secret), std::string::npos) << from_env.log();

  // From a file (a mounted secret); a trailing newline is not part of the URL.
  const std::string file = log_dir_ + "/database-url";
  std::ofstream(file) << url << "\n";
  args.insert(args.end(), {"--database-url-file", file});
  args[5] = "file";
  WorkerProcess from_file(args, log_dir_ + "/file.log");
  EXPECT_TRUE(from_file.wait_for_log("ready on", 20s)) << from_file.log();
  from_file.signal(SIGTERM);
  EXPECT_EQ(from_file.wait_exit(15s), std::optional<int>(0));
  EXPECT_EQ(from_file.log().find(secret), std::string::npos) << from_file.log();
  EXPECT_EQ(run({"--database-url-file", log_dir_ + "/missing"}), std::optional<int>(2));
}

}  // namespace
}  // namespace webhookdb::jobs
