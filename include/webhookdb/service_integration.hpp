#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "webhookdb/export.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb {

// One configured connection to one API resource. backfill_key,
// backfill_secret and webhook_secret are secrets: never log them.
struct ServiceIntegration {
  std::int64_t id = 0;
  std::string opaque_id;  // svi_...
  std::string service_name;
  std::string table_name;
  std::string api_url;
  std::string backfill_key;
  std::string backfill_secret;
  std::string webhook_secret;
  std::optional<std::int64_t> depends_on;
  std::optional<Timestamp> last_backfilled_at;
  bool skip_webhook_verification = false;

  friend bool operator==(const ServiceIntegration&, const ServiceIntegration&) = default;
};

// Random characters in an opaque id: 25 base-36 characters are 129 bits,
// drawn from the kernel (getrandom(2)). Opaque ids are webhook URLs, so they
// must not be guessable.
inline constexpr std::size_t kOpaqueIdRandomChars = 25;

// "svi_" (or another prefix and "_") followed by kOpaqueIdRandomChars random
// base-36 characters. Throws InvariantViolation when the kernel gives no
// randomness (there is no weaker fallback).
[[nodiscard]] WEBHOOKDB_EXPORT std::string new_opaque_id(std::string_view prefix = "svi");

// PostgreSQL's identifier limit; longer names would be cut without an error.
inline constexpr std::size_t kMaxTableNameBytes = 63;

// Checks a service integration's table_name when the integration is created
// or changed, not first when its table is: InvalidInput for a name longer
// than 63 bytes, holding a control character (tab and newline included), or
// made only of spaces. An empty name means "no table yet" and passes. (Both
// job stores also refuse NUL bytes and invalid UTF-8, and a table_name that
// another integration already uses.)
WEBHOOKDB_EXPORT void validate_table_name(std::string_view name);

}  // namespace webhookdb
