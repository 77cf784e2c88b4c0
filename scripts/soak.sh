#!/usr/bin/env bash
# scripts/soak.sh [N]: runs the fault-injection matrix (tests/fault) N times (default 1) and
# prints the counts: runs, outcomes (completed despite the fault, failed then retried,
# recovered, survivor failed clearly, skipped), failures by cause, test failures, pages lost
# (must be 0). The whole matrix unless TERN_FAULT_CASES says otherwise (a list of case names or
# prefixes, "ci" for the CI set; the rdma row joins "all" only where an RDMA device is, else
# TERN_FAULT_CASES=rdma skips it case by case). Builds ternd and the matrix in build/
# (TERN_BUILD_PREFIX).
# TERN_SOAK_JOBS=K (default 1) runs each round as K shards at once (GoogleTest sharding; each
# case has its own namespaces, sockets and directory): most of a case is waiting (a stop, a
# cut, a peer timeout), so shards overlap their waiting.
# Raw outcomes: one JSON line per case in $TERN_FAULT_RECORD (default build/soak/record.jsonl).
# Exits non-zero if any case failed or any page was lost. Needs root (namespaces, userfaultfd).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
n=${1:-1}
[[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "usage: scripts/soak.sh [N]   (N >= 1 rounds of the matrix)" >&2; exit 2; }
jobs=${TERN_SOAK_JOBS:-1}
[[ $jobs =~ ^[0-9]+$ ]] && [ "$jobs" -ge 1 ] || die "TERN_SOAK_JOBS=$jobs: a number of shards >= 1"
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
  pids=()
  for ((j = 0; j < jobs; j++)); do
    log=$dir/soak/round-$i.log
    [ "$jobs" -gt 1 ] && log=$dir/soak/round-$i-shard-$j.log
    GTEST_TOTAL_SHARDS=$jobs GTEST_SHARD_INDEX=$j \
      "$dir/tests/fault/fault_matrix_test" --gtest_brief=1 >"$log" 2>&1 &
    pids+=($!)
  done
  for ((j = 0; j < jobs; j++)); do
    wait "${pids[$j]}" || bad "round $i: failures (see $dir/soak/round-$i*.log)"
  done
done
python3 "$TERN_ROOT/scripts/soak-summary.py" "$record" "$n" "$((SECONDS - t0))"
