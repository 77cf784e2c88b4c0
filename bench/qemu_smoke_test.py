#!/usr/bin/env python3
"""Meson test bench/tern_bench_qemu_smoke: tern-bench on bench/scenarios/qemu-smoke.toml (a
256 MiB guest migrated by tern and by QEMU 7.2 under TCG), then its report: the QEMU row ran,
its guest's pages checked out on the destination, it carries the figures the report sets beside
tern's, and the report has the tern-vs-QEMU table, with the guest's floor rows (floor.py). Skipped (77) without qemu-system-x86_64 or
gcc. The first run fetches the guest kernel (tests/rdma/vm.sh --kernel, about a minute).
usage: qemu_smoke_test.py BUILD_DIR OUT_DIR"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ternbench import qemuref  # noqa: E402


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def main():
    build, out = sys.argv[1], sys.argv[2]
    reason = qemuref.why_not()
    if reason:
        print(f"SKIP: {reason}")
        sys.exit(77)
    os.makedirs(out, exist_ok=True)
    results = os.path.join(out, "qemu-smoke.json")
    tb = os.path.join(HERE, "tern-bench")
    r = subprocess.run([sys.executable, tb, "run", "--spec",
                        os.path.join(HERE, "scenarios", "qemu-smoke.toml"), "--build", build,
                        "--out", results])
    if not os.path.exists(results):
        fail(f"tern-bench run exited {r.returncode} without results")
    with open(results) as f:
        res = json.load(f)
    rows = {row["name"]: row for row in res["rows"]}
    q = rows.get("vs-qemu/qemu=plain")
    if not q or q["status"] != "ok":
        fail(f"the QEMU row did not run: {q and (q.get('errors') or q.get('reason'))}")
    s = q["summary"]
    for key in ("total-time-ms", "setup-time-ms", "downtime-ms", "transferred-bytes",
                "cpu-s-src", "cpu-s-dst", "minor-faults-src", "minor-faults-dst"):
        if s.get(key) is None:
            fail(f"QEMU row has no {key}")
    if s["transferred-bytes"]["median"] < 64 << 20:
        fail(f"QEMU sent less than the guest's data: {s['transferred-bytes']}")
    if not res["machine"].get("qemu-version"):
        fail("machine description lacks qemu-version")
    md = os.path.join(out, "qemu-smoke.md")
    r = subprocess.run([sys.executable, tb, "report", results, "--markdown", md, "--plots",
                        os.path.join(out, "qemu-smoke-plots")])
    if r.returncode != 0:
        fail(f"tern-bench report exited {r.returncode}")
    text = open(md).read()
    if "## tern vs QEMU on this machine" not in text or "| QEMU plain |" not in text:
        fail("report lacks the tern-vs-QEMU table")
    t = rows.get("vs-qemu")
    if t and t["status"] == "ok" and "| tern tcp | QEMU plain |" not in text:
        fail("report lacks the tern/QEMU ratios")
    for variant, label in (("tcp", "bare tcp"), ("copy", "one copy")):
        fl = rows.get(f"vs-qemu/floor={variant}")
        if not fl or fl["status"] != "ok":
            fail(f"the {variant} floor row did not run: "
                 f"{fl and (fl.get('errors') or fl.get('reason'))}")
        if fl["summary"]["transferred-bytes"]["median"] != 64 << 20:
            fail(f"the {variant} floor moved other than the guest's 64 MiB: {fl['summary']}")
        if f"| floor: {label} | QEMU plain |" not in text:
            fail(f"report lacks the {variant} floor's row")
    if "Ratios tern / floor" not in text:
        fail("report lacks tern / floor")
    print("ok: QEMU migrated its guest (every page checked) and the report sets it beside tern")


if __name__ == "__main__":
    main()
