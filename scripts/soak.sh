#!/usr/bin/env bash
# scripts/soak.sh [N]: runs the fault-injection matrix (tests/fault) N times (default 1) and
# prints the counts: runs, outcomes (completed despite the fault, failed then retried,
# recovered, survivor failed clearly, skipped), failures by cause, test failures, pages lost
# (must be 0). The whole matrix unless TERN_FAULT_CASES says otherwise (a list of case names or
# prefixes, "ci" for the CI set). Builds ternd and the matrix in build/ (TERN_BUILD_PREFIX).
# Raw outcomes: one JSON line per case in $TERN_FAULT_RECORD (default build/soak/record.jsonl).
# Exits non-zero if any case failed or any page was lost. Needs root (namespaces, userfaultfd).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
n=${1:-1}
[[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "usage: scripts/soak.sh [N]   (N >= 1 rounds of the matrix)" >&2; exit 2; }
dir=${TERN_BUILD_PREFIX:-build}
meson_setup "$dir" -Dbuildtype=debugoptimized || die "meson setup $dir failed"
ninja -C "$dir" -j "${TERN_JOBS:-2}" control/ternd tests/fault/fault_matrix_test || die "build failed"
mkdir -p "$dir/soak"
record=${TERN_FAULT_RECORD:-$dir/soak/record.jsonl}
: >"$record"
export TERND=$TERN_ROOT/$dir/control/ternd TERN_FAULT_RECORD=$record
export TERN_FAULT_CASES=${TERN_FAULT_CASES:-all}
t0=$SECONDS
for ((i = 1; i <= n; i++)); do
  info "round $i of $n ($((SECONDS - t0)) s so far)"
  "$dir/tests/fault/fault_matrix_test" --gtest_brief=1 >"$dir/soak/round-$i.log" 2>&1 ||
    bad "round $i: failures (see $dir/soak/round-$i.log)"
done
python3 "$TERN_ROOT/scripts/soak-summary.py" "$record" "$n" "$((SECONDS - t0))"
