// Adopting a table WebhookDB made. A replicator ported from WebhookDB's
// stripe_charge_v1 (same columns, types, indexes and update rule) is pointed
// at a table created by the DDL WebhookDB generates for that replicator
// (create_table_modification: pk bigserial PRIMARY KEY, the remote key
// UNIQUE NOT NULL, the denormalized columns in order, data jsonb NOT NULL,
// then CREATE INDEX IF NOT EXISTS "<opaque id>_<column>_idx" per indexed
// column). Our create_table and ensure_all_columns must take it as it is: no
// index, constraint or column added or renamed, and rows and webhooks land in it.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "support/pg_test_env.hpp"
#include "webhookdb/converters.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb::test {
namespace {

using nlohmann::json;

// WebhookDB's stripe_charge_v1 (lib/webhookdb/replicator/stripe_charge_v1.rb), ported.
class PortedStripeCharge : public Replicator {
 public:
  using Replicator::Replicator;
  static Descriptor descriptor() {
    return {.name = "stripe_charge_v1", .resource_name_singular = "Stripe Charge",
            .resource_name_plural = "Stripe Charges", .supports_webhooks = true, .supports_backfill = true,
            .factory = Descriptor::factory_for<PortedStripeCharge>()};
  }

 protected:
  Column remote_key_column() const override { return Column("stripe_id", ColumnType::text).key("id"); }
  std::vector<Column> denormalized_columns() const override {
    return {Column("amount", ColumnType::integer).indexed(),
            Column("balance_transaction", ColumnType::text).indexed(),
            Column("billing_email", ColumnType::text).indexed().key({"billing_details", "email"}).optional(),
            Column("created", ColumnType::timestamptz).indexed().convert(converters::unix_timestamp()),
            Column("customer", ColumnType::text).indexed().optional(),
            Column("invoice", ColumnType::text).indexed().optional(),
            Column("payment_type", ColumnType::text).key({"payment_method_details", "type"}).optional(),
            Column("receipt_email", ColumnType::text).indexed().optional(),
            Column("status", ColumnType::text).indexed(),
            Column("updated", ColumnType::timestamptz).indexed().key("created").event({"created"})
                .convert(converters::unix_timestamp())};
  }
  UpdateRule update_rule() const override { return UpdateRule::when_newer("updated"); }
  std::pair<json, json> resource_and_event(const WebhookRequest& request) const override {
    auto body = Replicator::resource_and_event(request).first;
    if (body.value("object", "") != "event") return {std::move(body), nullptr};
    auto charge = body["data"]["object"];
    return {std::move(charge), std::move(body)};
  }
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& /*since*/,
                                   const CancellationToken& cancel) override {
    HttpRequest request{.url = integration().api_url + "/v1/charges" + (token.empty() ? "" : "?starting_after=" + token)};
    const auto body = json::parse(context().http->send(request, cancel).body);
    std::string next;
    if (body.value("has_more", false)) next = body["data"].back()["id"].get<std::string>();
    return BackfillPage(body["data"], next);
  }
};

// What WebhookDB runs for a stripe_charge_v1 integration with opaque id svi_adopt1 and that table name.
std::vector<std::string> webhookdb_ddl(const std::string& schema, const std::string& table) {
  const std::string t = "\"" + schema + "\".\"" + table + "\"";
  std::vector<std::string> out = {"CREATE TABLE " + t +
                                  " (\n  \"pk\" bigserial PRIMARY KEY,\n  \"stripe_id\" text UNIQUE NOT NULL,\n"
                                  "  \"amount\" integer,\n  \"balance_transaction\" text,\n  \"billing_email\" text,\n"
                                  "  \"created\" timestamptz,\n  \"customer\" text,\n  \"invoice\" text,\n"
                                  "  \"payment_type\" text,\n  \"receipt_email\" text,\n  \"status\" text,\n"
                                  "  \"updated\" timestamptz,\n  \"data\" jsonb NOT NULL\n)"};
  for (const char* column : {"amount", "balance_transaction", "billing_email", "created", "customer", "invoice",
                             "receipt_email", "status", "updated"}) {
    out.push_back(std::string("CREATE INDEX IF NOT EXISTS \"svi_adopt1_") + column + "_idx\" ON " + t + " (\"" +
                  column + "\")");
  }
  return out;
}

class WebhookdbAdoption : public PgTest {
 protected:
  // Index names, constraint names and columns of the table, in one sorted list.
  std::set<std::string> shape(const std::string& table) {
    std::set<std::string> out;
    const auto add = [&](const std::string& prefix, const std::string& sql) {
      const auto r = admin_exec(sql, {schema_name(), table});
      for (std::size_t i = 0; i < r.rows.size(); ++i) out.insert(prefix + r.at(i, "name").value_or("?"));
    };
    add("index ", "SELECT indexname AS name FROM pg_indexes WHERE schemaname = $1 AND tablename = $2");
    add("constraint ",
        "SELECT conname AS name FROM pg_constraint WHERE conrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass");
    add("column ",
        "SELECT attname || ' ' || format_type(atttypid, atttypmod) AS name FROM pg_attribute"
        " WHERE attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass AND attnum > 0 AND NOT attisdropped");
    return out;
  }
};

TEST_F(WebhookdbAdoption, ATableWebhookDbCreatedIsUsedAsItIs) {
  const std::string table = "stripe_charge_v1_adopt";
  for (const auto& statement : webhookdb_ddl(schema_name(), table)) admin_exec(statement);
  const auto before = shape(table);
  ASSERT_EQ(before.count("index svi_adopt1_amount_idx"), 1U);
  ASSERT_EQ(before.count("constraint " + table + "_stripe_id_key"), 1U);

  testing::TestHarness h;
  h.registry->add(PortedStripeCharge::descriptor());
  h.use_stores(std::make_shared<pg::PgReplicaStore>(config()), h.jobs);
  const auto si = h.integration("stripe_charge_v1", [&](ServiceIntegration& s) {
    s.opaque_id = "svi_adopt1";
    s.table_name = table;
  });
  auto r = h.replicator(si);  // create_table
  r->ensure_all_columns();
  EXPECT_EQ(shape(table), before) << "our DDL changed WebhookDB's table";

  const json charge = {{"id", "ch_1"},           {"object", "charge"},  {"amount", 1099}, {"status", "succeeded"},
                       {"created", 1700000000},  {"customer", "cus_1"}, {"invoice", nullptr},
                       {"balance_transaction", "txn_1"}, {"billing_details", {{"email", "a@example.com"}}},
                       {"payment_method_details", {{"type", "card"}}}, {"receipt_email", nullptr}};
  h.http->respond_json({{"object", "list"}, {"data", json::array({charge})}, {"has_more", false}});
  auto job = h.job(si);
  r->backfill(job);
  json refunded = charge;
  refunded["status"] = "refunded";
  (void)r->upsert_webhook_body({{"object", "event"}, {"created", 1700000900}, {"type", "charge.refunded"},
                                {"data", {{"object", refunded}}}});
  const auto rows = h.rows(*r);
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].value(r->table_spec(), "status"), "refunded");
  EXPECT_EQ(rows[0].value(r->table_spec(), "billing_email"), "a@example.com");
  EXPECT_EQ(rows[0].value(r->table_spec(), "amount"), 1099);
  EXPECT_EQ(shape(table), before) << "writing changed WebhookDB's table";
}

}  // namespace
}  // namespace webhookdb::test
