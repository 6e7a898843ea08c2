#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a throwaway
# PostgreSQL, builds the library, tools and examples in Release (running the
# examples' tests and the benchmark smoke run), gates on clang-tidy
# (scripts/tidy.sh), builds the outside consumer against the installed
# package, then runs the whole suite (the fault matrix included) under
# ASan+UBSan and under TSan, and bounded libFuzzer runs.
# Stops PostgreSQL on exit.
#   scripts/test.sh                      everything
#   SKIP_SANITIZERS=1 scripts/test.sh    the whole suite in one plain Release build
#   TSAN_TEST_LABELS= scripts/test.sh    TSan over the whole suite (default: the
#                                        tests labelled concurrency, i.e. every
#                                        test with threads; the tests that start
#                                        several worker processes, label
#                                        `process`, run under ASan+UBSan only)
#   FUZZ_SECONDS=60 scripts/test.sh      longer fuzz runs (default 10 s a target)
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
# Unity builds (8 sources per compiler run) cut each build of the suite by
# roughly a third: most of a test's compile time is the headers it shares
# with its neighbours (gtest, nlohmann_json, ours).
common=(-G Ninja -DWEBHOOKDB_WERROR=$werror -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=8)

started=$SECONDS
section() { printf '\n==== %s (at %dm%02ds) ====\n' "$*" $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)); }

run_suite() {  # dir, ctest args...
  local dir=$1; shift
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 600 "$@"
}

# With the sanitizers, the whole suite runs under ASan+UBSan and under TSan
# below, and the Release build holds what users install and run: libraries,
# tools, the examples and their tests, the benchmark's smoke run (a third
# build of the suite, at -O3, would cost ~10 more minutes). Without them,
# the whole suite runs here.
plain_labels=examples
[[ -n ${SKIP_SANITIZERS:-} ]] && plain_labels=
section "build (Release)"
cmake -S . -B build/release "${common[@]}" -DCMAKE_BUILD_TYPE=Release "-DWEBHOOKDB_TEST_LABELS=$plain_labels"
cmake --build build/release -j "$jobs"
section "tests (Release${plain_labels:+: examples and benchmark smoke run})"
run_suite build/release

section "clang-tidy (function size, swappable parameters)"
bash scripts/tidy.sh build/tidy

section "install + outside consumer (find_package)"
prefix=$(mktemp -d /tmp/webhookdb-prefix.XXXXXX)
cmake --install build/release --prefix "$prefix" >/dev/null
cmake -S examples/consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/consumer -j "$jobs"
build/consumer/consumer
# COMPONENTS core memory testing: neither libpqxx nor libcurl on its link line.
if ninja -C build/consumer -t commands consumer | tail -1 | grep -E 'pqxx|curl'; then
  echo "examples/consumer links libpqxx or libcurl" >&2; exit 1
fi
# Old consumers: no COMPONENTS, webhookdb::webhookdb.
cmake -S examples/consumer_all -B build/consumer_all -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/consumer_all -j "$jobs"
build/consumer_all/consumer_all
rm -rf "$prefix"

if [[ -z ${SKIP_SANITIZERS:-} ]]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # One third-party leak (libpq's failed-connect path) is suppressed; see the file.
  export LSAN_OPTIONS=suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0
  section "build (ASan+UBSan)"
  # -O0 with line tables only: the quickest sanitizer build that still gives
  # file:line in reports. Shared libraries: the whole suite then runs against
  # the components as a shared-library user gets them (hidden visibility, only
  # WEBHOOKDB_EXPORT exported, cmake/webhookdb.map), and the ~60 test links
  # no longer copy the components into each executable. Release stays static.
  # clang 14 and lld: under ASan at -O0 clang compiles our unity sources in
  # about half GCC's time (measured 22.0 s against 47.7 s, 15.7 against 33.7),
  # the largest stage of the run. GCC builds the Release tree above, so both
  # compilers keep the code -Werror clean.
  cmake -S . -B build/asan "${common[@]}" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" \
    -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld -DCMAKE_SHARED_LINKER_FLAGS=-fuse-ld=lld \
    -DBUILD_SHARED_LIBS=ON -DWEBHOOKDB_SANITIZE=address,undefined \
    -DWEBHOOKDB_BUILD_EXAMPLES=OFF -DWEBHOOKDB_BUILD_BENCH=OFF
  cmake --build build/asan -j "$jobs"
  section "tests (ASan+UBSan)"
  run_suite build/asan -LE no_sanitizer

  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  section "build (TSan)"
  cmake -S . -B build/tsan "${common[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DWEBHOOKDB_SANITIZE=thread -DWEBHOOKDB_BUILD_EXAMPLES=OFF -DWEBHOOKDB_BUILD_BENCH=OFF \
    "-DWEBHOOKDB_TEST_LABELS=${TSAN_TEST_LABELS-concurrency}"
  cmake --build build/tsan -j "$jobs"
  section "tests (TSan)"
  # The fault matrix (two multi-process runs of about 2 minutes each) and the
  # other tests that start several webhookdb-worker processes (label
  # `process`: jobs, schedules, OAuth2, metrics, the admin CLI) run under
  # ASan+UBSan only, to keep the whole run under 35 minutes; their threads
  # are TSan's in the in-process worker and queue tests.
  run_suite build/tsan -LE fault_matrix

  section "fuzz (libFuzzer, ASan+UBSan, ${FUZZ_SECONDS:-10} s a target)"
  FUZZ_SECONDS=${FUZZ_SECONDS:-10} bash scripts/fuzz.sh
fi

section "done"
