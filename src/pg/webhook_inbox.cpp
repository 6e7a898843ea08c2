#include "webhookdb/pg/webhook_inbox.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>

#include <nlohmann/json.hpp>

#include "pg/listener.hpp"
#include "pg/queue_text.hpp"
#include "pg/sql.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb::pg {
namespace {

// The helpers shared with the other queue (pg_text.hpp).
using namespace detail;  // NOLINT(google-build-using-namespace)

using pg::Param;
using pg::QueryResult;
using pg::Session;

constexpr const char* kInboxComponent = "webhook_inbox";

const std::string& inbox_columns() {
  static const std::string cols = "id, opaque_id, body, attempts, " + micros("received_at") + " AS received_at, " +
                                  micros("available_at") + " AS available_at, " + micros("leased_until") +
                                  " AS leased_until, lease_owner, last_error, " + micros("failed_at") +
                                  " AS failed_at";
  return cols;
}


InboxEntry inbox_entry_from(const QueryResult& r, std::size_t i) {
  InboxEntry e;
  e.id = to_i64(r.at(i, "id"));
  e.opaque_id = r.at(i, "opaque_id").value_or("");
  e.body = r.at(i, "body").value_or("");
  e.attempts = to_int(r.at(i, "attempts"));
  e.received_at = to_opt_ts(r.at(i, "received_at")).value_or(Timestamp{});
  e.available_at = to_opt_ts(r.at(i, "available_at"));
  e.leased_until = to_opt_ts(r.at(i, "leased_until"));
  e.lease_owner = r.at(i, "lease_owner").value_or("");
  e.last_error = r.at(i, "last_error").value_or("");
  e.failed_at = to_opt_ts(r.at(i, "failed_at"));
  return e;
}

std::vector<InboxEntry> inbox_entries_from(const QueryResult& r) {
  std::vector<InboxEntry> out;
  out.reserve(r.rows.size());
  for (std::size_t i = 0; i < r.rows.size(); ++i) out.push_back(inbox_entry_from(r, i));
  return out;
}

std::string inbox_channel_for(const std::string& schema) { return detail::notify_channel("webhookdb_webhook_inbox", schema); }

void require_token(const InboxDelivery& delivery, const char* what) {
  if (delivery.token.empty()) {
    throw InvalidPrecondition(std::string("PgWebhookInbox::") + what + " needs a delivery from take() (row " +
                              std::to_string(delivery.id) + " has no token)");
  }
}

// jsonb holds neither NUL nor invalid UTF-8: such header bytes become U+FFFD.
std::string headers_json(const Headers& headers) {
  auto clean = [](const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
      if (c == '\0') {
        out += "\xEF\xBF\xBD";
      } else {
        out += c;
      }
    }
    return out;
  };
  nlohmann::json array = nlohmann::json::array();
  for (const auto& [name, value] : headers) array.push_back({clean(name), clean(value)});
  return array.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Headers headers_from(const std::string& text) {
  Headers out;
  const auto array = nlohmann::json::parse(text, nullptr, false);
  if (!array.is_array()) return out;
  for (const auto& pair : array) {
    if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
      out.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
    }
  }
  return out;
}

}  // namespace

struct PgWebhookInbox::Impl {
  std::shared_ptr<pg::ConnectionPool> pool;
  PgWebhookInboxOptions options;
  std::string table;  // "schema".webhookdb_webhook_inbox
  std::string channel;

  mutable std::mutex wake_mutex;
  std::condition_variable wake_cv;
  std::atomic<std::uint64_t> generation{0};

  std::mutex listener_mutex;
  std::unique_ptr<Listener> listener;

  void bump() {
    {
      std::lock_guard lock(wake_mutex);
      generation.fetch_add(1, std::memory_order_acq_rel);
    }
    wake_cv.notify_all();
  }

  void log(LogLevel level, const std::string& message) const {
    if (options.logger) options.logger->log(level, message);
  }

  // One transaction, run again on a fresh connection when the connection is
  // lost before COMMIT (every statement here is guarded by the lease token).
  QueryResult tx(const std::string& sql, const std::vector<Param>& params) {
    QueryResult out;
    pool->transaction([&](Session& s) { out = s.exec(sql, params); }, 1);
    return out;
  }

  [[nodiscard]] std::chrono::milliseconds backoff_after(int attempt) const {
    auto wait = options.backoff;
    for (int i = 1; i < attempt && wait < options.max_backoff; ++i) wait *= 2;
    return std::min(wait, options.max_backoff);
  }
};

