#!/usr/bin/env bash
# One precopy migration between two ternd processes on this host, with the figures issue 12
# asks for: total and setup time, CPU seconds and minor faults of each ternd during the
# migration (from /proc/PID/stat, read when `migrate --wait` returns; the destination's also
# after it verified every page), and the destination's verification. `migrate --wait` samples
# every 20 ms, so the figures at its return hold at most ~20 ms of the destination's page
# verification (which starts once it acknowledges completion; `*_with_verify` include it all).
#   bench/mem_cost.sh BUILD_DIR [GUEST_SPEC] [URI_KIND]
# THREADS=1 adds "threads": CPU s per thread name of each side during the migration
# (bench/thread_cpu.py; workers that exit are counted to their last 5 ms sample), and each
# side's runqueue wait (runnable, waiting for a CPU: a slow run on a busy host shows it there).
# PERF=DIR records each side during the migration (perf record -e cpu-clock -g) into
# DIR/src.data and DIR/dst.data, and counts task-clock, page faults and context switches
# into DIR/src.stat and DIR/dst.stat. PERF_EVENT=page-faults records where the faults are
# instead (every fault, -c 1); PERF_CALLGRAPH=dwarf unwinds without frame pointers.
# TLS_CREDS=DIR runs both sides with --tls-creds DIR as well (TLS 1.3 on every tcp channel, on
# top of the key; on dpdk a TLS 1.3 handshake per channel, in frames, keys the sealed control
# channel, tls-hostname localhost; bench/tls_cost.sh alternates the two).
# PAGE_INTEGRITY=1 sets __io.github.tern_page-integrity on both sides (a tag per page frame,
# checked; bench/integrity_cost.sh alternates it with the key alone).
# Prints one JSON line. Example, two builds alternated:
#   for i in 1 2 3; do bench/mem_cost.sh /work/base/build; bench/mem_cost.sh build; done
set -euo pipefail
build=${1:?build dir}
spec=${2:-threads,vcpus=1,ram=2G,wss=50%,rate=1,pattern=random}
kind=${3:-tcp}
dir=$(mktemp -d /tmp/mem-cost.XXXXXX)
ternd=$build/control/ternd
ternctl=$build/control/ternctl
cleanup() {
  "$ternctl" -s "$dir/s.sock" quit >/dev/null 2>&1 || true
  "$ternctl" -s "$dir/d.sock" quit >/dev/null 2>&1 || true
  sleep 0.3
  [[ -n ${spid:-} ]] && kill "$spid" 2>/dev/null || true
  [[ -n ${dpid:-} ]] && kill "$dpid" 2>/dev/null || true
  [[ -n ${KEEP:-} ]] && cp "$dir/summary.json" /tmp/mem-cost-last.json; rm -rf "$dir"
}
trap cleanup EXIT
# minflt utime+stime(ticks) of a process
stat_of() { awk '{print $10, $14 + $15}' "/proc/$1/stat"; }

