#pragma once
// Resumable backfills: each backfiller's next pagination token, saved with the
// rows of the page it follows.

#include <cstdint>
#include <string>

namespace webhookdb {

struct Checkpoint {
  std::int64_t job_id = 0;
  // Backfiller::checkpoint_key(): stable for the same job criteria.
  std::string backfiller_key;
  // The token to fetch next; empty with finished=false means "from the start".
  std::string next_token;
  // The backfiller ran to its last page; a re-run skips it.
  bool finished = false;

  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

}  // namespace webhookdb
