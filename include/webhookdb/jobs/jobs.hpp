#pragma once
// Umbrella header of the jobs component (target webhookdb::jobs): the worker
// and the webhook inbox processor that drive the PostgreSQL job queue and
// inbox of webhookdb/pg/.

#include "webhookdb/jobs/webhook_inbox_processor.hpp"
#include "webhookdb/jobs/worker.hpp"
#include "webhookdb/jobs/worker_main.hpp"
