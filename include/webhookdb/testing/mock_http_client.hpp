#pragma once
// An HttpClient that answers from a script and records every request.
//
//   auto http = std::make_shared<MockHttpClient>();
//   http->respond_json({{"items", {...}}, {"next", "p2"}});      // 1st request, any URL
//   http->on("token=p2").respond(503, "busy");                   // requests whose URL contains "token=p2"
//   http->on("/health").respond(200, "ok").repeat();             // every matching request
//   http->on_url("https://api.test/items?token=").respond(...);  // exactly this URL
//
// A request is answered by the most specific route that matches it and has a
// step left: a route for exactly its URL (on_url) first, then the route with
// the longest pattern contained in the URL (so on("token=") does not answer
// a request that on("token=p2") names), registration order between equals;
// else by the next step of the default script. Each step answers once unless repeat() was
// called after it. A status >= 400 with raise_for_status throws HttpError like
// a real client. A request with nothing scripted throws InvalidPrecondition
// naming the method and (redacted) URL. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/export.hpp"
#include "webhookdb/http_client.hpp"

namespace webhookdb::testing {

class WEBHOOKDB_EXPORT MockHttpClient final : public HttpClient {
 public:
  using Callback = std::function<HttpResponse(const HttpRequest& request, const CancellationToken& cancel)>;

  // The steps of one route (or of the default script).
  class Script {
   public:
    Script& respond(int status, std::string body = {}, Headers headers = {});
    Script& respond_json(const nlohmann::json& body, int status = 200, Headers headers = {});
    // Throws `error` as the request's outcome.
    Script& fail(std::exception_ptr error);
    // HttpTimeout / HttpConnectionError naming the request's method and URL.
    Script& timeout();
    Script& connection_error();
    // Computes the response (its status >= 400 still raises when asked to).
    Script& call(Callback callback);
    // Blocks until the request's token is cancelled, then throws Cancelled
    // (HttpTimeout after `limit`, so a broken test cannot hang forever).
    Script& hang_until_cancelled(std::chrono::milliseconds limit = std::chrono::seconds(30));
    // The last step answers every further request of this script.
    Script& repeat();
    // The last step answers `n` requests in total.
    Script& times(int n);

   private:
    friend class MockHttpClient;
    struct Step;
    enum class Match { contains, exact };
    Script(MockHttpClient& owner, std::string pattern, Match match = Match::contains);
    Script& add(Step step);
    [[nodiscard]] bool matches(const std::string& url) const;

    MockHttpClient* owner_;
    std::string pattern_;
    Match match_;
    std::deque<std::shared_ptr<Step>> steps_;
  };

  MockHttpClient();
  ~MockHttpClient() override;
  MockHttpClient(const MockHttpClient&) = delete;
  MockHttpClient& operator=(const MockHttpClient&) = delete;

  using HttpClient::send;
  HttpResponse send(const HttpRequest& request, const CancellationToken& cancel) override;

  // A route for URLs containing `url_part`.
  Script& on(const std::string& url_part);
  // A route for exactly `url` (it beats every on() route).
  Script& on_url(const std::string& url);
  // The default script (requests no route answered), in order.
  Script& script();
  // Shortcuts to script().
  Script& respond(int status, std::string body = {}, Headers headers = {});
  Script& respond_json(const nlohmann::json& body, int status = 200, Headers headers = {});
  Script& fail(std::exception_ptr error);
  Script& timeout();
  Script& connection_error();
  Script& call(Callback callback);
  Script& hang_until_cancelled(std::chrono::milliseconds limit = std::chrono::seconds(30));

  // Every request received, in arrival order.
  [[nodiscard]] std::vector<HttpRequest> requests() const;
  [[nodiscard]] std::vector<std::string> urls() const;
  [[nodiscard]] std::size_t request_count() const;
  // Blocks until at least `n` requests arrived; false on timeout.
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
  // Steps not used yet (in every script), to assert a script ran out.
  [[nodiscard]] std::size_t pending_steps() const;
  // Forgets scripts and recorded requests.
  void reset();

 private:
  std::shared_ptr<Script::Step> next_step(const std::string& url);

  mutable std::mutex mutex_;
  mutable std::condition_variable arrived_;
  std::vector<std::unique_ptr<Script>> routes_;
  std::unique_ptr<Script> default_;
  std::vector<HttpRequest> requests_;
};

}  // namespace webhookdb::testing
