#pragma once
// A Backfiller whose pages come from a list or a callback, that records each
// fetch and each handled item, and can fail chosen fetches to exercise the
// page loop's retries. Items are buffered and "written" by
// flush_pending_inserts, so tests can see what was flushed and when.
//
//   ScriptedBackfiller b(ScriptedBackfiller::pages({{item1, item2}, {item3}}));
//   b.fail_page(1, 2, std::make_exception_ptr(HttpTimeout(...)));   // page 1 fails twice, then works

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/backfiller.hpp"
#include "webhookdb/export.hpp"

namespace webhookdb::testing {

struct ScriptedFetch {
  std::string token;
  std::optional<Timestamp> last_backfilled;
};

class WEBHOOKDB_EXPORT ScriptedBackfiller : public Backfiller {
 public:
  using FetchFn = std::function<BackfillPage(const std::string& token, const std::optional<Timestamp>& last_backfilled,
                                             const CancellationToken& cancel)>;

  // Page 0 answers the empty token; page i+1 answers page i's `next`. A token
  // that no page answers is an InvalidPrecondition naming it.
  explicit ScriptedBackfiller(std::vector<BackfillPage> pages);
  explicit ScriptedBackfiller(FetchFn fetch);
  ~ScriptedBackfiller() override;

  // Pages of the given items chained with tokens "<prefix>1", "<prefix>2", ...
  [[nodiscard]] static std::vector<BackfillPage> pages(const std::vector<std::vector<nlohmann::json>>& items,
                                                       const std::string& token_prefix = "page");

  // The fetch of `token` throws `error` on its first `times` attempts.
  ScriptedBackfiller& fail_token(const std::string& token, int times, std::exception_ptr error);
  // The same for the page at `page_index` of the list.
  ScriptedBackfiller& fail_page(std::size_t page_index, int times, std::exception_ptr error);
  // Runs before every fetch (after it is recorded): block, throw, count.
  ScriptedBackfiller& on_fetch(std::function<void(const std::string& token, const CancellationToken& cancel)> hook);
  // Runs for every handled item (after it is recorded): throw to fail the item.
  ScriptedBackfiller& on_item(std::function<void(const nlohmann::json& item)> hook);
  // Overrides the retry policy (default: the Backfiller's).
  ScriptedBackfiller& retry_with(std::shared_ptr<const RetryPolicy> policy);
  // false: items are not buffered, so there is never anything to flush.
  ScriptedBackfiller& buffer_items(bool buffer);
  // true: the page loop prefetches on a second thread (Backfiller::pipelined).
  ScriptedBackfiller& pipeline(bool on);

  [[nodiscard]] std::vector<ScriptedFetch> fetches() const;
  [[nodiscard]] std::size_t fetch_count() const;
  [[nodiscard]] std::vector<nlohmann::json> handled() const;
  // Items written by flushes, in order, and the size of each flush.
  [[nodiscard]] std::vector<nlohmann::json> flushed() const;
  [[nodiscard]] std::vector<std::size_t> flush_sizes() const;
  // The checkpoint passed to each flush.
  [[nodiscard]] std::vector<std::optional<Checkpoint>> flush_checkpoints() const;
  // Blocks until the first fetch started; false on timeout.
  bool wait_started(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

 protected:
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& last_backfilled,
                                   const CancellationToken& cancel) override;
  void handle_item(const nlohmann::json& item) override;
  void flush_pending_inserts(const std::optional<Checkpoint>& checkpoint) override;
  [[nodiscard]] bool has_pending_inserts() const override;
  [[nodiscard]] std::shared_ptr<const RetryPolicy> retry_policy() const override;
  [[nodiscard]] bool pipelined() const override;

 private:
  struct Failure {
    int remaining = 0;
    std::exception_ptr error;
  };

  std::vector<BackfillPage> pages_;
  FetchFn fetch_;
  mutable std::mutex mutex_;
  mutable std::condition_variable started_;
  std::map<std::string, Failure> failures_;
  std::function<void(const std::string&, const CancellationToken&)> on_fetch_;
  std::function<void(const nlohmann::json&)> on_item_;
  std::shared_ptr<const RetryPolicy> policy_;
  bool buffer_ = true;
  bool pipelined_ = false;
  std::vector<ScriptedFetch> fetches_;
  std::vector<nlohmann::json> handled_;
  std::vector<nlohmann::json> pending_;
  std::vector<nlohmann::json> flushed_;
  std::vector<std::size_t> flush_sizes_;
  std::vector<std::optional<Checkpoint>> flush_checkpoints_;
};

}  // namespace webhookdb::testing
