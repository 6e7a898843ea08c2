// PgJobStore against a real server.

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <map>
#include <string>
#include <thread>

#include "pg/pg_support.hpp"
#include "webhookdb/backfill_job.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/secret_key.hpp"
#include "webhookdb/testing/manual_clock.hpp"

namespace webhookdb::pg {
namespace {

using nlohmann::json;

std::vector<std::string> unusable_table_names() {
  return {std::string(64, 't'),     "tab\there", "new\nline", "del\x7f", "   ",
          std::string("nul\0x", 5), "bad \xff"};
}

// Two keys, as an operator makes them: openssl rand -base64 32 / -hex 32.
constexpr const char* kKeyA = "q2v1Xb1Jz4Lr8kM0pO9sT3uW6yZ5aB7cD2eF4gH6iJ8=";
constexpr const char* kKeyB = "5f1c0a9e8d7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877";

SecretKeys keys_with(const char* current, std::vector<SecretKey> previous = {}) {
  SecretKeys keys;
  keys.current = SecretKey::parse(current, "test key");
  keys.previous = std::move(previous);
  return keys;
}

class PgJobStoreTest : public test::PgTest {
 protected:
  void SetUp() override {
    test::PgTest::SetUp();
    if (HasFatalFailure()) return;
    clock = std::make_shared<testing::ManualClock>();
    store = std::make_unique<PgJobStore>(config(2), clock, keys_with(kKeyA));
  }
  void TearDown() override {
    store.reset();
    test::PgTest::TearDown();
  }
  ServiceIntegration make(const std::string& name, std::optional<std::int64_t> depends_on = std::nullopt) {
    ServiceIntegration si;
    si.service_name = "fake_v1";
    si.table_name = name;
    si.api_url = "https://api.example.test/" + name;
    si.backfill_key = "key-" + name;
    si.backfill_secret = "secret-" + name;
    si.webhook_secret = "whsec-" + name;
    si.depends_on = depends_on;
    return store->create_integration(si);
  }
  std::size_t job_count() const {
    return std::stoul(*admin_exec("SELECT count(*) FROM " + schema().quoted() + ".webhookdb_backfill_jobs")
                           .rows.at(0)
                           .at(0));
  }
  // What a database dump shows of the integrations table: pg_dump's data,
  // or the table's rows as text (what COPY ... TO writes) without pg_dump.
  std::string dump_integrations() const {
    const std::string table = schema().name() + ".webhookdb_service_integrations";
    const std::string cmd = "pg_dump --data-only --table='" + table + "' '" + schema().url() + "' 2>/dev/null";
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
      std::array<char, 4096> buf{};
      std::size_t n = 0;
      while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
      if (::pclose(p) == 0 && out.find("COPY ") != std::string::npos) return out;
    }
    return admin_exec("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM " + schema().quoted() +
                      ".webhookdb_service_integrations t")
        .rows.at(0)
        .at(0)
        .value_or("");
  }
  std::shared_ptr<testing::ManualClock> clock;
  std::unique_ptr<PgJobStore> store;
};

void expect_no_secret_of(const std::string& text, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    for (const std::string& secret : {"key-" + name, "secret-" + name, "whsec-" + name}) {
      EXPECT_EQ(text.find(secret), std::string::npos) << secret << " in:\n" << text;
    }
  }
}

