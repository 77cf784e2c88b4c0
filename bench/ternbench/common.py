"""Helpers shared by the report's tables and plots: number formatting, row selection."""

PAGE = 4096


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return f"{int(v)}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def cell(summary, key, digits=3):
    s = (summary or {}).get(key)
    if not s:
        return "-"
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} [{fmt(s['min'], digits)}..{fmt(s['max'], digits)}]"


def med(row, key):
    s = (row.get("summary") or {}).get(key)
    return s["median"] if s else None


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def axes_label(row, skip=()):
    return ", ".join(f"{k}={onoff(row['axes'][k])}" for k in row["axes"] if k not in skip) or "-"


def onoff(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def run_hist(run, key):
    return {int(k): v for k, v in (run.get(key) or {}).items()}


def bulk_label(row):
    bw = row["params"].get("max_bandwidth", 0)
    return "unlimited" if not bw else f"{bw}B/s"


def transport_label(row):
    """The transport cell: rows measured in the soft-RoCE VM say so (not NIC figures)."""
    t = row["params"]["transport"]
    return f"{t} (soft-RoCE VM, TCG)" if row.get("where") else t


def ok_rows(results, kind):
    return [r for r in results["rows"] if r["kind"] == kind and r["status"] in ("ok", "partial")]


# ---- markdown ----------------------------------------------------------------------------


def dirty_rate_mbps(row):
    p = row["params"]
    return p.get("rate", 0) * p.get("vcpus", 1) * PAGE / 1e6


# ---- S5: free page hinting on beside off -------------------------------------------------

HINT_RATIO_KEYS = ("transferred-bytes", "total-time-ms")


def hint_pairs(results):
    """[(off, on)]: the migration rows of one scenario that differ only in free_page_hint, in
    the results' order."""
    rows = [r for r in ok_rows(results, "migration") if "free_page_hint" in r["axes"]]

    def key(r):
        return (r["scenario"], sorted((k, str(v)) for k, v in r["params"].items()
                                      if k != "free_page_hint"))
    off = [r for r in rows if not r["params"].get("free_page_hint")]
    return [(o, r) for r in rows if r["params"].get("free_page_hint")
            for o in off if key(o) == key(r)]


def hint_ratios(off, on):
    """{key: median with hinting on / median with it off} for bytes sent and total time."""
    return {k: med(on, k) / med(off, k) for k in HINT_RATIO_KEYS if med(on, k) and med(off, k)}


# ---- the guest in a VMM process beside the guest inside ternd (issue 13) ----------------

def vmm_pairs(results):
    """[(in process, out of process)]: rows of one scenario that differ only in `vmm`."""
    rows = [r for r in results["rows"]
            if r["status"] in ("ok", "partial") and "vmm" in r.get("axes", {})]

    def key(r):
        return (r["scenario"], sorted((k, str(v)) for k, v in r["axes"].items() if k != "vmm"))
    inside = [r for r in rows if not r["params"].get("vmm")]
    return [(i, r) for r in rows if r["params"].get("vmm") for i in inside if key(i) == key(r)]


def vmm_ratios(inside, out):
    """{figure: out of process / in process} of the medians: time per page (bulk rows:
    throughput in over out), host-side fault latency (postcopy rows), and the CPU of both
    ternds and VMMs (cpu-s-all)."""
    r = {}
    if inside["kind"] == "bulk" and med(inside, "throughput-GBps") and med(out, "throughput-GBps"):
        r["time per page"] = med(inside, "throughput-GBps") / med(out, "throughput-GBps")
    for k in ("host-p50-us", "host-p90-us", "host-p99-us", "cpu-s-all"):
        if med(inside, k) and med(out, k) is not None:
            r[k] = med(out, k) / med(inside, k)
    return r


# ---- tern beside QEMU --------------------------------------------------------------------

def same_guest_key(row):
    """A row's scenario and axes other than transport, qemu and floor: a tern row and a QEMU or
    floor row with the same key measured the same guest (spec.comparable_key, on result rows)."""
    return (row.get("scenario"), tuple(sorted((k, str(v)) for k, v in row.get("axes", {}).items()
                                              if k not in ("transport", "qemu", "floor"))))


def qemu_groups(results):
    """[(tern rows, QEMU rows)] of the guests that have both, in the results' order; rows of any
    status (a skipped QEMU row is shown with its reason). A guest's floor row (kind floor) is
    among its tern rows: it is compared with QEMU the same way."""
    groups = {}
    for r in results["rows"]:
        if r["kind"] in ("migration", "postcopy", "qemu", "floor"):
            g = groups.setdefault(same_guest_key(r), ([], []))
            g[1 if r["kind"] == "qemu" else 0].append(r)
    return [g for g in groups.values() if g[0] and g[1]]


def floor_pairs(terns):
    """[(tern row, floor row)] of one guest's rows (a qemu_groups tern list), ok or partial."""
    ok = [r for r in terns if r["status"] in ("ok", "partial")]
    return [(t, f) for f in ok if f["kind"] == "floor" for t in ok if t["kind"] != "floor"]


def who(row):
    if row["kind"] == "qemu":
        p = row["params"]
        if p.get("qemu_of") == "postcopy":
            return "QEMU postcopy" + ("-preempt" if p.get("preempt") else "")
        return f"QEMU {p.get('qemu', 'plain')}"
    if row["kind"] == "floor":
        return "floor: bare tcp" if row["params"].get("floor", "tcp") == "tcp" else "floor: one copy"
    return f"tern {transport_label(row)}"
