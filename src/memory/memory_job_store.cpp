#include "webhookdb/memory/memory_job_store.hpp"

#include "webhookdb/backfill_window.hpp"

#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"

namespace webhookdb::memory {

struct MemoryJobStore::State {
  std::shared_ptr<Clock> clock;
  mutable std::mutex mutex;
  std::map<std::int64_t, ServiceIntegration> integrations;
  std::map<std::int64_t, BackfillJob> jobs;
  std::set<std::int64_t> locked;
  std::int64_t next_integration_id = 1;
  std::int64_t next_job_id = 1;

  BackfillJob create_job_locked(BackfillJob job) {
    if (job.criteria.is_null()) job.criteria = nlohmann::json::object();
    if (!job.criteria.is_object()) throw InvalidPrecondition("backfill job criteria must be a JSON object");
    (void)backfill_window(job.criteria);  // a malformed window is refused when the job is created
    job.id = next_job_id++;
    if (job.opaque_id.empty()) job.opaque_id = new_opaque_id("bfj");
    job.created_at = clock->now();
    jobs[job.id] = job;
    return job;
  }

  // Dependents of `integration_id`, recursively, checked for cycles first so
  // that a cycle creates nothing.
  void check_no_cycle(std::int64_t integration_id, std::set<std::int64_t>& path) const {
    if (!path.insert(integration_id).second) {
      throw InvariantViolation("integration dependency cycle through integration " +
                               std::to_string(integration_id));
    }
    for (const auto& [id, si] : integrations) {
      if (si.depends_on == integration_id) check_no_cycle(id, path);
    }
    path.erase(integration_id);
  }

  BackfillJob create_tree_locked(std::int64_t integration_id, bool incremental,
                                 const nlohmann::json& criteria, std::optional<std::int64_t> parent_job_id) {
    BackfillJob job;
    job.service_integration_id = integration_id;
    job.incremental = incremental;
    job.criteria = criteria;
    job.parent_job_id = parent_job_id;
    BackfillJob created = create_job_locked(std::move(job));
    std::vector<std::int64_t> dependents;
    for (const auto& [id, si] : integrations) {
      if (si.depends_on == integration_id) dependents.push_back(id);
    }
    for (auto dependent : dependents) create_tree_locked(dependent, incremental, criteria, created.id);
    return created;
  }

  void delete_job_locked(std::int64_t id) {
    std::vector<std::int64_t> children;
    for (const auto& [jid, job] : jobs) {
      if (job.parent_job_id == id) children.push_back(jid);
    }
    for (auto child : children) delete_job_locked(child);
    jobs.erase(id);
  }
};

namespace {

// Releases through a callback, so it needs no access to the store's state.
class CallbackLock final : public IntegrationLock {
 public:
  explicit CallbackLock(std::function<void()> release) : release_(std::move(release)) {}
  ~CallbackLock() override { release_(); }
  CallbackLock(const CallbackLock&) = delete;
  CallbackLock& operator=(const CallbackLock&) = delete;

 private:
  std::function<void()> release_;
};

// The rules PgJobStore applies (validate_table_name, and its unique index).
void check_table_name(const ServiceIntegration& integration) {
  if (integration.table_name.find('\0') != std::string::npos) {
    throw InvalidInput("table name contains a NUL byte", "service integration table name");
  }
  if (!is_valid_utf8(integration.table_name)) {
    throw InvalidInput("table name is not valid UTF-8", "service integration table name");
  }
  validate_table_name(integration.table_name);
}

void check_table_unclaimed(const std::map<std::int64_t, ServiceIntegration>& integrations,
                           const ServiceIntegration& integration) {
  if (integration.table_name.empty()) return;
  for (const auto& [id, si] : integrations) {
    if (id != integration.id && si.table_name == integration.table_name) {
      throw InvalidPrecondition("another integration already uses table '" + integration.table_name + "'");
    }
  }
}

}  // namespace

MemoryJobStore::MemoryJobStore(std::shared_ptr<Clock> clock) : state_(std::make_shared<State>()) {
  state_->clock = clock ? std::move(clock) : system_clock();
}

MemoryJobStore::~MemoryJobStore() = default;

ServiceIntegration MemoryJobStore::create_integration(ServiceIntegration integration) {
  std::lock_guard lock(state_->mutex);
  if (integration.opaque_id.empty()) integration.opaque_id = new_opaque_id("svi");
  check_table_name(integration);
  for (const auto& [id, si] : state_->integrations) {
    if (si.opaque_id == integration.opaque_id) {
      throw InvalidPrecondition("an integration with opaque id " + integration.opaque_id + " already exists");
    }
  }
  check_table_unclaimed(state_->integrations, integration);
  integration.id = state_->next_integration_id++;
  state_->integrations[integration.id] = integration;
  return integration;
}

std::optional<ServiceIntegration> MemoryJobStore::find_integration(std::int64_t id) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->integrations.find(id);
  if (it == state_->integrations.end()) return std::nullopt;
  return it->second;
}

