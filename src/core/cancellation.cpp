#include "webhookdb/cancellation.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "webhookdb/errors.hpp"

namespace webhookdb {
namespace detail {

struct CancelState {
  std::atomic<bool> cancelled{false};
  std::mutex mutex;
  std::condition_variable cv;
  std::map<std::uint64_t, std::function<void()>> callbacks;
  std::uint64_t next_id = 1;

  void cancel() noexcept {
    std::map<std::uint64_t, std::function<void()>> to_run;
    {
      std::lock_guard lock(mutex);
      if (cancelled.exchange(true)) return;
      to_run.swap(callbacks);
    }
    cv.notify_all();
    for (auto& [id, cb] : to_run) {
      try {
        cb();
      } catch (...) {  // a callback must not stop the others
      }
    }
  }
};

}  // namespace detail

CancellationToken::CancellationToken() = default;
CancellationToken::CancellationToken(std::shared_ptr<detail::CancelState> state) : state_(std::move(state)) {}

bool CancellationToken::cancelled() const noexcept { return state_ && state_->cancelled.load(std::memory_order_acquire); }

void CancellationToken::throw_if_cancelled() const {
  if (cancelled()) throw Cancelled();
}

bool CancellationToken::wait_for(std::chrono::nanoseconds timeout) const {
  if (!state_) {
    std::this_thread::sleep_for(timeout);
    return false;
  }
  std::unique_lock lock(state_->mutex);
  return state_->cv.wait_for(lock, timeout, [&] { return state_->cancelled.load(); });
}

std::uint64_t CancellationToken::subscribe(std::function<void()> callback) const {
  if (!state_) return 0;
  {
    std::lock_guard lock(state_->mutex);
    if (!state_->cancelled.load()) {
      const auto id = state_->next_id++;
      state_->callbacks.emplace(id, std::move(callback));
      return id;
    }
  }
  callback();
  return 0;
}

void CancellationToken::unsubscribe(std::uint64_t id) const noexcept {
  if (!state_ || id == 0) return;
  std::lock_guard lock(state_->mutex);
  state_->callbacks.erase(id);
}

CancellationSource::CancellationSource() : state_(std::make_shared<detail::CancelState>()) {}

CancellationSource::CancellationSource(const CancellationToken& parent)
    : state_(std::make_shared<detail::CancelState>()), parent_(parent) {
  std::weak_ptr<detail::CancelState> weak = state_;
  parent_subscription_ = parent_.subscribe([weak] {
    if (auto s = weak.lock()) s->cancel();
  });
}

CancellationSource::~CancellationSource() { parent_.unsubscribe(parent_subscription_); }

CancellationToken CancellationSource::token() const { return CancellationToken(state_); }
void CancellationSource::cancel() noexcept { state_->cancel(); }
bool CancellationSource::cancelled() const noexcept { return state_->cancelled.load(); }

}  // namespace webhookdb
