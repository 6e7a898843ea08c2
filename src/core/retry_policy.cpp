#include "webhookdb/retry_policy.hpp"

namespace webhookdb {
namespace {

class WebhookdbRetryPolicy final : public RetryPolicy {
 public:
  explicit WebhookdbRetryPolicy(int attempts) : attempts_(attempts) {}
  [[nodiscard]] int max_attempts() const override { return attempts_; }
  [[nodiscard]] std::optional<std::chrono::milliseconds> wait_before_retry(const HttpBaseError& error,
                                                                           int attempt) const override {
    if (const auto* http = dynamic_cast<const HttpError*>(&error); http != nullptr && http->status() == 401) {
      return std::nullopt;
    }
    if (attempt >= attempts_) return std::nullopt;
    return std::chrono::seconds(attempt);
  }

 private:
  int attempts_;
};

}  // namespace

std::shared_ptr<const RetryPolicy> webhookdb_retry_policy(int attempts) {
  return std::make_shared<WebhookdbRetryPolicy>(attempts);
}

}  // namespace webhookdb
