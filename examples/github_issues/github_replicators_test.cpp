#include "github_replicators.hpp"

#include <gtest/gtest.h>

#include <webhookdb/job_runner.hpp>
#include <webhookdb/testing/test_harness.hpp>

namespace {

using namespace webhookdb;
using examples::GithubIssueCommentReplicator;
using examples::GithubIssueReplicator;
using nlohmann::json;

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
  const std::string base = issues_si.api_url;
  h.http->on("/issues?page=2").respond_json(json::array({issue(3, 3, "2024-01-03T00:00:00Z")}));
  h.http->on("/issues?state=all").respond_json(
      json::array({issue(1, 1, "2024-01-01T00:00:00Z"), issue(2, 2, "2024-01-02T00:00:00Z")}), 200,
      {{"Link", "<" + base + "/issues?page=2>; rel=\"next\", <" + base + "/issues?page=2>; rel=\"last\""}});
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

TEST_F(GithubTest, IssueWebhookUnwrapsTheEvent) {
  auto issues = h.replicator(issues_si);
  issues->upsert_webhook_body({{"action", "edited"}, {"issue", issue(7, 7, "2024-03-01T00:00:00Z")}});
  const auto rows = h.rows(*issues);
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].value(issues->table_spec(), "user_login"), "octocat");
}

}  // namespace
