#pragma once
// A replicator shaped like WebhookDB's fake, for testing the engine and for
// users who test code around replicators:
//   remote key `my_id` (text), column `at` (timestamptz, indexed, from "at"),
//   update only when the stored `at` is older than the incoming one;
//   pages come from GET <api_url>?token=<token> answering
//   {"items": [...], "next": "..."} (no "items" key: a null page).
//
// Variants, each a Descriptor:
//   fake_v1                  backfill + webhooks
//   fake_backfill_only_v1    backfill only
//   fake_webhooks_only_v1    webhooks only (supports_backfill = false)
//   fake_with_criteria_v1    one partition (a ServiceBackfiller with checkpoint key
//                            "partition:<p>") per entry of criteria["partitions"],
//                            fetching <api_url>?partition=<p>&token=<token>
//   fake_dependent_v1        depends on fake_v1; records dependency upserts
//
// Every replicator made from descriptors sharing one FakeControl reads its
// knobs and writes its records there, so a test tunes behaviour the registry
// instantiates.

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"

namespace webhookdb::testing {

class WEBHOOKDB_EXPORT FakeControl {
 public:
  using BackfillersFn =
      std::function<std::vector<std::unique_ptr<Backfiller>>(Replicator& replicator, const nlohmann::json& criteria)>;

  // --- Knobs (set them before the replicators run) ---
  // The replicators' backfill_options() (each replicator reads them once, at
  // its first backfill).
  BackfillOptions backfill_options;
  // The replicators' delete_options() (read once, when the table spec is built).
  DeleteOptions delete_options;
  // on_backfill_error(e); unset: not handled (rethrown).
  std::function<bool(const std::exception&)> on_backfill_error;
  // Replaces every variant's backfillers(criteria), e.g. with ScriptedBackfillers.
  BackfillersFn make_backfillers;
  // Replaces verify_webhook (default 202).
  std::function<WebhookResponse(const WebhookRequest&)> verify_webhook;

  // --- Records (thread-safe) ---
  struct Fetch {
    std::string service;  // descriptor name
    std::string token;
    std::optional<Timestamp> last_backfilled;
    // Set for the pages of a windowed job.
    std::optional<BackfillWindow> window;
  };
  struct DependencyUpsert {
    std::string dependent_service;
    std::string dependency_service;
    nlohmann::json key;
    bool changed = false;
  };
  [[nodiscard]] std::vector<nlohmann::json> criteria_seen() const;
  [[nodiscard]] std::vector<Fetch> fetches() const;
  [[nodiscard]] std::vector<DependencyUpsert> dependency_upserts() const;
  // what() of every error passed to on_backfill_error.
  [[nodiscard]] std::vector<std::string> backfill_errors() const;

  void record_criteria(const nlohmann::json& criteria);
  void record_fetch(Fetch fetch);
  void record_dependency_upsert(DependencyUpsert call);
  void record_backfill_error(const std::string& what);

 private:
  mutable std::mutex mutex_;
  std::vector<nlohmann::json> criteria_;
  std::vector<Fetch> fetches_;
  std::vector<DependencyUpsert> dependency_upserts_;
  std::vector<std::string> backfill_errors_;
};

class WEBHOOKDB_EXPORT FakeReplicator : public Replicator {
 public:
  FakeReplicator(const Descriptor& descriptor, const ServiceIntegration& integration,
                 const ReplicatorContext& context, std::shared_ptr<FakeControl> control);

  [[nodiscard]] FakeControl& control() const noexcept { return *control_; }

  // Public here (protected in Replicator) so tests can call the fake's hooks.
  // GET <api_url>?token=<token> through context().http.
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& last_backfilled,
                                   const CancellationToken& cancel) override;
  // A windowed job's page: GET <api_url>?axis=<time|id>&from=<from>&to=<to>&token=<token>
  // (an open bound is sent empty; [&partition=<p>] for a partitioned one).
  BackfillPage fetch_window_page(const WindowPageRequest& request) override;
  // GETs `url` and reads {"items": [...], "next": "..."}.
  BackfillPage fetch_page(const std::string& url, const CancellationToken& cancel) const;
  // <api_url> with `params` ("a=b&c=d") appended as its query.
  [[nodiscard]] std::string url_with(const std::string& params) const;

  // control().backfill_options.
  [[nodiscard]] BackfillOptions backfill_options() const override;
  // control().delete_options.
  [[nodiscard]] DeleteOptions delete_options() const override;
  void on_dependency_webhook_upsert(Replicator& dependency, const Row& row, bool changed) override;

 protected:
  [[nodiscard]] Column remote_key_column() const override;
  [[nodiscard]] std::vector<Column> denormalized_columns() const override;
  [[nodiscard]] UpdateRule update_rule() const override;
  [[nodiscard]] std::vector<std::unique_ptr<Backfiller>> backfillers(const nlohmann::json& criteria) override;
  bool on_backfill_error(const std::exception& error) override;
  [[nodiscard]] WebhookResponse verify_webhook(const WebhookRequest& request) override;

 private:
  std::shared_ptr<FakeControl> control_;
};


// A null `control` gets a fresh one (shared by nothing else).
[[nodiscard]] WEBHOOKDB_EXPORT Descriptor fake_v1(std::shared_ptr<FakeControl> control = nullptr);
[[nodiscard]] WEBHOOKDB_EXPORT Descriptor fake_backfill_only_v1(
    std::shared_ptr<FakeControl> control = nullptr);
[[nodiscard]] WEBHOOKDB_EXPORT Descriptor fake_webhooks_only_v1(
    std::shared_ptr<FakeControl> control = nullptr);
[[nodiscard]] WEBHOOKDB_EXPORT Descriptor fake_with_criteria_v1(
    std::shared_ptr<FakeControl> control = nullptr);
[[nodiscard]] WEBHOOKDB_EXPORT Descriptor fake_dependent_v1(std::shared_ptr<FakeControl> control = nullptr);

// Registers the five variants sharing one control (a new one when null) and returns it.
WEBHOOKDB_EXPORT std::shared_ptr<FakeControl> register_fakes(
    Registry& registry, std::shared_ptr<FakeControl> control = nullptr);

// A fake item: {"my_id": id, "at": at, ...extra}.
[[nodiscard]] WEBHOOKDB_EXPORT nlohmann::json fake_item(
    const std::string& id, const std::string& at, const nlohmann::json& extra = nlohmann::json::object());
// A fake API page: {"items": items, "next": next}.
[[nodiscard]] WEBHOOKDB_EXPORT nlohmann::json fake_page(const std::vector<nlohmann::json>& items,
                                                        const std::string& next = {});

}  // namespace webhookdb::testing
