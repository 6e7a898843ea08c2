#include "webhookdb/replica_store.hpp"

#include "webhookdb/errors.hpp"

namespace webhookdb {
namespace {

[[noreturn]] void no_sweeps(const std::string& what) {
  throw InvalidPrecondition("this replica store does not support sweeps (" + what +
                            "); use the memory or PostgreSQL store, or DeleteOptions::sweep = Sweep::never");
}

}  // namespace

void ReplicaStore::begin_sweep_run(const TableSpec& spec, const SweepRun& /*run*/) {
  no_sweeps("beginning a sweep run on " + spec.table);
}

SweepResult ReplicaStore::sweep(const TableSpec& spec, const SweepRun& /*run*/) { no_sweeps("sweeping " + spec.table); }

void ReplicaStore::end_sweep_run(std::int64_t job_id) { no_sweeps("ending sweep run " + std::to_string(job_id)); }

}  // namespace webhookdb
