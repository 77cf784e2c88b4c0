#!/usr/bin/env bash
# Runs tern's whole test suite: installs missing Debian packages, then builds and tests
#   1. normal     build/       debugoptimized, every suite
#   2. asan       build-asan/  ASan+UBSan, every suite but rdma and fault, TERN_TEST_SCALE=small
#   3. tsan       build-tsan/  TSan, suite 'unit' (the concurrent parts)
#   4. fuzz       build-fuzz/  clang, libFuzzer + ASan+UBSan, suite 'fuzz': each target fuzzed
#                              TERN_FUZZ_SECONDS (default 20) from tests/fuzz/corpus/
# and ends with one line "N passed, M failed[, K skipped]" summed over the stages (GoogleTest
# cases). Exits non-zero if anything failed. Build dirs are reused, so re-runs are incremental.
set -uo pipefail

usage() {
  cat <<'TXT'
usage: scripts/test.sh [--quick] [--no-sanitizers] [--no-deps] [--stage NAME]...

  --quick           normal build only (same as --no-sanitizers)
  --no-sanitizers   skip the ASan+UBSan, TSan and fuzz stages
  --no-deps         do not check or install Debian packages
  --stage NAME      run only this stage (normal, asan, tsan, fuzz); repeatable

environment:
  TERN_BUILD_PREFIX   build dir prefix (default "build": build/, build-asan/, build-tsan/)
  TERN_JOBS           ninja -j (default 2)
  MESON_TEST_ARGS     extra arguments for `meson test` (e.g. "--repeat 3")
  TERN_FUZZ_SECONDS   seconds each fuzz target runs in the fuzz stage (default 20)
  TERN_TEST_RETRY     1 (default): a test case that failed an assertion runs once more, and if
                      it passes then it counts as passed and is reported FLAKY; 0: no retry.
                      Crashes, sanitizer reports, timeouts and fuzz findings are never retried.
TXT
}

