#pragma once
// Walks the pages of an API with a pagination token. backfill() owns the loop,
// retries, cancellation, checkpoints and progress; subclasses fetch and handle.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "webhookdb/backfill_options.hpp"
#include "webhookdb/backfill_window.hpp"
#include "webhookdb/cancellation.hpp"
#include "webhookdb/checkpoint.hpp"
#include "webhookdb/clock.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/logger.hpp"
#include "webhookdb/replica_store.hpp"
#include "webhookdb/retry_policy.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {

// The pages known to follow a page: set by a paginator that knows how many
// pages the walk has (a Link header's rel="last", a total_pages or total
// field) or by a replicator that knows it otherwise (a hint), so the page loop
// may fetch up to BackfillRuntime::concurrent_pages of them at once. They are
// still handled, written and checkpointed in page order.
struct PagesAhead {
  // Pages after the one that names them; the first of them is its `next`.
  std::uint64_t count = 0;
  // The token of the i-th of them: token(0) is `next`, token(count - 1) the
  // last known page. Called from several threads.
  std::function<std::string(std::uint64_t)> token;
};

// True on a thread that is fetching, for the page loop, a page it took from
// a PagesAhead range rather than from the page before it: the page loop
// checks those pages' order itself, so a paginator's repeat detection
// (pagination::RepeatGuard) leaves them alone.
[[nodiscard]] WEBHOOKDB_EXPORT bool fetching_page_ahead() noexcept;

struct BackfillPage {
  BackfillPage() = default;
  // BackfillPage{items, next, bytes}, as before `url` and `items_path` came.
  BackfillPage(nlohmann::json page_items, std::string next_token = {}, std::size_t body_bytes = 0)
      : items(std::move(page_items)), next(std::move(next_token)), bytes(body_bytes) {}

  // A JSON array of items. null means the response lacked the items (an
  // error); an empty array is a legitimate empty page.
  nlohmann::json items;
  // Token for the next page; empty when this was the last page.
  std::string next;
  // Size of the response body, for progress.
  std::size_t bytes = 0;
  // Where a page without items came from, for the error: the request's URL
  // and the path the items were looked for at ("data", "results.items").
  // The paginators fill them; empty when unknown.
  std::string url;
  std::string items_path;
  // The pages known to follow this one (nullptr: only `next` is known). The
  // page loop uses it when `next` is token(0).
  std::shared_ptr<const PagesAhead> ahead;
};

// What the running job gives a backfiller. Defaults make a standalone
// backfiller work (real sleeper, never cancelled, no checkpoints).
struct BackfillRuntime {
  CancellationToken cancel;
  std::shared_ptr<Sleeper> sleeper;
  std::shared_ptr<Logger> logger;
  std::shared_ptr<ProgressSink> progress;
  std::int64_t job_id = 0;
  std::string integration;
  // Resume here instead of at the first page.
  std::string start_token;
  // True: after each written page the next token is saved as a checkpoint.
  bool checkpoints = false;
  // The job's window (backfill_window.hpp): only that range is fetched.
  std::optional<BackfillWindow> window;
  // every_row while the job sweeps afterwards: rows the update rule leaves
  // alone are marked seen too (replica_store.hpp).
  SeenMarks seen = SeenMarks::written;
  // Pages fetched at once in a pipelined run while the pages ahead are known
  // (BackfillPage::ahead); 1 fetches one at a time. Replicator::backfill sets
  // it from BackfillOptions::concurrent_pages.
  std::size_t concurrent_pages = 1;
};

class WEBHOOKDB_EXPORT Backfiller {
 public:
  Backfiller();
  virtual ~Backfiller();
  Backfiller(const Backfiller&) = delete;
  Backfiller& operator=(const Backfiller&) = delete;

  // The page loop: fetch (with retry) from the start token, hand each item to
  // handle_item, follow `next` until empty, then flush pending inserts.
  void backfill(const std::optional<Timestamp>& last_backfilled);

  void set_runtime(BackfillRuntime runtime);
  // Throws InvalidPrecondition for a zero bound. Set before backfill().
  void set_limits(BackfillLimits limits);
  [[nodiscard]] const BackfillLimits& limits() const noexcept { return limits_; }
  [[nodiscard]] const BackfillRuntime& runtime() const noexcept { return runtime_; }

