#include "webhookdb/testing/fake_replicator.hpp"

#include "webhookdb/converters.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb::testing {

// --- FakeControl ---

std::vector<nlohmann::json> FakeControl::criteria_seen() const {
  std::lock_guard lock(mutex_);
  return criteria_;
}

std::vector<FakeControl::Fetch> FakeControl::fetches() const {
  std::lock_guard lock(mutex_);
  return fetches_;
}

std::vector<FakeControl::DependencyUpsert> FakeControl::dependency_upserts() const {
  std::lock_guard lock(mutex_);
  return dependency_upserts_;
}

std::vector<std::string> FakeControl::backfill_errors() const {
  std::lock_guard lock(mutex_);
  return backfill_errors_;
}

void FakeControl::record_criteria(const nlohmann::json& criteria) {
  std::lock_guard lock(mutex_);
  criteria_.push_back(criteria);
}

void FakeControl::record_fetch(Fetch fetch) {
  std::lock_guard lock(mutex_);
  fetches_.push_back(std::move(fetch));
}

void FakeControl::record_dependency_upsert(DependencyUpsert call) {
  std::lock_guard lock(mutex_);
  dependency_upserts_.push_back(std::move(call));
}

void FakeControl::record_backfill_error(const std::string& what) {
  std::lock_guard lock(mutex_);
  backfill_errors_.push_back(what);
}

// --- helpers ---

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): id, then time: the order of every fake item
nlohmann::json fake_item(const std::string& id, const std::string& at, const nlohmann::json& extra) {
  nlohmann::json item = extra.is_object() ? extra : nlohmann::json::object();
  item["my_id"] = id;
  item["at"] = at;
  return item;
}

nlohmann::json fake_page(const std::vector<nlohmann::json>& items, const std::string& next) {
  nlohmann::json page;
  page["items"] = nlohmann::json::array();
  for (const auto& item : items) page["items"].push_back(item);
  page["next"] = next;
  return page;
}

// --- FakeReplicator ---

FakeReplicator::FakeReplicator(const Descriptor& descriptor, const ServiceIntegration& integration,
                               const ReplicatorContext& context, std::shared_ptr<FakeControl> control)
    : Replicator(descriptor, integration, context), control_(std::move(control)) {
  if (!control_) control_ = std::make_shared<FakeControl>();
}

Column FakeReplicator::remote_key_column() const { return Column("my_id", ColumnType::text); }

std::vector<Column> FakeReplicator::denormalized_columns() const {
  return {Column("at", ColumnType::timestamptz).key("at").convert(converters::time()).indexed()};
}

UpdateRule FakeReplicator::update_rule() const { return UpdateRule::when_newer("at"); }

std::string FakeReplicator::url_with(const std::string& params) const {
  const std::string& base = integration().api_url;
  if (params.empty()) return base;
  return base + (base.find('?') == std::string::npos ? "?" : "&") + params;
}

BackfillPage FakeReplicator::fetch_page(const std::string& url, const CancellationToken& cancel) const {
  if (!context().http) throw InvalidPrecondition("fake replicator " + descriptor().name + " has no HTTP client");
  HttpRequest request;
  request.url = url;
  request.headers.emplace_back("Accept", "application/json");
  const HttpResponse response = context().http->send(request, cancel);
  const auto body = nlohmann::json::parse(response.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    throw InvalidInput("fake API answered with something other than a JSON object", redact_url(url));
  }
  BackfillPage page;
  page.bytes = response.body.size();
  page.items = body.contains("items") ? body["items"] : nlohmann::json(nullptr);
  if (auto it = body.find("next"); it != body.end() && it->is_string()) page.next = it->get<std::string>();
  return page;
}

BackfillPage FakeReplicator::fetch_backfill_page(const std::string& token,
                                                 const std::optional<Timestamp>& last_backfilled,
                                                 const CancellationToken& cancel) {
  control_->record_fetch(FakeControl::Fetch{descriptor().name, token, last_backfilled, std::nullopt});
  return fetch_page(url_with("token=" + url::percent_encode(token)), cancel);
}

BackfillPage FakeReplicator::fetch_window_page(const WindowPageRequest& request) {
  control_->record_fetch(FakeControl::Fetch{descriptor().name, request.token, request.since, request.window});
  const auto bound = [](const nlohmann::json& b) {
    return url::percent_encode(b.is_null() ? std::string() : b.is_string() ? b.get<std::string>() : b.dump());
  };
  std::string params = "axis=" + std::string(to_string(request.window.axis)) + "&from=" + bound(request.window.from) +
                       "&to=" + bound(request.window.to);
  if (request.partition != nullptr) {
    const auto& p = request.partition->bounds.contains("partition") ? request.partition->bounds.at("partition")
                                                                     : nlohmann::json(request.partition->key);
    params += "&partition=" + bound(p);
  }
  return fetch_page(url_with(params + "&token=" + url::percent_encode(request.token)), request.cancel);
}

