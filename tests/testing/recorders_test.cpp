// ManualClock, RecordingSleeper, CapturingLogger, RecordingProgressSink, RecordingJobQueue.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "webhookdb/errors.hpp"
#include "webhookdb/testing/capturing_logger.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/recording_job_queue.hpp"
#include "webhookdb/testing/recording_progress_sink.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock;
  EXPECT_EQ(format_timestamp(clock.now()), "2024-01-01T00:00:00Z");
  EXPECT_EQ(clock.now(), clock.now());
  clock.advance(90s);
  EXPECT_EQ(format_timestamp(clock.now()), "2024-01-01T00:01:30Z");
  const auto t = *parse_timestamp("2030-05-06T07:08:09.5Z");
  clock.set(t);
  EXPECT_EQ(clock.now(), t);
  ManualClock custom(t);
  EXPECT_EQ(custom.now(), t);
}

TEST(RecordingSleeper, RecordsWaitsAndAdvancesTheClock) {
  auto clock = std::make_shared<ManualClock>();
  RecordingSleeper sleeper(clock);
  const auto start = clock->now();
  const auto wall = std::chrono::steady_clock::now();
  sleeper.sleep_for(1s, CancellationToken{});
  sleeper.sleep_for(63s, CancellationToken{});
  EXPECT_LT(std::chrono::steady_clock::now() - wall, 1s) << "never really sleeps";
  EXPECT_THAT(sleeper.waits(), ElementsAre(1000ms, 63000ms));
  EXPECT_EQ(sleeper.total(), 64s);
  EXPECT_EQ(clock->now() - start, 64s);
  sleeper.clear();
  EXPECT_TRUE(sleeper.waits().empty());
}

TEST(RecordingSleeper, ThrowsCancelledForACancelledToken) {
  RecordingSleeper sleeper;
  CancellationSource source;
  source.cancel();
  EXPECT_THROW(sleeper.sleep_for(1s, source.token()), Cancelled);
  EXPECT_TRUE(sleeper.waits().empty());
}

TEST(RecordingSleeper, AHookCanCancelFromInsideTheWait) {
  RecordingSleeper sleeper;
  CancellationSource source;
  std::vector<std::chrono::milliseconds> seen;
  sleeper.on_sleep([&](std::chrono::milliseconds d) {
    seen.push_back(d);
    source.cancel();
  });
  EXPECT_THROW(sleeper.sleep_for(2s, source.token()), Cancelled);
  EXPECT_THAT(seen, ElementsAre(2000ms));
}

TEST(CapturingLogger, KeepsLines) {
  CapturingLogger logger;
  logger.log(LogLevel::warn, "retrying page 2");
  logger.log(LogLevel::error, "gave up");
  EXPECT_THAT(logger.lines(), ElementsAre("warn retrying page 2", "error gave up"));
  EXPECT_TRUE(logger.contains("page 2"));
  EXPECT_FALSE(logger.contains("secret"));
  EXPECT_EQ(logger.entries()[1].level, LogLevel::error);
  EXPECT_EQ(logger.text(), "warn retrying page 2\nerror gave up\n");
  logger.clear();
  EXPECT_TRUE(logger.lines().empty());
}

TEST(RecordingProgressSink, KeepsEventsAndTheLatestPerBackfiller) {
  RecordingProgressSink sink;
  EXPECT_FALSE(sink.last());
  BackfillProgress a;
  a.backfiller = "a";
  a.pages = 1;
  BackfillProgress b;
  b.backfiller = "b";
  b.pages = 5;
  sink.on_progress(a);
  sink.on_progress(b);
  a.pages = 2;
  sink.on_progress(a);
  EXPECT_EQ(sink.events().size(), 3U);
  EXPECT_EQ(sink.last()->backfiller, "a");
  EXPECT_EQ(sink.last("b")->pages, 5U);
  EXPECT_EQ(sink.last("a")->pages, 2U);
  EXPECT_FALSE(sink.last("c"));
}

TEST(RecordingJobQueue, RecordsIdsAndRunAt) {
  RecordingJobQueue queue;
  const auto later = ManualClock::default_start() + 63s;
  queue.enqueue(3);
  queue.enqueue(4, later);
  EXPECT_THAT(queue.job_ids(), ElementsAre(3, 4));
  EXPECT_THAT(queue.entries(), ElementsAre(EnqueuedJob{3, std::nullopt}, EnqueuedJob{4, later}));
  queue.clear();
  EXPECT_TRUE(queue.entries().empty());
}

}  // namespace
}  // namespace webhookdb::testing
