"""Runs a suite (references, then every row `repeat` times, round-robin so that a burst of
load on a shared host spreads over all rows) and the comparison mode (two builds or two
configurations, interleaved run by run). Progress goes to stderr; results are dicts that
cli.py writes as JSON."""
import os
import re
import sys
import time
import traceback

from . import daemons, machine, rdmavm, references, scenarios, stats
from .daemons import SkipRow

METRIC_SKIP = ("hist-",)


class Progress:
    """One line per step on stderr: count, elapsed, ETA. Skipped steps cost nothing, so
    `free(n)` takes them out of the work the ETA is estimated from."""

    def __init__(self, total, quiet=False):
        self.total, self.done, self.t0, self.quiet = total, 0, time.monotonic(), quiet
        self.work, self.worked = total, 0

    def free(self, n):
        self.work -= n

    def step(self, what, outcome, worked=True):
        self.done += 1
        self.worked += 1 if worked else 0
        if self.quiet:
            return
        el = time.monotonic() - self.t0
        eta = el / max(1, self.worked) * max(0, self.work - self.worked)
        print(f"[{self.done:3d}/{self.total}] {el:6.0f}s  eta {eta:4.0f}s  {what}: {outcome}",
              file=sys.stderr, flush=True)


def _attempt(fn, *args):
    """('ok', result) | ('skipped', reason) | ('failed', reason)."""
    try:
        return "ok", fn(*args)
    except SkipRow as e:
        return "skipped", str(e)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of a row is reported, the suite goes on
        msg = str(e).strip() or type(e).__name__
        if not isinstance(e, (RuntimeError, OSError, TimeoutError)):
            msg += "\n" + traceback.format_exc(limit=3)
        return "failed", msg


def summarize_runs(runs):
    keys = []
    for r in runs:
        keys += [k for k in r if k not in keys and not k.startswith(METRIC_SKIP)]
    return {k: stats.summarize([r.get(k) for r in runs if isinstance(r.get(k), (int, float))])
            for k in keys}


def _short(metrics):
    for k in ("host-p99-us", "throughput-GBps", "total-time-ms", "memcpy-2M-GBps",
              "tcp-rtt-p50-us"):
        if metrics.get(k) is not None:
            v = metrics[k]
            return f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
    return "ok"


def run_suite(root, build, repeat, refs, rows, only=None, quiet=False, vm=None):
    """vm: {"spec": path, "conf": [rdma_vm] settings} lets rdma rows and the rdma reference run
    in one boot of the soft-RoCE VM when this host has no RDMA device (rdmavm.py)."""
    if only:
        rx = re.compile(only)
        rows = [r for r in rows if rx.search(r["name"])]
        refs = [r for r in refs if rx.search(r["name"])]
    desc = machine.describe(root, build)
    if any(r["kind"] == "qemu" for r in rows):
        from .qemuref import version
        desc["qemu-version"] = version()
    t0 = time.monotonic()
    in_vm_rows, in_vm_refs = [], []
    if vm is not None and "rdma" in daemons.available_transports(build):
        in_vm_rows, in_vm_refs = rdmavm.wants_vm(rows, refs)
    vm_names = {r["name"] for r in in_vm_rows + in_vm_refs}
    # The VM's rows and reference are one step here (the VM prints its own progress).
    prog = Progress(len(refs) - len(in_vm_refs) + repeat * (len(rows) - len(in_vm_rows)) +
                    (1 if vm_names else 0), quiet)
    ref_out = []
    for ref in refs:
        if ref["name"] in vm_names:
            ref_out.append({"name": ref["name"], "kind": ref["kind"], "vm-pending": True})
            continue
        status, res = _attempt(references.KINDS[ref["kind"]], build, ref)
        entry = {"name": ref["name"], "kind": ref["kind"], "status": status}
        if status == "ok":
            entry["metrics"] = res
        else:
            entry["reason"] = res
        ref_out.append(entry)
        prog.step(f"reference {ref['name']}", status if status != "ok" else _short(res))
    out = [{"name": r["name"], "scenario": r["scenario"], "kind": r["kind"], "axes": r["axes"],
            "params": {k: v for k, v in r.items() if k not in ("axes", "name", "scenario")},
            "runs": [], "errors": [], "status": "ok"} for r in rows]
    for o in out:
        if o["name"] in vm_names:
            o["vm-pending"] = True
    for rep in range(repeat):
        for row, o in zip(rows, out):
            if o.get("vm-pending"):
                continue
            if o["status"] == "skipped":
                prog.step(f"{row['name']} #{rep + 1}", "skipped", worked=False)
                continue
            load = os.getloadavg()[0]
            status, res = _attempt(scenarios.run, row, build)
            if status == "ok":
                res["load-1m"] = load  # the host's 1-minute load average as the run started
                o["runs"].append(res)
                prog.step(f"{row['name']} #{rep + 1}", _short(res))
            elif status == "skipped":
                o["status"], o["reason"] = "skipped", res
                prog.free(repeat - rep)
                prog.step(f"{row['name']} #{rep + 1}", "skipped: " + res.splitlines()[0],
                          worked=False)
            else:
                o["errors"].append(res)
                prog.step(f"{row['name']} #{rep + 1}", "FAILED: " + res.splitlines()[0])
    for o in out:
        if o["status"] == "skipped" or o.get("vm-pending"):
            continue
        o["status"] = "ok" if not o["errors"] else ("partial" if o["runs"] else "failed")
        o["summary"] = summarize_runs(o["runs"])
    result = {"tern-bench": 1, "machine": desc, "repeat": repeat, "references": ref_out,
              "rows": out}
    if vm_names:
        conf = vm["conf"]
        if not quiet:
            print(f"[rdma] no RDMA device here: {len(in_vm_rows)} rdma row(s) x "
                  f"{conf['repeat']} run(s) and {len(in_vm_refs)} reference(s) in one boot of "
                  f"the soft-RoCE VM ({conf['ram']} guests)", file=sys.stderr, flush=True)
        status, res = _attempt(rdmavm.run, root, build, vm["spec"], only, conf)
        if status == "ok":
            rdmavm.merge(result, res, conf=conf)
        else:
            rdmavm.merge(result, None, skip_reason=res.splitlines()[0], conf=conf,
                         failed=status == "failed")
        prog.step("rdma rows in the soft-RoCE VM",
                  f"{status}" + (f" ({res.get('vm-wall-s')} s)" if status == "ok"
                                 else ": " + res.splitlines()[0]))
    desc["loadavg-end"] = machine.loadavg()
    desc["wall-s"] = round(time.monotonic() - t0, 1)
    result["ratios"] = ratios(result)
    return result


