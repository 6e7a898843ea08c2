#pragma once
// The `webhookdb` admin CLI: operators' commands on the PostgreSQL the
// workers share (integrations, jobs and their progress, backfills, cancels,
// retries, the webhook inbox). Human tables by default, --json for scripts.
//
//   WEBHOOKDB_DATABASE_URL=postgresql://... webhookdb jobs --state running
//   webhookdb --json job 42
//   webhookdb backfill svi_abc --from 2024-01-01T00:00:00Z --to 2024-02-01T00:00:00Z
//   webhookdb cancel 42
//
// The database URL comes from --database-url, --database-url-file or
// WEBHOOKDB_DATABASE_URL (the worker's variable) and never appears in any
// output: every line printed, errors included, has it and its password
// replaced. Private to src/admin and its tests.

#include <iosfwd>
#include <string>
#include <vector>

namespace webhookdb::admin {

// Runs one command line (args without the program name); writes to `out`
// and `err`. Returns the exit code: 0 done, 1 the command failed (not found,
// not cancellable, the database unreachable), 2 a bad command line.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace webhookdb::admin
