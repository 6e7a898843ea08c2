#!/usr/bin/env bash
# Source this file: pg_start starts a throwaway PostgreSQL 15 (temp dir, free
# loopback port, Unix socket, fsync off) and exports WEBHOOKDB_TEST_DATABASE_URL;
# pg_stop stops it and removes the directory. Callers trap pg_stop on EXIT.
# PG_DURABLE=1 starts it with fsync, synchronous_commit and full_page_writes on
# (the benchmark): options given on the command line win over ALTER SYSTEM, so
# they have to be chosen here. Its max_wal_size is large enough that no timed
# phase of the benchmark sets off a checkpoint of its own (each starts after one),
# and its min_wal_size keeps used WAL files for reuse, so once the benchmark's
# untimed warm-up has made them, timed phases do not pay for creating new ones
# (on a fresh server that made raw COPY, the baseline, a third slower), and
# new ones are not zero-filled first (wal_init_zero off) when a phase needs more.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

_pg_as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_pg_free_port() {
  python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

pg_start() {
  local dbname=${1:-webhookdb_test}
  PG_DIR=$(mktemp -d /tmp/webhookdb-pg.XXXXXX)
  chmod 755 "$PG_DIR"
  if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$PG_DIR"; fi
  PG_PORT=$(_pg_free_port)
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if [[ ${PG_DURABLE:-0} == 1 ]]; then
    durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_wal_size=8GB -c min_wal_size=4GB -c wal_init_zero=off"
  fi
  _pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  _pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR $durability -c max_connections=300" \
    >/dev/null || { cat "$PG_DIR/server.log" >&2; return 1; }
  _pg_as_owner "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$dbname"
  export PG_DIR PG_PORT
  export WEBHOOKDB_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/$dbname"
  echo "postgres: started on 127.0.0.1:$PG_PORT ($PG_DIR)"
}

pg_stop() {
  if [[ -n ${PG_DIR:-} && -d $PG_DIR/data ]]; then
    _pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    echo "postgres: stopped"
  fi
  PG_DIR=
}
