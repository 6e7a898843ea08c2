#pragma once
// A durable WebhookInbox in PostgreSQL: one row per accepted webhook in
// <schema>.webhookdb_webhook_inbox (its own versioned migration, component
// "webhook_inbox"), written before the sender gets its 202 and deleted once a
// WebhookInboxProcessor has written it to the replica (at least once).
//
// push() inserts and NOTIFYs in one transaction. A processor takes due rows
// with FOR UPDATE SKIP LOCKED under a lease (a per-take token; database time,
// so clock skew between machines never steals a live lease); a processor that
// dies leaves its rows to be taken again when the lease expires. A failed
// write counts an attempt and waits a backoff (injected Clock time, like the
// job queue's run_at); after max_attempts the row is failed: kept, listed for
// operators, re-enqueueable. last_error never holds a secret.
//
// The body is stored as text: it must be UTF-8 (the handler has already
// checked that it is JSON). Headers are stored too (as a jsonb array of
// [name, value]); they include the signature, so the table is as sensitive as
// the replication tables themselves.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/clock.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/logger.hpp"
#include "webhookdb/pg/config.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/migrations.hpp"
#include "webhookdb/time.hpp"
#include "webhookdb/webhook.hpp"
#include "webhookdb/webhooks/webhook_inbox.hpp"

namespace webhookdb::pg {

// One webhook taken by a processor.
struct InboxDelivery {
  std::int64_t id = 0;
  std::string opaque_id;
  // method, path, headers and body as received (json left null).
  WebhookRequest request;
  // 1 for the first take; counts takes after a lost lease too.
  int attempt = 1;
  // Database time.
  Timestamp received_at{};
  // Who took it, and a token unique to this take (every later call matches it).
  std::string owner;
  std::string token;
};

// What the inbox knows about one row (operators; no headers: they hold signatures).
struct InboxEntry {
  std::int64_t id = 0;
  std::string opaque_id;
  std::string body;
  int attempts = 0;
  // Database time.
  Timestamp received_at{};
  // Injected-clock time before which the row is not taken; nullopt: due now.
  std::optional<Timestamp> available_at;
  // Database time; set while a processor holds the row.
  std::optional<Timestamp> leased_until;
  std::string lease_owner;
  // The error of the latest failed attempt (secrets removed).
  std::string last_error;
  // Set when the row gave up (database time).
  std::optional<Timestamp> failed_at;
};

enum class InboxFailure {
  retrying,    // taken again after its backoff
  failed,      // failed for good: listed by failed(), re-enqueued by requeue_failed()
  lease_lost,  // another processor holds the row now: nothing was changed
};

struct PgWebhookInboxOptions {
  // available_at's time. Default: the system clock.
  std::shared_ptr<Clock> clock;
  std::shared_ptr<Logger> logger;
  // How long a taken row stays leased: must cover writing a whole batch.
  std::chrono::milliseconds lease{60'000};
  // Attempts (takes) before a row is failed for good; >= 1.
  int max_attempts = 10;
  // Wait after failed attempt n: min(backoff * 2^(n-1), max_backoff).
  std::chrono::milliseconds backoff{1'000};
  std::chrono::milliseconds max_backoff{600'000};
  // Run the migration in the constructor.
  bool migrate = true;
  // last_error is cut to this many bytes.
  std::size_t max_error_bytes = 2000;
};

class WEBHOOKDB_EXPORT PgWebhookInbox final : public webhooks::WebhookInbox {
 public:
  // The table lives in config.schema.
  explicit PgWebhookInbox(pg::Config config, PgWebhookInboxOptions options = {});
  // Shares a pool (with a PgJobStore on the same database, say).
  explicit PgWebhookInbox(std::shared_ptr<pg::ConnectionPool> pool, PgWebhookInboxOptions options = {});
  // Stops the listener thread, if started.
  ~PgWebhookInbox() override;
  PgWebhookInbox(const PgWebhookInbox&) = delete;
  PgWebhookInbox& operator=(const PgWebhookInbox&) = delete;

  // Creates or upgrades the table (idempotent, safe from concurrent processes).
  void migrate();
  [[nodiscard]] static const std::vector<pg::Migration>& migrations();

  // INSERT + NOTIFY in one transaction; returns after COMMIT. InvalidPrecondition
  // for an empty opaque id, InvalidInput for a body holding a NUL byte,
  // StoreError when the database fails (then nothing was stored).
  void push(const std::string& opaque_id, const WebhookRequest& request) override;
  // Every entry in one transaction (multi-row INSERTs, one NOTIFY): all or none.
  void push_batch(const std::vector<Entry>& entries) override;

  // --- Processor side ---
  // Takes up to `max` due rows (oldest first): not failed, available_at
  // passed, and not leased (or the lease expired). Each take counts an
  // attempt; a row whose lease expired with its attempts used up is failed
  // instead. Empty when nothing is due.
  [[nodiscard]] std::vector<InboxDelivery> take(const std::string& owner, std::size_t max = 1);
  // Written: the row is deleted. False when the lease was lost (the row is
  // someone else's now, or already done).
  bool done(const InboxDelivery& delivery);
  // done() for many rows in one transaction; per delivery, whether it was deleted.
  std::vector<bool> done_batch(const std::vector<InboxDelivery>& deliveries);
  // The attempt failed: retried after a backoff while attempts remain (or
  // failed for good at once when `permanent`, for a payload no retry fixes).
  // `error` must hold no secret (it is cut, NUL bytes removed).
  InboxFailure fail(const InboxDelivery& delivery, const std::string& error, bool permanent = false);
  // Gives the row back untried (a processor stopping): due at once, the attempt not counted.
  bool release(const InboxDelivery& delivery);

  // --- Wake-ups ---
  // Bumped by every NOTIFY received (and every local push). Read it before take().
  [[nodiscard]] std::uint64_t wake_generation() const;
  // Blocks until the generation moves past `seen`, `max_wait` passes or
  // `cancel` fires. Starts the listener on first use. True when woken.
  bool wait_for_work(std::uint64_t seen, std::chrono::milliseconds max_wait, const CancellationToken& cancel);
  // Zero when a row is due now; else the time until the next one is due (a
  // backoff ends, a lease expires); nullopt when nothing is waiting.
  [[nodiscard]] std::optional<std::chrono::milliseconds> time_until_due();

  // --- Operators ---
  [[nodiscard]] std::optional<InboxEntry> entry(std::int64_t id);
  // In id order: every row, or the failed ones.
  [[nodiscard]] std::vector<InboxEntry> entries();
  [[nodiscard]] std::vector<InboxEntry> failed();
  // Rows not failed (waiting or being written).
  [[nodiscard]] std::size_t pending_count();
  // A failed row due again at once, attempts reset (last_error kept until it
  // succeeds). False when the row is not failed.
  bool requeue_failed(std::int64_t id);
  // Every failed row; returns how many.
  std::size_t requeue_all_failed();

  [[nodiscard]] const PgWebhookInboxOptions& options() const noexcept;
  [[nodiscard]] pg::ConnectionPool& pool() const noexcept;
  [[nodiscard]] const std::string& channel() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webhookdb::pg
