#pragma once
// The connection pool's implementation, shared by this adapter's sources.
// libpqxx types live here and in src/pg/*.cpp only.

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "webhookdb/errors.hpp"
#include "webhookdb/pg/connection_pool.hpp"

namespace webhookdb::pg {

// How a caught exception should be treated.
struct ErrorClass {
  // The connection cannot be used again.
  bool broken = false;
  // Running the same transaction again may succeed (and it is safe to).
  bool retry = false;
};

// A translated database error that remembers its class, so a Session::exec
// failure inside ConnectionPool::transaction is still retried.
class DatabaseError : public StoreError {
 public:
  DatabaseError(const std::string& message, bool retryable, ErrorClass cls)
      : StoreError(message, retryable), cls_(cls) {}
  [[nodiscard]] ErrorClass error_class() const noexcept { return cls_; }

 private:
  ErrorClass cls_;
};

struct ConnectionPool::Impl {
  explicit Impl(Config cfg);
  ~Impl();

  // A pooled connection, returned to the pool (or closed when broken) on destruction.
  class Lease {
   public:
    Lease(Impl& pool, std::unique_ptr<pqxx::connection> conn) : pool_(&pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept : pool_(other.pool_), conn_(std::move(other.conn_)), broken_(other.broken_) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    [[nodiscard]] pqxx::connection& conn() const { return *conn_; }
    void mark_broken() noexcept { broken_ = true; }

   private:
    Impl* pool_;
    std::unique_ptr<pqxx::connection> conn_;
    bool broken_ = false;
  };

  // A configured connection outside the pool (LISTEN, PgReplicaStore's advisory locks).
  [[nodiscard]] std::unique_ptr<pqxx::connection> connect() const;

  // Session-level advisory locks (integration locks) live on connections of
  // their own, pooled apart from `idle`: a job holds its lock for its whole
  // run, and must never hold one of the connections its statements wait for.
  // Reused instead of a new session per lock (a new session cost the server
  // 30-38 ms of CPU, most of a tiny job's cost).
  enum class LockState {
    none_held,  // every lock taken on it was released (pg_advisory_unlock said so)
    unknown,    // an error, or an unlock that found nothing: close it, never reuse it
  };
  // An idle lock connection that looks alive, or a new one.
  [[nodiscard]] std::unique_ptr<pqxx::connection> acquire_lock_connection();
  // Kept for reuse only when `state` is none_held (else closed, which ends
  // any lock it still holds); at most kMaxIdleLockConnections stay idle.
  void release_lock_connection(std::unique_ptr<pqxx::connection> conn, LockState state) noexcept;
  static constexpr std::size_t kMaxIdleLockConnections = 64;
  // Waits for a connection (StoreError, retryable, after acquire_timeout).
  [[nodiscard]] Lease acquire();

  // Runs fn(pqxx::work&) in a transaction with retries on connection loss,
  // deadlock or serialization failure before COMMIT; errors are translated
  // (see translate) with `what` saying what was being done.
  template <class Fn>
  auto in_transaction(std::string_view what, int retries, Fn&& fn) -> std::invoke_result_t<Fn&, pqxx::work&>;
  // Runs fn(pqxx::nontransaction&) on a pooled connection, errors translated.
  template <class Fn>
  auto autocommit(std::string_view what, Fn&& fn) -> std::invoke_result_t<Fn&, pqxx::nontransaction&>;
  // autocommit for a statement that may run twice with the same effect (a
  // read, or a write of fixed values): tried again on a fresh connection, up
  // to config.retries times, when the error is retryable (connection lost).
  template <class Fn>
  auto autocommit_idempotent(std::string_view what, Fn&& fn) -> std::invoke_result_t<Fn&, pqxx::nontransaction&>;

  // Classifies the exception being handled (call inside a catch block).
  [[nodiscard]] static ErrorClass classify(const std::exception_ptr& error) noexcept;
  // Rethrows the exception being handled as a webhookdb error: webhookdb::Error
  // unchanged, database errors as StoreError (class 22 data errors as
  // InvalidInput) with "<what>: <first line of the server message>
  // (SQLSTATE x)", the password scrubbed and no DETAIL (which may hold row values).
  [[noreturn]] void translate(std::string_view what, const std::exception_ptr& error) const;
  // `text` with the password of the URL replaced by REDACTED.
  [[nodiscard]] std::string scrub(std::string text) const;

  void release(std::unique_ptr<pqxx::connection> conn, bool broken) noexcept;

  Config config;
  std::string password;  // to scrub from messages; empty when none

  mutable std::mutex mutex;
  std::condition_variable available;
  std::deque<std::unique_ptr<pqxx::connection>> idle;
  std::size_t open = 0;  // idle + leased
  std::deque<std::unique_ptr<pqxx::connection>> lock_idle;
  mutable std::atomic<std::size_t> connections_opened{0};  // by connect(), ever
};

template <class Fn>
auto ConnectionPool::Impl::in_transaction(std::string_view what, int retries, Fn&& fn)
    -> std::invoke_result_t<Fn&, pqxx::work&> {
  using Result = std::invoke_result_t<Fn&, pqxx::work&>;
  for (int attempt = 0;; ++attempt) {
    Lease lease = acquire();
    bool committing = false;
    try {
      pqxx::work tx(lease.conn());
      if constexpr (std::is_void_v<Result>) {
        fn(tx);
        committing = true;
        tx.commit();
        return;
      } else {
        Result result = fn(tx);
        committing = true;
        tx.commit();
        return result;
      }
    } catch (...) {
      const auto error = std::current_exception();
      ErrorClass cls = classify(error);
      if (cls.broken || !lease.conn().is_open()) lease.mark_broken();
      // After COMMIT was sent the outcome is unknown: never run the batch again.
      if (cls.retry && !committing && attempt < retries) continue;
      if (committing && (cls.broken || !lease.conn().is_open())) {
        throw StoreError(std::string(what) +
                             ": the connection was lost during COMMIT; the transaction may or may not have been "
                             "committed",
                         true);
      }
      translate(what, error);
    }
  }
}

template <class Fn>
auto ConnectionPool::Impl::autocommit(std::string_view what, Fn&& fn)
    -> std::invoke_result_t<Fn&, pqxx::nontransaction&> {
  Lease lease = acquire();
  try {
    pqxx::nontransaction tx(lease.conn());
    return fn(tx);
  } catch (...) {
    const auto error = std::current_exception();
    if (classify(error).broken || !lease.conn().is_open()) lease.mark_broken();
    translate(what, error);
  }
}

template <class Fn>
auto ConnectionPool::Impl::autocommit_idempotent(std::string_view what, Fn&& fn)
    -> std::invoke_result_t<Fn&, pqxx::nontransaction&> {
  for (int attempt = 0;; ++attempt) {
    try {
      return autocommit(what, fn);
    } catch (const StoreError& e) {
      if (!e.retryable() || attempt >= config.retries) throw;
    }
  }
}

// Text of a result field; nullopt for NULL.
[[nodiscard]] inline std::optional<std::string_view> field_text(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return std::string_view(f.c_str(), f.size());
}

}  // namespace webhookdb::pg