TEST_F(PgJobStoreTest, IntegrationsRoundTripEveryField) {
  ServiceIntegration si;
  si.service_name = "stripe_charge_v1";
  si.table_name = "charges";
  si.api_url = "https://api.stripe.test/v1/charges";
  si.backfill_key = "sk_test_123";
  si.backfill_secret = "s3cret \xF0\x9F\x94\x91";
  si.webhook_secret = "whsec_x";
  si.last_backfilled_at = *parse_timestamp("2024-05-06T07:08:09.123456Z");
  si.skip_webhook_verification = true;
  const auto created = store->create_integration(si);
  EXPECT_GT(created.id, 0);
  EXPECT_EQ(created.opaque_id.rfind("svi_", 0), 0U) << created.opaque_id;
  EXPECT_EQ(store->find_integration(created.id), created);
  EXPECT_EQ(store->find_integration_by_opaque_id(created.opaque_id), created);
  EXPECT_EQ(store->find_integration(created.id + 1000), std::nullopt);
  EXPECT_EQ(store->find_integration_by_opaque_id("svi_nope"), std::nullopt);

  auto changed = created;
  changed.api_url = "https://other.test";
  changed.backfill_secret = "";
  changed.last_backfilled_at.reset();
  changed.skip_webhook_verification = false;
  store->update_integration(changed);
  EXPECT_EQ(store->find_integration(created.id), changed);

  ServiceIntegration dup = si;
  dup.opaque_id = created.opaque_id;
  EXPECT_THROW(store->create_integration(dup), InvalidPrecondition);
  ServiceIntegration ghost = changed;
  ghost.id = created.id + 1000;
  EXPECT_THROW(store->update_integration(ghost), InvalidPrecondition);
}

TEST_F(PgJobStoreTest, SecretsNeverAppearInErrors) {
  ServiceIntegration si;
  si.service_name = "x";
  si.table_name = "t";
  si.backfill_secret = "TOP-SECRET-VALUE";
  si.webhook_secret = "WEBHOOK-SECRET-VALUE";
  si.depends_on = 424242;  // no such integration
  try {
    store->create_integration(si);
    FAIL() << "created with a missing dependency";
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find("TOP-SECRET-VALUE"), std::string::npos) << what;
    EXPECT_EQ(what.find("WEBHOOK-SECRET-VALUE"), std::string::npos) << what;
  }
  si.depends_on.reset();
  si.backfill_secret = std::string("TOP-SECRET\0VALUE", 16);
  try {
    store->create_integration(si);
    FAIL() << "a NUL byte reached the database";
  } catch (const InvalidInput& e) {
    EXPECT_EQ(std::string(e.what()).find("TOP-SECRET"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("backfill secret"), std::string::npos) << e.what();
  }
}

TEST_F(PgJobStoreTest, DependentsAndDeletion) {
  const auto root = make("root");
  const auto b = make("b", root.id);
  const auto a = make("a", root.id);
  const auto other = make("other");
  const auto deps = store->dependents_of(root.id);
  ASSERT_EQ(deps.size(), 2U);
  EXPECT_EQ(deps[0].id, b.id);  // id order
  EXPECT_EQ(deps[1].id, a.id);
  EXPECT_TRUE(store->dependents_of(other.id).empty());
  const auto job = store->create_job(BackfillJob{.service_integration_id = root.id});
  store->delete_integration(root.id);
  EXPECT_EQ(store->find_integration(root.id), std::nullopt);
  EXPECT_EQ(store->find_job(job.id), std::nullopt);  // jobs go with their integration
  EXPECT_EQ(store->find_integration(b.id)->depends_on, std::nullopt);
}

TEST_F(PgJobStoreTest, JobsCrud) {
  const auto si = make("jobs");
  clock->set(*parse_timestamp("2024-01-01T00:00:00.5Z"));
  BackfillJob job;
  job.service_integration_id = si.id;
  job.incremental = true;
  job.criteria = {{"since", "2020"}, {"nested", {{"a", 1}}}};
  const auto created = store->create_job(job);
  EXPECT_GT(created.id, 0);
  EXPECT_EQ(created.opaque_id.rfind("bfj_", 0), 0U);
  EXPECT_EQ(created.created_at, *parse_timestamp("2024-01-01T00:00:00.5Z"));
  EXPECT_EQ(store->find_job(created.id), created);

  auto started = created;
  started.started_at = *parse_timestamp("2024-01-01T00:01:00Z");
  store->update_job(started);
  EXPECT_EQ(store->find_job(created.id), started);
  started.finished_at = *parse_timestamp("2024-01-01T00:02:00.000001Z");
  store->update_job(started);
  EXPECT_EQ(store->find_job(created.id)->finished_at, started.finished_at);
  EXPECT_EQ(status(*store, started), JobStatus::finished);

  BackfillJob null_criteria;
  null_criteria.service_integration_id = si.id;
  null_criteria.criteria = nullptr;
  EXPECT_EQ(store->create_job(null_criteria).criteria, json::object());
  BackfillJob bad;
  bad.service_integration_id = si.id;
  bad.criteria = json::array({1});
  EXPECT_THROW(store->create_job(bad), InvalidPrecondition);
  BackfillJob orphan;
  orphan.service_integration_id = 999999;
  EXPECT_THROW(store->create_job(orphan), InvalidPrecondition);
  BackfillJob gone = started;
  gone.id = 999999;
  EXPECT_THROW(store->update_job(gone), InvalidPrecondition);
  store->delete_job(created.id);
  EXPECT_EQ(store->find_job(created.id), std::nullopt);
}

