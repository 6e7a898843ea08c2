#include "jobs/demo_replicators.hpp"

#include <memory>
#include <utility>

#include "webhookdb/converters.hpp"
#include "webhookdb/http_auth.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/retry_policy.hpp"

namespace webhookdb::jobs::demo {
namespace {

// Stripe-charge-like rows: the shape of the API server's objects.
class ChargeReplicatorBase : public Replicator {
 public:
  ChargeReplicatorBase(const Descriptor& d, const ServiceIntegration& si, const ReplicatorContext& ctx,
                       std::string default_api_url)
      : Replicator(d, si, ctx),
        http_(authenticated(context().http, integration().backfill_key)),
        default_api_url_(std::move(default_api_url)) {}

 protected:
  [[nodiscard]] BackfillOptions backfill_options() const override { return {.batch_size = kPageSize}; }
  [[nodiscard]] Column remote_key_column() const override { return Column("stripe_id", ColumnType::text).key("id"); }
  [[nodiscard]] std::vector<Column> denormalized_columns() const override {
    return {Column("amount", ColumnType::bigint),
            Column("currency", ColumnType::text),
            Column("customer", ColumnType::text).optional(),
            Column("status", ColumnType::text),
            Column("created", ColumnType::timestamptz).convert(converters::unix_timestamp()),
            Column("updated", ColumnType::timestamptz).convert(converters::unix_timestamp()).indexed()};
  }
  [[nodiscard]] UpdateRule update_rule() const override { return UpdateRule::when_newer("updated"); }

  // The context's client, with the integration's static key as a bearer
  // token when it has one. One without a key is authenticated by the host's
  // client: webhookdb-worker's CredentialAuth adds its OAuth2 token.
  static std::shared_ptr<HttpClient> authenticated(std::shared_ptr<HttpClient> http, const std::string& key) {
    if (!http || key.empty()) return http;
    return std::make_shared<BearerAuth>(std::move(http), key);
  }
  [[nodiscard]] HttpClient& http() const { return *http_; }

  [[nodiscard]] std::string api_url() const {
    return integration().api_url.empty() ? default_api_url_ : integration().api_url;
  }
  [[nodiscard]] pagination::QueryParams since(const std::optional<Timestamp>& last_backfilled) const {
    pagination::QueryParams query;
    if (last_backfilled) {
      const auto secs = std::chrono::duration_cast<std::chrono::seconds>(last_backfilled->time_since_epoch()).count();
      query.emplace_back("updated_since", std::to_string(secs));
    }
    return query;
  }

 private:
  std::shared_ptr<HttpClient> http_;
  std::string default_api_url_;
};

class ChargeReplicator final : public ChargeReplicatorBase {
 public:
  using ChargeReplicatorBase::ChargeReplicatorBase;

  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& last_backfilled,
                                   const CancellationToken& cancel) override {
    HttpRequest first{.url = pagination::with_query(api_url() + "/v1/charges", since(last_backfilled))};
    return pages_.fetch(http(), first, token, cancel);
  }

 private:
  pagination::StartingAfter pages_{{.limit = kPageSize}};
};

// The charges in small pages, every integration of it on one declared quota
// key (one token for many accounts): the quota fleet benchmark's replicator.
// Small pages keep its 200 pages a second from being bound by the row writes
// of a 2-core machine instead of by the quota; polite retries honour
// Retry-After on the 429s an unadvertised quota answers.
class QuotaChargeReplicator final : public ChargeReplicatorBase {
 public:
  using ChargeReplicatorBase::ChargeReplicatorBase;

  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& last_backfilled,
                                   const CancellationToken& cancel) override {
    HttpRequest first{.url = pagination::with_query(api_url() + "/v1/charges", since(last_backfilled))};
    return pages_.fetch(http(), first, token, cancel);
  }

 protected:
  [[nodiscard]] BackfillOptions backfill_options() const override {
    return {.batch_size = kQuotaPageSize,
            .retry_policy = polite_retry_policy(),
            .rate_limit = {.quota_key = kQuotaKey}};
  }

 private:
  pagination::StartingAfter pages_{{.limit = kQuotaPageSize}};
};

// A dependent: backfilled after its parent, without credentials of its own.
class MirrorReplicator final : public ChargeReplicatorBase {
 public:
  using ChargeReplicatorBase::ChargeReplicatorBase;

  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& last_backfilled,
                                   const CancellationToken& cancel) override {
    HttpRequest first{.url = pagination::with_query(api_url() + "/cursor", since(last_backfilled))};
    return pages_.fetch(http(), first, token, cancel);
  }

 private:
  pagination::Cursor pages_{{.limit = kPageSize}};
};

template <class R>
ReplicatorFactory factory(std::string default_api_url) {
  return [url = std::move(default_api_url)](const Descriptor& d, const ServiceIntegration& si,
                                            const ReplicatorContext& ctx) -> std::unique_ptr<Replicator> {
    return std::make_unique<R>(d, si, ctx, url);
  };
}

}  // namespace

void register_demo_replicators(Registry& registry, const std::string& default_api_url) {
  registry.add({.name = kChargeService,
                .resource_name_singular = "Demo Charge",
                .resource_name_plural = "Demo Charges",
                .supports_webhooks = false,
                .supports_backfill = true,
                .factory = factory<ChargeReplicator>(default_api_url)});
  registry.add({.name = kMirrorService,
                .resource_name_singular = "Demo Charge Mirror",
                .resource_name_plural = "Demo Charge Mirrors",
                .supports_webhooks = false,
                .supports_backfill = true,
                .dependency_descriptor = kChargeService,
                .factory = factory<MirrorReplicator>(default_api_url)});
  registry.add({.name = kQuotaService,
                .resource_name_singular = "Demo Quota Charge",
                .resource_name_plural = "Demo Quota Charges",
                .supports_webhooks = false,
                .supports_backfill = true,
                .factory = factory<QuotaChargeReplicator>(default_api_url)});
}

}  // namespace webhookdb::jobs::demo
