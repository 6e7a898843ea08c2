#include <poll.h>

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>

#include "pg/pool_impl.hpp"
#include "pg/sql.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/url.hpp"

namespace webhookdb::pg {
namespace {

// "ERROR:  message\nDETAIL: ..." -> "message": DETAIL and CONTEXT may hold
// row values (a failing row, a secret), so they never reach a message.
std::string first_line(std::string_view text) {
  for (std::string_view prefix : {"ERROR:  ", "FATAL:  ", "ERROR: ", "FATAL: "}) {
    if (text.substr(0, prefix.size()) == prefix) {
      text.remove_prefix(prefix.size());
      break;
    }
  }
  const auto nl = text.find('\n');
  std::string out(text.substr(0, nl));
  while (!out.empty() && (out.back() == ' ' || out.back() == '\r')) out.pop_back();
  return out;
}

bool is_connection_state(const std::string& state) {
  return state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03";
}

// libpq decodes %XX in a connection URI and keeps '+' as '+' (its
// conninfo_uri_decode), so the password of "postgres://u:a+b@h" is "a+b".
using url::percent_decode;

bool is_url(std::string_view url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

// --- Connection strings, as libpq reads them ---

using ConninfoOptions = std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)>;

// libpq's own parse of `conninfo` (both URL and key=value forms); null when
// libpq refuses it. libpq's error text is dropped unread: it may quote the string.
ConninfoOptions parse_conninfo(std::string_view conninfo) {
  if (conninfo.find('\0') != std::string_view::npos) return {nullptr, PQconninfoFree};
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(std::string(conninfo).c_str(), &error);
  if (error != nullptr) PQfreemem(error);
  return {options, PQconninfoFree};
}

std::optional<std::string> option_value(const ConninfoOptions& options, std::string_view keyword) {
  for (const PQconninfoOption* o = options.get(); o != nullptr && o->keyword != nullptr; ++o) {
    if (o->val != nullptr && keyword == o->keyword) return std::string(o->val);
  }
  return std::nullopt;
}

// The password libpq would use from `conninfo` (nullopt when none or unparseable).
std::optional<std::string> password_option(std::string_view conninfo) {
  const ConninfoOptions options = parse_conninfo(conninfo);
  if (!options) return std::nullopt;
  auto password = option_value(options, "password");
  if (password && password->empty()) return std::nullopt;
  return password;
}

constexpr std::string_view kRedacted = "REDACTED";
constexpr std::string_view kUnparseable = "REDACTED (a connection string libpq cannot parse)";

// A key=value value, quoted when libpq needs it to be.
std::string conninfo_value(std::string_view value) {
  const bool plain = !value.empty() && std::none_of(value.begin(), value.end(), [](char c) {
    return c == '\'' || c == '\\' || std::isspace(static_cast<unsigned char>(c)) != 0;
  });
  if (plain) return std::string(value);
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// `url` with the userinfo's password and every password query parameter
// replaced. Returned only when libpq, reading the result, finds the
// replacement where the password was and every other setting unchanged.
std::optional<std::string> redact_url_form(std::string_view url, const ConninfoOptions& original) {
  std::string out(url);
  const auto scheme_end = out.find("://") + 3;
  const auto query_at = out.find('?', scheme_end);
  const auto authority_end = std::min(out.find('/', scheme_end), query_at);
  const auto at = out.rfind('@', authority_end == std::string::npos ? out.size() : authority_end);
  if (at != std::string::npos && at >= scheme_end) {
    const auto colon = out.find(':', scheme_end);
    if (colon < at) out.replace(colon + 1, at - colon - 1, kRedacted);
  }
  if (const auto q = out.find('?', scheme_end); q != std::string::npos) {
    std::string rebuilt = out.substr(0, q + 1);
    std::string_view query = std::string_view(out).substr(q + 1);
    bool first = true;
    while (true) {
      const auto amp = query.find('&');
      const std::string_view param = query.substr(0, amp);
      if (!first) rebuilt += '&';
      first = false;
      const auto eq = param.find('=');
      if (percent_decode(param.substr(0, eq)) == "password") {
        rebuilt += std::string(param.substr(0, eq)) + "=" + std::string(kRedacted);
      } else {
        rebuilt += param;
      }
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
    out = std::move(rebuilt);
  }
  const ConninfoOptions check = parse_conninfo(out);
  if (!check || option_value(check, "password") != std::string(kRedacted)) return std::nullopt;
  for (const PQconninfoOption* o = original.get(); o->keyword != nullptr; ++o) {
    if (std::string_view(o->keyword) == "password") continue;
    if (option_value(original, o->keyword) != option_value(check, o->keyword)) return std::nullopt;
  }
  return out;
}

// Every setting libpq read from `options`, the password replaced, as key=value.
std::string redact_keyword_form(const ConninfoOptions& options) {
  std::string out;
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    if (!out.empty()) out += ' ';
    out += o->keyword;
    out += '=';
    out += std::string_view(o->keyword) == "password" ? std::string(kRedacted) : conninfo_value(o->val);
  }
  return out;
}

// The password of a URL as written there (user:password@, or a password=
// query parameter; scrub() also removes its percent-decoded form), or as
// libpq reads it from a key=value string; empty when there is none.
std::string password_of(std::string_view url) {
  if (is_url(url)) {
    const auto scheme_end = url.find("://") + 3;
    const auto authority_end = url.find_first_of("/?", scheme_end);
    const std::string_view authority = url.substr(scheme_end, authority_end - scheme_end);
    const auto at = authority.rfind('@');
    if (at != std::string_view::npos) {
      const std::string_view userinfo = authority.substr(0, at);
      const auto colon = userinfo.find(':');
      if (colon != std::string_view::npos) return std::string(userinfo.substr(colon + 1));
    }
    const auto q = url.find('?');
    if (q != std::string_view::npos) {
      std::string_view query = url.substr(q + 1);
      while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        if (param.rfind("password=", 0) == 0) return std::string(param.substr(9));
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
      }
    }
    return {};
  }
  return password_option(url).value_or("");
}

// Session over one transaction (or nontransaction) of a pooled connection.
class TxSession final : public Session {
 public:
  TxSession(const ConnectionPool::Impl& pool, pqxx::transaction_base& tx) : pool_(pool), tx_(tx) {}

