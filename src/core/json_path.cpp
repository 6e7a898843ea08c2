#include "webhookdb/json_path.hpp"

#include <cstddef>

namespace webhookdb {
namespace {

// An array index step: 1-9 digits, so it fits a size_t without overflow
// checks (no array that large fits in memory anyway).
bool index_step(const std::string& step, std::size_t& index) noexcept {
  if (step.empty() || step.size() > 9) return false;
  std::size_t value = 0;
  for (const char c : step) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<std::size_t>(c - '0');
  }
  index = value;
  return true;
}

}  // namespace

const nlohmann::json* json_at(const nlohmann::json& doc, const JsonPath& path) noexcept {
  const nlohmann::json* at = &doc;
  for (const auto& step : path) {
    std::size_t index = 0;
    if (at->is_object()) {
      const auto it = at->find(step);
      if (it == at->end()) return nullptr;
      at = &*it;
    } else if (at->is_array() && index_step(step, index)) {
      if (index >= at->size()) return nullptr;
      at = &(*at)[index];
    } else {
      return nullptr;
    }
  }
  return at;
}

}  // namespace webhookdb
