#!/usr/bin/env bash
# Bench: tern rdma bulk throughput vs ib_write_bw and urgent round trip vs ib_write_lat, side by
# side in one soft-RoCE VM (or natively where an RDMA device is), printed as ratios.
#   tests/rdma/bench.sh [BUILD_DIR]     (default: build)
# Env: TERN_BENCH_MIB (default 128), TERN_BENCH_ITERS (round trips, default 2000),
# TERN_BENCH_ROUNDS (alternating bandwidth runs; default 3).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
bin=$build/tests/rdma/rdma_bench
[ -x "$bin" ] || { echo "no $bin: build first (ninja -C $build)" >&2; exit 2; }

if [ "${TERN_BENCH_INSIDE:-0}" != 1 ]; then
  if [ -n "$(ls /sys/class/infiniband 2>/dev/null)" ]; then
    TERN_BENCH_INSIDE=1 exec "$0" "$build"
  fi
  TERN_BENCH_INSIDE=1 exec "$here/vm.sh" --timeout 600 -- env TERN_BENCH_INSIDE=1 "$0" "$build"
fi

ip=${TERN_RDMA_IP:-127.0.0.1}
dev=$(ls /sys/class/infiniband | head -n 1)
mib=${TERN_BENCH_MIB:-128}
iters=${TERN_BENCH_ITERS:-2000}
n64k=$((mib * 16))
echo "== bench on $dev ($ip): $mib MiB of 64 KiB writes, $iters round trips"

# ib_write_bw: 64 KiB RDMA writes, one QP, same total size as tern's run. The two alternate,
# $rounds times each, and the best of each counts (the host's other load is noise).
rounds=${TERN_BENCH_ROUNDS:-3}
ref_bw=0 tern_bw=0
ratios=()
for r in $(seq "$rounds"); do
  timeout 120 ib_write_bw -d "$dev" -s 65536 -n "$n64k" -F >/tmp/bw_srv.txt 2>&1 &
  sleep 1
  timeout 120 ib_write_bw -d "$dev" -s 65536 -n "$n64k" -F "$ip" >/tmp/bw_cli.txt 2>&1
  wait
  x=$(awk '$1 == 65536 && NF >= 4 {print $4; exit}' /tmp/bw_cli.txt)
  y=$(timeout 120 "$bin" bw "$mib" | awk '/^MB\/s/ {print $2}')
  echo "   round $r: ib_write_bw ${x:-?} MB/s, tern ${y:-?} MB/s, ratio $(awk -v a="${x:-0}" -v b="${y:-0}" 'BEGIN {printf "%.2f", (a > 0 ? b / a : 0)}')"
  [ -n "$x" ] && [ -n "$y" ] && ratios+=("$(awk -v a="${x:-0}" -v b="${y:-0}" 'BEGIN {printf "%.3f", (a > 0 ? b / a : 0)}')")
  ref_bw=$(awk -v a="$ref_bw" -v b="${x:-0}" 'BEGIN {print (b > a ? b : a)}')
  tern_bw=$(awk -v a="$tern_bw" -v b="${y:-0}" 'BEGIN {print (b > a ? b : a)}')
done
[ "$ref_bw" = 0 ] && ref_bw=
[ "$tern_bw" = 0 ] && tern_bw=

# ib_write_lat reports half the round trip; tern's figure is the whole round trip.
timeout 120 ib_write_lat -d "$dev" -s 32 -n "$iters" -F >/tmp/lat_srv.txt 2>&1 &
sleep 1
timeout 120 ib_write_lat -d "$dev" -s 32 -n "$iters" -F "$ip" >/tmp/lat_cli.txt 2>&1
wait
ref_half=$(awk '$1 == 32 && NF >= 5 {print $5; exit}' /tmp/lat_cli.txt)
tern_rtt=$(timeout 120 "$bin" lat "$iters" | awk '/^rtt_us/ {print $3}')

if [ -z "$ref_bw" ] || [ -z "$tern_bw" ] || [ -z "$ref_half" ] || [ -z "$tern_rtt" ]; then
  echo "bench: a run produced no figure"; tail -n 5 /tmp/bw_cli.txt /tmp/lat_cli.txt; exit 1
fi
med=$(printf '%s\n' "${ratios[@]:-0}" | sort -n | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
awk -v rb="$ref_bw" -v tb="$tern_bw" -v rh="$ref_half" -v tr="$tern_rtt" -v med="$med" 'BEGIN {
  printf "bulk:   ib_write_bw %8.1f MB/s   tern %8.1f MB/s   ratio %.2f of the bests (target >= 0.90); median of the per-round ratios %.2f\n", rb, tb, tb / rb, med
  printf "urgent: ib_write_lat rtt %6.2f us  tern rtt %6.2f us  ratio %.2f (tern / ib_write_lat)\n", 2 * rh, tr, tr / (2 * rh)
}'
