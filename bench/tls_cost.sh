#!/usr/bin/env bash
# The cost of TLS (issue 17) on tcp, or of x509 on dpdk: precopy migrations between two ternd on this host,
# interleaved in one run: the pre-shared key alone (psk) and TLS 1.3 on top of it (tls+psk),
# with throwaway x509 credentials. One JSON line per migration from bench/mem_cost.sh, then a
# summary line per mode: medians of throughput (guest bytes moved per second of total time)
# and of CPU seconds per GiB moved on each side.
#   bench/tls_cost.sh BUILD_DIR [RUNS] [GUEST_SPEC] [KIND]
# RUNS (default 3) migrations per mode; GUEST_SPEC as in mem_cost.sh (default: 1 GiB, half of
# it written, so about 512 MiB move); KIND tcp (default) or dpdk (memif; there x509 runs a TLS
# 1.3 handshake per channel in frames and keys the sealed control channel; pages are not in
# TLS, so throughput should not move, and setup time shows the handshake's cost).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?build dir}
runs=${2:-3}
spec=${3:-threads,vcpus=1,ram=1G,wss=50%,rate=1,pattern=random}
kind=${4:-tcp}
. "$here/../scripts/lib.sh"
creds=$(mktemp -d /tmp/tls-cost.XXXXXX)
trap 'rm -rf "$creds"' EXIT
make_throwaway_tls "$creds/x509" || { echo "tls_cost: cannot make credentials (openssl?)" >&2; exit 1; }
out="$creds/runs.jsonl"
for i in $(seq "$runs"); do
  "$here/mem_cost.sh" "$build" "$spec" "$kind" | tee -a "$out"
  TLS_CREDS="$creds/x509" "$here/mem_cost.sh" "$build" "$spec" "$kind" | tee -a "$out"
done
python3 "$here/cost_summary.py" "$out" psk tls+psk
