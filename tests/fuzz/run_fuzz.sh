#!/usr/bin/env bash
# run_fuzz.sh BINARY SEED_DIR WORK_DIR [SECONDS]: fuzzes BINARY (libFuzzer) for SECONDS
# (default $TERN_FUZZ_SECONDS or 20) starting from SEED_DIR, writing new inputs to WORK_DIR
# (the seed corpus in the tree is never written) and a crash reproducer there as well. Prints
# libFuzzer's final stats; "executions: N" is the line to read.
set -euo pipefail
bin=$1 seed=$2 work=$3 secs=${4:-${TERN_FUZZ_SECONDS:-20}}
mkdir -p "$work/corpus" "$work/artifacts"
log=$work/last.log
set +e
# -error_exitcode: libFuzzer's default, 77, is what meson reads as "skipped"; a crash must fail.
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -error_exitcode=1 -timeout_exitcode=1 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "$seed" >"$log" 2>&1
rc=$?
set -e
grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" || true
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
echo "$(basename "$bin"): executions: ${execs:-?} in ${secs}s, exit $rc"
if [ $rc -ne 0 ]; then
  tail -n 60 "$log"
  echo "reproducer(s): $(ls "$work/artifacts" 2>/dev/null | tr '\n' ' ')"
fi
exit $rc
