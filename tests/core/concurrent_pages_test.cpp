// Concurrent page fetching (issue 19 item 4): pages whose tokens are known
// ahead (BackfillPage::ahead) are fetched up to BackfillOptions::concurrent_pages
// at once, and still written and checkpointed in page order. A source in
// memory answers pages with delays and failures, counting fetches in flight.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "webhookdb/service_backfiller.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb {
namespace {

using namespace webhookdb::testing;
using namespace std::chrono_literals;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int kItemsPerPage = 5;

// Pages 1..pages of kItemsPerPage items; the token of page n is "n" (the
// first page's is ""), and every page names the pages after it as known.
struct Source {
  std::mutex mutex;
  int pages = 20;
  // Where the pages stop naming a next page (a count that shrank), 0: at `pages`.
  int ends_at = 0;
  // A page whose next is another token than the counted one.
  std::map<int, std::string> next_override;
  std::map<int, std::chrono::milliseconds> delay;
  std::set<int> failing;  // answered with HTTP 404, every attempt
  // No page names the pages after it (a cursor walk): nothing known ahead.
  bool cursor = false;
  // The process's threads (/proc/self/task) at each fetch, the most seen.
  std::size_t max_threads = 0;
  std::vector<std::string> fetched;  // tokens, in the order the fetches started
  int in_flight = 0;
  int max_in_flight = 0;

  static std::string id(int page, int k) { return "p" + std::to_string(100 + page) + "-" + std::to_string(k); }

  static int page_of(const std::string& token) {
    if (token.empty()) return 1;
    return std::stoi(token.substr(0, token.find_first_not_of("0123456789")));
  }

  BackfillPage fetch(const std::string& token, const CancellationToken& cancel) {
    const int page = page_of(token);
    std::chrono::milliseconds wait{0};
    {
      std::lock_guard lock(mutex);
      fetched.push_back(token);
      ++in_flight;
      max_in_flight = std::max(max_in_flight, in_flight);
      if (auto it = delay.find(page); it != delay.end()) wait = it->second;
      max_threads = std::max(max_threads, thread_count());
    }
    if (wait.count() > 0) (void)cancel.wait_for(wait);
    std::lock_guard lock(mutex);
    --in_flight;
    cancel.throw_if_cancelled();
    if (failing.count(page) != 0) {
      throw HttpError(404, "GET", "https://api.test/items?page=" + std::to_string(page) + "&api_key=REDACTED");
    }
    BackfillPage out;
    out.items = nlohmann::json::array();
    for (int k = 0; k < kItemsPerPage; ++k) {
      out.items.push_back(fake_item(id(page, k), "2024-01-01T00:00:00Z", {{"page", page}}));
    }
    const int last = ends_at > 0 ? ends_at : pages;
    if (page < last) out.next = std::to_string(page + 1);
    if (auto it = next_override.find(page); it != next_override.end()) out.next = it->second;
    if (page < pages && !cursor) {
      auto ahead = std::make_shared<PagesAhead>();
      ahead->count = static_cast<std::uint64_t>(pages - page);
      ahead->token = [page](std::uint64_t i) { return std::to_string(page + 1 + static_cast<int>(i)); };
      out.ahead = ahead;
    }
    return out;
  }

  static std::size_t thread_count() {
    std::error_code ec;
    std::size_t n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/task", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++n;
    }
    return n;
  }

  std::vector<std::string> fetched_tokens() {
    std::lock_guard lock(mutex);
    return fetched;
  }
};

class SourceBackfiller final : public ServiceBackfiller {
 public:
  SourceBackfiller(Replicator& replicator, Source& source) : ServiceBackfiller(replicator), source_(source) {}

 protected:
  BackfillPage fetch_backfill_page(const std::string& token, const std::optional<Timestamp>& /*since*/,
                                   const CancellationToken& cancel) override {
    return source_.fetch(token, cancel);
  }

 private:
  Source& source_;
};

class ConcurrentPages : public ::testing::Test {
 protected:
  TestHarness h;
  Source source;
  ServiceIntegration si = h.integration();
  std::unique_ptr<Replicator> r;
  std::mutex written_mutex;
  std::vector<std::string> written;  // remote keys, in the order they were written

  void SetUp() override {
    h.replica->set_before_upsert([this](const TableSpec&, std::span<const Row> rows) {
      std::lock_guard lock(written_mutex);
      for (const auto& row : rows) written.push_back(row.key.get<std::string>());
    });
    h.fake->backfill_options.concurrent_pages = 4;
    h.fake->backfill_options.batch_size = kItemsPerPage;  // a batch, and a checkpoint, per page
    h.fake->make_backfillers = [this](Replicator& replicator, const nlohmann::json&) {
      std::vector<std::unique_ptr<Backfiller>> out;
      out.push_back(std::make_unique<SourceBackfiller>(replicator, source));
      return out;
    };
  }

