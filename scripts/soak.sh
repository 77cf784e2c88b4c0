#!/usr/bin/env bash
# scripts/soak.sh [N]: runs the fault-injection matrix (tests/fault) N times (default 1) and
# prints the counts: runs, outcomes (completed despite the fault, failed then retried,
# recovered, survivor failed clearly, skipped), failures by cause, test failures, pages lost
# (must be 0). The whole matrix unless TERN_FAULT_CASES says otherwise (a list of case names or
# prefixes, "ci" for the CI set). Builds ternd and the matrix in build/ (TERN_BUILD_PREFIX).
# Raw outcomes: one JSON line per case in $TERN_FAULT_RECORD (default build/soak/record.jsonl).
# Exits non-zero if any case failed or any page was lost. Needs root (namespaces, userfaultfd).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
n=${1:-1}
[[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "usage: scripts/soak.sh [N]   (N >= 1 rounds of the matrix)" >&2; exit 2; }
dir=${TERN_BUILD_PREFIX:-build}
meson_setup "$dir" -Dbuildtype=debugoptimized || die "meson setup $dir failed"
ninja -C "$dir" -j "${TERN_JOBS:-2}" control/ternd tests/fault/fault_matrix_test || die "build failed"
mkdir -p "$dir/soak"
record=${TERN_FAULT_RECORD:-$dir/soak/record.jsonl}
: >"$record"
export TERND=$TERN_ROOT/$dir/control/ternd TERN_FAULT_RECORD=$record
export TERN_FAULT_CASES=${TERN_FAULT_CASES:-all}
t0=$SECONDS
for ((i = 1; i <= n; i++)); do
  info "round $i of $n ($((SECONDS - t0)) s so far)"
  "$dir/tests/fault/fault_matrix_test" --gtest_brief=1 >"$dir/soak/round-$i.log" 2>&1 ||
    bad "round $i: failures (see $dir/soak/round-$i.log)"
done
python3 - "$record" "$n" "$((SECONDS - t0))" <<'PY'
import collections, json, re, sys
path, rounds, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(l) for l in open(path) if l.strip()]
results = collections.Counter(r["result"] for r in rows)
# A cause without its numbers (ports, channels, counts), so that equal causes count together.
norm = lambda c: re.sub(r"\d+", "N", c) if c else "(none: the migration went on)"
causes = collections.Counter(norm(r["cause"]) for r in rows
                             if r["result"] in ("failed-retried", "survivor-failed"))
broken = [r for r in rows if r["result"] == "test-failed"]
lost = sum(r["pages-lost"] for r in rows)
print(f"rounds: {rounds}, {secs} s")
print(f"runs: {len(rows)}")
for k in ("completed", "failed-retried", "recovered", "survivor-failed", "skipped", "test-failed"):
    print(f"  {k}: {results.get(k, 0)}")
print(f"recoveries: {results.get('recovered', 0)}")
print("failures by cause (the fault failed the migration, as it may):")
for c, k in causes.most_common():
    print(f"  {k:5d}  {c}")
print(f"test failures: {len(broken)}")
for c, k in collections.Counter((r["case"], r.get("failure", "").splitlines()[0][:160])
                                for r in broken).most_common():
    print(f"  {k:5d}  {c[0]}: {c[1]}")
print(f"pages checked: {sum(r['pages-checked'] for r in rows)}")
print(f"pages lost: {lost}")
sys.exit(1 if broken or lost else 0)
PY
