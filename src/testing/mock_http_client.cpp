#include "webhookdb/testing/mock_http_client.hpp"

#include <limits>
#include <optional>

#include "webhookdb/errors.hpp"

namespace webhookdb::testing {

struct MockHttpClient::Script::Step {
  enum class Kind { response, error, timeout, connection_error, callback, hang };
  Kind kind = Kind::response;
  HttpResponse response;
  std::exception_ptr error;
  Callback callback;
  std::chrono::milliseconds hang_limit{0};
  // Requests this step still answers; max() for repeat().
  int remaining = 1;
};

MockHttpClient::Script::Script(MockHttpClient& owner, std::string pattern, Match match)
    : owner_(&owner), pattern_(std::move(pattern)), match_(match) {}

bool MockHttpClient::Script::matches(const std::string& url) const {
  return match_ == Match::exact ? url == pattern_ : url.find(pattern_) != std::string::npos;
}

MockHttpClient::Script& MockHttpClient::Script::add(Step step) {
  std::lock_guard lock(owner_->mutex_);
  steps_.push_back(std::make_shared<Step>(std::move(step)));
  return *this;
}

MockHttpClient::Script& MockHttpClient::Script::respond(int status, std::string body, Headers headers) {
  Step step;
  step.response.status = status;
  step.response.body = std::move(body);
  step.response.headers = std::move(headers);
  return add(std::move(step));
}

MockHttpClient::Script& MockHttpClient::Script::respond_json(const nlohmann::json& body, int status,
                                                             Headers headers) {
  if (!find_header(headers, "Content-Type")) headers.emplace_back("Content-Type", "application/json");
  return respond(status, body.dump(), std::move(headers));
}

MockHttpClient::Script& MockHttpClient::Script::fail(std::exception_ptr error) {
  if (!error) throw InvalidPrecondition("MockHttpClient: fail() needs an exception");
  Step step;
  step.kind = Step::Kind::error;
  step.error = std::move(error);
  return add(std::move(step));
}

MockHttpClient::Script& MockHttpClient::Script::timeout() {
  Step step;
  step.kind = Step::Kind::timeout;
  return add(std::move(step));
}

MockHttpClient::Script& MockHttpClient::Script::connection_error() {
  Step step;
  step.kind = Step::Kind::connection_error;
  return add(std::move(step));
}

MockHttpClient::Script& MockHttpClient::Script::call(Callback callback) {
  if (!callback) throw InvalidPrecondition("MockHttpClient: call() needs a callback");
  Step step;
  step.kind = Step::Kind::callback;
  step.callback = std::move(callback);
  return add(std::move(step));
}

MockHttpClient::Script& MockHttpClient::Script::hang_until_cancelled(std::chrono::milliseconds limit) {
  Step step;
  step.kind = Step::Kind::hang;
  step.hang_limit = limit;
  return add(std::move(step));
}

MockHttpClient::Script& MockHttpClient::Script::repeat() {
  std::lock_guard lock(owner_->mutex_);
  if (steps_.empty()) throw InvalidPrecondition("MockHttpClient: repeat() needs a step before it");
  steps_.back()->remaining = std::numeric_limits<int>::max();
  return *this;
}

MockHttpClient::Script& MockHttpClient::Script::times(int n) {
  std::lock_guard lock(owner_->mutex_);
  if (steps_.empty()) throw InvalidPrecondition("MockHttpClient: times() needs a step before it");
  if (n < 1) throw InvalidPrecondition("MockHttpClient: times() needs n >= 1");
  steps_.back()->remaining = n;
  return *this;
}

MockHttpClient::MockHttpClient() : default_(new Script(*this, {})) {}
MockHttpClient::~MockHttpClient() = default;

MockHttpClient::Script& MockHttpClient::on(const std::string& url_part) {
  std::lock_guard lock(mutex_);
  routes_.push_back(std::unique_ptr<Script>(new Script(*this, url_part)));
  return *routes_.back();
}

MockHttpClient::Script& MockHttpClient::on_url(const std::string& url) {
  std::lock_guard lock(mutex_);
  routes_.push_back(std::unique_ptr<Script>(new Script(*this, url, Script::Match::exact)));
  return *routes_.back();
}

MockHttpClient::Script& MockHttpClient::script() { return *default_; }
MockHttpClient::Script& MockHttpClient::respond(int status, std::string body, Headers headers) {
  return default_->respond(status, std::move(body), std::move(headers));
}
MockHttpClient::Script& MockHttpClient::respond_json(const nlohmann::json& body, int status, Headers headers) {
  return default_->respond_json(body, status, std::move(headers));
}
MockHttpClient::Script& MockHttpClient::fail(std::exception_ptr error) { return default_->fail(std::move(error)); }
MockHttpClient::Script& MockHttpClient::timeout() { return default_->timeout(); }
MockHttpClient::Script& MockHttpClient::connection_error() { return default_->connection_error(); }
MockHttpClient::Script& MockHttpClient::call(Callback callback) { return default_->call(std::move(callback)); }
MockHttpClient::Script& MockHttpClient::hang_until_cancelled(std::chrono::milliseconds limit) {
  return default_->hang_until_cancelled(limit);
}

// Caller holds mutex_.
std::shared_ptr<MockHttpClient::Script::Step> MockHttpClient::next_step(const std::string& url) {
  auto take = [](Script& s) -> std::shared_ptr<Script::Step> {
    if (s.steps_.empty()) return nullptr;
    auto step = s.steps_.front();
    if (step->remaining != std::numeric_limits<int>::max() && --step->remaining <= 0) s.steps_.pop_front();
    return step;
  };
  // The most specific route with a step left: exact, then the longest
  // pattern; the first registered between equals.
  Script* best = nullptr;
  auto beats = [](const Script& a, const Script& b) {
    if (a.match_ != b.match_) return a.match_ == Script::Match::exact;
    return a.pattern_.size() > b.pattern_.size();
  };
  for (auto& route : routes_) {
    if (route->steps_.empty() || !route->matches(url)) continue;
    if (best == nullptr || beats(*route, *best)) best = route.get();
  }
  return take(best != nullptr ? *best : *default_);
}

HttpResponse MockHttpClient::send(const HttpRequest& request, const CancellationToken& cancel) {
  std::shared_ptr<Script::Step> step;
  {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
    step = next_step(request.url);
  }
  arrived_.notify_all();
  cancel.throw_if_cancelled();
  if (!step) {
    throw InvalidPrecondition("MockHttpClient: no response scripted for " + request.method + " " +
                              redact_url(request.url));
  }
  HttpResponse response;
  switch (step->kind) {
    case Script::Step::Kind::response:
      response = step->response;
      break;
    case Script::Step::Kind::error:
      std::rethrow_exception(step->error);
    case Script::Step::Kind::timeout:
      throw HttpTimeout("request timed out", request.method, redact_url(request.url));
    case Script::Step::Kind::connection_error:
      throw HttpConnectionError("connection refused", request.method, redact_url(request.url));
    case Script::Step::Kind::callback:
      response = step->callback(request, cancel);
      break;
    case Script::Step::Kind::hang:
      if (cancel.wait_for(step->hang_limit)) throw Cancelled("request cancelled: " + request.method + " " + redact_url(request.url));
      throw HttpTimeout("mock request hung for its whole limit without being cancelled", request.method,
                        redact_url(request.url));
  }
  if (response.url.empty()) response.url = request.url;
  if (request.raise_for_status) raise_for_status(request, response);
  return response;
}

std::vector<HttpRequest> MockHttpClient::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::vector<std::string> MockHttpClient::urls() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  out.reserve(requests_.size());
  for (const auto& r : requests_) out.push_back(r.url);
  return out;
}

std::size_t MockHttpClient::request_count() const {
  std::lock_guard lock(mutex_);
  return requests_.size();
}

bool MockHttpClient::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return arrived_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

std::size_t MockHttpClient::pending_steps() const {
  std::lock_guard lock(mutex_);
  std::size_t n = default_->steps_.size();
  for (const auto& r : routes_) n += r->steps_.size();
  return n;
}

void MockHttpClient::reset() {
  std::lock_guard lock(mutex_);
  routes_.clear();
  default_->steps_.clear();
  requests_.clear();
}

}  // namespace webhookdb::testing