def _ref(result, key):
    for r in result["references"]:
        if r["status"] == "ok" and key in r.get("metrics", {}):
            return r["metrics"][key]
    return None


def ratios(result):
    """Headline ratios against the references of the same run. Rows measured in the soft-RoCE
    VM (`where` set) are divided only by the references of that VM: bulk by ib_write_bw, fault
    latency by ib_write_lat's round trip (the host's memcpy and bare fault do not apply)."""
    out = {}
    # Fault figures are bucket bounds: so are the references they are divided by.
    # A 2M row is compared with the bare fault of a 2 MiB page, a 4K row with that of 4 KiB.
    bare = {"4K": [stats.bucket_bound(_ref(result, f"uffd-spinning-p{q}-us")) for q in (50, 99)],
            "2M": [stats.bucket_bound(_ref(result, f"uffd-2M-p{q}-us")) for q in (50, 99)]}
    rtt = stats.bucket_bound(_ref(result, "tcp-rtt-p50-us"))
    ib_rtt = stats.bucket_bound(_ref(result, "ib-write-lat-rtt-us"))
    ib_bw = _ref(result, "ib-write-bw-GBps")
    for row in result["rows"]:
        s = row.get("summary") or {}
        name = row["name"]
        vm = bool(row.get("where"))
        if row["kind"] == "postcopy":
            bare50, bare99 = bare.get(str(row["params"].get("page", "4K")).upper(), (None, None))
            for side in ("host", "guest"):
                p50, p99 = s.get(f"{side}-p50-us"), s.get(f"{side}-p99-us")
                if p50 and bare50 and not vm:
                    out[f"{name}: {side} p50 / bare uffd p50"] = p50["median"] / bare50
                if p99 and bare99 and not vm:
                    out[f"{name}: {side} p99 / bare uffd p99"] = p99["median"] / bare99
            if s.get("host-p50-us") and rtt and row["params"].get("transport") == "tcp":
                out[f"{name}: host p50 / tcp rtt p50"] = s["host-p50-us"]["median"] / rtt
            if s.get("host-p50-us") and ib_rtt and row["params"].get("transport") == "rdma":
                out[f"{name}: host p50 / ib_write_lat rtt"] = s["host-p50-us"]["median"] / ib_rtt
        elif row["kind"] == "bulk":
            page = str(row["params"].get("page", "4K")).upper()
            ref = _ref(result, f"memcpy-{page}-GBps")
            if s.get("throughput-GBps") and ref and not vm:
                out[f"{name}: throughput / memcpy {page}"] = s["throughput-GBps"]["median"] / ref
            if s.get("throughput-GBps") and ib_bw and row["params"].get("transport") == "rdma":
                out[f"{name}: throughput / ib_write_bw"] = s["throughput-GBps"]["median"] / ib_bw
    # S5: hinting on over off, same guest, same run.
    from .common import floor_pairs, hint_pairs, hint_ratios, qemu_groups, who
    for off, on in hint_pairs(result):
        for k, v in hint_ratios(off, on).items():
            out[f"{on['name']}: {k} hint on / off"] = v
    # Out of process over in process (issue 13: at most 1.05 per page).
    from .common import vmm_pairs, vmm_ratios
    for inside, out_of in vmm_pairs(result):
        for k, v in vmm_ratios(inside, out_of).items():
            out[f"{out_of['name']}: {k} out / in process"] = v
    # tern over QEMU on the same guest (medians of the same run): time, CPU and faults per side.
    for terns, qemus in qemu_groups(result):
        for t in terns:
            for q in qemus:
                ts, qs = t.get("summary") or {}, q.get("summary") or {}
                for k in ("total-time-ms", "cpu-s-src", "cpu-s-dst", "minor-faults-src",
                          "minor-faults-dst"):
                    if ts.get(k) and qs.get(k) and qs[k]["median"]:
                        out[f"{t['name']}: {k} / {who(q)}"] = ts[k]["median"] / qs[k]["median"]
        # tern over the floors of the same guest (floor.py).
        for t, f in floor_pairs(terns):
            ts, fs = t.get("summary") or {}, f.get("summary") or {}
            for k in ("total-time-ms", "cpu-s-src", "cpu-s-dst"):
                if ts.get(k) and fs.get(k) and fs[k]["median"]:
                    out[f"{t['name']}: {k} / {who(f)}"] = ts[k]["median"] / fs[k]["median"]
    urgent = _ref(result, "tern-urgent-rtt-us")
    if urgent and _ref(result, "ib-write-lat-rtt-us"):
        out["rdma urgent round trip / ib_write_lat rtt"] = \
            urgent / _ref(result, "ib-write-lat-rtt-us")
    return out