PgWebhookInbox::PgWebhookInbox(pg::Config config, PgWebhookInboxOptions options)
    : PgWebhookInbox(std::make_shared<pg::ConnectionPool>(std::move(config)), std::move(options)) {}

PgWebhookInbox::PgWebhookInbox(std::shared_ptr<pg::ConnectionPool> pool, PgWebhookInboxOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (!pool) throw InvalidPrecondition("PgWebhookInbox needs a connection pool");
  if (options.lease < std::chrono::milliseconds(100)) {
    throw InvalidPrecondition("PgWebhookInbox lease must be at least 100 ms, got " +
                              std::to_string(options.lease.count()) + " ms");
  }
  if (options.max_attempts < 1) {
    throw InvalidPrecondition("PgWebhookInbox max_attempts must be at least 1, got " +
                              std::to_string(options.max_attempts));
  }
  if (options.backoff.count() < 0 || options.max_backoff < options.backoff) {
    throw InvalidPrecondition("PgWebhookInbox needs 0 <= backoff <= max_backoff");
  }
  if (!options.clock) options.clock = system_clock();
  if (!options.logger) options.logger = std::make_shared<NullLogger>();
  impl_->pool = std::move(pool);
  impl_->options = std::move(options);
  const auto& schema = impl_->pool->config().schema;
  impl_->channel = inbox_channel_for(schema);
  impl_->table = pg::sql::qualified(schema, "webhookdb_webhook_inbox");
  if (impl_->options.migrate) migrate();
}

PgWebhookInbox::~PgWebhookInbox() {
  std::unique_ptr<Listener> listener;
  {
    std::lock_guard lock(impl_->listener_mutex);
    listener = std::move(impl_->listener);
  }
  listener.reset();  // joins its thread
}

const std::vector<pg::Migration>& PgWebhookInbox::migrations() {
  static const std::vector<pg::Migration> steps = {
      {1, "create webhookdb_webhook_inbox",
       R"SQL(
CREATE TABLE IF NOT EXISTS {schema}.webhookdb_webhook_inbox (
  id bigserial PRIMARY KEY,
  opaque_id text NOT NULL,
  method text NOT NULL DEFAULT 'POST',
  path text NOT NULL DEFAULT '',
  headers jsonb NOT NULL DEFAULT '[]',
  body text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  attempts integer NOT NULL DEFAULT 0,
  available_at timestamptz,
  leased_until timestamptz,
  lease_token text,
  lease_owner text,
  last_error text,
  failed_at timestamptz
);
CREATE INDEX IF NOT EXISTS webhookdb_webhook_inbox_due_idx
  ON {schema}.webhookdb_webhook_inbox (id) WHERE failed_at IS NULL;
CREATE INDEX IF NOT EXISTS webhookdb_webhook_inbox_failed_idx
  ON {schema}.webhookdb_webhook_inbox (id) WHERE failed_at IS NOT NULL;
)SQL"},
  };
  return steps;
}

void PgWebhookInbox::migrate() { pg::migrate(*impl_->pool, kInboxComponent, migrations()); }

const PgWebhookInboxOptions& PgWebhookInbox::options() const noexcept { return impl_->options; }
pg::ConnectionPool& PgWebhookInbox::pool() const noexcept { return *impl_->pool; }
const std::string& PgWebhookInbox::channel() const noexcept { return impl_->channel; }

void PgWebhookInbox::push(const std::string& opaque_id, const WebhookRequest& request) {
  if (opaque_id.empty()) throw InvalidPrecondition("PgWebhookInbox::push needs an integration opaque id");
  const std::string sql = "INSERT INTO " + impl_->table +
                          " (opaque_id, method, path, headers, body) VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id";
  const std::string headers = headers_json(request.headers);
  // A retry after a connection lost during COMMIT may store the webhook twice:
  // delivery is at least once anyway.
  impl_->pool->transaction(
      [&](Session& s) {
        auto r = s.exec(sql, {opaque_id, request.method, request.path, headers, request.body});
        // Delivered at COMMIT, so a woken processor sees the row.
        s.exec("SELECT pg_notify($1, $2)", {impl_->channel, r.at(0, "id").value_or("")});
      },
      1);
  impl_->bump();
}

