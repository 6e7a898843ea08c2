#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts a throwaway PostgreSQL,
# backfills 50,000 charges from a local fault-injecting API into it (first a
# full run, then an incremental one, then a full one after a few charges were
# deleted at the source, whose sweep marks exactly those rows deleted) with
# live progress and a summary, shows a few rows, and stops everything.
#   scripts/demo.sh [--keep] [demo options: --objects N --fault-rate R --touch N --delete N --seed S]
#   --keep   leave PostgreSQL running afterwards, to look at the table with psql
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

keep=
args=()
for a in "$@"; do
  if [[ $a == --keep ]]; then keep=1; else args+=("$a"); fi
done

bash scripts/setup.sh
source scripts/pg.sh

echo "building (first time: a few minutes)..."
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release --target webhookdb-demo -j "$(nproc)" | grep -E "error|FAILED" || true
[[ -x build/release/examples/demo/webhookdb-demo ]] || { echo "demo: build failed" >&2; exit 1; }

if [[ -z $keep ]]; then trap pg_stop EXIT; fi
pg_start webhookdb_demo >/dev/null
url=$WEBHOOKDB_TEST_DATABASE_URL

build/release/examples/demo/webhookdb-demo --database-url "$url" "${args[@]}"

query='select charge_id, amount, currency, status, updated from local_charges order by updated desc, charge_id limit 5'
echo
echo "Look at the table:"
echo "  psql '$url' -c '$query'"
psql "$url" -c "$query"
deleted='select charge_id, amount, status, deleted_at from local_charges where deleted_at is not null order by charge_id'
echo "The rows the sweep marked deleted:"
echo "  psql '$url' -c '$deleted'"
psql "$url" -c "$deleted"
if [[ -n $keep ]]; then
  echo "PostgreSQL keeps running (data in $PG_DIR). Stop it with:"
  echo "  runuser -u postgres -- $PG_BIN/pg_ctl -D $PG_DIR/data stop   # (or without runuser when not root)"
else
  echo "(PostgreSQL is stopped now; run with --keep to leave it up.)"
fi