incoming="$kind:127.0.0.1:0"
[[ $kind == dpdk ]] && incoming="dpdk:${DPDK_OPTS:-}"  # memif on a fresh socket (DPDK_OPTS=net_memif0,rsize=9: PMD options)
(umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/key.psk")  # throwaway key
trust=(--auth-key-file "$dir/key.psk")
[[ -n ${TLS_CREDS:-} ]] && trust+=(--tls-creds "$TLS_CREDS")
# dpdk: both sides start their EAL before the migration, as a daemon that migrates more than
# once would (a build without the option starts it in the source's setup).
if [[ $kind == dpdk ]] && grep -q -- --prepare-transport <<<"$("$ternd" --help 2>&1)"; then
  trust+=(--prepare-transport dpdk)
fi
listen="$incoming"
[[ -n ${PAGE_INTEGRITY:-} ]] && listen=defer  # parameters first, then migrate-incoming
"$ternd" -s "$dir/d.sock" "${trust[@]}" --incoming "$listen" >"$dir/d.log" 2>&1 &
dpid=$!
"$ternd" -s "$dir/s.sock" "${trust[@]}" --guest "$spec" --prefill >"$dir/s.log" 2>&1 &
spid=$!
for _ in $(seq 100); do [[ -S $dir/d.sock && -S $dir/s.sock ]] && break; sleep 0.1; done
if [[ -n ${PAGE_INTEGRITY:-} ]]; then
  "$ternctl" -s "$dir/d.sock" set-parameter page-integrity on >/dev/null
  "$ternctl" --timeout 120 -s "$dir/s.sock" set-parameter page-integrity on >/dev/null
  "$ternctl" -s "$dir/d.sock" incoming "$incoming" >/dev/null
fi
uri=$("$ternctl" -s "$dir/d.sock" incoming)
# x509 on dpdk: its URI names no host, so the source names the destination's certificate.
if [[ -n ${TLS_CREDS:-} && $kind != tcp ]]; then
  "$ternctl" --timeout 120 -s "$dir/s.sock" raw migrate-set-parameters \
    '{"tls-hostname": "localhost"}' >/dev/null
fi
# The source prefills before it answers: wait until it does.
"$ternctl" --timeout 120 -s "$dir/s.sock" status >/dev/null
read -r s_flt0 s_cpu0 < <(stat_of $spid)
read -r d_flt0 d_cpu0 < <(stat_of $dpid)
if [[ -n ${THREADS:-} ]]; then
  python3 "$(dirname "$0")/thread_cpu.py" "$dir/threads.json" src=$spid dst=$dpid &
  tpid=$!
  sleep 0.3  # its first sample before the migration starts
fi
if [[ -n ${PERF:-} ]]; then
  mkdir -p "$PERF"
  perf_pids=()
  for side in src dst; do
    pid=$spid; [[ $side == dst ]] && pid=$dpid
    if [[ ${PERF_EVENT:-cpu-clock} == cpu-clock ]]; then rate=(-F 2000); else rate=(-c 1); fi
    perf record -q -e "${PERF_EVENT:-cpu-clock}" "${rate[@]}" --call-graph "${PERF_CALLGRAPH:-fp}" -p "$pid" -o "$PERF/$side.data" 2>/dev/null &
    perf_pids+=($!)
    perf stat -e task-clock,page-faults,context-switches,cpu-migrations -p "$pid" \
      -o "$PERF/$side.stat" &
    perf_pids+=($!)
  done
  sleep 0.5
fi
t0=$(date +%s.%N)
"$ternctl" --timeout 600 -s "$dir/s.sock" migrate "$uri" --wait --interval 0.02 >"$dir/m.log" 2>&1 || true
t1=$(date +%s.%N)
read -r s_flt1 s_cpu1 < <(stat_of $spid)
read -r d_flt1 d_cpu1 < <(stat_of $dpid)
if [[ -n ${tpid:-} ]]; then kill -TERM "$tpid"; wait "$tpid" || true; fi
if [[ -n ${PERF:-} ]]; then kill -INT "${perf_pids[@]}"; wait "${perf_pids[@]}" || true; fi
# The destination verifies after it acknowledges: wait for its report.
for _ in $(seq 300); do
  "$ternctl" -s "$dir/d.sock" --json status 2>/dev/null | grep -q '"completed"' && break
  sleep 0.1
done
sleep 0.5
read -r d_flt2 d_cpu2 < <(stat_of $dpid)  # after the destination verified every page
"$ternctl" -s "$dir/s.sock" --json summary --destination "$dir/d.sock" >"$dir/summary.json" 2>&1 || true
hz=$(getconf CLK_TCK)
python3 - "$dir/summary.json" <<PY
import json, sys
raw = open(sys.argv[1]).read()
try:
    s = json.loads(raw)
except Exception:
    s = {"unparsed": raw[:400]}
src, dst, ver = s.get("source", {}), s.get("destination", {}), s.get("verification", {})
out = {
  "build": "$build", "security": src.get("__io.github.tern_channel-security"),
  "page_integrity": src.get("__io.github.tern_page-integrity", False),
  "mode": (src.get("__io.github.tern_channel-security") or "?") +
          ("+integrity" if src.get("__io.github.tern_page-integrity") else ""),
  "wall_s": round($t1 - $t0, 3), "transferred": src.get("ram", {}).get("transferred"),
  "src_total_ms": src.get("total-time"), "src_setup_ms": src.get("setup-time"),
  "dst_total_ms": dst.get("total-time"), "dst_setup_ms": dst.get("setup-time"),
  "src_cpu_s": round(($s_cpu1 - $s_cpu0) / $hz, 2), "dst_cpu_s": round(($d_cpu1 - $d_cpu0) / $hz, 2),
  "src_minflt": $s_flt1 - $s_flt0, "dst_minflt": $d_flt1 - $d_flt0,
  "dst_minflt_with_verify": $d_flt2 - $d_flt0, "dst_cpu_s_with_verify": round(($d_cpu2 - $d_cpu0) / $hz, 2),
  "status": [src.get("status"), dst.get("status")],
  "verified_ok": ver.get("ok"), "mismatches": ver.get("mismatches"),
  "touched_mismatches": ver.get("touched-mismatches"), "pages_checked": ver.get("pages-checked"),
}
import os
if os.path.exists("$dir/threads.json"):
    out["threads"] = json.load(open("$dir/threads.json"))
print(json.dumps(out))
PY