// A run marks its job started in one statement that also finds a job
// another run finished meanwhile (issue 18: no re-read under the lock).
TEST_F(PgJobStoreTest, StartJobWritesUnlessAnotherRunFinishedIt) {
  const auto si = make("start");
  BackfillJob job;
  job.service_integration_id = si.id;
  auto read = store->create_job(job);  // as a runner read it, unfinished
  read.started_at = *parse_timestamp("2024-01-01T00:01:00Z");
  EXPECT_TRUE(store->start_job(read));
  EXPECT_EQ(store->find_job(read.id)->started_at, read.started_at);

  auto other = read;  // another run finishes it
  other.finished_at = *parse_timestamp("2024-01-01T00:02:00Z");
  store->update_job(other);
  auto late = read;
  late.started_at = *parse_timestamp("2024-01-01T00:03:00Z");
  EXPECT_FALSE(store->start_job(late)) << "finished meanwhile: not started again";
  EXPECT_EQ(store->find_job(read.id), other) << "nothing written";
  EXPECT_TRUE(store->start_job(other)) << "a finished job run again on purpose (its finished_at known) starts";

  BackfillJob gone = late;
  gone.id = 999999;
  EXPECT_THROW((void)store->start_job(gone), InvalidPrecondition);
}

// start_job, and a worker's finishes (defer_finish_durability), commit
// without waiting for the disk by setting synchronous_commit for their own
// transaction only: the session that ran them waits again for the next
// commit (a leaked session setting would make every later write of that
// pooled connection skip the wait). The values are written as before.
TEST_F(PgJobStoreTest, UnwaitedStartsAndFinishesLeaveTheSessionWaiting) {
  PgJobStore one(config(1), clock, keys_with(kKeyA));  // one connection: the SHOW runs where they ran
  const auto setting = [&] { return one.pool().exec("SHOW synchronous_commit").rows.at(0).at(0).value_or(""); };
  one.pool().exec("SET synchronous_commit = on");  // the test server runs with it off
  ASSERT_EQ(setting(), "on");
  const auto si = make("unwaited");
  BackfillJob job;
  job.service_integration_id = si.id;
  auto read = store->create_job(job);
  read.started_at = *parse_timestamp("2024-01-01T00:01:00Z");
  EXPECT_TRUE(one.start_job(read));
  EXPECT_EQ(setting(), "on");
  one.defer_finish_durability(true);
  read.finished_at = *parse_timestamp("2024-01-01T00:02:00Z");
  one.update_job(read);
  EXPECT_EQ(setting(), "on");
  EXPECT_EQ(store->find_job(read.id), read);
  auto late = read;
  late.finished_at.reset();
  late.started_at = *parse_timestamp("2024-01-01T00:03:00Z");
  EXPECT_FALSE(one.start_job(late)) << "finished meanwhile: not started again";
  EXPECT_EQ(store->find_job(read.id), read);
}

