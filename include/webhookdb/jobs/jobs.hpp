#pragma once
// Umbrella header of the jobs component: the PostgreSQL job queue, webhook
// inbox and worker (target webhookdb::jobs).

#include "webhookdb/jobs/pg_job_queue.hpp"
#include "webhookdb/jobs/pg_webhook_inbox.hpp"
#include "webhookdb/jobs/webhook_inbox_processor.hpp"
#include "webhookdb/jobs/worker.hpp"
#include "webhookdb/jobs/worker_main.hpp"
