#pragma once
// Reads Prometheus' text format (0.0.4) as a scraper would, for tests of the
// metrics endpoints: every line must be a # HELP/# TYPE comment or a sample,
// else the test fails naming the line.

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>

namespace webhookdb::test {

// Samples by "name{labels}" as rendered.
inline std::map<std::string, double> parse_exposition(const std::string& text) {
  static const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$)");
  static const std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*$)");
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (std::regex_match(line, comment)) continue;
    if (!std::regex_match(line, sample)) {
      ADD_FAILURE() << "not a sample line: " << line;
      continue;
    }
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

}  // namespace webhookdb::test