std::optional<ServiceIntegration> MemoryJobStore::find_integration_by_opaque_id(
    const std::string& opaque_id) {
  std::lock_guard lock(state_->mutex);
  for (const auto& [id, si] : state_->integrations) {
    if (si.opaque_id == opaque_id) return si;
  }
  return std::nullopt;
}

std::optional<ServiceIntegration> MemoryJobStore::find_integration_by_table(const std::string& table_name) {
  std::lock_guard lock(state_->mutex);
  for (const auto& [id, si] : state_->integrations) {
    if (!table_name.empty() && si.table_name == table_name) return si;
  }
  return std::nullopt;
}

void MemoryJobStore::update_integration(const ServiceIntegration& integration) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->integrations.find(integration.id);
  if (it == state_->integrations.end()) {
    throw InvalidPrecondition("no integration with id " + std::to_string(integration.id) + " to update");
  }
  check_table_name(integration);
  check_table_unclaimed(state_->integrations, integration);
  it->second = integration;
}

std::vector<ServiceIntegration> MemoryJobStore::dependents_of(std::int64_t integration_id) {
  std::lock_guard lock(state_->mutex);
  std::vector<ServiceIntegration> out;
  for (const auto& [id, si] : state_->integrations) {
    if (si.depends_on == integration_id) out.push_back(si);
  }
  return out;
}

void MemoryJobStore::delete_integration(std::int64_t id) {
  std::lock_guard lock(state_->mutex);
  state_->integrations.erase(id);
}

BackfillJob MemoryJobStore::create_job(BackfillJob job) {
  std::lock_guard lock(state_->mutex);
  return state_->create_job_locked(std::move(job));
}

BackfillJob MemoryJobStore::create_recursive(const ServiceIntegration& integration, bool incremental,
                                             const nlohmann::json& criteria,
                                             std::optional<std::int64_t> parent_job_id) {
  const nlohmann::json c = criteria.is_null() ? nlohmann::json::object() : criteria;
  if (!c.is_object()) throw InvalidPrecondition("backfill job criteria must be a JSON object");
  (void)backfill_window(c);
  std::lock_guard lock(state_->mutex);
  std::set<std::int64_t> path;
  state_->check_no_cycle(integration.id, path);
  return state_->create_tree_locked(integration.id, incremental, c, parent_job_id);
}

std::optional<BackfillJob> MemoryJobStore::find_job(std::int64_t id) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->jobs.find(id);
  if (it == state_->jobs.end()) return std::nullopt;
  return it->second;
}

void MemoryJobStore::update_job(const BackfillJob& job) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->jobs.find(job.id);
  if (it == state_->jobs.end()) {
    throw InvalidPrecondition("no backfill job with id " + std::to_string(job.id) + " to update");
  }
  it->second.started_at = job.started_at;
  it->second.finished_at = job.finished_at;
}

std::vector<BackfillJob> MemoryJobStore::child_jobs(std::int64_t job_id) {
  std::lock_guard lock(state_->mutex);
  std::vector<BackfillJob> out;
  for (const auto& [id, job] : state_->jobs) {
    if (job.parent_job_id == job_id) out.push_back(job);
  }
  return out;
}

void MemoryJobStore::delete_job(std::int64_t id) {
  std::lock_guard lock(state_->mutex);
  state_->delete_job_locked(id);
}

std::unique_ptr<IntegrationLock> MemoryJobStore::try_lock_integration(std::int64_t integration_id) {
  std::lock_guard lock(state_->mutex);
  if (!state_->locked.insert(integration_id).second) return nullptr;
  std::weak_ptr<State> weak = state_;
  return std::make_unique<CallbackLock>([weak, integration_id] {
    if (auto state = weak.lock()) {
      std::lock_guard relock(state->mutex);
      state->locked.erase(integration_id);
    }
  });
}

std::vector<BackfillJob> MemoryJobStore::jobs() const {
  std::lock_guard lock(state_->mutex);
  std::vector<BackfillJob> out;
  for (const auto& [id, job] : state_->jobs) out.push_back(job);
  return out;
}

std::vector<ServiceIntegration> MemoryJobStore::integrations() const {
  std::lock_guard lock(state_->mutex);
  std::vector<ServiceIntegration> out;
  for (const auto& [id, si] : state_->integrations) out.push_back(si);
  return out;
}

bool MemoryJobStore::integration_locked(std::int64_t integration_id) const {
  std::lock_guard lock(state_->mutex);
  return state_->locked.count(integration_id) != 0;
}

}  // namespace webhookdb::memory
