#pragma once
// A session-level advisory lock held on a pooled lock connection
// (ConnectionPool::Impl::acquire_lock_connection). Private to src/pg.
//
// The rules that make reuse safe:
// - the lock is released (pg_advisory_unlock) before its session goes back to
//   the lock pool, and only an unlock that says it released the lock lets the
//   session be reused;
// - a session whose lock state is unknown (an error while locking or
//   unlocking, a lost connection) is closed, never reused: closing a session
//   is the one sure way to end its locks.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "pg/pool_impl.hpp"

namespace webhookdb::pg::detail {

class SessionLock {
 public:
  // pg_advisory_lock(classid, objid)'s own order:
  // NOLINTNEXTLINE(bugprone-easily-swappable-parameters)
  SessionLock(ConnectionPool::Impl& pool, std::unique_ptr<pqxx::connection> conn, std::int32_t classid,
              std::int32_t objid)
      : pool_(&pool), conn_(std::move(conn)), classid_(classid), objid_(objid) {}
  // Unlocks, then returns the session to the lock pool (or closes it, see above).
  ~SessionLock();
  SessionLock(const SessionLock&) = delete;
  SessionLock& operator=(const SessionLock&) = delete;

  // The server process holding the lock.
  [[nodiscard]] int backend_pid() const { return conn_->backendpid(); }

 private:
  ConnectionPool::Impl* pool_;
  std::unique_ptr<pqxx::connection> conn_;
  std::int32_t classid_;
  std::int32_t objid_;
};

// pg_try_advisory_lock(namespace of the table `regclass` names, objid) on a
// pooled lock connection, in one statement (the table's oid is looked up in
// the same statement). nullptr when another session holds the lock (the
// session goes back to the pool at once). Errors are translated with `what`.
[[nodiscard]] std::unique_ptr<SessionLock> try_session_lock(ConnectionPool::Impl& pool,
                                                            const std::string& regclass, std::int32_t objid,
                                                            std::string_view what);

}  // namespace webhookdb::pg::detail
