#pragma once

#include <cstdint>
#include <optional>
#include <string>

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

// "svi_" followed by 22 random base-36 characters.
[[nodiscard]] std::string new_opaque_id(std::string_view prefix = "svi");

}  // namespace webhookdb