  QueryResult exec(const std::string& statement, const std::vector<Param>& params) override {
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (params[i] && params[i]->find('\0') != std::string::npos) {
        throw InvalidInput("statement parameter $" + std::to_string(i + 1) + " contains a NUL byte");
      }
    }
    try {
      const pqxx::result r = params.empty()
                                 ? tx_.exec(statement)
                                 : tx_.exec_params(statement, pqxx::prepare::make_dynamic_params(params));
      QueryResult out;
      out.affected_rows = static_cast<std::size_t>(r.affected_rows());
      for (pqxx::row::size_type c = 0; c < r.columns(); ++c) out.columns.emplace_back(r.column_name(c));
      out.rows.reserve(static_cast<std::size_t>(r.size()));
      for (const auto& row : r) {
        std::vector<std::optional<std::string>> values;
        values.reserve(static_cast<std::size_t>(row.size()));
        for (const auto& f : row) {
          if (f.is_null()) {
            values.emplace_back(std::nullopt);
          } else {
            values.emplace_back(std::string(f.c_str(), f.size()));
          }
        }
        out.rows.push_back(std::move(values));
      }
      return out;
    } catch (const webhookdb::Error&) {
      throw;
    } catch (...) {
      pool_.translate("running a statement", std::current_exception());
    }
  }

  [[nodiscard]] std::string quote_name(std::string_view name) const override { return sql::ident(name); }

 private:
  const ConnectionPool::Impl& pool_;
  pqxx::transaction_base& tx_;
};

}  // namespace

std::string redact_connection_string(std::string_view conninfo) {
  const ConninfoOptions options = parse_conninfo(conninfo);
  if (!options) return std::string(kUnparseable);
  if (!option_value(options, "password")) return std::string(conninfo);
  if (is_url(conninfo)) {
    if (auto redacted = redact_url_form(conninfo, options)) return *std::move(redacted);
  }
  // key=value strings, and URLs whose password sits somewhere unusual: what
  // libpq read, in libpq's order (the original spacing and order are lost).
  return redact_keyword_form(options);
}

std::string redact_database_url(std::string_view url) {
  return redact_connection_string(url);
}

// --- Impl ---

ConnectionPool::Impl::Impl(Config cfg) : config(std::move(cfg)) {
  if (config.pool_size < 1) throw InvalidPrecondition("pg::Config::pool_size must be at least 1");
  password = password_of(config.url);
}

ConnectionPool::Impl::~Impl() = default;

ConnectionPool::Impl::Lease::~Lease() {
  if (conn_) pool_->release(std::move(conn_), broken_);
}

