#pragma once
// Log lines and progress events. No secret ever goes into either.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "webhookdb/export.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {

enum class LogLevel { debug, info, warn, error };
[[nodiscard]] WEBHOOKDB_EXPORT std::string_view to_string(LogLevel level) noexcept;

class WEBHOOKDB_EXPORT Logger {
 public:
  virtual ~Logger() = default;
  // Thread-safe.
  virtual void log(LogLevel level, std::string_view message) = 0;
};

class WEBHOOKDB_EXPORT NullLogger final : public Logger {
 public:
  void log(LogLevel, std::string_view) override {}
};

// "<utc time> <level> <message>" to stderr, one line, at or above `min_level`.
class WEBHOOKDB_EXPORT StderrLogger final : public Logger {
 public:
  explicit StderrLogger(LogLevel min_level = LogLevel::info) : min_level_(min_level) {}
  void log(LogLevel level, std::string_view message) override;

 private:
  LogLevel min_level_;
};

// One JSON object per line on stderr, for log shippers:
// {"ts":"2026-12-07T18:00:00.123456Z","level":"info","msg":"..."}. The message
// is escaped as JSON (invalid UTF-8 replaced), so a line never breaks in two.
class WEBHOOKDB_EXPORT JsonLinesLogger final : public Logger {
 public:
  explicit JsonLinesLogger(LogLevel min_level = LogLevel::info) : min_level_(min_level) {}
  void log(LogLevel level, std::string_view message) override;
  // The line log() writes, without its newline.
  [[nodiscard]] static std::string line(Timestamp at, LogLevel level, std::string_view message);

 private:
  LogLevel min_level_;
};

// Cumulative counters of one backfiller within one job.
struct BackfillProgress {
  std::int64_t job_id = 0;
  std::string integration;  // opaque id
  std::string backfiller;   // checkpoint key
  std::uint64_t pages = 0;
  std::uint64_t items = 0;
  std::uint64_t rows_written = 0;
  std::uint64_t rows_changed = 0;
  std::uint64_t retries = 0;
  std::uint64_t bytes = 0;
  std::chrono::milliseconds elapsed{0};
  bool done = false;
};

class WEBHOOKDB_EXPORT ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  // Called after each page and at the end, from the backfiller's thread.
  virtual void on_progress(const BackfillProgress& progress) = 0;
};

}  // namespace webhookdb
