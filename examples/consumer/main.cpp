// Backfills three pages from a mock API into the in-memory store, using only
// the installed package. Exits 0 and prints "consumer ok: 5 rows" on success.
#include <cstdio>
#include <memory>

#include <webhookdb/memory/memory_job_store.hpp>
#include <webhookdb/memory/memory_replica_store.hpp>
#include <webhookdb/testing/mock_http_client.hpp>
#include <webhookdb/webhookdb.hpp>

namespace {

using namespace webhookdb;

class WidgetReplicator : public Replicator {
 public:
  using Replicator::Replicator;

 protected:
  Column remote_key_column() const override { return Column("widget_id", ColumnType::text).key("id"); }
  std::vector<Column> denormalized_columns() const override {
    return {Column("updated_at", ColumnType::timestamptz).convert(converters::time())};
  }
  UpdateRule update_rule() const override { return UpdateRule::when_newer("updated_at"); }
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>&,
                                   const CancellationToken& cancel) override {
    auto response = context().http->get(integration().api_url + "?page=" + token, {}, cancel);
    auto body = nlohmann::json::parse(response.body);
    return {body["items"], body["next"].get<std::string>(), response.body.size()};
  }
};

}  // namespace

int main() {
  auto http = std::make_shared<testing::MockHttpClient>();
  http->respond(200, R"({"items":[{"id":"a","updated_at":"2024-01-01T00:00:00Z"},{"id":"b","updated_at":"2024-01-01T00:00:00Z"}],"next":"2"})");
  http->respond(200, R"({"items":[{"id":"c","updated_at":"2024-01-02T00:00:00Z"},{"id":"d","updated_at":"2024-01-02T00:00:00Z"}],"next":"3"})");
  http->respond(200, R"({"items":[{"id":"e","updated_at":"2024-01-03T00:00:00Z"}],"next":""})");

  ReplicatorContext ctx;
  ctx.http = http;
  ctx.replica = std::make_shared<memory::MemoryReplicaStore>();
  ctx.jobs = std::make_shared<memory::MemoryJobStore>();

  Descriptor d{.name = "widget_v1", .supports_backfill = true, .factory = Descriptor::factory_for<WidgetReplicator>()};
  ServiceIntegration si = ctx.jobs->create_integration(
      {.service_name = "widget_v1", .table_name = "widgets", .api_url = "http://api.invalid/widgets", .backfill_key = "k"});
  WidgetReplicator replicator(d, si, ctx);
  replicator.create_table();
  BackfillJob job = ctx.jobs->create_recursive(si, false, nlohmann::json::object());
  replicator.backfill(job);
  const auto rows = ctx.replica->count(replicator.table_spec());
  std::printf("consumer ok: %zu rows\n", rows);
  return rows == 5 ? 0 : 1;
}
