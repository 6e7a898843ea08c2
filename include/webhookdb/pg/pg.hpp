#pragma once
// The PostgreSQL adapter (target webhookdb::pg).

#include "webhookdb/pg/advisory_lock.hpp"
#include "webhookdb/pg/config.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/migrations.hpp"
#include "webhookdb/pg/oauth_token_store.hpp"
#include "webhookdb/pg/rate_limiter.hpp"
#include "webhookdb/pg/replica_store.hpp"
#include "webhookdb/pg/scheduler.hpp"
#include "webhookdb/pg/webhook_inbox.hpp"
