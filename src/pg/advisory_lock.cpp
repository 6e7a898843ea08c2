#include "webhookdb/pg/advisory_lock.hpp"

#include "pg/session_lock.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb::pg {

std::int32_t advisory_lock_key(std::int64_t key) {
  std::int64_t k = key;
  if (k > kMaxUint) k %= kMaxUint;
  if (k > kMaxInt) k = -(k - kMaxInt);
  if (k < kMinInt) {
    throw InvalidInput("advisory lock key " + std::to_string(key) + " is below " + std::to_string(kMinInt) +
                       "; use another key");
  }
  return static_cast<std::int32_t>(k);
}

std::int32_t advisory_lock_namespace(std::uint32_t oid) {
  std::int64_t k = oid;
  if (k > kMaxInt) k = -(k - kMaxInt);
  return static_cast<std::int32_t>(k);
}

namespace detail {

SessionLock::~SessionLock() {
  using LockState = ConnectionPool::Impl::LockState;
  LockState state = LockState::unknown;
  try {
    pqxx::nontransaction tx(*conn_);
    // true: this session held the lock and no longer does. false would mean
    // someone else released it on this session: its state is not ours to
    // trust any more.
    if (tx.exec_params("SELECT pg_advisory_unlock($1::integer, $2::integer)", classid_, objid_)[0][0]
            .as<bool>())
      state = LockState::none_held;
  } catch (...) {
    state = LockState::unknown;
  }
  pool_->release_lock_connection(std::move(conn_), state);
}

std::unique_ptr<SessionLock> try_session_lock(ConnectionPool::Impl& pool, const std::string& regclass,
                                              std::int32_t objid, std::string_view what) {
  using LockState = ConnectionPool::Impl::LockState;
  std::unique_ptr<pqxx::connection> conn = pool.acquire_lock_connection();
  try {
    pqxx::nontransaction tx(*conn);
    // The namespace folds the table's oid like advisory_lock_namespace.
    const auto r = tx.exec_params(
        "SELECT ns, pg_try_advisory_lock(ns, $2::integer) FROM (SELECT (CASE WHEN o > 2147483647 "
        "THEN -(o - 2147483647) ELSE o END)::integer AS ns FROM (SELECT to_regclass($1)::oid::bigint AS o) "
        "AS t) AS n",
        regclass, objid);
    if (r[0][0].is_null())
      throw InvalidPrecondition(std::string(what) + ": table " + regclass + " is missing");
    const auto classid = r[0][0].as<std::int32_t>();
    if (!r[0][1].as<bool>()) {
      pool.release_lock_connection(std::move(conn), LockState::none_held);
      return nullptr;
    }
    return std::make_unique<SessionLock>(pool, std::move(conn), classid, objid);
  } catch (...) {
    // Whether the lock was taken is unknown: the session is closed with it.
    const auto error = std::current_exception();
    pool.release_lock_connection(std::move(conn), LockState::unknown);
    try {
      std::rethrow_exception(error);
    } catch (const webhookdb::Error&) {
      throw;
    } catch (...) {
      pool.translate(what, error);
    }
  }
}

}  // namespace detail
}  // namespace webhookdb::pg