  void make_replicator() { r = h.replicator(si); }

  // The remote keys of pages first..last, in page order.
  static std::vector<std::string> keys(int first, int last) {
    std::vector<std::string> out;
    for (int page = first; page <= last; ++page) {
      for (int k = 0; k < kItemsPerPage; ++k) out.push_back(Source::id(page, k));
    }
    return out;
  }

  std::vector<std::string> table_keys() {
    std::vector<std::string> out;
    for (const auto& row : h.rows(*r)) out.push_back(row.key.get<std::string>());
    return out;
  }

  // The rows of every upsert, in the order they were written, and the
  // checkpoint tokens saved with them.
  std::vector<std::string> written_in_order() {
    std::lock_guard lock(written_mutex);
    return written;
  }
  std::vector<int> checkpoint_pages() {
    std::vector<int> out;
    for (const auto& call : h.replica->calls()) {
      if (call.options.checkpoint && !call.options.checkpoint->finished) {
        out.push_back(Source::page_of(call.options.checkpoint->next_token));
      }
    }
    return out;
  }
};

TEST_F(ConcurrentPages, PagesAnsweredOutOfOrderAreWrittenAndCheckpointedInOrder) {
  // Every fourth page is slow: the three after it are answered first.
  for (int page = 2; page <= source.pages; page += 4) source.delay[page] = 40ms;
  make_replicator();
  auto job = h.job(si);
  r->backfill(job);
  EXPECT_THAT(written_in_order(), ElementsAreArray(keys(1, 20)));
  const auto cps = checkpoint_pages();
  ASSERT_FALSE(cps.empty());
  EXPECT_TRUE(std::is_sorted(cps.begin(), cps.end())) << "a checkpoint went back";
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, 20)));
  EXPECT_GE(source.max_in_flight, 2) << "the pages known ahead were fetched one at a time";
  EXPECT_LE(source.max_in_flight, 4);
  EXPECT_EQ(source.fetched_tokens().size(), 20U) << "a page was fetched twice";
  EXPECT_TRUE(job.finished_at);
}

TEST_F(ConcurrentPages, ConcurrencyNeverExceedsTheSetting) {
  h.fake->backfill_options.concurrent_pages = 3;
  for (int page = 2; page <= source.pages; ++page) source.delay[page] = 5ms;
  make_replicator();
  auto job = h.job(si);
  r->backfill(job);
  EXPECT_LE(source.max_in_flight, 3);
  EXPECT_GE(source.max_in_flight, 2);
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, 20)));
}

TEST_F(ConcurrentPages, AFailedPageKeepsTheCheckpointOnItAndResumeCompletesTheTable) {
  // Page 7 fails for good after the pages behind it were answered. Batches
  // of 12 rows end mid-page: pages 5 and 6 are still buffered when it fails.
  h.fake->backfill_options.batch_size = 12;
  source.failing.insert(7);
  source.delay[7] = 30ms;
  make_replicator();
  auto job = h.job(si);
  try {
    r->backfill(job);
    FAIL() << "expected page 7's error";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_THAT(e.what(), HasSubstr("page=7"));
  }
  // Pages 1-6 are written and the checkpoint is page 7, not past it.
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, 6)));
  const auto saved = h.replica->load_checkpoints(job.id);
  ASSERT_EQ(saved.size(), 1U);
  EXPECT_EQ(saved.begin()->second.next_token, "7");

  source.failing.clear();
  const std::size_t before = source.fetched_tokens().size();
  r = h.replicator(si);
  r->backfill(job);
  const auto fetched = source.fetched_tokens();
  ASSERT_GT(fetched.size(), before);
  EXPECT_EQ(fetched[before], "7") << "the resumed run starts at the failed page";
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, 20)));
}

