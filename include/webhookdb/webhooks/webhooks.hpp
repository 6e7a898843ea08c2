#pragma once
// Umbrella header of the webhooks component (webhookdb::webhooks).

#include "webhookdb/webhooks/event_payload.hpp"
#include "webhookdb/webhooks/hmac.hpp"
#include "webhookdb/webhooks/replay_guard.hpp"
#include "webhookdb/webhooks/verification.hpp"
#include "webhookdb/webhooks/webhook_handler.hpp"
#include "webhookdb/webhooks/webhook_inbox.hpp"
#include "webhookdb/webhooks/webhook_policy.hpp"
#include "webhookdb/webhooks/webhook_receiver.hpp"
