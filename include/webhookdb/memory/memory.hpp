#pragma once
// Umbrella header of the in-memory adapter (target webhookdb::memory).

#include "webhookdb/memory/in_process_job_queue.hpp"
#include "webhookdb/memory/memory_job_store.hpp"
#include "webhookdb/memory/memory_replica_store.hpp"
#include "webhookdb/memory/memory_webhook_inbox.hpp"
