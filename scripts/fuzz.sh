#!/usr/bin/env bash
# scripts/fuzz.sh TARGET [SECONDS]: fuzzes one libFuzzer target of tests/fuzz (qmp_stream,
# qmp_dispatch, wire_frame, wire_layout, hello, guest_state) for SECONDS (default 600) with
# ASan+UBSan, in build-fuzz/ (clang; configured and built here if needed). New inputs go to
# build-fuzz/tests/fuzz/work/TARGET/corpus, a crash reproducer to .../artifacts/; copy the
# interesting ones into tests/fuzz/corpus/TARGET/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ $# -ge 1 ] || { echo "usage: scripts/fuzz.sh TARGET [SECONDS]   (targets: $(ls "$TERN_ROOT/tests/fuzz/corpus" | tr '\n' ' '))" >&2; exit 2; }
target=$1 secs=${2:-600}
[ -d "$TERN_ROOT/tests/fuzz/corpus/$target" ] || die "no fuzz target '$target' (tests/fuzz/corpus/ lists them)"
command -v clang++ >/dev/null || die "clang++ not found: run scripts/install-deps.sh"
dir=${TERN_BUILD_PREFIX:-build}-fuzz
cd "$TERN_ROOT"
CC=clang CXX=clang++ meson_setup "$dir" -Dfuzz=true -Dbuildtype=debugoptimized \
  -Db_sanitize=address,undefined -Db_lundef=false -Dbench=disabled -Drdma=disabled -Ddpdk=disabled \
  -Dcpp_args=-g1 || die "meson setup $dir failed"
ninja -C "$dir" -j "${TERN_JOBS:-2}" "tests/fuzz/${target}_fuzz"
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
exec tests/fuzz/run_fuzz.sh "$dir/tests/fuzz/${target}_fuzz" "tests/fuzz/corpus/$target" \
  "$dir/tests/fuzz/work/$target" "$secs"
