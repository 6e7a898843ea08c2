// The Stripe charges example through the conformance kit
// (webhookdb/testing/conformance.hpp), on the memory stores and on PostgreSQL.
#include <gtest/gtest.h>

#include <string>

#include <webhookdb/testing/conformance.hpp>
#include <webhookdb/testing/pg_harness.hpp>
#include <webhookdb/url.hpp>

#include "stripe_charge_replicator.hpp"

namespace {

using nlohmann::json;
using namespace webhookdb;

constexpr long long kCreated = 1'700'000'000;

struct StripeChargeFixture {
  static void register_replicators(Registry& registry) {
    registry.add(examples::StripeChargeReplicator::descriptor());
  }
  static constexpr const char* service_name = "stripe_charge_v1";

  static json charge(const std::string& id, long long created, long long amount, const std::string& status) {
    return {{"id", id},         {"object", "charge"}, {"amount", amount},  {"currency", "usd"},
            {"customer", nullptr}, {"status", status},  {"created", created}, {"livemode", false}};
  }
  static json resource(std::size_t i) {
    return charge("ch_conf_" + std::to_string(i), kCreated + static_cast<long long>(i), 100 + static_cast<long long>(i),
                  "succeeded");
  }
  // A charge's `created` never changes at Stripe; what orders versions is the
  // event's `created`, and on backfills the charge's. The fixture's two
  // versions differ in both, so both paths can tell them apart.
  static json older() { return charge("ch_versioned", kCreated, 500, "pending"); }
  static json newer() { return charge("ch_versioned", kCreated + 600, 500, "succeeded"); }

  static HttpResponse page(const std::vector<json>& items, bool more) {
    const json body = {{"object", "list"}, {"url", "/v1/charges"}, {"has_more", more}, {"data", items}};
    return {.status = 200, .headers = {{"Content-Type", "application/json"}}, .body = body.dump()};
  }
  // created[gte]=<seconds> no later than the last run's mark.
  static bool asks_only_since(const HttpRequest& request, Timestamp mark) {
    const auto value = url::query_param(request.url, "created[gte]");
    return value && !value->empty() && std::stoll(*value) <= unix_seconds(mark);
  }
  // An event whose `created` is the charge's, as the charge.succeeded event of a new charge is.
  static WebhookRequest webhook(const json& resource, const ServiceIntegration& /*integration*/) {
    return WebhookRequest::from_json({{"id", "evt_" + resource["id"].get<std::string>()},
                                      {"object", "event"},
                                      {"type", "charge.updated"},
                                      {"created", resource["created"]},
                                      {"data", {{"object", resource}}}});
  }
};

}  // namespace

// Instantiated in the kit's namespace, where the suite's names are.
namespace webhookdb::testing {
using StripeSuites = ::testing::Types<Conformance<StripeChargeFixture>, Conformance<StripeChargeFixture, PostgresBackend>>;
INSTANTIATE_TYPED_TEST_SUITE_P(StripeCharges, ReplicatorConformance, StripeSuites);
}  // namespace webhookdb::testing