std::string ConnectionPool::Impl::scrub(std::string text) const {
  if (!password.empty()) {
    text = sql::replace_all(std::move(text), password, "REDACTED");
    const std::string decoded = percent_decode(password);
    if (decoded != password && !decoded.empty())
      text = sql::replace_all(std::move(text), decoded, "REDACTED");
  }
  return text;
}

std::unique_ptr<pqxx::connection> ConnectionPool::Impl::connect() const {
  try {
    auto conn = std::make_unique<pqxx::connection>(config.url);
    // Every setting in one statement (one round trip, one implicit
    // transaction) instead of seven SETs, once per connection.
    std::string setup =
        "SELECT set_config('TimeZone', 'UTC', false), set_config('client_encoding', 'UTF8', false), "
        "set_config('DateStyle', 'ISO, YMD', false), set_config('standard_conforming_strings', 'on', false), "
        "set_config('client_min_messages', 'warning', false), set_config('statement_timeout', '" +
        std::to_string(config.statement_timeout.count()) + "', false)";
    if (!config.application_name.empty()) {
      setup += ", set_config('application_name', " + sql::literal(config.application_name) + ", false)";
    }
    pqxx::nontransaction tx(*conn);
    tx.exec(setup);
    connections_opened.fetch_add(1, std::memory_order_relaxed);
    return conn;
  } catch (const webhookdb::Error&) {
    throw;
  } catch (...) {
    translate("connecting to PostgreSQL at " + redact_database_url(config.url), std::current_exception());
  }
}

namespace {
// An idle connection has nothing to read. A connection the server ended
// (pg_terminate_backend, a restart) has its FATAL message and EOF waiting:
// anything readable means it is not fit to hand out. (A rare asynchronous
// ParameterStatus also counts; reconnecting then costs little.)
bool looks_alive(const pqxx::connection& conn) noexcept {
  try {
    if (!conn.is_open()) return false;
    const int fd = conn.sock();
    if (fd < 0) return false;
    pollfd p{};
    p.fd = fd;
    p.events = POLLIN;
    const int ready = ::poll(&p, 1, 0);
    return ready == 0;
  } catch (...) {
    return false;
  }
}
}  // namespace

ConnectionPool::Impl::Lease ConnectionPool::Impl::acquire() {
  const auto deadline = std::chrono::steady_clock::now() + config.acquire_timeout;
  std::unique_lock lock(mutex);
  while (true) {
    while (!idle.empty()) {
      std::unique_ptr<pqxx::connection> conn = std::move(idle.back());
      idle.pop_back();
      lock.unlock();
      if (looks_alive(*conn)) return Lease(*this, std::move(conn));
      conn.reset();
      lock.lock();
      --open;
    }
    if (open < static_cast<std::size_t>(config.pool_size)) {
      ++open;
      lock.unlock();
      try {
        return Lease(*this, connect());
      } catch (...) {
        lock.lock();
        --open;
        available.notify_one();
        throw;
      }
    }
    if (available.wait_until(lock, deadline) == std::cv_status::timeout && idle.empty() &&
        open >= static_cast<std::size_t>(config.pool_size)) {
      throw StoreError("timed out after " + std::to_string(config.acquire_timeout.count()) +
                           " ms waiting for a free PostgreSQL connection (pool size " +
                           std::to_string(config.pool_size) + ")",
                       true);
    }
  }
}

void ConnectionPool::Impl::release(std::unique_ptr<pqxx::connection> conn, bool broken) noexcept {
  bool keep = false;
  try {
    keep = !broken && conn->is_open();
  } catch (...) {
    keep = false;
  }
  {
    std::lock_guard lock(mutex);
    if (keep) {
      idle.push_back(std::move(conn));
    } else {
      --open;
    }
  }
  available.notify_one();
  // A dropped connection closes here, outside the lock.
}

std::unique_ptr<pqxx::connection> ConnectionPool::Impl::acquire_lock_connection() {
  {
    std::unique_lock lock(mutex);
    while (!lock_idle.empty()) {
      std::unique_ptr<pqxx::connection> conn = std::move(lock_idle.back());
      lock_idle.pop_back();
      lock.unlock();
      if (looks_alive(*conn)) return conn;
      conn.reset();  // closed outside the lock
      lock.lock();
    }
  }
  return connect();
}

void ConnectionPool::Impl::release_lock_connection(std::unique_ptr<pqxx::connection> conn,
                                                   LockState state) noexcept {
  bool keep = false;
  try {
    keep = state == LockState::none_held && conn && conn->is_open();
  } catch (...) {
    keep = false;
  }
  if (!keep) return;  // closing the session ends whatever lock it may still hold
  std::lock_guard lock(mutex);
  if (lock_idle.size() < kMaxIdleLockConnections) lock_idle.push_back(std::move(conn));
}

