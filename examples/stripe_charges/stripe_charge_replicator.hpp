#pragma once
// A Stripe-charge-style replicator: the whole of what a replicator author writes.

#include <webhookdb/converters.hpp>
#include <webhookdb/pagination.hpp>
#include <webhookdb/replicator.hpp>

namespace examples {

using namespace webhookdb;

class StripeChargeReplicator : public Replicator {
 public:
  using Replicator::Replicator;

  static Descriptor descriptor() {
    return {.name = "stripe_charge_v1", .resource_name_singular = "Stripe Charge",
            .resource_name_plural = "Stripe Charges", .supports_webhooks = true, .supports_backfill = true,
            .factory = Descriptor::factory_for<StripeChargeReplicator>()};
  }

 protected:
  Column remote_key_column() const override { return Column("stripe_id", ColumnType::text).key("id"); }

  std::vector<Column> denormalized_columns() const override {
    return {Column("amount", ColumnType::bigint),
            Column("currency", ColumnType::text),
            Column("customer", ColumnType::text).optional().indexed(),
            Column("status", ColumnType::text),
            Column("created", ColumnType::timestamptz).convert(converters::unix_timestamp()).indexed(),
            Column("updated", ColumnType::timestamptz).convert(converters::unix_timestamp()).indexed()};
  }

  // Older data never overwrites newer data.
  UpdateRule update_rule() const override { return UpdateRule::when_newer("updated"); }

  // Webhooks arrive as events: {"type": "charge.updated", "data": {"object": {...}}}.
  std::pair<nlohmann::json, nlohmann::json> resource_and_event(const WebhookRequest& request) const override {
    auto body = request.json.is_null() ? nlohmann::json::parse(request.body) : request.json;
    if (body.contains("data") && body["data"].contains("object")) return {body["data"]["object"], body};
    return {body, nullptr};
  }

  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& last_backfilled,
                                   const CancellationToken& cancel) override {
    pagination::QueryParams query;
    if (last_backfilled) query.emplace_back("updated_since", std::to_string(unix_seconds(*last_backfilled)));
    HttpRequest first{.url = pagination::with_query(integration().api_url + "/v1/charges", query),
                      .headers = {{"Authorization", "Bearer " + integration().backfill_key}}};
    return pages_.fetch(*context().http, first, token, cancel);
  }

  // Be polite to the API: backoff with jitter, honour Retry-After.
  BackfillOptions backfill_options() const override { return {.retry_policy = polite_retry_policy()}; }

 private:
  pagination::StartingAfter pages_;
};

}  // namespace examples