TEST_F(ConcurrentPages, ACancelMidWalkNeverCheckpointsPastAnUnwrittenPage) {
  CancellationSource cancel;
  for (int page = 2; page <= source.pages; ++page) source.delay[page] = 2ms;
  source.delay[9] = 2s;  // cancelled while page 9 is awaited, pages after it fetched
  make_replicator();
  auto job = h.job(si);
  std::thread canceller([&] {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(source.mutex);
        if (std::find(source.fetched.begin(), source.fetched.end(), "11") != source.fetched.end()) break;
      }
      std::this_thread::sleep_for(2ms);
    }
    std::this_thread::sleep_for(20ms);
    cancel.cancel();
  });
  EXPECT_THROW(r->backfill(job, cancel.token()), Cancelled);
  canceller.join();
  const auto saved = h.replica->load_checkpoints(job.id);
  ASSERT_EQ(saved.size(), 1U);
  const int resume_at = Source::page_of(saved.begin()->second.next_token);
  EXPECT_LE(resume_at, 9) << "checkpointed past page 9, which was never written";
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, resume_at - 1)));

  source.delay.clear();
  r = h.replicator(si);
  r->backfill(job);
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, 20)));
}

TEST_F(ConcurrentPages, APageThatEndsTheWalkEarlyEndsIt) {
  source.ends_at = 12;  // the count shrank: page 12 names no next page
  make_replicator();
  auto job = h.job(si);
  r->backfill(job);
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, 12)));
}

TEST_F(ConcurrentPages, APagePastTheKnownLastIsFollowed) {
  // Page 20 was the last when page 1 answered; by then there are 22.
  make_replicator();
  source.next_override[20] = "21";
  source.next_override[21] = "22";
  source.next_override[22] = "";
  auto job = h.job(si);
  r->backfill(job);
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, 22)));
}

TEST_F(ConcurrentPages, APageNamingAnotherNextIsFollowedOneAtATime) {
  source.next_override[5] = "6x";  // page 6, named differently: the counted tokens are dropped
  make_replicator();
  auto job = h.job(si);
  r->backfill(job);
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, 20)));
  const auto fetched = source.fetched_tokens();
  EXPECT_NE(std::find(fetched.begin(), fetched.end(), "6x"), fetched.end());
  EXPECT_TRUE(h.logger->contains("fetching one page at a time from here"));
}

TEST_F(ConcurrentPages, OneAtATimeIsTodaysSerialWalk) {
  h.fake->backfill_options.concurrent_pages = 1;
  for (int page = 2; page <= source.pages; page += 4) source.delay[page] = 5ms;
  make_replicator();
  auto job = h.job(si);
  r->backfill(job);
  std::vector<std::string> expected{""};
  for (int page = 2; page <= 20; ++page) expected.push_back(std::to_string(page));
  EXPECT_THAT(source.fetched_tokens(), ElementsAreArray(expected));
  EXPECT_EQ(source.max_in_flight, 1);
  EXPECT_THAT(written_in_order(), ElementsAreArray(keys(1, 20)));
}

TEST_F(ConcurrentPages, ACursorWalkStartsOneFetchingThread) {
  // Nothing is known ahead, so one thread fetches: the other seven are not
  // started (a tiny job pays no thread starts for them). Thread count seen
  // in the fetches, against the count before the run: the fetcher, and at
  // most the write-behind's two writes (a batch and a checkpoint save), and
  // room for a sanitizer's own threads (clang's TSan counted 5); with every
  // fetcher started it is 9.
  h.fake->backfill_options.concurrent_pages = 8;
  source.cursor = true;
  source.pages = 6;
  for (int page = 2; page <= source.pages; ++page) source.delay[page] = 5ms;
  make_replicator();
  auto job = h.job(si);
  const std::size_t before = Source::thread_count();
  r->backfill(job);
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, 6)));
  EXPECT_EQ(source.max_in_flight, 1);
  EXPECT_LE(source.max_threads, before + 5) << "threads before the run: " << before;
}

TEST_F(ConcurrentPages, FetchingThreadsAreAddedOnceAPageBringsAKnownRange) {
  h.fake->backfill_options.concurrent_pages = 8;
  for (int page = 2; page <= source.pages; ++page) source.delay[page] = 20ms;
  make_replicator();
  auto job = h.job(si);
  const std::size_t before = Source::thread_count();
  r->backfill(job);
  EXPECT_THAT(table_keys(), ElementsAreArray(keys(1, 20)));
  EXPECT_GE(source.max_in_flight, 2) << "the pages known ahead were fetched one at a time";
  EXPECT_LE(source.max_in_flight, 8);
  EXPECT_GE(source.max_threads, before + 4);
}

TEST_F(ConcurrentPages, ConcurrentPagesOutsideOneToSixtyFourAreRefused) {
  for (int k : {0, -1, 65}) {
    BackfillOptions options;
    options.concurrent_pages = k;
    EXPECT_THROW(options.validate("test"), BrokenSpecification) << k;
  }
  BackfillOptions options;
  options.concurrent_pages = 64;
  EXPECT_NO_THROW(options.validate("test"));
}

}  // namespace
}  // namespace webhookdb