ErrorClass ConnectionPool::Impl::classify(const std::exception_ptr& error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const DatabaseError& e) {
    return e.error_class();
  } catch (const pqxx::in_doubt_error&) {
    return {true, false};
  } catch (const pqxx::broken_connection&) {
    return {true, true};
  } catch (const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    if (is_connection_state(state)) return {true, true};
    if (state == "40001" || state == "40P01") return {false, true};
    return {false, false};
  } catch (...) {
    return {false, false};
  }
}

void ConnectionPool::Impl::translate(std::string_view what, const std::exception_ptr& error) const {
  const std::string where(what);
  try {
    std::rethrow_exception(error);
  } catch (const webhookdb::Error&) {
    throw;
  } catch (const pqxx::in_doubt_error&) {
    throw DatabaseError(
        scrub(where + ": the connection was lost during COMMIT; the transaction may or may not "
                      "have been committed"),
        true, {true, false});
  } catch (const pqxx::broken_connection& e) {
    throw DatabaseError(scrub(where + ": connection lost: " + first_line(e.what())), true, {true, true});
  } catch (const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    const std::string message = scrub(where + ": " + first_line(e.what()) +
                                      (state.empty() ? std::string() : " (SQLSTATE " + state + ")"));
    if (state.rfind("22", 0) == 0) throw InvalidInput(message);
    const ErrorClass cls = classify(error);
    // 57014: statement timeout or cancel; worth trying again later, not in a loop now.
    const bool retryable = cls.retry || cls.broken || state == "57014" || state == "55P03";
    throw DatabaseError(message, retryable, cls);
  } catch (const std::exception& e) {
    throw DatabaseError(scrub(where + ": " + first_line(e.what())), false, {false, false});
  } catch (...) {
    throw DatabaseError(where + ": unknown error", false, {false, false});
  }
}

// --- ConnectionPool ---

const std::optional<std::string>& QueryResult::at(std::size_t row, std::string_view column) const {
  const auto it = std::find(columns.begin(), columns.end(), column);
  if (it == columns.end())
    throw InvalidPrecondition("query result has no column '" + std::string(column) + "'");
  if (row >= rows.size()) throw InvalidPrecondition("query result has no row " + std::to_string(row));
  return rows[row][static_cast<std::size_t>(it - columns.begin())];
}

ConnectionPool::ConnectionPool(Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}
ConnectionPool::~ConnectionPool() = default;

const Config& ConnectionPool::config() const noexcept {
  return impl_->config;
}

void ConnectionPool::transaction(const std::function<void(Session&)>& fn, int retries) {
  impl_->in_transaction("transaction", retries, [&](pqxx::work& tx) {
    TxSession session(*impl_, tx);
    fn(session);
  });
}

void ConnectionPool::autocommit(const std::function<void(Session&)>& fn) {
  impl_->autocommit("autocommit session", [&](pqxx::nontransaction& tx) {
    TxSession session(*impl_, tx);
    fn(session);
  });
}

QueryResult ConnectionPool::exec(const std::string& statement, const std::vector<Param>& params) {
  return impl_->autocommit("statement", [&](pqxx::nontransaction& tx) {
    TxSession session(*impl_, tx);
    return session.exec(statement, params);
  });
}

std::size_t ConnectionPool::open_connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->open;
}

std::size_t ConnectionPool::idle_connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->idle.size();
}

std::vector<int> ConnectionPool::idle_backend_pids() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<int> out;
  for (const auto& conn : impl_->idle) out.push_back(conn->backendpid());
  return out;
}

std::vector<int> ConnectionPool::idle_lock_backend_pids() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<int> out;
  for (const auto& conn : impl_->lock_idle) out.push_back(conn->backendpid());
  return out;
}

std::size_t ConnectionPool::connections_opened() const noexcept {
  return impl_->connections_opened.load(std::memory_order_relaxed);
}

void ConnectionPool::clear() {
  std::deque<std::unique_ptr<pqxx::connection>> closing;
  std::deque<std::unique_ptr<pqxx::connection>> closing_locks;
  {
    std::lock_guard lock(impl_->mutex);
    closing.swap(impl_->idle);
    closing_locks.swap(impl_->lock_idle);
    impl_->open -= closing.size();
  }
  impl_->available.notify_all();
}

}  // namespace webhookdb::pg
