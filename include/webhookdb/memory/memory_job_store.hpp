#pragma once
// A JobStore in memory: integrations, backfill jobs and integration locks.
// Thread-safe; ids start at 1; created_at comes from the injected clock.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "webhookdb/clock.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/job_store.hpp"

namespace webhookdb::memory {

class WEBHOOKDB_EXPORT MemoryJobStore final : public JobStore {
 public:
  explicit MemoryJobStore(std::shared_ptr<Clock> clock = system_clock());
  ~MemoryJobStore() override;
  MemoryJobStore(const MemoryJobStore&) = delete;
  MemoryJobStore& operator=(const MemoryJobStore&) = delete;

  ServiceIntegration create_integration(ServiceIntegration integration) override;
  [[nodiscard]] std::optional<ServiceIntegration> find_integration(std::int64_t id) override;
  [[nodiscard]] std::optional<ServiceIntegration> find_integration_by_opaque_id(
      const std::string& opaque_id) override;
  [[nodiscard]] std::optional<ServiceIntegration> find_integration_by_table(const std::string& table_name) override;
  // InvalidPrecondition when the integration does not exist.
  void update_integration(const ServiceIntegration& integration) override;
  // In id order.
  [[nodiscard]] std::vector<ServiceIntegration> dependents_of(std::int64_t integration_id) override;
  void delete_integration(std::int64_t id) override;

  // A null criteria becomes {}; any other non-object is an InvalidPrecondition.
  BackfillJob create_job(BackfillJob job) override;
  // All jobs of the tree are created under one lock: nobody sees half a tree.
  // A dependency cycle is an InvariantViolation and creates nothing.
  BackfillJob create_recursive(const ServiceIntegration& integration, bool incremental,
                               const nlohmann::json& criteria,
                               std::optional<std::int64_t> parent_job_id = std::nullopt) override;
  [[nodiscard]] std::optional<BackfillJob> find_job(std::int64_t id) override;
  // Persists started_at and finished_at; InvalidPrecondition when the job is gone.
  void update_job(const BackfillJob& job) override;
  // In id order.
  [[nodiscard]] std::vector<BackfillJob> child_jobs(std::int64_t job_id) override;
  // Deletes the job and its descendants (like ON DELETE CASCADE).
  void delete_job(std::int64_t id) override;

  // The lock is released when the returned object is destroyed (it may outlive the store).
  [[nodiscard]] std::unique_ptr<IntegrationLock> try_lock_integration(std::int64_t integration_id) override;

  // --- For tests ---
  [[nodiscard]] std::vector<BackfillJob> jobs() const;
  [[nodiscard]] std::vector<ServiceIntegration> integrations() const;
  [[nodiscard]] bool integration_locked(std::int64_t integration_id) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace webhookdb::memory
