#pragma once
// A local, fault-injecting HTTP API on Boost.Asio/Beast, for tests, the demo
// and the benchmark. It serves a deterministic Dataset in every pagination
// style the pagination helpers support, filters by updated-since, and injects
// faults by seed and rate. It listens on 127.0.0.1 (an ephemeral port by
// default) and runs on its own threads; start() and stop() from a test.
//
// Data paths in the shapes of real APIs (see shapes.hpp), for the examples
// named after them:
//   GET /stripe/v1/charges?limit=N&starting_after=<id>&created[gte]=<unix>   Stripe's charges list
//   GET /repos/<owner>/<repo>/issues?page=N&per_page=M&since=<ISO-8601>     GitHub's issues, Link headers
// Made-up data paths (all take updated_since=<unix seconds> and limit=N; the
// objects are Stripe-charge-like, with a made-up `updated` field):
//   GET /v1/charges?starting_after=<id>     {"object":"list","data":[...],"has_more":b}
//   GET /cursor?cursor=<c>                  {"data":[...],"next_cursor":"c..."|null}
//   GET /link?after=<pos>                   [...] with Link: <...>; rel="next"
//   GET /pages?page=N&per_page=M            {"data":[...],"page":N,"total_pages":T,"total":K}
//                                           and Link: rel="next", rel="last" (page_links.hpp)
//   GET /offset?offset=O                    {"data":[...],"offset":O,"total":K}
//   GET /nexturl?after=<pos>                {"data":[...],"next":"http://..."|null}
//   GET /broken/cursor, /broken/link, /broken/pages: pagination that loops
// Only /v1/charges lists each object exactly once; the others list the
// dataset's stale duplicates too (when configured).
// Helpers (never faulted):
//   GET /status/<code>    that status, a 2 KB body, a Set-Cookie and Retry-After on 429/503
//   GET /redirect/<n>     n redirects, then 200
//   GET /delay?ms=N       waits N ms, then 200
//   GET /echo             the request's method, target and headers as JSON
//   GET /headers          repeated and oddly-cased response headers
//   GET /admin/stats      the counters;  POST /admin/touch?every=K&updated=T;
//   POST /admin/faults?rate=R (spread over every kind) or rate_<kind>=R
//   POST /admin/delete?id=<id>, /admin/restore?id=<id> [&webhook=<url>]: see mutations.hpp
//   GET /quota/stats      served and refused by the quota (quota.hpp), when on
// A data request's fault comes from its X-Fault header, else from inject(),
// else from the rates (a draw per request from the seed).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api_server/dataset.hpp"
#include "api_server/oauth.hpp"
#include "api_server/quota.hpp"

namespace webhookdb::tools {

namespace detail {
struct ServerState;
}

enum class Fault : std::uint8_t {
  none,
  http500,
  http502,
  http503,     // with Retry-After
  http429,     // with Retry-After
  slow,        // headers and half the body, then a stall of slow_stall, then the rest
  drop,        // headers and half the body, then the connection is closed
  reset,       // the connection is reset before any response
  truncated,   // 200 whose (consistent) body is cut in half: invalid JSON
  empty,       // 200 with an empty body
  wrong_type,  // 200 text/html with an HTML error page
};
inline constexpr std::size_t kFaultKinds = 11;
[[nodiscard]] std::string_view to_string(Fault fault) noexcept;
[[nodiscard]] std::optional<Fault> parse_fault(std::string_view name) noexcept;

// Probability per data request of each fault.
struct FaultRates {
  std::array<double, kFaultKinds> rate{};  // indexed by Fault; rate[none] unused

  [[nodiscard]] double& operator[](Fault f) { return rate[static_cast<std::size_t>(f)]; }
  [[nodiscard]] double operator[](Fault f) const { return rate[static_cast<std::size_t>(f)]; }
  [[nodiscard]] double total() const;
  // `total` split evenly over every fault kind.
  [[nodiscard]] static FaultRates spread(double total);
  // `total` split evenly over the given kinds.
  [[nodiscard]] static FaultRates spread(double total, const std::vector<Fault>& kinds);
};

struct ApiServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: ephemeral
  int threads = 2;
  std::size_t objects = 1000;
  std::uint64_t seed = 1;
  std::size_t duplicates = 0;  // stale copies, see Dataset
  std::int64_t base_time = 1'600'000'000;
  FaultRates faults;
  // Added before every data response.
  std::chrono::milliseconds latency{0};
  // How long a `slow` fault stalls mid-body.
  std::chrono::milliseconds slow_stall{2000};
  // The Retry-After of 429 and 503 faults, in seconds; sent as an HTTP date
  // when retry_after_date (an X-Retry-After request header overrides both).
  int retry_after_seconds = 1;
  bool retry_after_date = false;
  // gzip JSON bodies when the client accepts it (also per request with an
  // X-Gzip: 1 header).
  bool gzip = false;
  std::size_t default_limit = 100;
  std::size_t max_limit = 1000;
  // OAuth2 provider mode (oauth.hpp): /oauth/ paths, bearer tokens on data paths.
  OAuthOptions oauth;
  // A request quota per API key on the data paths (quota.hpp); off while limit is 0.
  QuotaOptions quota;
};

struct ApiServerStats {
  std::uint64_t requests = 0;          // every request read
  std::uint64_t data_requests = 0;     // requests to data paths
  std::uint64_t connections = 0;       // accepted
  std::uint64_t open_connections = 0;  // now
  std::uint64_t pages = 0;             // data pages served whole (no fault)
  std::uint64_t items = 0;             // items in those pages
  std::uint64_t bytes = 0;             // response bytes written
  std::array<std::uint64_t, kFaultKinds> faults{};  // by Fault

  [[nodiscard]] std::uint64_t fault_count(Fault f) const { return faults[static_cast<std::size_t>(f)]; }
  [[nodiscard]] std::uint64_t faults_total() const;
  [[nodiscard]] nlohmann::json to_json() const;
};

class ApiServer {
 public:
  explicit ApiServer(ApiServerOptions options = {});
  // stop().
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds and starts the threads; port() is valid afterwards. Once only.
  void start();
  // Closes every connection and joins the threads. Idempotent.
  void stop();

  [[nodiscard]] std::uint16_t port() const;
  // "http://127.0.0.1:PORT"
  [[nodiscard]] std::string base_url() const;
  [[nodiscard]] std::string url(std::string_view path_and_query) const { return base_url() + std::string(path_and_query); }

  [[nodiscard]] ApiServerStats stats() const;
  void reset_stats();

  [[nodiscard]] const Dataset& dataset() const;
  // Sets `updated` of the objects (see Dataset::touch).
  void touch(const std::vector<std::size_t>& indexes, std::int64_t updated);

  // The next `count` data requests get `fault` (before any random one).
  void inject(Fault fault, std::size_t count = 1);
  void set_faults(const FaultRates& rates);
  void set_latency(std::chrono::milliseconds latency);
  // Data requests the quota served and refused (zeros when it is off).
  [[nodiscard]] QuotaCounts quota_counts() const;

 private:
  std::shared_ptr<detail::ServerState> impl_;
};

}  // namespace webhookdb::tools
