// The GitHub issues example through the conformance kit
// (webhookdb/testing/conformance.hpp), on the memory stores and on PostgreSQL.
#include <gtest/gtest.h>

#include <string>

#include <webhookdb/testing/conformance.hpp>
#include <webhookdb/testing/pg_harness.hpp>
#include <webhookdb/time.hpp>
#include <webhookdb/url.hpp>

#include "github_replicators.hpp"

namespace {

using nlohmann::json;
using namespace webhookdb;

struct GithubIssueFixture {
  static void register_replicators(Registry& registry) {
    registry.add(examples::GithubIssueReplicator::descriptor());
  }
  static constexpr const char* service_name = "github_issue_v1";
  // The repository's API URL, on the origin GitHub's Link headers point at.
  static void configure(ServiceIntegration& integration) {
    integration.api_url = "https://api.github.com/repos/octo/repo";
  }

  static json issue(long long id, long long number, const std::string& title, const std::string& updated_at) {
    return {{"id", id},
            {"number", number},
            {"title", title},
            {"state", "open"},
            {"user", {{"login", "octocat"}}},
            {"labels", json::array({{{"name", "bug"}}})},
            {"closed_at", nullptr},
            {"created_at", "2024-01-01T00:00:00Z"},
            {"updated_at", updated_at}};
  }
  static json resource(std::size_t i) {
    const auto n = static_cast<long long>(i);
    return issue(1'000'000 + n, n + 1, "Issue " + std::to_string(i), "2024-02-01T00:00:00Z");
  }
  static json older() { return issue(42, 4242, "Before the edit", "2024-03-01T10:00:00Z"); }
  static json newer() { return issue(42, 4242, "After the edit", "2024-03-01T10:05:00Z"); }

  // The list is a bare array; the next page is in the Link header, named here
  // after the page's last issue so every page has its own URL.
  static HttpResponse page(const std::vector<json>& items, bool more) {
    HttpResponse r{.status = 200, .headers = {{"Content-Type", "application/json"}}, .body = json(items).dump()};
    if (more) {
      const std::string after = items.empty() ? "0" : items.back()["id"].dump();
      r.headers.emplace_back("Link", "<https://api.github.com/repositories/1/issues?state=all&per_page=100&after=" +
                                         after + ">; rel=\"next\"");
    }
    return r;
  }
  // sort=updated&since=<ISO-8601> no later than the last run's mark.
  static bool asks_only_since(const HttpRequest& request, Timestamp mark) {
    const auto since = url::query_param(request.url, "since");
    if (!since || url::query_param(request.url, "sort") != "updated") return false;
    const auto parsed = parse_timestamp(*since);
    return parsed && *parsed <= mark;
  }
  static WebhookRequest webhook(const json& resource, const ServiceIntegration& /*integration*/) {
    auto request = WebhookRequest::from_json(
        {{"action", "edited"}, {"issue", resource}, {"repository", {{"id", 1}, {"full_name", "octo/repo"}}}});
    request.headers = {{"X-GitHub-Event", "issues"}, {"Content-Type", "application/json"}};
    return request;
  }
};

}  // namespace

// Instantiated in the kit's namespace, where the suite's names are.
namespace webhookdb::testing {
using GithubSuites = ::testing::Types<Conformance<GithubIssueFixture>, Conformance<GithubIssueFixture, PostgresBackend>>;
INSTANTIATE_TYPED_TEST_SUITE_P(GithubIssues, ReplicatorConformance, GithubSuites);
}  // namespace webhookdb::testing
