#include "webhookdb/logger.hpp"

#include <cstdio>
#include <mutex>
#include <string>

#include "webhookdb/clock.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "info";
}

void StderrLogger::log(LogLevel level, std::string_view message) {
  if (level < min_level_) return;
  std::string line = format_timestamp(SystemClock{}.now());
  line += ' ';
  line += to_string(level);
  line += ' ';
  line += message;
  line += '\n';
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace webhookdb
