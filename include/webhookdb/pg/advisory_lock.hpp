#pragma once
// WebhookDB's advisory-lock keys. PgReplicaStore::with_advisory_lock locks
// the pair (table oid, key) with the two-int4 form of pg_try_advisory_lock; a
// 64-bit key (often a row pk) is folded into an int4 first.

#include <cstdint>

#include "webhookdb/export.hpp"

namespace webhookdb::pg {

inline constexpr std::int64_t kMaxInt = 2'147'483'647;      // 2^31 - 1
inline constexpr std::int64_t kMinInt = -2'147'483'648;     // -2^31
inline constexpr std::int64_t kMaxUint = 4'294'967'295;     // 2^32 - 1

// A key above kMaxUint is taken modulo kMaxUint; then a key above kMaxInt is
// folded to -(key - kMaxInt), into the otherwise unused negative range. A key
// below kMinInt is an InvalidInput (choose another key).
[[nodiscard]] WEBHOOKDB_EXPORT std::int32_t advisory_lock_key(std::int64_t key);

// An oid (an unsigned 32-bit number) as the int4 namespace of a lock: above
// kMaxInt it is folded like a key.
[[nodiscard]] WEBHOOKDB_EXPORT std::int32_t advisory_lock_namespace(std::uint32_t oid);

}  // namespace webhookdb::pg