stages=(normal asan tsan fuzz)
deps=1
chosen=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick | --no-sanitizers) stages=(normal) ;;
    --no-deps) deps=0 ;;
    --stage)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      chosen+=("$2")
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[ ${#chosen[@]} -gt 0 ] && stages=("${chosen[@]}")

. "$(dirname "$0")/lib.sh"

prefix=${TERN_BUILD_PREFIX:-build}
jobs=${TERN_JOBS:-2}
retry=${TERN_TEST_RETRY:-1}
read -r -a extra_test_args <<<"${MESON_TEST_ARGS:-}"
total_pass=0 total_fail=0 total_skip=0
declare -a stage_lines=()
start_all=$SECONDS

if [ $deps -eq 1 ]; then
  "$TERN_ROOT/scripts/install-deps.sh" || die "installing Debian packages failed"
fi

# Suites defined in a configured build dir, one per line, without the "tern:" prefix.
list_suites() {
  meson introspect --tests "$1" | python3 -c '
import json, sys
print("\n".join(sorted({s.split(":", 1)[-1] for t in json.load(sys.stdin) for s in t["suite"]})))'
}

# Ninja targets (paths relative to DIR) that the tests of the given suites need.
test_targets() {
  local dir=$1
  shift
  python3 - "$dir" "$@" <<'PY'
import json, os, subprocess, sys
d, suites = sys.argv[1], set(sys.argv[2:])
intro = lambda what: json.loads(subprocess.check_output(["meson", "introspect", what, d]))
ids = {i for t in intro("--tests") if {s.split(":", 1)[-1] for s in t["suite"]} & suites
       for i in t["depends"]}
for t in intro("--targets"):
    if t["id"] in ids:
        for f in t["filename"]:
            print(os.path.relpath(f, os.path.abspath(d)))
PY
}

# run_stage NAME DIR "SUITES|all" "SKIP_REASONS" BUILD ENV... -- MESON_OPTIONS...
# SKIP_REASONS: "suite=reason|suite=reason" for suites this stage leaves out on purpose.
# BUILD: "all" builds every target; "tests" only what the stage's tests need.
run_stage() {
  local name=$1 dir=$2 want=$3 skips=$4 build=$5
  shift 5
  local -a env=() opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do env+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  opts=("$@")
  local t0=$SECONDS

  header "stage $name: $dir (${opts[*]:-default options})"
  if ! meson_setup "$dir" "${opts[@]}"; then
    bad "stage $name: meson setup failed (errors above)"
    stage_result "$name" 0 1 0 "meson setup failed" $t0
    return
  fi

  # Which suites to run: the ones asked for that exist, minus the ones skipped with a reason.
  local -a present=() run=()
  mapfile -t present < <(list_suites "$dir")
  local s reason
  if [ "$want" = all ]; then want="${present[*]}"; fi
  for s in $want; do
    if ! printf '%s\n' "${present[@]}" | grep -qx "$s"; then
      info "  suite $s: no tests defined yet"
      continue
    fi
    reason=$(tr '|' '\n' <<<"$skips" | sed -n "s/^$s=//p")
    if [ -n "$reason" ]; then
      info "  suite $s: skipped in this stage: $reason"
      continue
    fi
    run+=("$s")
  done
  for s in "${present[@]}"; do
    case " $want " in *" $s "*) ;; *)
      reason=$(tr '|' '\n' <<<"$skips" | sed -n "s/^$s=//p")
      info "  suite $s: not run in this stage${reason:+: $reason}" ;;
    esac
  done

  local -a targets=()
  if [ "$build" = tests ]; then
    mapfile -t targets < <(test_targets "$dir" "${run[@]}")
    if [ ${#targets[@]} -eq 0 ]; then
      info "  no suites to run"
      stage_result "$name" 0 0 0 "" $t0
      return
    fi
  fi
  if ! ninja -C "$dir" -j "$jobs" "${targets[@]}"; then
    bad "stage $name: build failed (compiler errors above)"
    stage_result "$name" 0 1 0 "build failed" $t0
    return
  fi
  info "  built in $((SECONDS - t0))s"
  if [ ${#run[@]} -eq 0 ]; then
    info "  no suites to run"
    stage_result "$name" 0 0 0 "" $t0
    return
  fi

  info "  suites: ${run[*]}"
  local -a suite_args=()
  for s in "${run[@]}"; do suite_args+=(--suite "$s"); done
  # The log is testlog.json, or testlog-<wrapper>.json under --wrapper: the one left after rm.
  rm -f "$dir"/meson-logs/testlog*.json
  env "${env[@]}" meson test -C "$dir" --no-rebuild --print-errorlogs "${suite_args[@]}" \
    "${stage_test_args[@]}" "${extra_test_args[@]}" 2>&1 |
    grep -vE '^(Expected Fail|Unexpected Pass|Full log written)'
  local log summary counts p f k
  log=$(ls "$dir"/meson-logs/testlog*.json 2>/dev/null | head -n 1)
  summary=$(python3 "$TERN_ROOT/scripts/testlog-summary.py" "$log" "$name")
  counts=$(tail -n 1 <<<"$summary")
  sed '$d' <<<"$summary"
  read -r _ p f k <<<"$counts"
  if [ -z "$log" ]; then
    bad "stage $name: meson test wrote no log"
    f=$((f + 1))
  fi
  local note=""
  if [ -n "$log" ] && [ "$f" -gt 0 ] && [ "$retry" = 1 ] && [ "$name" != fuzz ]; then
    retry_failed_cases "$dir" "$log" "${env[@]}"
    p=$((p + retry_fixed)) f=$((f - retry_fixed))
    [ "$retry_fixed" -gt 0 ] && note="($retry_fixed flaky: failed, then passed when run again)"
  fi
  stage_result "$name" "$p" "$f" "$k" "$note" $t0
}

# retry_failed_cases DIR LOG ENV...: runs each test case that failed an assertion in LOG once
# more (crashes, sanitizer reports and timeouts are not retried); sets retry_fixed to the number
# that passed then, and prints each one as FLAKY, loudly: a flaky test is a bug to fix.
retry_failed_cases() {
  local dir=$1 log=$2
  shift 2
  local -a env=("$@")
  local saved="$log.first" test_name nfail filter rlog counts rp rf
  cp "$log" "$saved"
  retry_fixed=0
  while IFS=$'\t' read -r test_name nfail filter; do
    info "  retrying $test_name once: $filter"
    rm -f "$dir"/meson-logs/testlog*.json
    env "${env[@]}" meson test -C "$dir" --no-rebuild --print-errorlogs "${stage_test_args[@]}" \
      "$test_name" --test-args="--gtest_filter=$filter" </dev/null >"$dir/meson-logs/retry-$test_name.txt" 2>&1
    rlog=$(ls "$dir"/meson-logs/testlog*.json 2>/dev/null | head -n 1)
    rf=$nfail
    if [ -n "$rlog" ]; then
      counts=$(python3 "$TERN_ROOT/scripts/testlog-summary.py" "$rlog" retry | tail -n 1)
      read -r _ rp rf _ <<<"$counts"
      [ "$rp" -gt 0 ] || rf=$nfail
    fi
    if [ "$rf" -lt "$nfail" ]; then
      bad "  FLAKY $test_name: $((nfail - rf)) of $nfail failed case(s) passed when run again ($filter)"
      retry_fixed=$((retry_fixed + nfail - rf))
    else
      info "  $test_name failed again (see $dir/meson-logs/retry-$test_name.txt)"
    fi
  done < <(python3 "$TERN_ROOT/scripts/testlog-summary.py" --retryable "$saved")
  mv "$saved" "$log"
}

stage_result() {
  local name=$1 p=$2 f=$3 k=$4 note=$5 t0=$6
  total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + k))
  local line
  line=$(printf '%-7s %4d passed, %d failed, %d skipped  (%ds)%s' "$name" "$p" "$f" "$k" \
    $((SECONDS - t0)) "${note:+  $note}")
  stage_lines+=("$line")
  if [ "$f" -eq 0 ]; then ok "stage $line"; else bad "stage $line"; fi
}

# TSan maps its shadow at fixed addresses; kernels with large mmap_rnd_bits can place the
# binary inside it ("unexpected memory mapping"). Running with ASLR off avoids that.
tsan_wrapper=()
if setarch "$(uname -m)" -R true 2>/dev/null; then
  tsan_wrapper=(--wrapper "setarch $(uname -m) -R")
fi

# The rdma suite boots a soft-RoCE VM under TCG (tests/rdma/run.sh): once, in the normal stage.
rdma_skip="rdma=runs once, in the normal stage: its tests run inside an emulated-CPU soft-RoCE VM (minutes), where sanitizer builds would add nothing but time"
# The fault matrix kills, stops and cuts off real ternd processes (minutes of wall time): once,
# in the normal stage; scripts/soak.sh runs it longer.
fault_skip="fault=runs once, in the normal stage: whole ternd processes killed, stopped and cut off (minutes of wall time); scripts/soak.sh runs it longer"

sanitizer_env=(
  # The kvm suite runs natively where /dev/kvm works; its nested-KVM VM (tests/kvm/run.sh) boots
  # in the normal stage only, like the rdma suite's.
  "TERN_KVM_VM=never"
  "ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:print_summary=1"
  "UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1"
  "TERN_TEST_SCALE=small"
)

# Sanitizer builds are -O1 (what ASan's and TSan's authors advise) with line tables only (-g1):
# reports still name file:line. Compile time is most of CI's: with ASan+UBSan one file including
# nlohmann/json (tests/control/migration_json_test.cc) took 65 s at -O2 -g1, 34 s at -O1 -g1;
# full debug info adds about 40% more (engine/sender_test.cc: 18 s -> 10 s with -g1).
sanitizer_build=(-Doptimization=1 -Ddebug=true -Dcpp_args=-g1)

for stage in "${stages[@]}"; do
  stage_test_args=()
  case $stage in
    normal)
      run_stage normal "$prefix" all "" all -- -Dbuildtype=debugoptimized
      ;;
    asan)
      run_stage asan "$prefix-asan" all "$rdma_skip|$fault_skip" tests "${sanitizer_env[@]}" -- \
        -Db_sanitize=address,undefined -Db_lundef=false -Dbench=disabled "${sanitizer_build[@]}"
      ;;
    tsan)
      stage_test_args=("${tsan_wrapper[@]}")
      run_stage tsan "$prefix-tsan" unit \
        "integration=runs in the normal and asan stages; TSan slows the large guests 5-15x|$rdma_skip|$fault_skip|dpdk=DPDK's rings and mempools are not TSan-instrumented: packets handed between threads look like races (the unit run leaves the dpdk conformance entry out for the same reason)" tests \
        "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1" "TERN_TEST_SCALE=small" -- \
        -Db_sanitize=thread -Db_lundef=false -Dbench=disabled "${sanitizer_build[@]}"
      ;;
    fuzz)
      # libFuzzer needs clang; only the fuzz targets and what they link are built.
      if ! command -v clang++ >/dev/null; then
        bad "stage fuzz: clang++ not found (scripts/install-deps.sh installs clang)"
        stage_result fuzz 0 1 0 "no clang" $SECONDS
        continue
      fi
      CC=clang CXX=clang++ run_stage fuzz "$prefix-fuzz" fuzz "" tests "${sanitizer_env[@]}" \
        "TERN_FUZZ_SECONDS=${TERN_FUZZ_SECONDS:-20}" -- \
        -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false -Dbench=disabled \
        -Drdma=disabled -Ddpdk=disabled "${sanitizer_build[@]}"
      ;;
    *) die "unknown stage '$stage' (normal, asan, tsan, fuzz)" ;;
  esac
done

header "summary ($((SECONDS - start_all))s)"
for l in "${stage_lines[@]}"; do info "  $l"; done
if [ "$total_skip" -gt 0 ]; then
  echo "$total_pass passed, $total_fail failed, $total_skip skipped"
else
  echo "$total_pass passed, $total_fail failed"
fi
[ "$total_fail" -eq 0 ]
