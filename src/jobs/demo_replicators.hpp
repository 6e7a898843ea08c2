#pragma once
// Two small replicators over the local API server (tools/api_server), for the
// webhookdb-worker demo and the worker tests. Private to src/jobs and tests.
//
//   demo_charge_v1         GET <api_url>/v1/charges?limit=100&starting_after=<id>, Bearer <backfill_key> (BearerAuth),
//                         or the host's OAuth2 token for an integration without a key
//   demo_charge_mirror_v1  depends on demo_charge_v1; the same charges through GET <api_url>/cursor
//   demo_charge_quota_v1   the charges in pages of 20, every integration on the declared quota key
//                         kQuotaKey (webhookdb-quota-fleet-bench), polite retries
//
// Each page is written in its own batch (BackfillOptions::batch_size = page size), so
// a checkpoint follows every page.

#include <string>

#include "webhookdb/registry.hpp"

namespace webhookdb::jobs::demo {

inline constexpr const char* kChargeService = "demo_charge_v1";
inline constexpr const char* kMirrorService = "demo_charge_mirror_v1";
inline constexpr const char* kQuotaService = "demo_charge_quota_v1";
inline constexpr int kPageSize = 100;
inline constexpr int kQuotaPageSize = 20;
inline constexpr const char* kQuotaKey = "demo_charge_quota_v1:shared";

// `default_api_url` is used for integrations whose api_url is empty.
void register_demo_replicators(Registry& registry, const std::string& default_api_url = {});

}  // namespace webhookdb::jobs::demo
