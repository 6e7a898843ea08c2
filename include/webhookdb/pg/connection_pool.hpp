#pragma once
// A thread-safe pool of PostgreSQL connections. Every connection runs with
// TimeZone=UTC, client_encoding=UTF8, DateStyle=ISO, the configured
// statement_timeout and application_name. A connection found broken (by a
// failed statement, or by a check before it is handed out) is closed and
// replaced, never reused.
//
// The stores of this adapter use it through libpqxx (src/pg/pool_impl.hpp);
// other components use the text interface below (Session::exec), e.g. to run
// their own migrations (migrations.hpp) or queries.

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/pg/config.hpp"

namespace webhookdb::pg {

// A statement parameter in PostgreSQL text form; nullopt is NULL. A NUL byte
// in a parameter is an InvalidInput (libpq would silently cut the text there).
using Param = std::optional<std::string>;

struct WEBHOOKDB_EXPORT QueryResult {
  std::vector<std::string> columns;
  // Text form of every value; nullopt for NULL.
  std::vector<std::vector<std::optional<std::string>>> rows;
  // Rows inserted/updated/deleted by an INSERT/UPDATE/DELETE.
  std::size_t affected_rows = 0;

  [[nodiscard]] bool empty() const noexcept { return rows.empty(); }
  // The value of `column` in row `row`; InvalidPrecondition when either is unknown.
  [[nodiscard]] const std::optional<std::string>& at(std::size_t row, std::string_view column) const;
};

// One pooled connection, inside a transaction or not (see ConnectionPool).
class WEBHOOKDB_EXPORT Session {
 public:
  virtual ~Session() = default;
  // Runs one statement with $1.. parameters (several statements when there are
  // no parameters). Database errors become StoreError (retryable for a lost
  // connection, a deadlock, a serialization failure or a timeout).
  virtual QueryResult exec(const std::string& sql, const std::vector<Param>& params = {}) = 0;
  // `name` as a quoted identifier ("my ""table"""); BrokenSpecification when
  // empty, longer than 63 bytes, or holding a NUL byte or invalid UTF-8.
  [[nodiscard]] virtual std::string quote_name(std::string_view name) const = 0;
};

class WEBHOOKDB_EXPORT ConnectionPool {
 public:
  // Connects lazily: the first connection opens on first use.
  explicit ConnectionPool(Config config);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  [[nodiscard]] const Config& config() const noexcept;

  // Runs `fn` in one READ COMMITTED transaction, committed when `fn` returns
  // and rolled back when it throws. When the connection is lost (or a
  // deadlock/serialization failure happens) before the commit, `fn` runs again
  // on a fresh connection up to `retries` times: it must be safe to repeat.
  void transaction(const std::function<void(Session&)>& fn, int retries = 0);
  // Runs `fn` outside any transaction: each statement commits by itself
  // (CREATE INDEX CONCURRENTLY, VACUUM...).
  void autocommit(const std::function<void(Session&)>& fn);
  // One statement in autocommit mode.
  QueryResult exec(const std::string& sql, const std::vector<Param>& params = {});

  // Connections open right now (idle and in use), and idle ones.
  [[nodiscard]] std::size_t open_connections() const;
  [[nodiscard]] std::size_t idle_connections() const;
  // Server process ids of the idle connections (for tests and diagnostics).
  [[nodiscard]] std::vector<int> idle_backend_pids() const;
  // Server process ids of the idle connections kept for session-level
  // advisory locks (integration locks), pooled apart from the others.
  [[nodiscard]] std::vector<int> idle_lock_backend_pids() const;
  // PostgreSQL sessions this pool has opened so far (pooled, lock and
  // dedicated connections): a steady workload should not make it grow.
  [[nodiscard]] std::size_t connections_opened() const noexcept;
  // Closes the idle connections, lock connections included (connections in
  // use close when returned).
  void clear();

  // The implementation, for this adapter's own sources (declared in src/pg).
  struct Impl;
  [[nodiscard]] Impl& impl() const noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace webhookdb::pg