void PgWebhookInbox::push_batch(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  for (const Entry& entry : entries) {
    if (entry.opaque_id.empty()) throw InvalidPrecondition("PgWebhookInbox::push_batch needs an integration opaque id");
    if (entry.request == nullptr) throw InvalidPrecondition("PgWebhookInbox::push_batch got an entry without a request");
  }
  // One multi-row INSERT per chunk (PostgreSQL takes at most 65535 parameters),
  // all chunks and one NOTIFY in a single transaction: one WAL flush.
  constexpr std::size_t kChunk = 2000;
  std::vector<std::string> statements;
  std::vector<std::vector<pg::Param>> params;
  for (std::size_t start = 0; start < entries.size(); start += kChunk) {
    const std::size_t end = std::min(entries.size(), start + kChunk);
    std::string sql = "INSERT INTO " + impl_->table + " (opaque_id, method, path, headers, body) VALUES ";
    std::vector<pg::Param> p;
    p.reserve((end - start) * 5);
    for (std::size_t i = start; i < end; ++i) {
      const std::size_t n = p.size();
      if (i > start) sql += ", ";
      sql += "($" + std::to_string(n + 1) + ", $" + std::to_string(n + 2) + ", $" + std::to_string(n + 3) + ", $" +
             std::to_string(n + 4) + "::jsonb, $" + std::to_string(n + 5) + ")";
      const WebhookRequest& request = *entries[i].request;
      p.emplace_back(entries[i].opaque_id);
      p.emplace_back(request.method);
      p.emplace_back(request.path);
      p.emplace_back(headers_json(request.headers));
      p.emplace_back(request.body);
    }
    statements.push_back(std::move(sql));
    params.push_back(std::move(p));
  }
  impl_->pool->transaction(
      [&](Session& s) {
        for (std::size_t i = 0; i < statements.size(); ++i) s.exec(statements[i], params[i]);
        s.exec("SELECT pg_notify($1, $2)", {impl_->channel, std::to_string(entries.size())});
      },
      1);
  impl_->bump();
}

std::vector<InboxDelivery> PgWebhookInbox::take(const std::string& owner, std::size_t max) {
  if (owner.empty()) throw InvalidPrecondition("PgWebhookInbox::take needs an owner");
  if (max == 0) return {};
  const std::string& t = impl_->table;
  const std::string now = format_timestamp(impl_->options.clock->now());
  const std::string lease = std::to_string(impl_->options.lease.count());
  const std::string token = new_lease_token();
  const std::string max_attempts = std::to_string(impl_->options.max_attempts);
  std::vector<InboxDelivery> out;
  impl_->pool->transaction(
      [&](Session& s) {
        out.clear();
        // A row whose processor died on every attempt must not kill every processor in turn.
        auto reaped = s.exec(
            "UPDATE " + t + " SET failed_at = clock_timestamp(), leased_until = NULL, lease_token = NULL, "
            "  last_error = 'lease expired on attempt ' || attempts || ' of ' || $1::int || "
            "    ': its processor was lost (last: ' || coalesce(lease_owner, '?') || ')', lease_owner = NULL "
            "WHERE failed_at IS NULL AND leased_until < clock_timestamp() AND attempts >= $1::int RETURNING id",
            {max_attempts});
        for (const auto& row : reaped.rows) {
          impl_->log(LogLevel::error, "webhook inbox row " + row[0].value_or("?") + " failed: its lease expired " +
                                          max_attempts + " times");
        }
        auto r = s.exec(
            "WITH candidate AS ("
            "  SELECT id FROM " + t +
            "  WHERE failed_at IS NULL AND (available_at IS NULL OR available_at <= $2::timestamptz)"
            "    AND (leased_until IS NULL OR leased_until < clock_timestamp())"
            "  ORDER BY id LIMIT $5::bigint FOR UPDATE SKIP LOCKED) "
            "UPDATE " + t + " AS w SET attempts = w.attempts + 1, lease_owner = $1, lease_token = $4, "
            "  leased_until = clock_timestamp() + $3::bigint * interval '1 millisecond' "
            "FROM candidate WHERE w.id = candidate.id "
            "RETURNING w.id, w.opaque_id, w.method, w.path, w.headers::text AS headers, w.body, w.attempts, " +
                micros("w.received_at") + " AS received_at",
            {owner, now, lease, token, std::to_string(max)});
        out.reserve(r.rows.size());
        for (std::size_t i = 0; i < r.rows.size(); ++i) {
          InboxDelivery d;
          d.id = to_i64(r.at(i, "id"));
          d.opaque_id = r.at(i, "opaque_id").value_or("");
          d.request.method = r.at(i, "method").value_or("POST");
          d.request.path = r.at(i, "path").value_or("");
          d.request.headers = headers_from(r.at(i, "headers").value_or("[]"));
          d.request.body = r.at(i, "body").value_or("");
          d.attempt = to_int(r.at(i, "attempts"));
          d.received_at = to_opt_ts(r.at(i, "received_at")).value_or(Timestamp{});
          d.owner = owner;
          d.token = token;
          out.push_back(std::move(d));
        }
      },
      1);
  std::sort(out.begin(), out.end(), [](const InboxDelivery& a, const InboxDelivery& b) { return a.id < b.id; });
  return out;
}