def run_compare(root, builds, repeat, rows_a, rows_b, labels, only=None, quiet=False):
    """Rows A (build[0]) and B (build[1]) interleaved: run i of a row runs A then B on even i,
    B then A on odd i. Reports per-metric medians of A and B and the per-pair ratios B/A."""
    if only:
        rx = re.compile(only)
        keep = [i for i, r in enumerate(rows_a) if rx.search(r["name"])]
        rows_a, rows_b = [rows_a[i] for i in keep], [rows_b[i] for i in keep]
    desc = machine.describe(root, builds[0])
    desc["build-b"] = machine.describe(root, builds[1])
    t0 = time.monotonic()
    prog = Progress(2 * repeat * len(rows_a), quiet)
    out = []
    for ra, rb in zip(rows_a, rows_b):
        o = {"name": ra["name"], "kind": ra["kind"], "a": [], "b": [], "errors": [],
             "status": "ok"}
        out.append(o)
    for rep in range(repeat):
        for ra, rb, o in zip(rows_a, rows_b, out):
            if o["status"] == "skipped":
                prog.step(f"{ra['name']} #{rep + 1}", "skipped")
                prog.step(f"{ra['name']} #{rep + 1}", "skipped")
                continue
            order = [("a", ra, builds[0]), ("b", rb, builds[1])]
            if rep % 2:
                order.reverse()
            pair = {}
            for side, row, build in order:
                status, res = _attempt(scenarios.run, row, build)
                label = labels[0 if side == "a" else 1]
                if status == "ok":
                    pair[side] = res
                    prog.step(f"{ra['name']} #{rep + 1} [{label}]", _short(res))
                else:
                    if status == "skipped":
                        o["status"], o["reason"] = "skipped", res
                    else:
                        o["errors"].append(f"{label}: {res}")
                    prog.step(f"{ra['name']} #{rep + 1} [{label}]", status)
            if "a" in pair and "b" in pair:
                o["a"].append(pair["a"])
                o["b"].append(pair["b"])
    for o in out:
        if o["status"] == "skipped":
            continue
        o["status"] = "ok" if o["a"] else "failed"
        keys = [k for k in summarize_runs(o["a"])]
        o["compare"] = {}
        for k in keys:
            pairs = [(a.get(k), b.get(k)) for a, b in zip(o["a"], o["b"])
                     if isinstance(a.get(k), (int, float)) and isinstance(b.get(k), (int, float))]
            if not pairs:
                continue
            o["compare"][k] = {"a": stats.summarize([p[0] for p in pairs]),
                               "b": stats.summarize([p[1] for p in pairs]),
                               "ratio": stats.ratio_spread(pairs)}
    desc["loadavg-end"] = machine.loadavg()
    desc["wall-s"] = round(time.monotonic() - t0, 1)
    return {"tern-bench-compare": 1, "machine": desc, "labels": labels, "repeat": repeat,
            "rows": out}