BackfillOptions FakeReplicator::backfill_options() const { return control_->backfill_options; }

DeleteOptions FakeReplicator::delete_options() const { return control_->delete_options; }

void FakeReplicator::on_dependency_webhook_upsert(Replicator& dependency, const Row& row, bool changed) {
  control_->record_dependency_upsert(
      FakeControl::DependencyUpsert{descriptor().name, dependency.descriptor().name, row.key, changed});
}

std::vector<std::unique_ptr<Backfiller>> FakeReplicator::backfillers(const nlohmann::json& criteria) {
  control_->record_criteria(criteria);
  if (control_->make_backfillers) return control_->make_backfillers(*this, criteria);
  return Replicator::backfillers(criteria);
}

bool FakeReplicator::on_backfill_error(const std::exception& error) {
  control_->record_backfill_error(error.what());
  return control_->on_backfill_error ? control_->on_backfill_error(error) : Replicator::on_backfill_error(error);
}

WebhookResponse FakeReplicator::verify_webhook(const WebhookRequest& request) {
  return control_->verify_webhook ? control_->verify_webhook(request) : Replicator::verify_webhook(request);
}

namespace {

class FakeWithCriteriaReplicator final : public FakeReplicator {
 public:
  using FakeReplicator::FakeReplicator;

 public:
  // <api_url>?partition=<p>&token=<token>.
  BackfillPage fetch_partition_page(const BackfillPartition& partition, const std::string& token,
                                    const std::optional<Timestamp>& last_backfilled,
                                    const CancellationToken& cancel) override {
    control().record_fetch(FakeControl::Fetch{descriptor().name, token, last_backfilled, std::nullopt});
    const auto& p = partition.bounds.at("partition");
    const std::string name = p.is_string() ? p.get<std::string>() : p.dump();
    return fetch_page(url_with("partition=" + url::percent_encode(name) + "&token=" + url::percent_encode(token)), cancel);
  }

 protected:
  // One partition (so one ServiceBackfiller) per entry of criteria["partitions"].
  [[nodiscard]] std::vector<BackfillPartition> backfill_partitions(const nlohmann::json& criteria) const override {
    std::vector<BackfillPartition> out;
    const auto it = criteria.find("partitions");
    if (it == criteria.end() || !it->is_array()) return out;
    for (const auto& p : *it) {
      out.push_back(BackfillPartition{"partition:" + (p.is_string() ? p.get<std::string>() : p.dump()),
                                      nlohmann::json{{"partition", p}}});
    }
    return out;
  }
};

Descriptor make_descriptor(std::string name, bool webhooks, bool backfill, std::shared_ptr<FakeControl> control,
                           bool with_criteria = false) {
  if (!control) control = std::make_shared<FakeControl>();
  Descriptor d;
  d.name = std::move(name);
  d.resource_name_singular = "Fake";
  d.resource_name_plural = "Fakes";
  d.supports_webhooks = webhooks;
  d.supports_backfill = backfill;
  if (with_criteria) {
    d.factory = [control](const Descriptor& desc, const ServiceIntegration& si, const ReplicatorContext& ctx) {
      return std::unique_ptr<Replicator>(std::make_unique<FakeWithCriteriaReplicator>(desc, si, ctx, control));
    };
  } else {
    d.factory = [control](const Descriptor& desc, const ServiceIntegration& si, const ReplicatorContext& ctx) {
      return std::unique_ptr<Replicator>(std::make_unique<FakeReplicator>(desc, si, ctx, control));
    };
  }
  return d;
}

}  // namespace

Descriptor fake_v1(std::shared_ptr<FakeControl> control) {
  return make_descriptor("fake_v1", true, true, std::move(control));
}

Descriptor fake_backfill_only_v1(std::shared_ptr<FakeControl> control) {
  return make_descriptor("fake_backfill_only_v1", false, true, std::move(control));
}

Descriptor fake_webhooks_only_v1(std::shared_ptr<FakeControl> control) {
  return make_descriptor("fake_webhooks_only_v1", true, false, std::move(control));
}

Descriptor fake_with_criteria_v1(std::shared_ptr<FakeControl> control) {
  return make_descriptor("fake_with_criteria_v1", true, true, std::move(control), true);
}

Descriptor fake_dependent_v1(std::shared_ptr<FakeControl> control) {
  Descriptor d = make_descriptor("fake_dependent_v1", true, true, std::move(control));
  d.dependency_descriptor = "fake_v1";
  return d;
}

std::shared_ptr<FakeControl> register_fakes(Registry& registry, std::shared_ptr<FakeControl> control) {
  if (!control) control = std::make_shared<FakeControl>();
  registry.add(fake_v1(control));
  registry.add(fake_backfill_only_v1(control));
  registry.add(fake_webhooks_only_v1(control));
  registry.add(fake_with_criteria_v1(control));
  registry.add(fake_dependent_v1(control));
  return control;
}

}  // namespace webhookdb::testing