bool PgWebhookInbox::done(const InboxDelivery& delivery) {
  require_token(delivery, "done");
  auto r = impl_->tx("DELETE FROM " + impl_->table + " WHERE id = $1::bigint AND lease_token = $2 RETURNING id",
                     {std::to_string(delivery.id), delivery.token});
  return !r.empty();
}

std::vector<bool> PgWebhookInbox::done_batch(const std::vector<InboxDelivery>& deliveries) {
  std::vector<bool> out(deliveries.size(), false);
  if (deliveries.empty()) return out;
  // Array literals: ids are numbers, tokens quoted (backslash and quote escaped).
  std::string ids = "{";
  std::string tokens = "{";
  for (std::size_t i = 0; i < deliveries.size(); ++i) {
    require_token(deliveries[i], "done_batch");
    if (i > 0) {
      ids += ',';
      tokens += ',';
    }
    ids += std::to_string(deliveries[i].id);
    tokens += '"';
    for (char c : deliveries[i].token) {
      if (c == '"' || c == '\\') tokens += '\\';
      tokens += c;
    }
    tokens += '"';
  }
  ids += '}';
  tokens += '}';
  auto r = impl_->tx("DELETE FROM " + impl_->table +
                         " AS w USING unnest($1::bigint[], $2::text[]) AS d(id, token)"
                         " WHERE w.id = d.id AND w.lease_token = d.token RETURNING w.id",
                     {ids, tokens});
  std::vector<std::int64_t> deleted;
  deleted.reserve(r.rows.size());
  for (const auto& row : r.rows) deleted.push_back(std::stoll(row[0].value_or("0")));
  std::sort(deleted.begin(), deleted.end());
  for (std::size_t i = 0; i < deliveries.size(); ++i) {
    out[i] = std::binary_search(deleted.begin(), deleted.end(), deliveries[i].id);
  }
  return out;
}

InboxFailure PgWebhookInbox::fail(const InboxDelivery& delivery, const std::string& error, bool permanent) {
  require_token(delivery, "fail");
  const Timestamp retry_at =
      impl_->options.clock->now() +
      std::chrono::duration_cast<std::chrono::microseconds>(impl_->backoff_after(delivery.attempt));
  // Every right-hand side sees the row as it was, so `give_up` is the same in each.
  const std::string give_up = "($4::boolean OR attempts >= $5::int)";
  auto r = impl_->tx("UPDATE " + impl_->table + " SET " +
                         "failed_at = CASE WHEN " + give_up + " THEN clock_timestamp() ELSE NULL END, " +
                         "available_at = CASE WHEN " + give_up + " THEN available_at ELSE $3::timestamptz END, " +
                         "last_error = $6, leased_until = NULL, lease_token = NULL, lease_owner = NULL "
                         "WHERE id = $1::bigint AND lease_token = $2 RETURNING failed_at IS NOT NULL AS failed",
                     {std::to_string(delivery.id), delivery.token, format_timestamp(retry_at),
                      permanent ? "true" : "false", std::to_string(impl_->options.max_attempts),
                      clean_error(error, impl_->options.max_error_bytes)});
  if (r.empty()) return InboxFailure::lease_lost;
  return r.at(0, "failed").value_or("") == "t" ? InboxFailure::failed : InboxFailure::retrying;
}

bool PgWebhookInbox::release(const InboxDelivery& delivery) {
  require_token(delivery, "release");
  bool released = false;
  impl_->pool->transaction(
      [&](Session& s) {
        released = !s.exec("UPDATE " + impl_->table +
                               " SET attempts = greatest(attempts - 1, 0), leased_until = NULL, lease_token = NULL, "
                               "lease_owner = NULL WHERE id = $1::bigint AND lease_token = $2 RETURNING id",
                           {std::to_string(delivery.id), delivery.token})
                        .empty();
        if (released) s.exec("SELECT pg_notify($1, $2)", {impl_->channel, std::to_string(delivery.id)});
      },
      1);
  return released;
}

// --- wake-ups ---

std::uint64_t PgWebhookInbox::wake_generation() const { return impl_->generation.load(std::memory_order_acquire); }

