// examples/basic: a replicator for a tiny, made-up "widget" API, backfilled
// from three pages (served by the mock HTTP client) into the in-memory replica
// store.
//
// The API: GET <api_url>?limit=N&cursor=<c> answers {"data": [...], "next_cursor": "..."}
// (no cursor on the first page; an empty or missing next_cursor ends the walk),
// which is what pagination::Cursor walks. A widget:
// {"id": "w1", "updated": "2024-01-01T10:00:00Z", "color": "red"}.

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "webhookdb/converters.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/testing/mock_http_client.hpp"

namespace {

using nlohmann::json;
using namespace webhookdb;

class WidgetReplicator final : public Replicator {
 public:
  using Replicator::Replicator;

  // Rows are written in batches of this size (tiny here, so each page is its
  // own batch and the update rule decides between pages; within one batch a
  // later item with the same key replaces an earlier one).
  [[nodiscard]] BackfillOptions backfill_options() const override { return {.batch_size = 2}; }

 protected:
  // The paginator sends `first` for the empty token and derives the next
  // requests from it (&cursor=...); it parses each body within JsonLimits
  // (64 MiB, 512 levels unless set_json_limits says otherwise).
  BackfillPage fetch_backfill_page(const std::string& cursor, const std::optional<Timestamp>& /*last_backfilled*/,
                                   const CancellationToken& cancel) override {
    // No Authorization here: the host's client adds the integration's own
    // credential (CredentialAuth in main()).
    HttpRequest first{.url = integration().api_url};
    return pages_.fetch(*context().http, first, cursor, cancel);
  }

  [[nodiscard]] Column remote_key_column() const override { return Column("widget_id", ColumnType::text).key("id"); }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override {
    return {
        Column("updated_at", ColumnType::timestamptz).key("updated").convert(converters::time()).indexed(),
        Column("color", ColumnType::text).optional(),
    };
  }
  // Older data never overwrites newer data.
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::when_newer("updated_at"); }

 private:
  pagination::Cursor pages_{{.limit = 2}};
};

json widget(const std::string& id, const std::string& updated, const std::string& color) {
  return {{"id", id}, {"updated", updated}, {"color", color}};
}

}  // namespace

int main() {
  try {
    auto http = std::make_shared<testing::MockHttpClient>();
    http->on("cursor=c2").respond_json(
        {{"data", {widget("w5", "2024-01-04T00:00:00Z", "green"), widget("w2", "2024-01-02T00:00:00Z", "red")}},
         {"next_cursor", ""}});
    http->on("cursor=c1").respond_json(
        {{"data", {widget("w3", "Thu, 04 Jan 2024 09:00:00 +0000", "red"), widget("w4", "2024-01-03T00:00:00Z", "blue")}},
         {"next_cursor", "c2"}});
    http->on("/v1/widgets?limit=2").respond_json(
        {{"data", {widget("w1", "2024-01-01T10:00:00Z", "red"), widget("w2", "2024-01-05T00:00:00Z", "blue")}},
         {"next_cursor", "c1"}});

    auto replica = std::make_shared<memory::MemoryReplicaStore>();
    auto jobs = std::make_shared<memory::MemoryJobStore>();

    Descriptor descriptor;
    descriptor.name = "widget_v1";
    descriptor.resource_name_singular = "Widget";
    descriptor.resource_name_plural = "Widgets";
    descriptor.supports_backfill = true;
    descriptor.factory = Descriptor::factory_for<WidgetReplicator>();

    ServiceIntegration si;
    si.service_name = descriptor.name;
    si.table_name = "widgets";
    si.api_url = "https://widgets.example.test/v1/widgets";
    si.backfill_key = "example-key";
    si = jobs->create_integration(si);

    // One client for every integration (webhookdb/http_auth.hpp): each request
    // names its integration and gets that integration's key as a bearer token.
    auto credentials =
        std::make_shared<IntegrationCredentials>([jobs](std::int64_t id) -> std::optional<Credential> {
          const auto found = jobs->find_integration(id);
          if (!found || found->backfill_key.empty()) return std::nullopt;
          return bearer_credential(found->backfill_key);
        });
    ReplicatorContext context;
    context.http = std::make_shared<CredentialAuth>(http, credentials);
    context.replica = replica;
    context.jobs = jobs;

    WidgetReplicator replicator(descriptor, si, context);
    replicator.create_table();
    BackfillJob job = jobs->create_recursive(si, /*incremental=*/true, json::object());
    replicator.backfill(job);

    std::printf("%-6s %-22s %s\n", "id", "updated_at", "color");
    const TableSpec& spec = replicator.table_spec();
    replica->for_each(spec, [&spec](const Row& row) {
      const json& color = row.value(spec, "color");
      std::printf("%-6s %-22s %s\n", row.key.get<std::string>().c_str(),
                  row.value(spec, "updated_at").get<std::string>().c_str(),
                  color.is_null() ? "-" : color.get<std::string>().c_str());
    });
    std::printf("%zu rows from %zu requests; last_backfilled_at %s\n", replica->count(replicator.table_spec()),
                http->request_count(), format_timestamp(*replicator.integration().last_backfilled_at).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
}
