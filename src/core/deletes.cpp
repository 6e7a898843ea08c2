#include "webhookdb/deletes.hpp"

#include "webhookdb/payload.hpp"

namespace webhookdb {
namespace {

bool says_deleted(const nlohmann::json* j) {
  if (j == nullptr || !j->is_object()) return false;
  if (auto it = j->find("deleted"); it != j->end() && it->is_boolean() && it->get<bool>()) return true;
  if (auto it = j->find("action"); it != j->end() && it->is_string() && it->get_ref<const std::string&>() == "deleted") {
    return true;
  }
  if (auto it = j->find("type"); it != j->end() && it->is_string()) {
    const auto& type = it->get_ref<const std::string&>();
    if (type.ends_with(".deleted")) return true;
  }
  return false;
}

}  // namespace

Deletion deletion_by_convention(const Payload& payload) {
  if (payload.resource.is_object()) {
    auto it = payload.resource.find("deleted");
    if (it != payload.resource.end() && it->is_boolean() && it->get<bool>()) return Deletion::deleted;
  }
  if (says_deleted(payload.event)) return Deletion::deleted;
  // A GitHub delivery without a separate event: the body is the request's JSON.
  if (payload.request != nullptr && says_deleted(&payload.request->json)) return Deletion::deleted;
  return Deletion::none;
}

}  // namespace webhookdb
