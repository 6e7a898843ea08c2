#pragma once
// The body of a worker process: parse the command line, connect the stores
// and the queue, serve the registry until SIGTERM or SIGINT, drain, exit 0.
// A host builds its own worker binary in a few lines, linking in its
// replicators through the registration hook:
//
//   int main(int argc, char** argv) {
//     webhookdb::jobs::WorkerHooks hooks;
//     hooks.register_replicators = [](webhookdb::Registry& r, const webhookdb::jobs::WorkerSettings&) {
//       r.add(MyReplicator::descriptor());
//     };
//     hooks.http_client = [](const webhookdb::jobs::WorkerSettings&) {
//       return webhookdb::curl::make_curl_client();
//     };
//     return webhookdb::jobs::worker_main(argc, argv, hooks);
//   }

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/logger.hpp"
#include "webhookdb/registry.hpp"

namespace webhookdb::jobs {

struct WorkerSettings {
  // --database-url, else the first line of --database-url-file, else the
  // environment variable WEBHOOKDB_DATABASE_URL (which, unlike an argument,
  // `ps` does not show): integrations, jobs, the queue (and, by default, the
  // replication tables).
  std::string database_url;
  // --replica-database-url (or WEBHOOKDB_REPLICA_DATABASE_URL): where
  // replication tables live, when elsewhere.
  std::string replica_database_url;
  // --schema: webhookdb's own tables (queue, jobs, checkpoints).
  std::string schema = "public";
  // --replica-schema: put every replication table in this schema.
  std::string replica_schema;
  int concurrency = 2;                          // --concurrency N
  std::chrono::milliseconds lease{30'000};      // --lease-seconds S (fractions allowed)
  std::chrono::milliseconds poll{5'000};        // --poll-seconds S
  std::chrono::milliseconds drain{0};           // --drain-seconds S: grace before running jobs are cancelled
  std::chrono::milliseconds time_slice{5'000};  // --time-slice-seconds S: WorkerOptions::time_slice (0: off)
  // --schedule-poll-seconds S: how often this worker fires the due schedules
  // (pg/scheduler.hpp; every worker may, each tick fires once). 0: never.
  std::chrono::milliseconds schedule_poll{1'000};
  std::string api_url;                          // --api-url URL: for replicators that need a default API
  std::string owner;                            // --owner NAME (default host:pid:random)
  LogLevel log_level = LogLevel::info;          // --log-level debug|info|warn|error
  bool json_logs = false;                       // --log-format json: one JSON object per line (JsonLinesLogger)
  bool help = false;                            // --help
  // --metrics-port P (0: any free port, logged): serve Prometheus metrics
  // (webhookdb/metrics.hpp: rows, pages, API requests and their latency,
  // quota waits and refusals by quota key, the queue's jobs by state and the
  // age of the oldest due job) at http://<--metrics-address>:P/metrics.
  std::optional<std::uint16_t> metrics_port;
  std::string metrics_address = "127.0.0.1";    // --metrics-address A
  // --reencrypt-secrets: seal every integration's secrets under the current
  // key (WEBHOOKDB_SECRET_KEY), say how many, and exit: key rotation.
  bool reencrypt_secrets = false;
  // --rate-limiter off|memory|pg: the quota governor of the replicators'
  // requests (rate_limiter.hpp): none, this process's own, or one budget per
  // quota key shared by every worker through PostgreSQL (PgRateLimiter).
  enum class RateLimiterKind { off, memory, pg };
  RateLimiterKind rate_limiter = RateLimiterKind::off;
  // --oauth2 on|off: the replicators' requests get the bearer token of their
  // integration's OAuth2 grant, when it has one in webhookdb_oauth_grants
  // (stored by the host: pg::PgOAuthTokenStore::authorize, which holds the
  // token endpoint, client id and secret, scopes and client authentication,
  // sealed like every secret). One CredentialAuth wraps the host's client;
  // one worker of the fleet refreshes at a time. Integrations without a grant
  // are sent as their replicator builds them. Default on.
  bool oauth2 = true;
  // --oauth2-lock-wait-seconds S: how long a refresh waits for another
  // worker's refresh of the same grant before a retryable error (default 30).
  std::chrono::milliseconds oauth2_lock_wait{30'000};
  // --oauth2-refresh-margin-seconds S: refresh this long before expiry, or a
  // quarter of the token's lifetime when shorter (default 60).
  std::chrono::milliseconds oauth2_refresh_margin{60'000};
};

// Throws InvalidPrecondition naming the bad option, never repeating a value
// or an unexpected argument (it may be a database URL with its password).
// Reads WEBHOOKDB_DATABASE_URL and the --database-url-file.
[[nodiscard]] WEBHOOKDB_EXPORT WorkerSettings parse_worker_args(const std::vector<std::string>& args);
[[nodiscard]] WEBHOOKDB_EXPORT std::string worker_usage(std::string_view program);

struct WEBHOOKDB_EXPORT WorkerHooks {
  // Adds the host's descriptors. Required.
  std::function<void(Registry&, const WorkerSettings&)> register_replicators;
  // The HTTP client replicators use. Required. With --oauth2 on (the
  // default) it is wrapped once in a CredentialAuth serving the integrations'
  // OAuth2 grants, and it reaches the token endpoints as it is.
  std::function<std::shared_ptr<HttpClient>(const WorkerSettings&)> http_client;
};

// Returns the process exit code: 0 after a clean drain, 2 for a bad command
// line, 1 when start-up fails (the database is unreachable...).
WEBHOOKDB_EXPORT int worker_main(int argc, char** argv, const WorkerHooks& hooks);

}  // namespace webhookdb::jobs
