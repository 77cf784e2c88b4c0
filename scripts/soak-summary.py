#!/usr/bin/env python3
"""Counts a fault-matrix record (scripts/soak.sh; one JSON line per case, tests/fault/fault_record.h).

usage: soak-summary.py RECORD [ROUNDS SECONDS]. Prints runs, outcomes, recoveries, failures by
cause (numbers folded, so equal causes count together), test failures and pages lost; exits 1
if a case failed or a page was lost. Works on a partial record too (a soak cut short).
"""
import collections, json, re, sys
path = sys.argv[1]
rounds, secs = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else ("?", "?")
rows = [json.loads(l) for l in open(path) if l.strip()]
results = collections.Counter(r["result"] for r in rows)
# A cause without its numbers (ports, channels, counts), so that equal causes count together.
# A cause without its numbers and per-case names (ports, sizes, socket paths, memif devices),
# so one kind of failure is counted once.
def norm(c):
    if not c:
        return "(none: the migration went on)"
    c = re.sub(r"/run/tern-fault-[^ ,']*\.sock", "SOCKET", c)
    c = re.sub(r"net_memif_t\w+", "net_memif_tN", c)
    return re.sub(r"\d+", "N", c)
causes = collections.Counter(norm(r["cause"]) for r in rows
                             if r["result"] in ("failed-retried", "survivor-failed"))
broken = [r for r in rows if r["result"] == "test-failed"]
lost = sum(r["pages-lost"] for r in rows)
print(f"rounds: {rounds}, {secs} s")
# Only the transports that ran (a case skipped by its rig, say rdma without a device, leaves no row).
by_transport = collections.Counter(r["case"].split("_", 1)[0] for r in rows)
print(f"runs: {len(rows)} ({', '.join(f'{t} {k}' for t, k in by_transport.items())})")
for k in ("completed", "failed-retried", "recovered", "survivor-failed", "skipped", "test-failed"):
    print(f"  {k}: {results.get(k, 0)}")
print(f"recoveries: {results.get('recovered', 0)}, by what paused postcopy:")
for c, k in collections.Counter(norm(r["cause"]) for r in rows
                                if r["result"] == "recovered").most_common():
    print(f"  {k:5d}  {c}")
print("failures by cause (the fault failed the migration, as it may):")
for c, k in causes.most_common():
    print(f"  {k:5d}  {c}")
early = [r for r in rows if r.get("early-failures", 0) > 0]
print(f"migrations that failed in their handshake before the fault and were started again: "
      f"{sum(r['early-failures'] for r in early)} (in {len(early)} runs)")
for c, k in collections.Counter(norm(r.get("early-cause", "")) for r in early).most_common():
    print(f"  {k:5d}  {c}")
print(f"test failures: {len(broken)}")
def why(r):
    """The failed assertion's own message: its line that names the case, else its first."""
    lines = r.get("failure", "").splitlines() or [""]
    named = [l for l in lines if l.startswith(r["case"] + ":")]
    return (named or lines)[0][:200]
for c, k in collections.Counter((r["case"], why(r)) for r in broken).most_common():
    print(f"  {k:5d}  {c[1]}")
print(f"pages checked: {sum(r['pages-checked'] for r in rows)}")
print(f"pages lost: {lost}")
sys.exit(1 if broken or lost else 0)
