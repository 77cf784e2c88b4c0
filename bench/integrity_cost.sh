#!/usr/bin/env bash
# The cost of page integrity (__io.github.tern_page-integrity, issue 17): precopy migrations
# between two ternd on this host over TRANSPORT (tcp, or dpdk: memif), interleaved in one run:
# the pre-shared key alone (psk) and page integrity on top of it (psk+integrity). One JSON line
# per migration from bench/mem_cost.sh, then per mode the medians of throughput and of CPU
# seconds per GiB moved on each side, and the ratios (bench/cost_summary.py).
#   bench/integrity_cost.sh BUILD_DIR [RUNS] [TRANSPORT] [GUEST_SPEC]
# RUNS (default 3) migrations per mode; GUEST_SPEC as in mem_cost.sh (default: 1 GiB, half of
# it written, so about 512 MiB move).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?build dir}
runs=${2:-3}
transport=${3:-tcp}
spec=${4:-threads,vcpus=1,ram=1G,wss=50%,rate=1,pattern=random}
work=$(mktemp -d /tmp/integrity-cost.XXXXXX)
trap 'rm -rf "$work"' EXIT
out="$work/runs.jsonl"
for i in $(seq "$runs"); do
  "$here/mem_cost.sh" "$build" "$spec" "$transport" | tee -a "$out"
  PAGE_INTEGRITY=1 "$here/mem_cost.sh" "$build" "$spec" "$transport" | tee -a "$out"
done
python3 "$here/cost_summary.py" "$out" psk psk+integrity
