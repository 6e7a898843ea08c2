#pragma once
// Stripe charges (https://docs.stripe.com/api/charges), replicated as WebhookDB's stripe_charge_v1 does.
// A charge has `created` but no `updated`, and GET /v1/charges filters by `created` only, so:
// - a backfill walks {"object":"list","data":[...],"has_more":true} with limit and starting_after (newest
//   first); an incremental one asks for the charges created since the last run (created[gte]): changes
//   to older charges arrive as webhooks;
// - a webhook is an event, {"object":"event","created":<event time>,"data":{"object":<charge>}}.
//   `updated` is the event's `created` there and the charge's `created` on backfills: a charge.refunded
//   replaces the charge.succeeded before it, and an event delivered late never undoes a newer one.
// Tested with Stripe's published charge and event: fixtures/.

#include <webhookdb/converters.hpp>
#include <webhookdb/http_auth.hpp>
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
            Column("updated", ColumnType::timestamptz).key("created").event({"created"})
                .convert(converters::unix_timestamp()).indexed()};
  }

  // Older data never overwrites newer data.
  UpdateRule update_rule() const override { return UpdateRule::when_newer("updated"); }

  // A webhook is an event wrapping the charge; a bare charge is taken as it is.
  std::pair<nlohmann::json, nlohmann::json> resource_and_event(const WebhookRequest& request) const override {
    auto body = Replicator::resource_and_event(request).first;  // parsed within the context's JSON limits
    const nlohmann::json* charge = json_at(body, {"data", "object"});
    if (charge == nullptr) return {std::move(body), nullptr};
    auto resource = *charge;
    return {std::move(resource), std::move(body)};
  }

  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& last_backfilled,
                                   const CancellationToken& cancel) override {
    pagination::QueryParams query;  // webhookdb::unix_seconds, from time.hpp
    if (last_backfilled) query.emplace_back("created[gte]", std::to_string(unix_seconds(*last_backfilled)));
    HttpRequest first{.url = pagination::with_query(integration().api_url + "/v1/charges", query)};
    // The secret key as a bearer token (Stripe takes it so, or as Basic's user),
    // added by the library's decorator over the shared client: never by hand.
    BearerAuth authed(context().http, integration().backfill_key);
    return pages_.fetch(authed, first, token, cancel);
  }

  // Be polite to the API: backoff with jitter, honour Retry-After.
  BackfillOptions backfill_options() const override { return {.retry_policy = polite_retry_policy()}; }

 private:
  pagination::StartingAfter pages_;  // limit=100
};

}  // namespace examples
