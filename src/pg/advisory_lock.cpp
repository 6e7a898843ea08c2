#include "webhookdb/pg/advisory_lock.hpp"

#include "webhookdb/errors.hpp"

namespace webhookdb::pg {

std::int32_t advisory_lock_key(std::int64_t key) {
  std::int64_t k = key;
  if (k > kMaxUint) k %= kMaxUint;
  if (k > kMaxInt) k = -(k - kMaxInt);
  if (k < kMinInt) {
    throw InvalidInput("advisory lock key " + std::to_string(key) + " is below " + std::to_string(kMinInt) +
                       "; use another key");
  }
  return static_cast<std::int32_t>(k);
}

std::int32_t advisory_lock_namespace(std::uint32_t oid) {
  std::int64_t k = oid;
  if (k > kMaxInt) k = -(k - kMaxInt);
  return static_cast<std::int32_t>(k);
}

}  // namespace webhookdb::pg
