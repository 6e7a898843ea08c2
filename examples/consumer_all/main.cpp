// Compiles every component's umbrella header and links webhookdb::webhookdb
// from the installed package. Prints "consumer_all ok: <version>".
#include <cstdio>

#include <webhookdb/curl/curl.hpp>
#include <webhookdb/jobs/jobs.hpp>
#include <webhookdb/memory/memory.hpp>
#include <webhookdb/pg/pg.hpp>
#include <webhookdb/testing/testing.hpp>
#include <webhookdb/version.hpp>
#include <webhookdb/webhookdb.hpp>
#include <webhookdb/webhooks/webhooks.hpp>

static_assert(webhookdb::version() == WEBHOOKDB_VERSION);

int main() {
  // A symbol from jobs (which brings pg) and one from memory, so both libraries are linked.
  auto done = webhookdb::jobs::to_string(webhookdb::jobs::RunResult::completed);
  auto waiting = webhookdb::memory::to_string(webhookdb::memory::QueuedJobState::waiting);
  std::printf("consumer_all ok: %s (%.*s, %.*s)\n", webhookdb::version_string(),
              static_cast<int>(done.size()), done.data(), static_cast<int>(waiting.size()), waiting.data());
  return 0;
}
