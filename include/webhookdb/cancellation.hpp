#pragma once
// Cooperative cancellation: a source fires once; tokens observe it. Waits on a
// token wake immediately when it fires, so aborts are prompt, not polled.

#include <chrono>
#include <functional>
#include <memory>

#include "webhookdb/export.hpp"

namespace webhookdb {

namespace detail {
struct CancelState;
}

class WEBHOOKDB_EXPORT CancellationToken {
 public:
  // A token that is never cancelled.
  CancellationToken();

  [[nodiscard]] bool cancelled() const noexcept;
  // Throws Cancelled if cancelled.
  void throw_if_cancelled() const;
  // Blocks up to `timeout`; returns true if cancelled (at once or during the wait).
  bool wait_for(std::chrono::nanoseconds timeout) const;

  // Runs `callback` once when cancelled (at once if already). The callback runs
  // on the cancelling thread and must not block. Returns an id for unsubscribe.
  std::uint64_t subscribe(std::function<void()> callback) const;
  void unsubscribe(std::uint64_t id) const noexcept;

 private:
  friend class CancellationSource;
  explicit CancellationToken(std::shared_ptr<detail::CancelState> state);
  std::shared_ptr<detail::CancelState> state_;
};

class WEBHOOKDB_EXPORT CancellationSource {
 public:
  CancellationSource();
  // A source that is also cancelled when `parent` is.
  explicit CancellationSource(const CancellationToken& parent);
  ~CancellationSource();
  CancellationSource(const CancellationSource&) = delete;
  CancellationSource& operator=(const CancellationSource&) = delete;

  [[nodiscard]] CancellationToken token() const;
  void cancel() noexcept;
  [[nodiscard]] bool cancelled() const noexcept;

 private:
  std::shared_ptr<detail::CancelState> state_;
  CancellationToken parent_;
  std::uint64_t parent_subscription_ = 0;
};

}  // namespace webhookdb
