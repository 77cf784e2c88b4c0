#!/usr/bin/env bash
# Regenerates docs/benchmarks.md: installs missing packages (gnuplot among them), builds, runs
# tern-bench's default scenarios (or --quick ones) against real ternd processes, keeps the raw
# JSON in docs/bench/results.json and renders the Markdown report and PNG plots from it.
set -uo pipefail

usage() {
  cat <<'TXT'
usage: scripts/bench-report.sh [options]

  --quick            bench/scenarios/quick.toml: every kind, small guests, 2 runs per row (31 s at load 7,
                     plus about 2 min for the rdma rows in the soft-RoCE VM)
  --spec FILE        another scenario file (default bench/scenarios/default.toml; 9 min at load 7,
                     plus about 2 min for the rdma rows in the soft-RoCE VM)
  --repeat N         runs per row (default: the spec's)
  --only REGEX       only rows/references whose name matches (output goes to BUILD/bench-report
                     unless --out-dir says otherwise: a partial run does not overwrite docs)
                     e.g. --only 'rdma|ib_write': the rdma part alone
  --note TEXT        a paragraph about the conditions, printed at the top of the report
  --out-dir DIR      where benchmarks.md and bench/ (plots, results.json) go (default: docs
                     for the default scenarios; BUILD/bench-report for --quick and --spec, so
                     a smoke run does not overwrite the committed report)
  --report-only      do not run: re-render DIR/benchmarks.md from DIR/bench/results.json

environment:
  TERN_BUILD_DIR     build directory (default build)
  TERN_JOBS          ninja -j (default 2)
  TERN_NO_DEPS=1     do not check or install Debian packages

rdma rows: where this host has no RDMA device, tern-bench runs all of them and the
ib_write_bw/ib_write_lat reference in ONE boot of the soft-RoCE VM (tests/rdma/vm.sh: rdma_rxe
under QEMU TCG, ~60-140 MB/s; small guests, sized by the spec's [rdma_vm]; about 3-5 minutes),
and the report labels those figures as soft-RoCE under emulation. TERN_RDMA_VM=never skips
them (as the rdma test suite does); so does a host without qemu/perftest, with the reason.

Run as root (userfaultfd, hugetlb reservations for 2M rows), on an otherwise idle host.
TXT
}

run_args=() note="" report_only=0 out_dir="" not_default=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) run_args+=(--quick); not_default=1 ;;
    --spec) run_args+=(--spec "${2:?--spec needs a file}"); not_default=1; shift ;;
    --out-dir) out_dir=${2:?--out-dir needs a directory}; shift ;;
    --repeat) run_args+=(--repeat "${2:?--repeat needs a number}"); shift ;;
    --only) run_args+=(--only "${2:?--only needs a regex}"); not_default=1; shift ;;
    --note) note=${2:?--note needs text}; shift ;;
    --report-only) report_only=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench-report.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

. "$(dirname "$0")/lib.sh"  # cds to the repository root

build=${TERN_BUILD_DIR:-build}
if [ -z "$out_dir" ]; then
  if [ $not_default -eq 1 ]; then out_dir=$build/bench-report; else out_dir=docs; fi
fi
results=$out_dir/bench/results.json
if [ $report_only -eq 0 ]; then
  if [ "${TERN_NO_DEPS:-0}" != 1 ] && [ -x scripts/install-deps.sh ]; then
    scripts/install-deps.sh || die "installing packages failed"
  fi
  if [ ! -f "$build/build.ninja" ]; then
    info "configuring $build/"
    meson_setup "$build" || die "meson setup $build failed"
  fi
  info "building (ninja -C $build -j${TERN_JOBS:-2})"
  log=$(mktemp)
  if ! ninja -C "$build" -j"${TERN_JOBS:-2}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    rm -f "$log"
    die "build failed"
  fi
  rm -f "$log"
  [ "$(id -u)" -eq 0 ] || warn "not root: postcopy (userfaultfd) and 2M rows may fail or be skipped"
  mkdir -p "$out_dir/bench"
  header "tern-bench run ${run_args[*]}"
  start=$(date +%s)
  bench/tern-bench run --build "$build" "${run_args[@]}" --out "$results.new"
  rc=$?
  [ -s "$results.new" ] || die "tern-bench wrote no results (exit $rc)"
  mv "$results.new" "$results"
  info "tern-bench: $(( $(date +%s) - start )) s"
  [ $rc -eq 0 ] || warn "some rows failed in every run; they are listed in the report"
fi
[ -f "$results" ] || die "$results not found: run without --report-only first"
header "report"
bench/tern-bench report "$results" --markdown "$out_dir/benchmarks.md" --plots "$out_dir/bench" \
  --note "$note" || die "rendering the report failed"
ok "$out_dir/benchmarks.md regenerated (plots and raw results in $out_dir/bench/)"
