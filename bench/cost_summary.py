#!/usr/bin/env python3
"""Medians per mode of bench/mem_cost.sh lines, and the ratio of one mode over another.

    cost_summary.py RUNS.jsonl BASE VARIANT

One JSON line per mode (runs, MiB/s of guest bytes moved per second of total time, CPU seconds
per GiB moved on each side, median setup-time of the source in ms), then {"VARIANT_over_BASE": ratios}. Runs that did not complete on
both sides, or whose pages did not verify, are printed as skipped and left out.
"""
import json
import statistics
import sys

path, base, variant = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(l) for l in open(path) if l.strip()]
by = {}
for r in rows:
    if r.get("status") != ["completed", "completed"] or r.get("mismatches"):
        print(json.dumps({"skipped": r}))
        continue
    by.setdefault(r.get("mode") or r.get("security"), []).append(r)
summary = {}
for mode, rs in by.items():
    gib = [r["transferred"] / 2**30 for r in rs]
    summary[mode] = {
        "runs": len(rs),
        "MiB_per_s": round(statistics.median(
            g * 1024 / (r["src_total_ms"] / 1000) for g, r in zip(gib, rs)), 1),
        "src_cpu_s_per_GiB": round(statistics.median(r["src_cpu_s"] / g for g, r in zip(gib, rs)), 2),
        "dst_cpu_s_per_GiB": round(statistics.median(r["dst_cpu_s"] / g for g, r in zip(gib, rs)), 2),
        "setup_ms": statistics.median(r.get("src_setup_ms") or 0 for r in rs),
    }
    print(json.dumps({"mode": mode, **summary[mode]}))
if base in summary and variant in summary:
    a, b = summary[base], summary[variant]
    ratio = lambda x, y: round(x / y, 2) if y else None
    print(json.dumps({variant + "_over_" + base: {
        "throughput": ratio(b["MiB_per_s"], a["MiB_per_s"]),
        "src_cpu_per_GiB": ratio(b["src_cpu_s_per_GiB"], a["src_cpu_s_per_GiB"]),
        "dst_cpu_per_GiB": ratio(b["dst_cpu_s_per_GiB"], a["dst_cpu_s_per_GiB"]),
        "setup_ms": [a["setup_ms"], b["setup_ms"]]}}))
