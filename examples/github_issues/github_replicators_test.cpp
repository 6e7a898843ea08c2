// The GitHub example against GitHub's shapes: an issues walk by real Link headers against the local API
// server's GitHub-shaped list over loopback HTTP into PostgreSQL, full and incremental (since=);
// GitHub's published `issues` and `ping` webhook payloads (fixtures/) into PostgreSQL; and the comments
// integration backfilled as a child job, one partition per issue (mock HTTP, memory store).
// The PostgreSQL tests need WEBHOOKDB_TEST_DATABASE_URL.
#include "github_replicators.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include <webhookdb/curl/curl_http_client.hpp>
#include <webhookdb/job_runner.hpp>
#include <webhookdb/pg/replica_store.hpp>
#include <webhookdb/testing/test_harness.hpp>

#include "api_server/api_server.hpp"
#include "api_server/shapes.hpp"
#include "support/pg_test_env.hpp"

namespace {

using namespace webhookdb;
using examples::GithubIssueCommentReplicator;
using examples::GithubIssueReplicator;
using nlohmann::json;

json fixture(const std::string& name) {
  const std::string path = std::string(GITHUB_FIXTURES_DIR) + "/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read fixture " + path);
  return json::parse(in);
}

// A webhook as GitHub delivers it: the raw body and the event's name in X-GitHub-Event.
WebhookRequest delivery(const std::string& event, const json& payload) {
  WebhookRequest r;
  r.headers = {{"X-GitHub-Event", event}, {"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
               {"Content-Type", "application/json"}};
  r.body = payload.dump();
  return r;
}

class GithubIssuesPg : public webhookdb::test::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    store = std::make_shared<pg::PgReplicaStore>(config());
    h.registry->add(GithubIssueReplicator::descriptor());
  }
  std::unique_ptr<Replicator> replicator(const ServiceIntegration& integration,
                                         std::shared_ptr<HttpClient> http = nullptr) {
    ReplicatorContext ctx = h.context();
    ctx.replica = store;
    if (http) ctx.http = std::move(http);
    auto r = h.registry->make(integration, ctx);
    r->create_table();
    return r;
  }
  Row row(const Replicator& r, long long id) {
    auto found = store->find(r.table_spec(), id);
    if (!found) throw std::runtime_error("no row " + std::to_string(id));
    return *found;
  }

  webhookdb::testing::TestHarness h;
  std::shared_ptr<pg::PgReplicaStore> store;
};

TEST_F(GithubIssuesPg, TheApiServerAnswersWithGithubsLinkHeader) {
  tools::ApiServer server({.objects = 250});
  server.start();
  auto http = curl::make_curl_client();
  const auto response = http->get(server.url("/repos/octocat/Hello-World/issues?state=all&per_page=100"));
  ASSERT_EQ(response.status, 200);
  const std::string base = server.base_url() + "/repositories/1296269/issues?state=all&per_page=100&page=";
  EXPECT_EQ(response.header("Link"), "<" + base + "2>; rel=\"next\", <" + base + "3>; rel=\"last\"");
  const auto page3 = http->get(base + "3");
  EXPECT_EQ(page3.header("Link"), "<" + base + "2>; rel=\"prev\", <" + base + "1>; rel=\"first\"");
  EXPECT_EQ(json::parse(page3.body).size(), 50U);
}

TEST_F(GithubIssuesPg, BackfillWalksTheLinkHeadersThenAsksOnlyForIssuesUpdatedSince) {
  tools::ApiServer server({.objects = 250, .seed = 5});
  server.start();
  auto si = h.integration("github_issue_v1",
                          [&](ServiceIntegration& s) { s.api_url = server.url("/repos/octocat/Hello-World"); });
  auto http = curl::make_curl_client();
  auto r = replicator(si, http);
  auto job = h.job(si, /*incremental=*/true);
  r->backfill(job);

  const TableSpec& spec = r->table_spec();
  ASSERT_EQ(store->count(spec), 250U);  // state=all: open and closed issues and pull requests
  EXPECT_EQ(server.stats().pages, 3U);  // /repos/.../issues, then /repositories/1296269/issues?...&page=2, 3
  const tools::Dataset& source = server.dataset();
  for (const std::size_t i : {0UL, 3UL, 4UL, 249UL}) {
    const json issue = tools::shapes::github_issue(source, i, server.base_url());
    const Row got = row(*r, issue["id"].get<long long>());
    EXPECT_EQ(got.data, issue);
    EXPECT_EQ(got.value(spec, "number"), issue["number"]);
    EXPECT_EQ(got.value(spec, "updated_at"), issue["updated_at"]);
    EXPECT_EQ(got.value(spec, "closed_at"), issue["closed_at"]);  // #4 is closed
    EXPECT_EQ(got.value(spec, "pull_request_url").is_null(), !issue.contains("pull_request"));  // #5 is a PR
  }

  // Ten issues change after the run; the next one asks for since=<last run> and gets only those.
  const auto later = unix_seconds(h.clock->now()) + 60;
  server.touch({1, 20, 40, 60, 80, 100, 120, 140, 160, 180}, later);
  h.clock->advance(std::chrono::seconds(120));
  server.reset_stats();
  auto next = *h.jobs->find_integration(si.id);
  auto r2 = replicator(next, http);
  auto second = h.job(next, true);
  r2->backfill(second);
  EXPECT_EQ(server.stats().items, 10U);
  EXPECT_EQ(row(*r2, tools::shapes::kIssueIdBase + 40).value(spec, "updated_at"), tools::shapes::iso8601(later));
}

