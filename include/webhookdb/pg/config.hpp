#pragma once
// Settings of the PostgreSQL adapter (webhookdb::pg).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "webhookdb/export.hpp"

namespace webhookdb::pg {

struct Config {
  // A libpq URL (postgresql://user:password@host:port/db?...) or key=value
  // string. It may hold a password: it is never logged or put in a message.
  std::string url;
  // Connections kept open at most. A caller waits when all are in use.
  int pool_size = 4;
  // How long a caller waits for a free connection before a (retryable) StoreError.
  std::chrono::milliseconds acquire_timeout{30'000};
  // statement_timeout of every pooled connection; zero means none.
  std::chrono::milliseconds statement_timeout{0};
  // Where webhookdb's own tables live (schema migrations, integrations,
  // backfill jobs, checkpoints). Created when missing.
  std::string schema = "public";
  // When set, every replication table lives here instead of in
  // TableSpec::schema (replicators build their specs in "public"; a host, or a
  // test, puts all replication tables in a schema of its own).
  std::optional<std::string> replica_schema;
  std::string application_name = "webhookdb";
  // A batch whose connection was lost, or that hit a deadlock or a
  // serialization failure, is run again on a fresh connection this many times
  // (never after its COMMIT was sent: an in-doubt commit is reported).
  int retries = 1;
  // WriteMethod::automatic uses staging COPY from this many rows on, else a
  // multi-row INSERT.
  std::size_t copy_threshold = 1000;
  // COPY-path batches (backfill batches) written into one table at once by
  // one PgReplicaStore; more wait their turn (up to acquire_timeout), holding
  // no connection. Concurrent COPYs into the same indexes cost PostgreSQL more
  // CPU per row: with 16 partitions of one backfill on 2 cores, PostgreSQL
  // spent about 30% more per row with 8 at a time than with 2. Raise it when
  // PostgreSQL has cores to spare; zero means no limit. Webhooks' single-row
  // writes never wait for a turn.
  int max_concurrent_copies = 2;
  // A batch that saves a backfill checkpoint commits with synchronous_commit
  // off: it does not wait for its WAL to reach disk. A server crash can lose
  // the last such batches (a fraction of a second of them), but each loses its
  // checkpoint with it, so the job resumes before them and nothing is skipped;
  // any later ordinary commit makes them durable. Writes without a checkpoint
  // (webhooks) always wait.
  bool async_checkpointed_commits = true;
  // ensure_all_columns fills a new column with one UPDATE per this many pks.
  std::int64_t fill_chunk_rows = 1'000'000;
};

// `conninfo` for logs and messages: a URL (postgresql:// or postgres://) with
// the password of its user:password@ and of any password= query parameter
// (percent-encoded or not) replaced by REDACTED; a key=value string as libpq
// read it (any whitespace, quoted values) with password=REDACTED. libpq's own
// parser (PQconninfoParse) decides what the password is; a string it cannot
// parse is replaced whole. Unchanged when there is no password.
[[nodiscard]] WEBHOOKDB_EXPORT std::string redact_connection_string(std::string_view conninfo);

// The same as redact_connection_string (the older name).
[[nodiscard]] WEBHOOKDB_EXPORT std::string redact_database_url(std::string_view url);

}  // namespace webhookdb::pg
