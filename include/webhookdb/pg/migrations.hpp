#pragma once
// Versioned, idempotent schema migrations. Each component (the job store, the
// replica store's checkpoints, a later job queue...) owns a list of numbered
// steps; the versions applied are recorded per component in
// <schema>.webhookdb_schema_migrations, so components add steps independently.

#include <string>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/pg/connection_pool.hpp"

namespace webhookdb::pg {

struct Migration {
  // Unique within its component, > 0; steps run in increasing order.
  int version = 0;
  std::string name;
  // One or more statements; every "{schema}" is replaced by the quoted schema
  // of the pool's Config.
  std::string sql;
};

// Applies, in one transaction under an advisory lock (so concurrent processes
// never race), the steps of `component` not applied yet. Creates the schema
// and the migrations table when missing. Returns how many steps ran (0 when
// up to date). InvalidPrecondition for a bad list (duplicate or non-positive
// versions, empty component).
WEBHOOKDB_EXPORT int migrate(ConnectionPool& pool, const std::string& component,
                             const std::vector<Migration>& steps);

// Versions of `component` applied so far, in increasing order.
[[nodiscard]] WEBHOOKDB_EXPORT std::vector<int> applied_migrations(ConnectionPool& pool,
                                                                   const std::string& component);

}  // namespace webhookdb::pg
