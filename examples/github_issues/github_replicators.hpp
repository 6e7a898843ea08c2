#pragma once
// GitHub issues of one repository (https://docs.github.com/en/rest/issues/issues#list-repository-issues),
// replicated as WebhookDB's github_issue_v1 does, and their comments, a dependent integration whose
// backfill runs as a child job, one partition per issue. The integration's api_url is the repository's
// API URL (https://api.github.com/repos/OWNER/REPO).
// - a backfill walks GET <api_url>/issues?state=all&per_page=100 by the Link header's rel="next" (GitHub
//   points it at /repositories/<id>/issues?...&page=N); an incremental one adds sort=updated and
//   since=<ISO-8601>, which GitHub compares with updated_at. The list includes pull requests: they
//   carry a "pull_request" object.
// - a webhook (X-GitHub-Event: issues) is {"action":"opened","issue":{...},"repository":{...}}; other
//   events sent to the same hook (ping when it is created, pushes) carry no issue and are skipped.
// Tested with GitHub's published webhook payloads: fixtures/.

#include <webhookdb/converters.hpp>
#include <webhookdb/http_auth.hpp>
#include <webhookdb/pagination.hpp>
#include <webhookdb/registry.hpp>
#include <webhookdb/replicator.hpp>

namespace examples {

using namespace webhookdb;

class GithubIssueReplicator : public Replicator {
 public:
  using Replicator::Replicator;

  static Descriptor descriptor() {
    return {.name = "github_issue_v1", .resource_name_singular = "GitHub Issue",
            .resource_name_plural = "GitHub Issues", .supports_webhooks = true, .supports_backfill = true,
            .factory = Descriptor::factory_for<GithubIssueReplicator>()};
  }

 protected:
  Column remote_key_column() const override { return Column("github_id", ColumnType::bigint).key("id"); }
  std::vector<Column> denormalized_columns() const override {
    return {Column("number", ColumnType::integer).indexed(),
            Column("title", ColumnType::text),
            Column("state", ColumnType::text),
            Column("user_login", ColumnType::text).key({"user", "login"}).optional(),
            Column("labels", ColumnType::text_array).optional().convert(label_names()),
            Column("pull_request_url", ColumnType::text).key({"pull_request", "url"}).optional(),
            Column("closed_at", ColumnType::timestamptz).optional().convert(converters::time()),
            Column("updated_at", ColumnType::timestamptz).convert(converters::time()).indexed()};
  }
  UpdateRule update_rule() const override { return UpdateRule::when_newer("updated_at"); }

  std::pair<nlohmann::json, nlohmann::json> resource_and_event(const WebhookRequest& request) const override {
    auto body = Replicator::resource_and_event(request).first;  // parsed within the context's JSON limits
    if (const nlohmann::json* issue = json_at(body, {"issue"})) {
      auto resource = *issue;
      return {std::move(resource), std::move(body)};
    }
    if (find_header(request.headers, "X-GitHub-Event")) return {nullptr, nullptr};  // ping, push...: skipped
    return {std::move(body), nullptr};  // a bare issue
  }

  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& since,
                                   const CancellationToken& cancel) override {
    pagination::QueryParams query{{"state", "all"}, {"per_page", "100"}};
    if (since) query.insert(query.end(), {{"sort", "updated"}, {"since", format_timestamp(floor_seconds(*since))}});
    HttpRequest first{.url = pagination::with_query(integration().api_url + "/issues", query),
                      .headers = {{"Accept", "application/vnd.github+json"}, {"X-GitHub-Api-Version", "2022-11-28"}}};
    // A personal access token or an app's installation token, as GitHub takes
    // it: Authorization: Bearer, added by the library's decorator.
    BearerAuth authed(context().http, integration().backfill_key);
    return pages_.fetch(authed, first, token, cancel);
  }

 private:
  static Timestamp floor_seconds(Timestamp t) { return std::chrono::floor<std::chrono::seconds>(t); }
  static Converter label_names() {
    return {[](const nlohmann::json& labels, const ConvertContext&) {
      nlohmann::json names = nlohmann::json::array();
      for (const auto& l : labels) names.push_back(l.is_object() ? nlohmann::json(l.value("name", "")) : l);
      return names;
    }};
  }
  pagination::LinkHeader pages_;
};

class GithubIssueCommentReplicator : public Replicator {
 public:
  using Replicator::Replicator;

  static Descriptor descriptor() {
    return {.name = "github_issue_comment_v1", .resource_name_singular = "GitHub Issue Comment",
            .resource_name_plural = "GitHub Issue Comments", .supports_webhooks = true,
            .supports_backfill = true, .dependency_descriptor = "github_issue_v1",
            .factory = Descriptor::factory_for<GithubIssueCommentReplicator>()};
  }

 protected:
  Column remote_key_column() const override { return Column("github_id", ColumnType::bigint).key("id"); }
  std::vector<Column> denormalized_columns() const override {
    return {Column("issue_number", ColumnType::integer).key("issue_url")
                .convert(converters::regex_capture(R"(/issues/(\d+)$)")).indexed(),
            Column("user_login", ColumnType::text).key({"user", "login"}).optional(),
            Column("updated_at", ColumnType::timestamptz).convert(converters::time())};
  }
  UpdateRule update_rule() const override { return UpdateRule::when_newer("updated_at"); }

  // One partition per issue of the parent integration, or only the issues
  // listed in criteria {"issue_numbers": [1, 2]}.
  std::vector<BackfillPartition> backfill_partitions(const nlohmann::json& criteria) const override {
    std::vector<BackfillPartition> out;
    if (criteria.contains("issue_numbers")) {
      for (const auto& n : criteria["issue_numbers"]) out.push_back(partition(n.get<long long>()));
      return out;
    }
    const auto parent = context().jobs->find_integration(integration().depends_on.value());
    const auto issues = context().registry->make(parent.value(), context());
    const TableSpec& spec = issues->table_spec();
    context().replica->for_each(spec, [&](const Row& row) {
      out.push_back(partition(row.value(spec, "number").get<long long>()));
    });
    return out;
  }
  BackfillOptions backfill_options() const override { return {.parallel = 2}; }

  BackfillPage fetch_partition_page(const BackfillPartition& p, const std::string& token,
                                    const std::optional<Timestamp>& /*since*/,
                                    const CancellationToken& cancel) override {
    const auto number = p.bounds["number"].get<long long>();
    HttpRequest first{.url = integration().api_url + "/issues/" + std::to_string(number) + "/comments?per_page=100"};
    BearerAuth authed(context().http, integration().backfill_key);
    return pages_.fetch(authed, first, token, cancel);
  }

 private:
  static BackfillPartition partition(long long number) {
    return {"issue:" + std::to_string(number), {{"number", number}}};
  }
  // Shared by the partitions' concurrent walks: each has its own `first`
  // request, by which the paginator keeps their states apart.
  pagination::LinkHeader pages_;
};

}  // namespace examples