TEST_F(GithubIssuesPg, WebhooksFromGithubsPublishedPayloads) {
  auto si = h.integration("github_issue_v1");
  auto r = replicator(si);
  const TableSpec& spec = r->table_spec();
  EXPECT_EQ(r->upsert_webhook(delivery("issues", fixture("issues.opened.payload.json"))).changed_count(), 1U);
  Row issue = row(*r, 444500041);
  EXPECT_EQ(issue.value(spec, "number"), 1);
  EXPECT_EQ(issue.value(spec, "title"), "Spelling error in the README file");
  EXPECT_EQ(issue.value(spec, "state"), "open");
  EXPECT_EQ(issue.value(spec, "user_login"), "Codertocat");
  EXPECT_EQ(issue.value(spec, "labels"), json({"bug"}));
  EXPECT_TRUE(issue.value(spec, "pull_request_url").is_null());
  EXPECT_EQ(issue.value(spec, "updated_at"), "2019-05-15T15:20:18Z");
  EXPECT_FALSE(issue.data.contains("action")) << "the row holds the issue, not the envelope";

  EXPECT_EQ(r->upsert_webhook(delivery("issues", fixture("issues.locked.payload.json"))).changed_count(), 1U);
  EXPECT_EQ(row(*r, 444500041).data["locked"], true);
  // `unlabeled` (15:20:26) delivered after `locked` (15:20:27): older, refused.
  EXPECT_EQ(r->upsert_webhook(delivery("issues", fixture("issues.unlabeled.payload.json"))).changed_count(), 0U);
  EXPECT_EQ(row(*r, 444500041).value(spec, "updated_at"), "2019-05-15T15:20:27Z");

  // The ping GitHub sends when the hook is created carries no issue: nothing is written.
  EXPECT_TRUE(r->upsert_webhook(delivery("ping", fixture("ping.payload.json"))).rows.empty());
  EXPECT_EQ(store->count(spec), 1U);
}

json issue(long long id, int number, const std::string& updated) {
  return {{"id", id}, {"number", number}, {"title", "Issue " + std::to_string(number)}, {"state", "open"},
          {"user", {{"login", "octocat"}}}, {"labels", {{{"name", "bug"}}, {{"name", "p1"}}}}, {"updated_at", updated}};
}

json comment(long long id, int issue_number) {
  return {{"id", id}, {"issue_url", "https://api.example.test/repos/o/r/issues/" + std::to_string(issue_number)},
          {"user", {{"login", "hubot"}}}, {"updated_at", "2024-02-01T00:00:00Z"}};
}

class GithubTest : public ::testing::Test {
 protected:
  GithubTest() {
    h.registry->add(GithubIssueReplicator::descriptor());
    h.registry->add(GithubIssueCommentReplicator::descriptor());
    issues_si = h.integration("github_issue_v1");
    comments_si = h.integration("github_issue_comment_v1", [&](ServiceIntegration& si) {
      si.depends_on = issues_si.id;
      si.backfill_key.clear();  // a dependent needs no credentials of its own
      si.backfill_secret.clear();
    });
  }
  webhookdb::testing::TestHarness h;
  ServiceIntegration issues_si, comments_si;
};

TEST_F(GithubTest, IssuesFollowLinkHeaderAndCommentsRunAsChildJobPerIssue) {
  const std::string page2 = "https://api.example.test/repositories/1/issues?state=all&per_page=100&page=2";
  h.http->on("/repositories/1/issues").respond_json(json::array({issue(3, 3, "2024-01-03T00:00:00Z")}), 200,
      {{"Link", "<" + page2 + ">; rel=\"prev\", <" + page2 + ">; rel=\"first\""}});
  h.http->on("/issues?state=all").respond_json(
      json::array({issue(1, 1, "2024-01-01T00:00:00Z"), issue(2, 2, "2024-01-02T00:00:00Z")}), 200,
      {{"Link", "<" + page2 + ">; rel=\"next\", <" + page2 + ">; rel=\"last\""}});
  h.http->on("/issues/1/comments").respond_json(json::array({comment(11, 1), comment(12, 1)}));
  h.http->on("/issues/2/comments").respond_json(json::array());
  h.http->on("/issues/3/comments").respond_json(json::array({comment(31, 3)}));

  auto issues = h.replicator(issues_si);
  auto comments = h.replicator(comments_si);
  auto job = h.job(issues_si);
  ASSERT_EQ(h.jobs->child_jobs(job.id).size(), 1U);
  issues->backfill(job);

  const auto issue_rows = h.rows(*issues);
  ASSERT_EQ(issue_rows.size(), 3U);
  EXPECT_EQ(issue_rows[0].value(issues->table_spec(), "labels"), json({"bug", "p1"}));  // as text[]

  // The child job was enqueued on success; run it the way a queue would.
  ASSERT_EQ(h.queue->job_ids().size(), 1U);
  JobRunner runner(h.registry, h.context());
  EXPECT_EQ(runner.run(h.queue->job_ids()[0]), JobRunOutcome::ran);

  const auto comment_rows = h.rows(*comments);
  ASSERT_EQ(comment_rows.size(), 3U);
  EXPECT_EQ(comment_rows[0].value(comments->table_spec(), "issue_number"), 1);  // from the URL
  EXPECT_EQ(comment_rows[2].value(comments->table_spec(), "issue_number"), 3);
}

TEST_F(GithubTest, CriteriaLimitTheCommentBackfillToSomeIssues) {
  h.http->on("/issues/2/comments").respond_json(json::array({comment(21, 2)}));
  auto comments = h.replicator(comments_si);
  auto job = h.job(comments_si, false, {{"issue_numbers", {2}}});
  comments->backfill(job);
  ASSERT_EQ(h.http->requests().size(), 1U);
  EXPECT_EQ(h.rows(*comments).size(), 1U);
}

}  // namespace
