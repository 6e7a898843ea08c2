#include "webhookdb/service_integration.hpp"

#include <random>

namespace webhookdb {

std::string new_opaque_id(std::string_view prefix) {
  static constexpr char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<std::size_t> pick(0, sizeof(alphabet) - 2);
  std::string out(prefix);
  out += '_';
  for (int i = 0; i < 22; ++i) out += alphabet[pick(rng)];
  return out;
}

}  // namespace webhookdb
