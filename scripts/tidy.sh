#!/usr/bin/env bash
# clang-tidy over the library's own code (src/, and the public headers they
# include), with the two checks that hold the house style of shared/STYLE.md 6:
# readability-function-size (functions of about a screen; thresholds in
# .clang-tidy) and bugprone-easily-swappable-parameters. Any finding fails.
# A justified exception is a NOLINTNEXTLINE naming the check and the reason.
# The other checks of .clang-tidy are for editors and local runs: they still
# report findings nobody has triaged, so CI does not gate on them.
#   scripts/tidy.sh [build-dir]      (default build/tidy; only configured, never built)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dir=${1:-build/tidy}
# Per-file compile commands (no unity build), tests and examples left out:
# the gate covers the library.
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  -DWEBHOOKDB_BUILD_TESTS=OFF -DWEBHOOKDB_BUILD_EXAMPLES=OFF -DWEBHOOKDB_BUILD_BENCH=OFF >/dev/null
checks='-*,readability-function-size,bugprone-easily-swappable-parameters'
log=$(mktemp /tmp/webhookdb-tidy.XXXXXX)
rc=0
# (run-clang-tidy 14 has no -warnings-as-errors: a finding is a "warning:"
# line in its output, a file it could not parse an "error:" line.)
run-clang-tidy -p "$dir" -quiet -j "$(nproc)" -checks="$checks" \
  -header-filter="^$root/(include/webhookdb|src)/" "^$root/src/" >"$log" 2>&1 || rc=$?
grep -v '^[0-9]* warnings\? generated\.$\|^Suppressed [0-9]* warnings\|^Use -header-filter\|NOLINT\|^clang-tidy-[0-9]* .*-p=' "$log" || true
grep -q 'warning:\|error:' "$log" && rc=1
rm -f "$log"
if [[ $rc -ne 0 ]]; then
  echo "tidy: clang-tidy found the findings above (fix them, or NOLINTNEXTLINE naming the check and the reason)" >&2
  exit 1
fi
echo "tidy: clean (readability-function-size, bugprone-easily-swappable-parameters over src/ and include/webhookdb)"