// The job runner's first look (issue 18: one statement instead of two):
// the same job and integration as find_job and find_integration, secrets
// opened; a job whose integration is gone comes without it.
TEST_F(PgJobStoreTest, FindJobAndIntegrationReadsBothAsTheirOwnReadsDo) {
  const auto si = make("both");
  clock->set(*parse_timestamp("2024-01-01T00:00:00.5Z"));
  BackfillJob job;
  job.service_integration_id = si.id;
  job.criteria = {{"since", "2020"}};
  auto created = store->create_job(job);
  created.started_at = *parse_timestamp("2024-01-01T00:01:00.25Z");
  store->update_job(created);
  const auto found = store->find_job_and_integration(created.id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->job, store->find_job(created.id));
  EXPECT_EQ(found->job.started_at, created.started_at);
  ASSERT_TRUE(found->integration.has_value());
  EXPECT_EQ(found->integration, store->find_integration(si.id));
  EXPECT_EQ(found->integration->backfill_secret, "secret-both");
  EXPECT_EQ(store->find_job_and_integration(999999), std::nullopt);
  // The integration's deletion cascades to its jobs: the job is gone too.
  store->delete_integration(si.id);
  EXPECT_EQ(store->find_job_and_integration(created.id), std::nullopt);
}

TEST_F(PgJobStoreTest, CreateRecursiveBuildsTheTreeInOneTransaction) {
  const auto root = make("root");
  const auto child1 = make("c1", root.id);
  const auto child2 = make("c2", root.id);
  const auto grandchild = make("gc", child1.id);
  const json criteria = {{"partitions", json::array({"a", "b"})}};
  const auto job = store->create_recursive(root, true, criteria);
  EXPECT_EQ(job.service_integration_id, root.id);
  EXPECT_EQ(job.parent_job_id, std::nullopt);
  const auto children = store->child_jobs(job.id);
  ASSERT_EQ(children.size(), 2U);
  EXPECT_EQ(children[0].service_integration_id, child1.id);
  EXPECT_EQ(children[1].service_integration_id, child2.id);
  for (const auto& c : children) {
    EXPECT_EQ(c.parent_job_id, job.id);
    EXPECT_TRUE(c.incremental);
    EXPECT_EQ(c.criteria, criteria);
  }
  const auto grand = store->child_jobs(children[0].id);
  ASSERT_EQ(grand.size(), 1U);
  EXPECT_EQ(grand[0].service_integration_id, grandchild.id);
  EXPECT_TRUE(store->child_jobs(children[1].id).empty());
  EXPECT_EQ(job_count(), 4U);

  // fully_finished_at / status over the tree.
  EXPECT_EQ(status(*store, job), JobStatus::enqueued);
  auto j = job;
  j.started_at = clock->now();
  j.finished_at = clock->now();
  store->update_job(j);
  EXPECT_EQ(status(*store, j), JobStatus::inprogress);
  for (auto c : {children[0], children[1], grand[0]}) {
    c.started_at = clock->now();
    c.finished_at = clock->now();
    store->update_job(c);
  }
  EXPECT_EQ(status(*store, j), JobStatus::finished);
  EXPECT_TRUE(fully_finished_at(*store, j).has_value());

  // Deleting the root deletes the tree.
  store->delete_job(job.id);
  EXPECT_EQ(job_count(), 0U);
  // A parent job passed in becomes the root's parent.
  const auto parent = store->create_job(BackfillJob{.service_integration_id = root.id});
  const auto sub = store->create_recursive(child2, false, json::object(), parent.id);
  EXPECT_EQ(sub.parent_job_id, parent.id);
}

TEST_F(PgJobStoreTest, DependencyCycleCreatesNothing) {
  const auto a = make("a");
  const auto b = make("b", a.id);
  auto a2 = *store->find_integration(a.id);
  a2.depends_on = b.id;  // a -> b -> a
  store->update_integration(a2);
  EXPECT_THROW(store->create_recursive(a2, false, json::object()), InvariantViolation);
  EXPECT_EQ(job_count(), 0U);
}

TEST_F(PgJobStoreTest, IntegrationLocksAreExclusiveAndReleasedOnDestruction) {
  const auto si = make("locked");
  const auto other = make("other");
  auto lock = store->try_lock_integration(si.id);
  ASSERT_NE(lock, nullptr);
  EXPECT_EQ(store->try_lock_integration(si.id), nullptr);
  // Another process (here: another store and pool on the same schema) sees it too.
  PgJobStore second(config(1), clock);
  EXPECT_EQ(second.try_lock_integration(si.id), nullptr);
  auto other_lock = second.try_lock_integration(other.id);
  EXPECT_NE(other_lock, nullptr);
  lock.reset();
  auto again = second.try_lock_integration(si.id);
  EXPECT_NE(again, nullptr);
  // A lock may outlive its store.
  store.reset();
  again.reset();
  other_lock.reset();
  PgJobStore third(config(1), clock);
  EXPECT_NE(third.try_lock_integration(si.id), nullptr);
}

