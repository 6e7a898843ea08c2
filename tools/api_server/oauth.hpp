#pragma once
// The API server as an OAuth2 provider (issue 21), so that token rotation is
// tested against a real HTTP server and not only a mock:
//   POST /oauth/token    grant_type=client_credentials, or refresh_token with
//                        refresh_token=<rt>; the client authenticates with
//                        Basic or client_id/client_secret in the body.
//                        {"access_token","token_type":"Bearer","expires_in",
//                        "refresh_token"}: a new refresh token every time, and
//                        each works ONCE: a second use is 400 invalid_grant, as
//                        providers that rotate answer.
//   POST /oauth/grant    a first refresh token (what a user's consent gives)
//   GET  /oauth/stats    counts: tokens issued, the uses of every refresh
//                        token (how many were used once, never, more than
//                        once), reuses refused, 401s sent
// With OAuth on, every data path needs "Authorization: Bearer <access token>"
// that has not expired; else 401 with WWW-Authenticate: Bearer
// error="invalid_token" (RFC 6750). Access tokens live `access_lifetime`
// (2 s in the tests) on the steady clock. Thread-safe; no Beast types.

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

struct OAuthOptions {
  bool enabled = false;
  std::chrono::milliseconds access_lifetime{2000};
  std::string client_id = "webhookdb-client";
  std::string client_secret = "webhookdb-client-secret";
};

struct OAuthReply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class OAuthIssuer {
 public:
  explicit OAuthIssuer(OAuthOptions options);
  // A reply for the /oauth/ paths, nullopt for any other path.
  [[nodiscard]] std::optional<OAuthReply> handle(std::string_view method, std::string_view path,
                                                 std::string_view body, std::string_view authorization);
  // nullopt when `authorization` holds a live access token, else the 401.
  [[nodiscard]] std::optional<OAuthReply> check_bearer(std::string_view authorization);

 private:
  OAuthReply token(std::string_view body, std::string_view authorization);
  std::string new_token(std::string_view prefix);
  [[nodiscard]] std::string stats_json() const;

  OAuthOptions options_;
  mutable std::mutex mutex_;
  std::uint64_t serial_ = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> access_;  // token -> expiry
  std::map<std::string, int> refresh_uses_;                              // refresh token -> uses
  std::uint64_t access_issued_ = 0;
  std::uint64_t reuses_refused_ = 0;
  std::uint64_t unauthorized_ = 0;
  std::uint64_t bad_client_ = 0;
};

}  // namespace webhookdb::tools
