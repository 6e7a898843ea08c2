#pragma once
// Deletions and restorations at the source (issue 20), so the mirror's
// deletes are tested end to end against the local API server:
//
//   POST /admin/delete?id=<id>[&updated=<unix>][&webhook=<http url>]
//   POST /admin/restore?id=<id>[&updated=<unix>][&webhook=<http url>]
//
// A deleted object leaves every listing (its `updated` set to `updated`,
// default now); a restored one comes back with the new `updated`. With
// `webhook`, the server POSTs the matching event to that URL (plain HTTP,
// loopback only) before it answers, in Stripe's event shape on this made-up
// API: {"id": "evt_...", "object": "event", "type": "charge.deleted" |
// "charge.updated", "created": <updated>, "data": {"object": <the charge,
// with "deleted": true for a deletion>}}. The reply:
// {"id", "deleted": bool, "updated", "changed": bool, "webhook_status": <int, 0 when none>}.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api_server/dataset.hpp"

namespace webhookdb::tools::mutations {

enum class Mutation { deleted, restored };

// The event a mutation of object `index` sends (see above).
[[nodiscard]] nlohmann::json event(const Dataset& dataset, std::size_t index, Mutation mutation);

// POSTs `body` as JSON to `url` (http://127.0.0.1:<port>/<path> or localhost);
// returns the response status. Throws std::invalid_argument for another
// origin and std::runtime_error when the request fails.
int post_webhook(const std::string& url, const std::string& body);

struct Reply {
  int status = 200;
  std::string body;
};

using ParamFn = std::function<std::optional<std::string>(std::string_view name)>;

// The reply for the admin paths above; nullopt for any other path.
[[nodiscard]] std::optional<Reply> handle(Dataset& dataset, std::string_view path, const ParamFn& param);

}  // namespace webhookdb::tools::mutations
