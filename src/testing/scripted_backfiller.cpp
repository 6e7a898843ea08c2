#include "webhookdb/testing/scripted_backfiller.hpp"

#include "webhookdb/errors.hpp"

namespace webhookdb::testing {

ScriptedBackfiller::ScriptedBackfiller(std::vector<BackfillPage> pages) : pages_(std::move(pages)) {}
ScriptedBackfiller::ScriptedBackfiller(FetchFn fetch) : fetch_(std::move(fetch)) {
  if (!fetch_) throw InvalidPrecondition("ScriptedBackfiller needs a fetch callback");
}
ScriptedBackfiller::~ScriptedBackfiller() = default;

std::vector<BackfillPage> ScriptedBackfiller::pages(const std::vector<std::vector<nlohmann::json>>& items,
                                                    const std::string& token_prefix) {
  std::vector<BackfillPage> out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    BackfillPage page;
    page.items = nlohmann::json::array();
    for (const auto& item : items[i]) page.items.push_back(item);
    if (i + 1 < items.size()) page.next = token_prefix + std::to_string(i + 1);
    out.push_back(std::move(page));
  }
  return out;
}

ScriptedBackfiller& ScriptedBackfiller::fail_token(const std::string& token, int times, std::exception_ptr error) {
  if (!error) throw InvalidPrecondition("ScriptedBackfiller::fail_token needs an exception");
  std::lock_guard lock(mutex_);
  failures_[token] = Failure{times, std::move(error)};
  return *this;
}

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): which page, then how many times
ScriptedBackfiller& ScriptedBackfiller::fail_page(std::size_t page_index, int times, std::exception_ptr error) {
  if (page_index >= pages_.size()) {
    throw InvalidPrecondition("ScriptedBackfiller::fail_page: no page " + std::to_string(page_index));
  }
  const std::string token = page_index == 0 ? std::string() : pages_[page_index - 1].next;
  return fail_token(token, times, std::move(error));
}

ScriptedBackfiller& ScriptedBackfiller::on_fetch(
    std::function<void(const std::string&, const CancellationToken&)> hook) {
  std::lock_guard lock(mutex_);
  on_fetch_ = std::move(hook);
  return *this;
}

ScriptedBackfiller& ScriptedBackfiller::on_item(std::function<void(const nlohmann::json&)> hook) {
  std::lock_guard lock(mutex_);
  on_item_ = std::move(hook);
  return *this;
}

ScriptedBackfiller& ScriptedBackfiller::retry_with(std::shared_ptr<const RetryPolicy> policy) {
  std::lock_guard lock(mutex_);
  policy_ = std::move(policy);
  return *this;
}

ScriptedBackfiller& ScriptedBackfiller::buffer_items(bool buffer) {
  std::lock_guard lock(mutex_);
  buffer_ = buffer;
  return *this;
}

ScriptedBackfiller& ScriptedBackfiller::pipeline(bool on) {
  std::lock_guard lock(mutex_);
  pipelined_ = on;
  return *this;
}

bool ScriptedBackfiller::pipelined() const {
  std::lock_guard lock(mutex_);
  return pipelined_;
}

BackfillPage ScriptedBackfiller::fetch_backfill_page(const std::string& token,
                                                     const std::optional<Timestamp>& last_backfilled,
                                                     const CancellationToken& cancel) {
  std::function<void(const std::string&, const CancellationToken&)> hook;
  std::exception_ptr failure;
  {
    std::lock_guard lock(mutex_);
    fetches_.push_back(ScriptedFetch{token, last_backfilled});
    hook = on_fetch_;
    auto it = failures_.find(token);
    if (it != failures_.end() && it->second.remaining > 0) {
      --it->second.remaining;
      failure = it->second.error;
    }
  }
  started_.notify_all();
  if (hook) hook(token, cancel);
  if (failure) std::rethrow_exception(failure);
  if (fetch_) return fetch_(token, last_backfilled, cancel);
  for (std::size_t i = 0; i < pages_.size(); ++i) {
    const std::string& answers = i == 0 ? std::string() : pages_[i - 1].next;
    if (answers == token) {
      BackfillPage page = pages_[i];
      if (page.bytes == 0 && !page.items.is_null()) page.bytes = page.items.dump().size();
      return page;
    }
  }
  throw InvalidPrecondition("ScriptedBackfiller: no scripted page for token '" + token + "'");
}

void ScriptedBackfiller::handle_item(const nlohmann::json& item) {
  std::function<void(const nlohmann::json&)> hook;
  {
    std::lock_guard lock(mutex_);
    handled_.push_back(item);
    hook = on_item_;
  }
  if (hook) hook(item);
  std::lock_guard lock(mutex_);
  if (buffer_) pending_.push_back(item);
}

void ScriptedBackfiller::flush_pending_inserts(const std::optional<Checkpoint>& checkpoint) {
  std::lock_guard lock(mutex_);
  flush_sizes_.push_back(pending_.size());
  flush_checkpoints_.push_back(checkpoint);
  for (auto& item : pending_) flushed_.push_back(std::move(item));
  pending_.clear();
}

bool ScriptedBackfiller::has_pending_inserts() const {
  std::lock_guard lock(mutex_);
  return !pending_.empty();
}

std::shared_ptr<const RetryPolicy> ScriptedBackfiller::retry_policy() const {
  {
    std::lock_guard lock(mutex_);
    if (policy_) return policy_;
  }
  return Backfiller::retry_policy();
}

std::vector<ScriptedFetch> ScriptedBackfiller::fetches() const {
  std::lock_guard lock(mutex_);
  return fetches_;
}

std::size_t ScriptedBackfiller::fetch_count() const {
  std::lock_guard lock(mutex_);
  return fetches_.size();
}

std::vector<nlohmann::json> ScriptedBackfiller::handled() const {
  std::lock_guard lock(mutex_);
  return handled_;
}

std::vector<nlohmann::json> ScriptedBackfiller::flushed() const {
  std::lock_guard lock(mutex_);
  return flushed_;
}

std::vector<std::size_t> ScriptedBackfiller::flush_sizes() const {
  std::lock_guard lock(mutex_);
  return flush_sizes_;
}

std::vector<std::optional<Checkpoint>> ScriptedBackfiller::flush_checkpoints() const {
  std::lock_guard lock(mutex_);
  return flush_checkpoints_;
}

bool ScriptedBackfiller::wait_started(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return started_.wait_for(lock, timeout, [&] { return !fetches_.empty(); });
}

}  // namespace webhookdb::testing
