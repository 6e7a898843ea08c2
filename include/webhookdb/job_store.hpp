#pragma once
// The port to where integrations, jobs and locks live.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/backfill_job.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/service_integration.hpp"

namespace webhookdb {

// Thrown by Replicator::backfill when JobStore::start_job finds the job
// finished by another run meanwhile (a run that waited for the integration's
// lock); JobRunner reports it as already_finished.
class WEBHOOKDB_EXPORT JobFinishedMeanwhile : public InvalidPrecondition {
 public:
  using InvalidPrecondition::InvalidPrecondition;
};

// Held while a backfill of one integration runs; released on destruction.
class WEBHOOKDB_EXPORT IntegrationLock {
 public:
  virtual ~IntegrationLock() = default;
};

class WEBHOOKDB_EXPORT JobStore {
 public:
  virtual ~JobStore() = default;

  // Assigns id (and opaque_id when empty); returns the stored integration.
  virtual ServiceIntegration create_integration(ServiceIntegration integration) = 0;
  [[nodiscard]] virtual std::optional<ServiceIntegration> find_integration(std::int64_t id) = 0;
  [[nodiscard]] virtual std::optional<ServiceIntegration> find_integration_by_opaque_id(
      const std::string& opaque_id) = 0;
  // The integration that claims `table_name` (one integration per table).
  [[nodiscard]] virtual std::optional<ServiceIntegration> find_integration_by_table(
      const std::string& table_name) = 0;
  virtual void update_integration(const ServiceIntegration& integration) = 0;
  // Integrations whose depends_on is `integration_id`.
  [[nodiscard]] virtual std::vector<ServiceIntegration> dependents_of(std::int64_t integration_id) = 0;
  virtual void delete_integration(std::int64_t id) = 0;

  // Assigns id, opaque_id and created_at.
  virtual BackfillJob create_job(BackfillJob job) = 0;
  // Creates a job for `integration` and, in the same transaction, one child job
  // per dependent integration, recursively, with the same incremental flag and
  // criteria.
  virtual BackfillJob create_recursive(const ServiceIntegration& integration, bool incremental,
                                       const nlohmann::json& criteria,
                                       std::optional<std::int64_t> parent_job_id = std::nullopt) = 0;
  [[nodiscard]] virtual std::optional<BackfillJob> find_job(std::int64_t id) = 0;
  // A job and its integration (nullopt when the integration is gone), as a
  // job runner first looks at them: PgJobStore reads both in one statement.
  struct JobAndIntegration {
    BackfillJob job;
    std::optional<ServiceIntegration> integration;
  };
  [[nodiscard]] virtual std::optional<JobAndIntegration> find_job_and_integration(std::int64_t job_id) {
    auto job = find_job(job_id);
    if (!job) return std::nullopt;
    auto integration = find_integration(job->service_integration_id);
    return JobAndIntegration{std::move(*job), std::move(integration)};
  }
  // Persists started_at and finished_at.
  virtual void update_job(const BackfillJob& job) = 0;
  // Persists `job` as update_job does, as a run starts it, unless another
  // run finished it meanwhile (stored finished, `job` not): then false and
  // nothing is written. PgJobStore: one statement, no re-read of the job.
  [[nodiscard]] virtual bool start_job(const BackfillJob& job) {
    if (!job.finished_at) {
      if (auto stored = find_job(job.id); stored && stored->finished_at) return false;
    }
    update_job(job);
    return true;
  }
  [[nodiscard]] virtual std::vector<BackfillJob> child_jobs(std::int64_t job_id) = 0;
  virtual void delete_job(std::int64_t id) = 0;

  // Without waiting: nullptr when another run holds the lock.
  [[nodiscard]] virtual std::unique_ptr<IntegrationLock> try_lock_integration(std::int64_t integration_id) = 0;
};

}  // namespace webhookdb