TEST_F(PgJobStoreTest, MigrationsRunOnceForManyStores) {
  PgJobStore a(config(1), clock);
  PgJobStore b(config(1), clock);
  std::thread t1([&] { a.migrate(); });
  std::thread t2([&] { b.migrate(); });
  t1.join();
  t2.join();
  EXPECT_EQ(applied_migrations(a.pool(), "job_store"), (std::vector<int>{1, 2, 3}));
  const auto tables = admin_exec(
      "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid ="
      " c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
      {schema_name()});
  EXPECT_EQ(tables.rows.at(0).at(0),
            "webhookdb_backfill_jobs,webhookdb_schema_migrations,webhookdb_service_integrations");
}

}  // namespace
}  // namespace webhookdb::pg

namespace webhookdb::pg {
namespace {

TEST_F(PgJobStoreTest, TableNamesAreCheckedAndClaimedOnce) {
  for (const auto& bad : unusable_table_names()) {
    ServiceIntegration si;
    si.service_name = "x";
    si.table_name = bad;
    EXPECT_THROW(store->create_integration(si), InvalidInput) << bad;
  }
  EXPECT_NO_THROW(make(std::string(63, 't')));
  auto first = make("shared");
  ServiceIntegration again;
  again.service_name = "y";
  again.table_name = "shared";
  try {
    store->create_integration(again);
    FAIL() << "two integrations claimed one table";
  } catch (const InvalidPrecondition& e) {
    EXPECT_NE(std::string(e.what()).find("shared"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("table"), std::string::npos) << e.what();
  }
  auto other = make("other");
  other.table_name = "shared";
  EXPECT_THROW(store->update_integration(other), InvalidPrecondition);
  other.table_name = "new\nline";
  EXPECT_THROW(store->update_integration(other), InvalidInput);
  first.api_url = "https://changed.test";
  EXPECT_NO_THROW(store->update_integration(first));
  EXPECT_NO_THROW(make(""));
  EXPECT_NO_THROW(make(""));
  const auto found = store->find_integration_by_table("shared");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, first.id);
  EXPECT_EQ(found->api_url, "https://changed.test");
  EXPECT_FALSE(store->find_integration_by_table("nobody's"));
  EXPECT_FALSE(store->find_integration_by_table("")) << "no table is nobody's claim";
  EXPECT_FALSE(store->find_integration_by_table(std::string("sh\0ared", 7)));
}

// A database from before the rule, where two integrations already share a
// table: the migration stops, naming the table, and changes nothing.
TEST_F(PgJobStoreTest, MigratingADatabaseWhereTwoIntegrationsShareATableNamesIt) {
  store->migrate();
  const std::string s = schema().quoted();
  admin_exec("DROP INDEX " + s + ".webhookdb_service_integrations_table_name_key");
  admin_exec("DELETE FROM " + s +
             ".webhookdb_schema_migrations WHERE component = 'job_store' AND version = 2");
  admin_exec("INSERT INTO " + s +
             ".webhookdb_service_integrations (opaque_id, service_name, table_name)"
             " VALUES ('svi_a', 'x', 'twice'), ('svi_b', 'x', 'twice')");
  PgJobStore fresh(config(1));
  try {
    fresh.migrate();
    FAIL() << "migrated over a shared table";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("twice"), std::string::npos) << e.what();
  }
  admin_exec("UPDATE " + s +
             ".webhookdb_service_integrations SET table_name = 'once' WHERE opaque_id = 'svi_b'");
  PgJobStore fixed(config(1));
  EXPECT_NO_THROW(fixed.migrate());
}

// Issue 21 item 3: a dump of the integrations table holds no secret, only
// ciphertexts under the current key, and the store reads every field back.
TEST_F(PgJobStoreTest, ADumpOfTheIntegrationsTableHoldsNoSecret) {
  const auto a = make("alpha");
  const auto b = make("beta", a.id);
  const std::string dump = dump_integrations();
  EXPECT_NE(dump.find("alpha"), std::string::npos) << "the dump holds the rows:\n" << dump;
  expect_no_secret_of(dump, {"alpha", "beta"});
  EXPECT_NE(dump.find("wdbenc:v1:" + SecretKey::parse(kKeyA, "a").id() + ":"), std::string::npos) << dump;
  EXPECT_EQ(dump.find(kKeyA), std::string::npos);
  EXPECT_EQ(store->find_integration(a.id), a);
  EXPECT_EQ(store->find_integration(b.id), b);
  EXPECT_EQ(store->dependents_of(a.id).at(0), b);
  auto changed = b;
  changed.webhook_secret = "whsec-changed";
  store->update_integration(changed);
  EXPECT_EQ(store->find_integration_by_table("beta"), changed);
  expect_no_secret_of(dump_integrations(), {"alpha", "beta", "changed"});
}

// A value changed in the database, or moved to another row or column, does not
// decrypt: InvariantViolation naming the integration and the field, no secret.
TEST_F(PgJobStoreTest, ATamperedOrMovedCiphertextFailsNamingTheIntegration) {
  const auto a = make("alpha");
  const auto b = make("beta");
  const std::string t = schema().quoted() + ".webhookdb_service_integrations";
  const auto expect_unreadable = [&](const ServiceIntegration& si, const std::string& field) {
    try {
      (void)store->find_integration(si.id);
      ADD_FAILURE() << "read a " << field << " that was changed in the database";
    } catch (const InvariantViolation& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(si.opaque_id), std::string::npos) << what;
      EXPECT_NE(what.find(field), std::string::npos) << what;
      EXPECT_NE(what.find("tampered"), std::string::npos) << what;
      expect_no_secret_of(what, {"alpha", "beta"});
      EXPECT_EQ(what.find("wdbenc:v1:"), std::string::npos) << "the ciphertext is not repeated: " << what;
    }
  };
  // One byte of the ciphertext flipped (a base64 character swapped).
  admin_exec("UPDATE " + t +
                 " SET backfill_secret = overlay(backfill_secret placing"
                 " (CASE WHEN substr(backfill_secret, 30, 1) = 'A' THEN 'B' ELSE 'A' END) from 30 for 1)"
                 " WHERE id = $1",
             {std::to_string(a.id)});
  expect_unreadable(a, "backfill secret");
  // b's webhook secret copied into a's row: the row id is the associated data.
  admin_exec("UPDATE " + t + " SET backfill_secret = '', webhook_secret = (SELECT webhook_secret FROM " + t +
                 " WHERE id = $2) WHERE id = $1",
             {std::to_string(a.id), std::to_string(b.id)});
  expect_unreadable(a, "webhook secret");
  // b's key moved into its secret's column: the column is bound too.
  admin_exec("UPDATE " + t + " SET backfill_secret = backfill_key WHERE id = $1", {std::to_string(b.id)});
  expect_unreadable(b, "backfill secret");
  // A store without the key says which key is missing.
  PgJobStore keyless(config(1), clock, SecretKeys{});
  auto c = make("gamma");
  try {
    (void)keyless.find_integration(c.id);
    ADD_FAILURE() << "decrypted without the key";
  } catch (const InvariantViolation& e) {
    EXPECT_NE(std::string(e.what()).find("not configured"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(c.opaque_id), std::string::npos) << e.what();
  }
}

// Rotation: key B is current, A only decrypts; reencrypt_secrets() rewrites
// every row under B, and then a store with B alone reads everything.
TEST_F(PgJobStoreTest, RotationReencryptsEveryRowAndRetiresTheOldKey) {
  std::vector<ServiceIntegration> made;
  for (const char* name : {"r1", "r2", "r3"}) made.push_back(make(name));
  made.push_back(store->create_integration(ServiceIntegration{.service_name = "x", .table_name = "nosecret"}));
  const SecretKey a = SecretKey::parse(kKeyA, "a");
  const SecretKey b = SecretKey::parse(kKeyB, "b");
  PgJobStore rotating(config(1), clock, keys_with(kKeyB, {a}));
  EXPECT_EQ(rotating.find_integration(made[0].id), made[0]) << "the previous key decrypts";
  EXPECT_EQ(rotating.reencrypt_secrets(), 3U) << "every row with a secret, once";
  EXPECT_EQ(rotating.reencrypt_secrets(), 0U) << "nothing left under the old key";
  const std::string dump = dump_integrations();
  EXPECT_EQ(dump.find(":" + a.id() + ":"), std::string::npos) << dump;
  EXPECT_NE(dump.find("wdbenc:v1:" + b.id() + ":"), std::string::npos) << dump;
  expect_no_secret_of(dump, {"r1", "r2", "r3"});
  PgJobStore retired(config(1), clock, keys_with(kKeyB));
  for (const auto& si : made) EXPECT_EQ(retired.find_integration(si.id), si);
  try {
    (void)store->find_integration(made[0].id);
    ADD_FAILURE() << "the retired key still decrypts";
  } catch (const InvariantViolation& e) {
    EXPECT_NE(std::string(e.what()).find("key " + b.id()), std::string::npos) << e.what();
  }
  PgJobStore plain(config(1), clock, SecretKeys::plain_text_for_tests());
  EXPECT_THROW((void)plain.reencrypt_secrets(), InvalidPrecondition);
}

// Rows written in plain text (before encryption existed, or by a store that
// opted into it) are encrypted when a store with a key migrates.
TEST_F(PgJobStoreTest, PlainTextRowsAreEncryptedByTheMigration) {
  PgJobStore plain(config(1), clock, SecretKeys::plain_text_for_tests());
  std::vector<ServiceIntegration> made;
  for (const std::string name : {"p1", "p2"}) {
    ServiceIntegration si;
    si.service_name = "x";
    si.table_name = name;
    si.backfill_key = "key-" + name;
    si.backfill_secret = "secret-" + name;
    si.webhook_secret = "whsec-" + name;
    made.push_back(plain.create_integration(si));
  }
  EXPECT_NE(dump_integrations().find("secret-p1"), std::string::npos) << "stored as it is";
  PgJobStore keyed(config(1), clock, keys_with(kKeyA));
  keyed.migrate();
  expect_no_secret_of(dump_integrations(), {"p1", "p2"});
  for (const auto& si : made) EXPECT_EQ(keyed.find_integration(si.id), si);
  // A value that looks sealed cannot be stored as plain text.
  ServiceIntegration odd;
  odd.service_name = "x";
  odd.table_name = "odd";
  odd.backfill_key = "wdbenc:v1:00000000:AAAA";
  EXPECT_THROW(plain.create_integration(odd), InvalidInput);
}

// A process that opted into plain text on a database where a keyed process has
// sealed secrets would read none of them, and the keyed one would seal the rows
// it writes: it refuses to start, saying which key to run with. The keyed one
// keeps sealing plain rows as it migrates.
TEST_F(PgJobStoreTest, APlainTextStoreRefusesADatabaseWithEncryptedSecrets) {
  const auto sealed = make("sealed");
  PgJobStore plain(config(1), clock, SecretKeys::plain_text_for_tests());
  try {
    plain.migrate();
    ADD_FAILURE() << "a plain-text store started over encrypted rows";
  } catch (const InvalidPrecondition& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("WEBHOOKDB_PLAINTEXT_SECRETS"), std::string::npos) << what;
    EXPECT_NE(what.find("WEBHOOKDB_SECRET_KEY"), std::string::npos) << what;
    EXPECT_NE(what.find("1 integration"), std::string::npos) << what;
    expect_no_secret_of(what, {"sealed"});
  }
  EXPECT_THROW((void)plain.find_integration(sealed.id), InvalidPrecondition) << "every call, not only the first";
  // A database with only plain rows is the plain-text store's own.
  admin_exec("DELETE FROM " + schema().quoted() + ".webhookdb_service_integrations");
  PgJobStore fresh_plain(config(1), clock, SecretKeys::plain_text_for_tests());
  ServiceIntegration si{.service_name = "x", .table_name = "plain", .backfill_key = "key-plain"};
  const auto plain_row = fresh_plain.create_integration(si);
  EXPECT_EQ(fresh_plain.find_integration(plain_row.id), plain_row);
}

