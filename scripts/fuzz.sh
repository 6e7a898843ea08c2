#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/reliability/fuzz) with clang under
# ASan+UBSan in build/fuzz, then runs each for a bounded time on a copy of its
# committed seed corpus (tests/reliability/fuzz/corpus/<target>/). Exits
# non-zero on any crash, leak, UB, timeout or out-of-memory; the input that
# did it is saved as build/fuzz/artifacts/<target>/crash-... (replay it with
# build/fuzz/tests/reliability/fuzz/fuzz_<target> <file>).
#
#   scripts/fuzz.sh                      every target, 60 s each
#   FUZZ_SECONDS=10 scripts/fuzz.sh      10 s each (CI)
#   scripts/fuzz.sh time json_nul        only these targets
#   FUZZ_JOBS=2 ...                      parallel builds (default 2)
#   FUZZ_PARALLEL=1 ...                  targets fuzzed at once (default: one per core)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

started=$SECONDS
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-2}
cxx=${FUZZ_CXX:-clang++-14}
build=build/fuzz
all_targets=(payload_row json_nul json_limits link_header retry_after time webhook_signature)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")

flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
cmake -S . -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DWEBHOOKDB_FUZZ=ON -DWEBHOOKDB_BUILD_TESTS=ON -DWEBHOOKDB_TEST_DIRS=reliability \
  -DWEBHOOKDB_BUILD_EXAMPLES=OFF -DWEBHOOKDB_BUILD_TOOLS=OFF -DWEBHOOKDB_BUILD_BENCH=OFF >/dev/null
build_targets=()
for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build "$build" -j "$jobs" --target "${build_targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# One libFuzzer process per core at a time (each is single-threaded).
run_one() {  # target: writes ok/FAILED and a summary to $build/$t.result
  local t=$1 seeds=tests/reliability/fuzz/corpus/$1 work=$build/corpus/$1 artifacts=$build/artifacts/$1
  local log=$build/$1.log
  mkdir -p "$work" "$artifacts"
  # The first corpus directory receives new inputs; the committed seeds stay untouched.
  if "$build/tests/reliability/fuzz/fuzz_$t" "$work" "$seeds" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    local runs cov
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    echo "ok ($runs runs, coverage $cov)" >"$build/$t.result"
  else
    echo "FAILED" >"$build/$t.result"
  fi
}
parallel=${FUZZ_PARALLEL:-$(nproc)}
for t in "${targets[@]}"; do
  [[ -d tests/reliability/fuzz/corpus/$t ]] || { echo "fuzz: no seed corpus tests/reliability/fuzz/corpus/$t" >&2; exit 2; }
  rm -f "$build/$t.result"
done
running=0
for t in "${targets[@]}"; do
  if ((running >= parallel)); then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait || true
failed=()
for t in "${targets[@]}"; do
  result=$(cat "$build/$t.result" 2>/dev/null || echo "FAILED (no result)")
  printf 'fuzz %-18s %3ss ... %s\n' "$t" "$seconds" "$result"
  if [[ $result != ok* ]]; then
    failed+=("$t")
    grep -E 'ERROR|invariant broken|SUMMARY|Test unit written|uncaught exception|==[0-9]+==' "$build/$t.log" | head -20 >&2 || true
    echo "  full log: $build/$t.log" >&2
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: failures in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets clean ($((SECONDS - started)) s with the build)"
