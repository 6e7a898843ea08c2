#pragma once
// Statements and prepared-statement plumbing shared by PgJobQueue
// (job_queue.cpp) and PgJobControl (job_control.cpp). Private to src/pg.

#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pg/pool_impl.hpp"

namespace webhookdb::pg::detail {

// The queue's complete: the running job `$1` is done, only while the lease
// whose token is `$2` still holds it (a lost or taken-over lease changes
// nothing). RETURNING job_id: empty when the lease was not held. PgJobQueue
// runs it alone; PgJobControl::complete as the first CTE of the statement
// that also writes the run's held progress reports.
inline std::string complete_update_sql(const std::string& queue_table) {
  return "UPDATE " + queue_table +
         " SET state = 'done', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
         "finished_at = clock_timestamp(), updated_at = clock_timestamp() "
         "WHERE job_id = $1::bigint AND state = 'running' AND lease_token = $2 RETURNING job_id";
}

// A prepared statement's name, from `what` and a hash of its text: stores and
// queues of several schemas may share a connection.
inline std::string job_statement_name(const char* what, const std::string& sql) {
  char hash[24];
  std::snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(sql));
  return std::string("webhookdb_queue_") + what + "_" + hash;
}

// One prepared statement in autocommit: planned once per connection, not at
// every call (libpqxx prepares it on a connection's first use). A connection
// found lost is tried once more on a fresh one, so only statements that are
// safe to repeat (guarded by state and lease token) go through here.
inline QueryResult prepared_once(ConnectionPool& pool, const std::string& name, const std::string& sql,
                                 const std::vector<Param>& params) {
  auto& impl = pool.impl();
  const auto run = [&] {
    return impl.autocommit("running the job queue's statement " + name, [&](pqxx::nontransaction& tx) {
      tx.conn().prepare(name, sql);
      const pqxx::result r = tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(params));
      QueryResult out;
      out.affected_rows = static_cast<std::size_t>(r.affected_rows());
      for (pqxx::row::size_type c = 0; c < r.columns(); ++c) out.columns.emplace_back(r.column_name(c));
      out.rows.reserve(static_cast<std::size_t>(r.size()));
      for (const auto& row : r) {
        std::vector<std::optional<std::string>> values;
        values.reserve(static_cast<std::size_t>(row.size()));
        for (const auto& f : row) {
          const auto text = field_text(f);
          values.emplace_back(text ? std::optional<std::string>(std::string(*text)) : std::nullopt);
        }
        out.rows.push_back(std::move(values));
      }
      return out;
    });
  };
  try {
    return run();
  } catch (const StoreError& e) {
    if (!e.retryable()) throw;
    return run();
  }
}

}  // namespace webhookdb::pg::detail