// Without a key and without the opt-in, a secret is refused, clearly; an
// integration without secrets is stored.
TEST_F(PgJobStoreTest, WithoutAKeySecretsAreRefused) {
  PgJobStore keyless(config(1), clock, SecretKeys{});
  ServiceIntegration si;
  si.service_name = "x";
  si.table_name = "refused";
  si.webhook_secret = "whsec-refused";
  try {
    (void)keyless.create_integration(si);
    ADD_FAILURE() << "stored a secret in plain text";
  } catch (const InvalidPrecondition& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("webhook secret"), std::string::npos) << what;
    EXPECT_NE(what.find("WEBHOOKDB_SECRET_KEY"), std::string::npos) << what;
    EXPECT_EQ(what.find("whsec-refused"), std::string::npos) << what;
  }
  EXPECT_FALSE(keyless.find_integration_by_table("refused")) << "nothing was written";
  si.webhook_secret.clear();
  const auto created = keyless.create_integration(si);
  EXPECT_EQ(keyless.find_integration(created.id), created);
  auto with_secret = created;
  with_secret.backfill_key = "key-refused";
  EXPECT_THROW(keyless.update_integration(with_secret), InvalidPrecondition);
}

TEST(SecretKeyTest, ParsesBase64AndHexOf32BytesAndNamesTheSourceOfABadOne) {
  const SecretKey a = SecretKey::parse(kKeyA, "a");
  EXPECT_EQ(a.bytes().size(), 32U);
  EXPECT_EQ(a.id().size(), 8U);
  EXPECT_EQ(SecretKey::parse(std::string(" ") + kKeyA + "\n", "a").id(), a.id());
  EXPECT_NE(SecretKey::parse(kKeyB, "b").id(), a.id());
  for (const std::string& bad :
       std::vector<std::string>{"", "c2hvcnQ=", "zz" + std::string(62, '0'), std::string(kKeyA) + "AAAA"}) {
    try {
      (void)SecretKey::parse(bad, "MY_VARIABLE");
      ADD_FAILURE() << "accepted a bad key";
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find("MY_VARIABLE"), std::string::npos) << e.what();
      if (!bad.empty()) {
        EXPECT_EQ(std::string(e.what()).find(bad), std::string::npos) << e.what();
      }
    }
  }
  EXPECT_THROW((void)SecretKey::from_file("/nonexistent/webhookdb.key"), InvalidInput);
}

