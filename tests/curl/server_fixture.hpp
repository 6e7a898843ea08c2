#pragma once
// Starts the local API server on an ephemeral 127.0.0.1 port for one test.

#include <chrono>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "api_server/api_server.hpp"

namespace webhookdb::test {

inline std::unique_ptr<tools::ApiServer> start_server(tools::ApiServerOptions options = {}) {
  auto server = std::make_unique<tools::ApiServer>(std::move(options));
  server->start();
  return server;
}

inline std::chrono::milliseconds elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since);
}

}  // namespace webhookdb::test
