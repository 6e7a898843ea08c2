#!/usr/bin/env bash
# The full benchmark: builds, starts a throwaway PostgreSQL with fsync on,
# runs webhookdb-bench (write paths vs raw COPY, end to end, among them a
# Link-paginated API at 20 ms/page walked by one integration without partitions
# with 1, 4, 8 and 16 pages fetched at once (issue 19 item 4; alone:
# --only e2e --e2e-filter "Link rel=last"), peak RSS at
# 100,000 and 1,000,000 objects, abort latency), prints a table and writes
# bench-results.json; then webhookdb-queue-bench (the job queue against a bare
# SKIP LOCKED claim-and-delete: take-and-complete at 2,000 and 100,000 queued,
# tiny jobs with 2 worker processes and PostgreSQL CPU per job, fairness,
# enqueue-to-start with 32 idle runners) into queue-bench-results.json.
# Takes several minutes and ~3 GB of disk.
#   scripts/bench.sh [--smoke]   (--smoke: both, small and quick)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
source scripts/pg.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release --target webhookdb-bench webhookdb-api-server webhookdb-queue-bench webhookdb-worker \
  -j "$(nproc)"
trap pg_stop EXIT
PG_DURABLE=1 pg_start webhookdb_bench
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(date -u +%Y-%m-%d)"
build/release/bench/webhookdb-bench --server-exe build/release/tools/api_server/webhookdb-api-server \
  --json bench-results.json "$@"
smoke=()
for arg in "$@"; do [[ $arg == --smoke ]] && smoke=(--smoke); done
build/release/bench/webhookdb-queue-bench --worker-exe build/release/src/jobs/webhookdb-worker \
  --json queue-bench-results.json "${smoke[@]}"
# Webhook ingestion (issue 23): the example receiver (a process) under a load
# generator of our own, 32 connections, on the same durable PostgreSQL: one
# transaction per webhook (baseline), micro-batched sync, inbox, a burst of
# 10,000, kill -9 mid-burst. Writes webhook-bench-results.json.
cmake --build build/release --target webhookdb-webhook-bench webhook_receiver -j "$(nproc)"
webhook_smoke=()
for arg in "$@"; do [[ $arg == --smoke ]] && webhook_smoke=(--smoke); done
build/release/bench/webhookdb-webhook-bench --receiver-exe build/release/examples/webhook_receiver/webhook_receiver \
  --database-url "$WEBHOOKDB_TEST_DATABASE_URL" --json webhook-bench-results.json "${webhook_smoke[@]}"
# Quota governor (issue 19): 4 processes x 2 threads share one API key of the
# API server at 200 requests/s through PgRateLimiter, advertised (GitHub
# headers) and not (429 + Retry-After only): utilisation and refused share
# over 60 s each (8 s with --smoke).
cmake --build build/release --target webhookdb_curl_quota_fleet_tests -j "$(nproc)"
quota_seconds=60
for arg in "$@"; do [[ $arg == --smoke ]] && quota_seconds=8; done
WEBHOOKDB_QUOTA_FLEET_SECONDS=$quota_seconds build/release/tests/curl/webhookdb_curl_quota_fleet_tests
# The same with real workers (issue 19): 4 webhookdb-worker processes
# (--rate-limiter pg) run the backfill jobs of 8 integrations sharing that key
# through the job queue: utilisation and refused share over 60 s per mode
# (8 s with --smoke), and an incremental job's time while the full backfills
# saturate the quota against its time on the idle quota. Writes
# quota-fleet-bench-results.json.
cmake --build build/release --target webhookdb-quota-fleet-bench webhookdb-worker -j "$(nproc)"
build/release/bench/webhookdb-quota-fleet-bench --worker-exe build/release/src/jobs/webhookdb-worker \
  --database-url "$WEBHOOKDB_TEST_DATABASE_URL" --json quota-fleet-bench-results.json "${smoke[@]}"