TEST(SecretKeyTest, FromTheEnvironment) {
  std::map<std::string, std::string> env;
  const auto getenv = [&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto keys = SecretKeys::from_environment(getenv);
  EXPECT_FALSE(keys.current);
  EXPECT_EQ(keys.plain_text, PlainTextSecrets::refused);
  env["WEBHOOKDB_PLAINTEXT_SECRETS"] = "1";
  EXPECT_EQ(SecretKeys::from_environment(getenv).plain_text, PlainTextSecrets::allowed);
  env["WEBHOOKDB_SECRET_KEY"] = kKeyB;
  env["WEBHOOKDB_PREVIOUS_SECRET_KEYS"] = std::string(kKeyA) + ", " + kKeyA;
  keys = SecretKeys::from_environment(getenv);
  ASSERT_TRUE(keys.current);
  EXPECT_EQ(keys.current->id(), SecretKey::parse(kKeyB, "b").id());
  ASSERT_EQ(keys.previous.size(), 2U);
  env["WEBHOOKDB_SECRET_KEY_FILE"] = "/nonexistent";
  EXPECT_THROW((void)SecretKeys::from_environment(getenv), InvalidInput);
  env.erase("WEBHOOKDB_SECRET_KEY_FILE");
  env["WEBHOOKDB_PREVIOUS_SECRET_KEYS"] = "not-a-key";
  try {
    (void)SecretKeys::from_environment(getenv);
    ADD_FAILURE() << "accepted a bad previous key";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("WEBHOOKDB_PREVIOUS_SECRET_KEYS"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("not-a-key"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace webhookdb::pg
