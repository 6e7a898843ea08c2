#pragma once
// Umbrella header of the test kit for users' replicators (target webhookdb::testing).

#include "webhookdb/testing/capturing_logger.hpp"
#include "webhookdb/testing/fake_replicator.hpp"
#include "webhookdb/testing/manual_clock.hpp"
#include "webhookdb/testing/mock_http_client.hpp"
#include "webhookdb/testing/recording_job_queue.hpp"
#include "webhookdb/testing/recording_progress_sink.hpp"
#include "webhookdb/testing/recording_sleeper.hpp"
#include "webhookdb/testing/scripted_backfiller.hpp"
#include "webhookdb/testing/test_harness.hpp"
