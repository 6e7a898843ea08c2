#pragma once
// A Logger that keeps every line, for asserting what was (and was not) logged.

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "webhookdb/export.hpp"
#include "webhookdb/logger.hpp"

namespace webhookdb::testing {

struct LogLine {
  LogLevel level = LogLevel::info;
  std::string message;
};

class WEBHOOKDB_EXPORT CapturingLogger final : public Logger {
 public:
  void log(LogLevel level, std::string_view message) override;

  [[nodiscard]] std::vector<LogLine> entries() const;
  // "<level> <message>" per line.
  [[nodiscard]] std::vector<std::string> lines() const;
  // True when some line's message contains `text`.
  [[nodiscard]] bool contains(std::string_view text) const;
  // Every line as one string, for "no secret anywhere" checks.
  [[nodiscard]] std::string text() const;
  void clear();

 private:
  mutable std::mutex mutex_;
  std::vector<LogLine> entries_;
};

}  // namespace webhookdb::testing
