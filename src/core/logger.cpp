#include "webhookdb/logger.hpp"

#include <nlohmann/json.hpp>

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

std::string JsonLinesLogger::line(Timestamp at, LogLevel level, std::string_view message) {
  const nlohmann::json entry = {
      {"ts", format_timestamp(at)}, {"level", to_string(level)}, {"msg", std::string(message)}};
  return entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void JsonLinesLogger::log(LogLevel level, std::string_view message) {
  if (level < min_level_) return;
  std::string text = line(SystemClock{}.now(), level, message);
  text += '\n';
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::fwrite(text.data(), 1, text.size(), stderr);
}

}  // namespace webhookdb