  // Stable identity across runs of the same job, used for checkpoints. The
  // default, set by Replicator::backfill, is the backfiller's position in the
  // list returned by Replicator::backfillers(criteria), so that list must be
  // deterministic for given criteria. Override with a key that names the
  // partition ("created:2024-01") when the list is not.
  [[nodiscard]] const std::string& checkpoint_key() const noexcept { return checkpoint_key_; }
  void set_checkpoint_key(std::string key) { checkpoint_key_ = std::move(key); }

  [[nodiscard]] BackfillProgress progress() const;

 protected:
  // The same signature as Replicator::fetch_backfill_page; `cancel` is
  // cancellation() of the running loop.
  virtual BackfillPage fetch_backfill_page(const std::string& token,
                                           const std::optional<Timestamp>& last_backfilled,
                                           const CancellationToken& cancel) = 0;
  virtual void handle_item(const nlohmann::json& item) = 0;
  // The page loop hands items over by value so a backfiller can move them
  // into rows instead of copying; the default calls handle_item.
  virtual void take_item(nlohmann::json&& item) { handle_item(item); }
  // Writes whatever handle_item buffered. `checkpoint`, when set, must be
  // saved in the same transaction as the rows.
  virtual void flush_pending_inserts(const std::optional<Checkpoint>& checkpoint);
  // True while handle_item has buffered rows that are not written yet.
  [[nodiscard]] virtual bool has_pending_inserts() const { return false; }
  // Waits for writes still running in the background (a write-behind
  // backfiller's last batch). After a successful run it rethrows their error;
  // when the run already failed (`rethrow` false) it only waits.
  virtual void finish_writes(bool /*rethrow*/) {}

  [[nodiscard]] virtual std::shared_ptr<const RetryPolicy> retry_policy() const;
  [[nodiscard]] virtual int max_backfill_retry_attempts() const;
  // Sleeps through the injected sleeper; cancellation interrupts the wait.
  virtual void wait_for_retry_attempt(int attempt, const HttpBaseError& error);
  // Called with the last error once retries are exhausted (or not allowed).
  // The default rethrows it; ServiceBackfiller maps it to RetryOrDie.
  [[noreturn]] virtual void give_up(std::exception_ptr error);

  // The token of the running page loop (in pipelined mode it also fires when
  // the consumer side fails, to stop the prefetch).
  [[nodiscard]] const CancellationToken& cancellation() const noexcept { return active_cancel_; }

  // True: the next page is fetched on a second thread while the current one is
  // handled (at most pipeline_depth() pages ahead, so memory stays bounded).
  // fetch_backfill_page and handle_item then run on different threads, so
  // they must not share unsynchronised state.
  [[nodiscard]] virtual bool pipelined() const { return false; }
  [[nodiscard]] virtual std::size_t pipeline_depth() const { return 2; }
  // Adapters report rows they wrote, for progress.
  // NOLINTNEXTLINE(bugprone-easily-swappable-parameters): rows written, then those changed
  void count_written(std::uint64_t rows, std::uint64_t changed);

  // The checkpoint to save with rows written now: the token of the page whose
  // items are being handled (re-fetching it is harmless) or, at a page
  // boundary, the next token.
  [[nodiscard]] std::optional<Checkpoint> checkpoint_here() const;

 private:
  BackfillPage fetch_with_retry(const std::string& token, const std::optional<Timestamp>& last_backfilled);
  // Validates and handles one fetched page; returns false after the last page.
  bool consume_page(BackfillPage& page, const std::string& token);
  void run_serial(const std::optional<Timestamp>& last_backfilled);
  void run_pipelined(const std::optional<Timestamp>& last_backfilled);
  // Pipelined with up to runtime_.concurrent_pages fetches at once over the
  // pages known ahead; pages are still consumed in order.
  void run_concurrent(const std::optional<Timestamp>& last_backfilled, std::size_t fetchers);
  // After a page failed for good: writes and checkpoints the rows of the
  // pages handled before it (best effort; the page's error is what counts).
  void save_before_failure();
  void report(bool done);
  // After a page: throws when it passes one of limits_.
  void count_page(bool empty, const std::string& next);

  BackfillRuntime runtime_;
  BackfillLimits limits_;
  // This run's pages and trailing empty pages (the fetching thread's alone).
  std::uint64_t pages_fetched_ = 0;
  std::uint64_t empty_run_ = 0;
  CancellationToken active_cancel_;
  std::string checkpoint_key_;
  // Page-loop position, for checkpoint_here().
  std::string current_token_;
  std::string next_token_;
  bool at_page_boundary_ = true;
  bool finished_ = false;

  struct Counters;
  std::unique_ptr<Counters> counters_;
};

}  // namespace webhookdb