bool PgWebhookInbox::wait_for_work(std::uint64_t seen, std::chrono::milliseconds max_wait,
                                   const CancellationToken& cancel) {
  Impl* impl = impl_.get();
  {
    std::lock_guard lock(impl->listener_mutex);
    if (!impl->listener) {
      impl->listener = std::make_unique<Listener>(impl->pool->config().url, impl->channel, impl->options.logger,
                                                  [impl] { impl->bump(); });
    }
  }
  const auto subscription = cancel.subscribe([impl] {
    std::lock_guard lock(impl->wake_mutex);
    impl->wake_cv.notify_all();
  });
  bool woken = false;
  {
    std::unique_lock lock(impl->wake_mutex);
    impl->wake_cv.wait_for(lock, max_wait, [&] {
      return impl->generation.load(std::memory_order_acquire) != seen || cancel.cancelled();
    });
    woken = impl->generation.load(std::memory_order_acquire) != seen;
  }
  cancel.unsubscribe(subscription);
  return woken;
}

std::optional<std::chrono::milliseconds> PgWebhookInbox::time_until_due() {
  const std::string& t = impl_->table;
  auto r = impl_->tx(
      "SELECT (SELECT count(*) FROM " + t +
          " WHERE failed_at IS NULL AND available_at IS NULL AND leased_until IS NULL) AS now_due, "
          "(SELECT (extract(epoch from min(available_at) - $1::timestamptz) * 1000)::bigint FROM " + t +
          " WHERE failed_at IS NULL AND available_at IS NOT NULL AND leased_until IS NULL) AS available_in, "
          "(SELECT (extract(epoch from min(leased_until) - clock_timestamp()) * 1000)::bigint FROM " + t +
          " WHERE failed_at IS NULL AND leased_until IS NOT NULL) AS lease_in",
      {format_timestamp(impl_->options.clock->now())});
  if (to_i64(r.at(0, "now_due")) > 0) return std::chrono::milliseconds(0);
  std::optional<std::chrono::milliseconds> best;
  for (const char* col : {"available_in", "lease_in"}) {
    if (const auto& v = r.at(0, col)) {
      const auto ms = std::chrono::milliseconds(std::max<std::int64_t>(0, std::stoll(*v)));
      if (!best || ms < *best) best = ms;
    }
  }
  return best;
}

// --- operators ---

std::optional<InboxEntry> PgWebhookInbox::entry(std::int64_t id) {
  auto r = impl_->pool->exec("SELECT " + inbox_columns() + " FROM " + impl_->table + " WHERE id = $1::bigint",
                             {std::to_string(id)});
  if (r.empty()) return std::nullopt;
  return inbox_entry_from(r, 0);
}

std::vector<InboxEntry> PgWebhookInbox::entries() {
  return inbox_entries_from(impl_->pool->exec("SELECT " + inbox_columns() + " FROM " + impl_->table + " ORDER BY id"));
}

std::vector<InboxEntry> PgWebhookInbox::failed() {
  return inbox_entries_from(impl_->pool->exec("SELECT " + inbox_columns() + " FROM " + impl_->table +
                                        " WHERE failed_at IS NOT NULL ORDER BY id"));
}

std::size_t PgWebhookInbox::pending_count() {
  auto r = impl_->pool->exec("SELECT count(*) FROM " + impl_->table + " WHERE failed_at IS NULL");
  return static_cast<std::size_t>(to_i64(r.rows.at(0).at(0)));
}

bool PgWebhookInbox::requeue_failed(std::int64_t id) {
  bool queued = false;
  impl_->pool->transaction(
      [&](Session& s) {
        queued = !s.exec("UPDATE " + impl_->table +
                             " SET failed_at = NULL, available_at = NULL, attempts = 0 "
                             "WHERE id = $1::bigint AND failed_at IS NOT NULL RETURNING id",
                         {std::to_string(id)})
                      .empty();
        if (queued) s.exec("SELECT pg_notify($1, $2)", {impl_->channel, std::to_string(id)});
      },
      1);
  if (queued) {
    impl_->log(LogLevel::info, "failed webhook inbox row " + std::to_string(id) + " queued again by an operator");
    impl_->bump();
  }
  return queued;
}

std::size_t PgWebhookInbox::requeue_all_failed() {
  std::size_t n = 0;
  impl_->pool->transaction(
      [&](Session& s) {
        n = s.exec("UPDATE " + impl_->table +
                   " SET failed_at = NULL, available_at = NULL, attempts = 0 WHERE failed_at IS NOT NULL")
                .affected_rows;
        if (n > 0) s.exec("SELECT pg_notify($1, $2)", {impl_->channel, "requeue"});
      },
      1);
  if (n > 0) {
    impl_->log(LogLevel::info, std::to_string(n) + " failed webhook inbox rows queued again by an operator");
    impl_->bump();
  }
  return n;
}

}  // namespace webhookdb::pg
