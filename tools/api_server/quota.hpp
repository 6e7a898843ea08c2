#pragma once
// The API server enforces a request quota per API key (issue 19), so that
// the quota governor is tested against a real server:
//   - per key: the Authorization header, else X-Api-Key, else "anonymous";
//   - a fixed window (`limit` requests per `window`, windows aligned on the
//     epoch, like GitHub's hourly reset) or a token bucket (capacity `limit`,
//     refilled at limit/window);
//   - what it advertises, by mode:
//       github      X-RateLimit-Limit/-Remaining/-Used/-Reset (epoch seconds)
//                   on every data response; refusal: 429, remaining 0
//       ietf        RateLimit-Policy: "default";q=L;w=W and
//                   RateLimit: "default";r=R;t=T; refusal: 429 + Retry-After
//       none        nothing; refusal: a bare 429
//       retry-after nothing; refusal: 429 + Retry-After
//       secondary   nothing; refusal: 403 + Retry-After (GitHub's secondary
//                   limit)
//   - GET /quota/stats: served and refused, per mode and in total.
// Only data paths are counted. Thread-safe; no Beast types.

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace webhookdb::tools {

enum class QuotaMode : std::uint8_t { github, ietf, none, retry_after, secondary };
enum class QuotaAlgorithm : std::uint8_t { fixed_window, token_bucket };

[[nodiscard]] std::optional<QuotaMode> parse_quota_mode(std::string_view name) noexcept;
[[nodiscard]] std::optional<QuotaAlgorithm> parse_quota_algorithm(std::string_view name) noexcept;

struct QuotaOptions {
  // Requests per window per key; 0 turns the quota off.
  double limit = 0;
  std::chrono::milliseconds window{1000};
  QuotaAlgorithm algorithm = QuotaAlgorithm::fixed_window;
  QuotaMode mode = QuotaMode::github;
};

struct QuotaVerdict {
  bool allowed = true;
  // For a refusal: the status and body; for both, headers to send.
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct QuotaCounts {
  std::uint64_t served = 0;
  std::uint64_t refused = 0;
};

class QuotaEnforcer {
 public:
  explicit QuotaEnforcer(QuotaOptions options);
  // Counts one data request of `api_key` and says whether it is served.
  [[nodiscard]] QuotaVerdict admit(std::string_view api_key);
  // GET /quota/stats; nullopt for any other path.
  [[nodiscard]] std::optional<std::string> handle(std::string_view path) const;
  [[nodiscard]] QuotaCounts totals() const;
  void reset_counts();

 private:
  struct Bucket {
    std::int64_t window_index = -1;  // fixed window
    double used = 0;                 // fixed window
    double tokens = -1;              // token bucket (-1: full, never used)
    std::chrono::system_clock::time_point updated{};
  };
  // Remaining after this request, time to reset, and whether it is allowed.
  struct Draw {
    bool allowed = false;
    double remaining = 0;
    std::chrono::milliseconds reset_in{0};
    std::chrono::system_clock::time_point reset_at{};
  };
  Draw draw(Bucket& bucket, std::chrono::system_clock::time_point now) const;
  [[nodiscard]] QuotaVerdict verdict(const Draw& d) const;

  QuotaOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, Bucket, std::less<>> keys_;
  QuotaCounts counts_;
};

}  // namespace webhookdb::tools
