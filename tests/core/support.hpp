#pragma once
// Small helpers shared by the core tests.

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>

#include "webhookdb/backfiller.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/time.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"

namespace webhookdb::test {

using namespace std::chrono_literals;

inline Timestamp ts(std::string_view text) {
  auto t = parse_timestamp(text);
  if (!t) throw std::invalid_argument("bad timestamp in test: " + std::string(text));
  return *t;
}

inline std::exception_ptr http_error(int status) {
  return std::make_exception_ptr(HttpError(status, "GET", "https://api.example.test/items"));
}

inline std::exception_ptr http_timeout() {
  return std::make_exception_ptr(HttpTimeout("timed out", "GET", "https://api.example.test/items"));
}

inline std::exception_ptr connection_error() {
  return std::make_exception_ptr(HttpConnectionError("refused", "GET", "https://api.example.test/items"));
}

// An error type nothing in the library throws, to check errors pass unchanged.
struct CustomError : std::runtime_error {
  CustomError(const std::string& what, int code_) : std::runtime_error(what), code(code_) {}
  int code;
};

// A runtime for a standalone backfiller: never really sleeps.
inline BackfillRuntime runtime_with(std::shared_ptr<Sleeper> sleeper, CancellationToken cancel = {}) {
  BackfillRuntime rt;
  rt.sleeper = std::move(sleeper);
  rt.cancel = std::move(cancel);
  rt.integration = "svi_test";
  return rt;
}

}  // namespace webhookdb::test
