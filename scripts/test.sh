#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a throwaway
# PostgreSQL, builds and runs the tests, then an ASan+UBSan build of every
# test and a TSan build of the concurrency tests. Stops PostgreSQL on exit.
#   scripts/test.sh            everything
#   SKIP_SANITIZERS=1 scripts/test.sh   only the plain build
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/setup.sh
source scripts/pg.sh
trap pg_stop EXIT
pg_start
# Tests that need PostgreSQL fail (never skip) when this is missing.
export WEBHOOKDB_REQUIRE_DATABASE=1

jobs=$(nproc)
werror=OFF
[[ ${CI:-} == true ]] && werror=ON
common=(-G Ninja -DWEBHOOKDB_WERROR=$werror)

section() { printf '\n==== %s ====\n' "$*"; }

run_suite() {  # dir, ctest args...
  local dir=$1; shift
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 600 "$@"
}

section "build (RelWithDebInfo)"
cmake -S . -B build/release "${common[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build/release -j "$jobs"
section "tests"
run_suite build/release

section "install + outside consumer (find_package)"
prefix=$(mktemp -d /tmp/webhookdb-prefix.XXXXXX)
cmake --install build/release --prefix "$prefix" >/dev/null
cmake -S examples/consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/consumer -j "$jobs"
build/consumer/consumer
rm -rf "$prefix"

if [[ -z ${SKIP_SANITIZERS:-} ]]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  section "build (ASan+UBSan)"
  cmake -S . -B build/asan "${common[@]}" -DCMAKE_BUILD_TYPE=Debug -DWEBHOOKDB_SANITIZE=address,undefined \
    -DWEBHOOKDB_BUILD_EXAMPLES=OFF -DWEBHOOKDB_BUILD_BENCH=OFF
  cmake --build build/asan -j "$jobs"
  section "tests (ASan+UBSan)"
  run_suite build/asan -LE no_sanitizer

  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  section "build (TSan, concurrency tests)"
  cmake -S . -B build/tsan "${common[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEBHOOKDB_SANITIZE=thread \
    -DWEBHOOKDB_BUILD_EXAMPLES=OFF -DWEBHOOKDB_BUILD_BENCH=OFF -DWEBHOOKDB_BUILD_TOOLS=OFF "-DWEBHOOKDB_TEST_DIRS=core;memory"
  cmake --build build/tsan -j "$jobs"
  section "tests (TSan)"
  run_suite build/tsan -L concurrency
fi

section "done"
