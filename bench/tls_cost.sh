#!/usr/bin/env bash
# The cost of TLS on tcp (issue 17): precopy migrations between two ternd on this host,
# interleaved in one run: the pre-shared key alone (psk) and TLS 1.3 on top of it (tls+psk),
# with throwaway x509 credentials. One JSON line per migration from bench/mem_cost.sh, then a
# summary line per mode: medians of throughput (guest bytes moved per second of total time)
# and of CPU seconds per GiB moved on each side.
#   bench/tls_cost.sh BUILD_DIR [RUNS] [GUEST_SPEC]
# RUNS (default 3) migrations per mode; GUEST_SPEC as in mem_cost.sh (default: 1 GiB, half of
# it written, so about 512 MiB move).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?build dir}
runs=${2:-3}
spec=${3:-threads,vcpus=1,ram=1G,wss=50%,rate=1,pattern=random}
. "$here/../scripts/lib.sh"
creds=$(mktemp -d /tmp/tls-cost.XXXXXX)
trap 'rm -rf "$creds"' EXIT
make_throwaway_tls "$creds/x509" || { echo "tls_cost: cannot make credentials (openssl?)" >&2; exit 1; }
out="$creds/runs.jsonl"
for i in $(seq "$runs"); do
  "$here/mem_cost.sh" "$build" "$spec" tcp | tee -a "$out"
  TLS_CREDS="$creds/x509" "$here/mem_cost.sh" "$build" "$spec" tcp | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    if r.get("status") != ["completed", "completed"] or r.get("mismatches"):
        print(json.dumps({"skipped": r}))
        continue
    by.setdefault(r["security"], []).append(r)
summary = {}
for mode, rs in by.items():
    gib = [r["transferred"] / 2**30 for r in rs]
    summary[mode] = {
        "runs": len(rs),
        "MiB_per_s": round(statistics.median(
            g * 1024 / (r["src_total_ms"] / 1000) for g, r in zip(gib, rs)), 1),
        "src_cpu_s_per_GiB": round(statistics.median(r["src_cpu_s"] / g for g, r in zip(gib, rs)), 2),
        "dst_cpu_s_per_GiB": round(statistics.median(r["dst_cpu_s"] / g for g, r in zip(gib, rs)), 2),
    }
    print(json.dumps({"mode": mode, **summary[mode]}))
if "psk" in summary and "tls+psk" in summary:
    a, b = summary["psk"], summary["tls+psk"]
    print(json.dumps({"tls_over_psk": {
        "throughput": round(b["MiB_per_s"] / a["MiB_per_s"], 2),
        "src_cpu_per_GiB": round(b["src_cpu_s_per_GiB"] / a["src_cpu_s_per_GiB"], 2),
        "dst_cpu_per_GiB": round(b["dst_cpu_s_per_GiB"] / a["dst_cpu_s_per_GiB"], 2)}}))
PY
