#include "webhookdb/parallel_executor.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <condition_variable>
#include <exception>
#include <mutex>

namespace webhookdb {

void run_tasks(std::vector<CancellableTask> tasks, int threads, const CancellationToken& parent) {
  if (threads <= 1) {
    for (auto& task : tasks) {
      parent.throw_if_cancelled();
      task(parent);
    }
    return;
  }

  CancellationSource source(parent);
  const CancellationToken token = source.token();
  std::mutex mutex;
  std::condition_variable cv;
  std::exception_ptr first_error;
  std::size_t running = 0;
  std::size_t remaining = tasks.size();

  {
    boost::asio::thread_pool pool(static_cast<std::size_t>(threads));
    for (auto& task : tasks) {
      boost::asio::post(pool, [&, t = std::move(task)]() mutable {
        {
          std::lock_guard lock(mutex);
          if (first_error || token.cancelled()) {
            // Early abort: a task that has not started never starts.
            --remaining;
            cv.notify_all();
            return;
          }
          ++running;
        }
        std::exception_ptr error;
        try {
          t(token);
        } catch (...) {
          error = std::current_exception();
        }
        {
          std::lock_guard lock(mutex);
          --running;
          --remaining;
          if (error && !first_error) first_error = error;
        }
        // Wake the caller at once, and ask the others to stop.
        if (error) source.cancel();
        cv.notify_all();
      });
    }
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return remaining == 0; });
    lock.unlock();
    pool.join();
  }

  if (first_error) std::rethrow_exception(first_error);
  parent.throw_if_cancelled();
}

}  // namespace webhookdb
