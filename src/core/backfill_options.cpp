#include "webhookdb/backfill_options.hpp"

#include "webhookdb/errors.hpp"

namespace webhookdb {
namespace {

[[noreturn]] void refuse(const std::string& owner, const std::string& field, const std::string& value,
                         const std::string& why) {
  throw BrokenSpecification(owner + ": backfill_options()." + field + " is " + value + "; " + why);
}

}  // namespace

void BackfillOptions::validate(const std::string& owner) const {
  // A batch of 0 rows would never flush; it used to be silently taken as 1.
  if (batch_size == 0) refuse(owner, "batch_size", "0", "a batch needs at least one row");
  if (parallel < 0) refuse(owner, "parallel", std::to_string(parallel), "0 or 1 runs serially");
  if (concurrent_pages < 1 || concurrent_pages > 64) {
    refuse(owner, "concurrent_pages", std::to_string(concurrent_pages),
           "1 fetches one page at a time, at most 64 at once");
  }
  if (server_error_retries < 0) {
    refuse(owner, "server_error_retries", std::to_string(server_error_retries), "it must be 0 or more");
  }
  if (server_error_backoff.count() < 0) {
    refuse(owner, "server_error_backoff", std::to_string(server_error_backoff.count()) + " s",
           "it must be 0 s or more");
  }
  if (incremental_lookback.count() < 0) {
    refuse(owner, "incremental_lookback", std::to_string(incremental_lookback.count()) + " us",
           "it must be 0 or more (a negative lookback would skip the changes it should re-fetch)");
  }
  rate_limit.validate(owner + ": backfill_options()");
  if (limits.max_pages == 0) refuse(owner, "limits.max_pages", "0", "no page could be fetched");
  if (limits.max_consecutive_empty_pages == 0) {
    refuse(owner, "limits.max_consecutive_empty_pages", "0", "a single empty page would fail the run");
  }
}

}  // namespace webhookdb
