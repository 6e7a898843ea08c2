#pragma once
// Runs backfillers on a fixed pool with early abort: the first error wins, no
// unstarted task starts, running ones are cancelled through their token, and
// the caller is woken as soon as the first error is recorded.

#include <functional>
#include <vector>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/export.hpp"

namespace webhookdb {

using CancellableTask = std::function<void(const CancellationToken& cancel)>;

// threads <= 1: in order on the calling thread. Otherwise on a Boost.Asio
// thread_pool of `threads` threads. Waits for every started task to return,
// then rethrows the first error unchanged. A fired `parent` cancels all tasks.
WEBHOOKDB_EXPORT void run_tasks(std::vector<CancellableTask> tasks, int threads,
                                const CancellationToken& parent = CancellationToken{});

}  // namespace webhookdb
