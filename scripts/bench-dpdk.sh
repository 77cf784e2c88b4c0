#!/usr/bin/env bash
# Bulk throughput of the dpdk transport over memif against memcpy and against dpdk-testpmd
# forwarding between two memif ports, measured in one run on this machine, printed as ratios;
# plus the urgent request round trip under bulk load, and the host's own two-thread reference
# (bench/crosscore_bench.cc). Needs a build with the dpdk transport and
# Google Benchmark (TERN_BUILD_DIR, default build).
set -euo pipefail
build=${TERN_BUILD_DIR:-build}
bench=$build/bench/tern-bench-micro
[ -x "$bench" ] || { echo "bench-dpdk: $bench not built" >&2; exit 1; }
min_time=${TERN_BENCH_MIN_TIME:-1}
out=$(mktemp)
trap 'rm -f "$out" "$out.threads"' EXIT

"$bench" --benchmark_filter='BM_Memcpy/pages_2m|BM_Memcpy/pages_4k|BM_DpdkBulk/|BM_DpdkUrgent' \
  --benchmark_min_time="$min_time" --benchmark_format=json 2>/dev/null >"$out"
# The two-thread pipeline depends most on the host (two cores, each end on one), so it runs 5
# times, interleaved with BM_CrossCoreRing (the host's own two-thread reference: one hand-off
# copy through a ring, nothing else); each row gives the median of the 5 per-run medians.
"$bench" --benchmark_filter='BM_DpdkBulkThreads|BM_CrossCoreRing' --benchmark_repetitions=5 \
  --benchmark_enable_random_interleaving=true \
  --benchmark_min_time="$min_time" --benchmark_format=json 2>/dev/null >"$out.threads"

# testpmd: io forwarding between two memif ports of one process on one core, 8 KiB packets
# (the size of a tern segment): bench/ternbench/testpmd.py, the same reference tern-bench uses.
testpmd_gbps=$(PYTHONPATH="$(dirname "$0")/../bench" python3 -m ternbench.testpmd 2>/dev/null || true)

python3 - "$out" "${testpmd_gbps:-}" "$out.threads" <<'PY'
import json, statistics, sys
runs = {b["name"]: b for b in json.load(open(sys.argv[1]))["benchmarks"]}
# Repetitions of the two-thread rows: one entry per run, folded into a median row here.
reps = {}
for b in json.load(open(sys.argv[3]))["benchmarks"]:
    if b.get("run_type") == "iteration" and not b.get("error_occurred"):
        reps.setdefault(b["run_name"], []).append(b)
for name, rs in reps.items():
    med = lambda k: statistics.median(b[k] for b in rs if k in b)
    runs[name] = {"bytes_per_second": med("bytes_per_second"), "vs_memcpy": med("vs_memcpy"),
                  "vs_memcpy_min": min(b["vs_memcpy"] for b in rs),
                  "vs_memcpy_max": max(b["vs_memcpy"] for b in rs),
                  "per_run": [b["vs_memcpy"] for b in rs]}
def gbps(name):
    b = runs.get(name)
    return b["bytes_per_second"] / 1e9 if b and "bytes_per_second" in b else None
memcpy2m, memcpy4k = gbps("BM_Memcpy/pages_2m"), gbps("BM_Memcpy/pages_4k")
rows = [("memcpy 2M pages", memcpy2m, memcpy2m), ("memcpy 4K pages", memcpy4k, memcpy4k),
        ("dpdk memif 2M pages", gbps("BM_DpdkBulk/memif_pages_2m"), memcpy2m),
        ("dpdk memif 2M, tx copy", gbps("BM_DpdkBulk/memif_copy_pages_2m"), memcpy2m),
        ("dpdk memif 2M, 2 threads", gbps("BM_DpdkBulkThreads/memif_pages_2m/real_time"), memcpy2m),
        ("host 2-thread ring, 8K", gbps("BM_CrossCoreRing/real_time"), memcpy2m),
        ("dpdk memif 4K pages", gbps("BM_DpdkBulk/memif_pages_4k"), memcpy4k),
        ("dpdk net_ring 2M pages", gbps("BM_DpdkBulk/ring_pages_2m"), memcpy2m)]
tp = float(sys.argv[2]) if sys.argv[2] else None
# vs_memcpy: BM_DpdkBulk's own median of per-iteration ratios to a memcpy of the same bytes
# run right after each transfer (robust to load drift); the first column divides by BM_Memcpy.
inter = {"dpdk memif 2M pages": "BM_DpdkBulk/memif_pages_2m",
         "dpdk memif 2M, 2 threads": "BM_DpdkBulkThreads/memif_pages_2m/real_time",
         "host 2-thread ring, 8K": "BM_CrossCoreRing/real_time",
         "dpdk memif 2M, tx copy": "BM_DpdkBulk/memif_copy_pages_2m",
         "dpdk memif 4K pages": "BM_DpdkBulk/memif_pages_4k",
         "dpdk net_ring 2M pages": "BM_DpdkBulk/ring_pages_2m"}
print("%-28s %8s %10s %s" % ("bulk", "GB/s", "vs memcpy", "  interleaved median [min..max]"))
for name, v, ref in rows:
    if v is None: continue
    b = runs.get(inter.get(name, ""), {})
    extra = ("   %.2f [%.2f..%.2f]" % (b["vs_memcpy"], b["vs_memcpy_min"], b["vs_memcpy_max"])
             if "vs_memcpy" in b else "")
    print("%-28s %8.2f %9.0f%%%s" % (name, v, 100 * v / ref, extra))
    per_run = runs.get(inter.get(name, ""), {}).get("per_run")
    if per_run:
        print("%-28s %s" % ("", "   per run: " + " ".join("%.2f" % r for r in per_run)))
if tp:
    print("%-28s %8.2f %9.0f%%" % ("testpmd memif io fwd 8K", tp, 100 * tp / memcpy2m))
    d = gbps("BM_DpdkBulk/memif_pages_2m")
    if d: print("dpdk memif 2M / testpmd memif: %.0f%%" % (100 * d / tp))
d2, ring = gbps("BM_DpdkBulkThreads/memif_pages_2m/real_time"), gbps("BM_CrossCoreRing/real_time")
if d2 and ring:
    print("dpdk memif 2M, 2 threads / host 2-thread ring: %.0f%%" % (100 * d2 / ring))
else:
    print("testpmd: not measured (dpdk-testpmd missing or failed)")
for key, what in (("memif_idle", "idle link"), ("memif_under_bulk", "under bulk load")):
    u = runs.get("BM_DpdkUrgentRoundTrip/%s/real_time" % key)
    if u:
        print("urgent round trip, %s (memif): %.1f us real, %.1f us CPU%s" %
              (what, u["real_time"], u["cpu_time"],
               " (bulk %.2f GB/s meanwhile)" % u["bulk_GBps"] if u.get("bulk_GBps") else ""))
PY
