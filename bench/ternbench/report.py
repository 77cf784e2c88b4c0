"""Renders JSON results as docs/benchmarks.md (tables of medians with min..max ranges) and PNG
plots made with gnuplot: fault-latency CDFs per transport, throughput against channels,
migration time against dirty rate. Also the comparison mode's Markdown table."""
import os
import shutil
import subprocess
import tempfile

from . import stats

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
    return ", ".join(f"{k}={_v(row['axes'][k])}" for k in row["axes"] if k not in skip) or "-"


def _v(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def _hist(run, key):
    return {int(k): v for k, v in (run.get(key) or {}).items()}


def bulk_label(row):
    bw = row["params"].get("max_bandwidth", 0)
    return "unlimited" if not bw else f"{bw}B/s"


def ok_rows(results, kind):
    return [r for r in results["rows"] if r["kind"] == kind and r["status"] in ("ok", "partial")]


# ---- plots -------------------------------------------------------------------------------

def _gnuplot(script, tmp):
    path = os.path.join(tmp, "plot.gp")
    with open(path, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", path], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"gnuplot failed: {r.stderr.strip()[-400:]}")


HEAD = ("set terminal pngcairo size 1000,560 font 'DejaVu Sans,10'\n"
        "set grid\nset key outside right top\n")


def plot_cdfs(results, plots, tmp):
    """fault-cdf-TRANSPORT-PAGE.png: host (solid) and guest (dashed) fault-latency CDFs, runs
    merged, one colour per row (bulk load, preemption)."""
    made = []
    rows = ok_rows(results, "postcopy")
    keys = sorted({(r["params"]["transport"], str(r["params"].get("page", "4K"))) for r in rows})
    for transport, page in keys:
        series = []
        sel = [x for x in rows if (x["params"]["transport"], str(x["params"].get("page", "4K")))
               == (transport, page)]
        for colour, r in enumerate(sel, start=1):
            label = f"bulk {bulk_label(r)}, preempt {_v(bool(r['params'].get('preempt')))}"
            for side, dt in (("host", 1), ("guest", 2)):
                h = stats.merge(_hist(run, f"hist-{side}") for run in r["runs"])
                if not h:
                    continue
                dat = os.path.join(tmp, f"cdf{len(series)}.dat")
                with open(dat, "w") as f:
                    f.write("0.5 0\n")
                    for le, frac in stats.cdf(h):
                        f.write(f"{le} {frac}\n")
                series.append(f"'{dat}' using 1:2 with steps lw 2 lc {colour} dt {dt} "
                              f"title '{side}: {label}'")
        if not series:
            continue
        png = f"fault-cdf-{transport}-{page}.png"
        _gnuplot(HEAD + f"set output '{os.path.join(plots, png)}'\n"
                 f"set title 'Postcopy fault latency CDF, {transport}, {page} pages "
                 "(solid: host, dashed: guest first touch; runs merged)'\n"
                 "set logscale x 2\nset xlabel 'latency (us, power-of-two bucket upper bound)'\n"
                 "set ylabel 'fraction of faults'\nset yrange [0:1.02]\n"
                 f"plot {', '.join(series)}\n", tmp)
        made.append((f"Fault-latency CDF, {transport}, {page} pages", png))
    return made


def plot_throughput(results, plots, tmp):
    rows = ok_rows(results, "bulk")
    groups = {}
    for r in rows:
        key = (r["params"]["transport"], str(r["params"].get("page", "4K")))
        groups.setdefault(key, []).append(r)
    if not groups:
        return []
    series = []
    for (transport, page), rs in sorted(groups.items()):
        dat = os.path.join(tmp, f"tp{len(series)}.dat")
        with open(dat, "w") as f:
            for r in sorted(rs, key=lambda x: x["params"]["channels"]):
                s = r["summary"].get("throughput-GBps")
                if s:
                    f.write(f"{r['params']['channels']} {s['median']} {s['min']} {s['max']}\n")
        series.append((dat, f"{transport} {page}"))
    png = "throughput-channels.png"
    cmd = ", ".join(f"'{d}' using 1:2:3:4 with yerrorlines lw 2 title '{t}'" for d, t in series)
    _gnuplot(HEAD + f"set output '{os.path.join(plots, png)}'\n"
             "set title 'Bulk throughput against bulk channels (median, min..max)'\n"
             "set xlabel 'bulk channels (multifd-channels)'\nset ylabel 'GB/s'\n"
             "set xtics 1\nset yrange [0:*]\nset offsets 0.3,0.3,0,0\n"
             f"plot {cmd}\n", tmp)
    return [("Bulk throughput against channels", png)]


def _dirty_rate_mbps(row):
    p = row["params"]
    return p.get("rate", 0) * p.get("vcpus", 1) * PAGE / 1e6


def plot_dirty(results, plots, tmp):
    rows = [r for r in ok_rows(results, "migration") if "rate" in r["axes"]]
    if not rows:
        return []
    groups = {}
    for r in rows:
        lim = r["params"].get("dirty_limit") or 0
        key = (r["params"]["transport"], str(r["params"]["ram"]), lim)
        groups.setdefault(key, []).append(r)
    series = []
    for (transport, ram, lim), rs in sorted(groups.items()):
        dat = os.path.join(tmp, f"dr{len(series)}.dat")
        with open(dat, "w") as f:
            for r in sorted(rs, key=_dirty_rate_mbps):
                s = r["summary"].get("total-time-ms")
                if s:
                    f.write(f"{_dirty_rate_mbps(r)} {s['median']} {s['min']} {s['max']}\n")
        what = f"dirty limit {lim} MB/s/vCPU" if lim else "no dirty limit"
        series.append((dat, f"{transport} {ram}, {what}"))
    png = "migration-dirty-rate.png"
    cmd = ", ".join(f"'{d}' using 1:2:3:4 with yerrorlines lw 2 title '{t}'" for d, t in series)
    _gnuplot(HEAD + f"set output '{os.path.join(plots, png)}'\n"
             "set title 'Whole migration time against the guest dirty rate (median, min..max)'\n"
             "set xlabel 'guest dirty rate requested (MB/s, all vCPUs)'\n"
             "set ylabel 'total time (ms)'\nset yrange [0:*]\nset offsets 20,20,0,0\n"
             f"plot {cmd}\n", tmp)
    return [("Migration time against dirty rate", png)]


# ---- markdown ----------------------------------------------------------------------------

INTRO = """# tern benchmarks

Generated by `scripts/bench-report.sh` (which runs `bench/tern-bench run` on
`bench/scenarios/{spec}` and then `bench/tern-bench report`). Do not edit by hand: regenerate
with

    scripts/bench-report.sh            # default scenarios, ~10-15 min on an idle 2-core host
    scripts/bench-report.sh --quick    # every kind once with small guests, ~2-3 min

Raw results: [`{raw}`]({raw}); plots in [`{plots}/`]({plots}/).

**How to read it.** Every end-to-end row drives two real `ternd` processes on this host (a
source hosting a thread guest, a destination), like `scripts/demo.sh`, and is repeated
{repeat} times; a cell is the **median [min..max]** over the runs (with an even count, the
lower middle run). Latencies are power-of-two
microsecond buckets (the value is the bucket's upper bound, as `query-migrate` reports it), so
`p99 = 512` means "between 256 and 512 us". *Host* fault latency is the destination's
fault-read-to-page-placed time (`postcopy-fault-latency`); *guest* latency is how long the
guest's first touch of a page waited (`query-guest` `counters.first-touch-latency`), over the
slowest N first touches where N is the number of faults the host resolved (the other first
touches found their page already there). References (memcpy, a bare userfaultfd fault, a TCP
loopback round trip) are measured in the same run, so compare ratios rather than absolute
figures across machines. CPU seconds are each `ternd` process's user+system time during the
migration (the source's includes the guest's vCPU threads); RSS overhead is peak resident
memory (VmHWM + hugetlb pages) minus the guest RAM that is resident by design (all of it with
2M pages and on the destination; the written working set and version table on a 4K source).
Rows for a transport that is not built, or that this host cannot hold, are listed as skipped
with the reason.
"""


def _machine(results):
    m = results["machine"]
    la = lambda v: " / ".join(f"{x:.2f}" for x in v) if v else "-"  # noqa: E731
    rows = [
        ("CPU", f"{m.get('cpu-model')} ({m.get('cores')} cores)"),
        ("kernel", m.get("kernel")),
        ("memory", f"{m.get('memory-bytes', 0) / 2**30:.1f} GiB, "
                   f"{m.get('memory-available-bytes', 0) / 2**30:.1f} GiB available at start"),
        ("load average (1/5/15 min)", f"start {la(m.get('loadavg-start'))}, "
                                      f"end {la(m.get('loadavg-end'))}"),
        ("commit", f"{m.get('git-commit', '')[:12]}{' (uncommitted changes)' if m.get('git-dirty') else ''}"
                   f" on {m.get('git-branch')}"),
        ("build", f"{os.path.basename(m.get('build-dir', ''))} ({m.get('build-type')})"),
        ("started", m.get("started")),
        ("wall time", f"{m.get('wall-s', 0):.0f} s, {results.get('repeat')} runs per row, "
                      f"spec `{results.get('spec', '?')}`"),
    ]
    return table(["", ""], rows)


def _references(results):
    rows, skipped = [], []
    names = {
        "memcpy-4K-GBps": "memcpy, cold 4 KiB pages (GB/s)",
        "memcpy-2M-GBps": "memcpy, cold 2 MiB pages (GB/s)",
        "uffd-spinning-p50-us": "bare userfaultfd fault, spinning handler, p50 (us)",
        "uffd-spinning-p99-us": "bare userfaultfd fault, spinning handler, p99 (us)",
        "uffd-blocking-p50-us": "bare userfaultfd fault, blocking handler, p50 (us)",
        "uffd-blocking-p99-us": "bare userfaultfd fault, blocking handler, p99 (us)",
        "tcp-rtt-p50-us": "TCP loopback round trip, 64 B, p50 (us; Python both ends)",
        "tcp-rtt-p99-us": "TCP loopback round trip, 64 B, p99 (us; Python both ends)",
    }
    for ref in results["references"]:
        if ref["status"] == "ok":
            for k, v in ref["metrics"].items():
                rows.append((names.get(k, k), fmt(v), ref["name"]))
        else:
            skipped.append((ref["name"], ref["status"], ref.get("reason", "").splitlines()[0]))
    out = table(["reference", "value", "source"], rows)
    if skipped:
        out += "\n" + table(["reference", "status", "reason"], skipped)
    return out


def _ratios(results):
    """Headline ratios: each row's median over the reference of the same run."""
    ref = {}
    for x in results["references"]:
        ref.update(x.get("metrics", {}))
    b50, b99, rtt = (stats.bucket_bound(ref.get(k)) for k in
                     ("uffd-spinning-p50-us", "uffd-spinning-p99-us", "tcp-rtt-p50-us"))
    div = lambda a, b: fmt(a / b) if a and b else "-"  # noqa: E731
    faults = [(r["params"]["transport"], r["params"].get("page", "4K"), bulk_label(r),
               _v(bool(r["params"].get("preempt"))), div(med(r, "host-p50-us"), b50),
               div(med(r, "host-p99-us"), b99), div(med(r, "guest-p50-us"), b50),
               div(med(r, "guest-p99-us"), b99),
               div(med(r, "host-p50-us"), rtt) if r["params"]["transport"] == "tcp" else "-")
              for r in ok_rows(results, "postcopy")]
    bulk = []
    for r in ok_rows(results, "bulk"):
        page = str(r["params"].get("page", "4K")).upper()
        bulk.append((r["params"]["transport"], page, r["params"]["channels"],
                     div(med(r, "throughput-GBps"), ref.get(f"memcpy-{page}-GBps"))))
    out = "## Headline ratios\n\nMedians of each row over the reference of the same run.\n\n"
    if faults:
        out += ("Fault latency over the bare userfaultfd fault (spinning handler) and, for tcp, "
                "over the TCP loopback round trip. Both sides of each ratio are power-of-two "
                "bucket upper bounds (the references are put in the bucket they fall in), so "
                "ratios are powers of two: 1 means the same bucket.\n\n" +
                table(["transport", "page", "bulk", "preempt", "host p50 / bare p50",
                       "host p99 / bare p99", "guest p50 / bare p50", "guest p99 / bare p99",
                       "host p50 / tcp rtt p50"], faults) + "\n")
    if bulk:
        out += ("Bulk throughput over memcpy of the same page size:\n\n" +
                table(["transport", "page", "channels", "GB/s / memcpy GB/s"], bulk))
    return out


def _fault_section(results):
    rows = ok_rows(results, "postcopy")
    if not rows:
        return ""
    body = []
    for r in rows:
        s = r["summary"]
        p = r["params"]
        body.append((p["transport"], p.get("page", "4K"), bulk_label(r),
                     _v(bool(p.get("preempt"))), cell(s, "faults"),
                     cell(s, "host-p50-us"), cell(s, "host-p90-us"), cell(s, "host-p99-us"),
                     cell(s, "host-p99.9-us"), cell(s, "guest-p50-us"), cell(s, "guest-p99-us"),
                     cell(s, "guest-p99.9-us"), cell(s, "cpu-s-dst")))
    return ("## Postcopy fault latency\n\nHost side and guest side, in us (bucket upper bounds). "
            "Bulk: the bulk channels' bandwidth during the migration (`max-bandwidth`).\n\n" +
            table(["transport", "page", "bulk", "preempt", "faults", "host p50", "host p90",
                   "host p99", "host p99.9", "guest p50", "guest p99", "guest p99.9",
                   "dst CPU s"], body))


def _bulk_section(results):
    rows = ok_rows(results, "bulk")
    if not rows:
        return ""
    ref = {}
    for x in results["references"]:
        ref.update(x.get("metrics", {}))
    body = []
    for r in rows:
        p, s = r["params"], r["summary"]
        page = str(p.get("page", "4K")).upper()
        tp = med(r, "throughput-GBps")
        mc = ref.get(f"memcpy-{page}-GBps")
        body.append((p["transport"], page, p["channels"], cell(s, "throughput-GBps"),
                     fmt(tp / mc) if tp and mc else "-", cell(s, "cpu-s-src"),
                     cell(s, "cpu-s-dst"), _gbps(s, "bytes-per-cpu-s-src"),
                     _gbps(s, "bytes-per-cpu-s-dst"), cell(s, "rss-overhead-mib-dst")))
    return ("## Bulk throughput\n\nA prefilled guest that writes 1 page/s, migrated in precopy; "
            "GB/s of RAM moved while active (transferred / (total - setup time)); "
            "`/ memcpy` is the ratio to the memcpy reference of the same page size.\n\n" +
            table(["transport", "page", "channels", "GB/s", "/ memcpy", "src CPU s", "dst CPU s",
                   "src GB per CPU s", "dst GB per CPU s", "dst RSS overhead MiB"], body))


def _gbps(s, key):
    v = (s or {}).get(key)
    if not v:
        return "-"
    return f"{v['median'] / 1e9:.3g} [{v['min'] / 1e9:.3g}..{v['max'] / 1e9:.3g}]"


def _migration_section(results, axis, title, intro):
    rows = [r for r in ok_rows(results, "migration") if axis in r["axes"]]
    if not rows:
        return ""
    body = []
    for r in rows:
        p, s = r["params"], r["summary"]
        lim = p.get("dirty_limit") or 0
        body.append((p["transport"], p["ram"], p.get("page", "4K"),
                     f"{_dirty_rate_mbps(r):.0f}", f"{lim} MB/s" if lim else "off",
                     cell(s, "total-time-ms"), cell(s, "downtime-ms"), cell(s, "setup-time-ms"),
                     _mib(s, "transferred-bytes"), cell(s, "dirty-sync-count"),
                     cell(s, "switchover-forced"), cell(s, "cpu-s-src"), cell(s, "cpu-s-dst"),
                     cell(s, "rss-overhead-mib-src"), cell(s, "rss-overhead-mib-dst")))
    return (f"## {title}\n\n{intro}\n\n" +
            table(["transport", "RAM", "page", "dirty MB/s", "dirty limit", "total ms",
                   "downtime ms", "setup ms", "sent MiB", "rounds", "forced", "src CPU s",
                   "dst CPU s", "src RSS+ MiB", "dst RSS+ MiB"], body))


def _mib(s, key):
    v = (s or {}).get(key)
    if not v:
        return "-"
    return f"{v['median'] / 2**20:.0f} [{v['min'] / 2**20:.0f}..{v['max'] / 2**20:.0f}]"


def _not_run(results):
    rows = []
    for r in results["rows"]:
        if r["status"] == "skipped":
            rows.append((r["name"], "skipped", r.get("reason", "").splitlines()[0]))
        elif r["errors"]:
            rows.append((r["name"], f"{r['status']} ({len(r['errors'])} of "
                         f"{len(r['errors']) + len(r['runs'])} runs)",
                         r["errors"][0].splitlines()[0].replace("|", "/")))
    if not rows:
        return ""
    return "## Rows not run or failed\n\n" + table(["row", "status", "reason"], rows)


def conditions_warning(results):
    """A banner when the figures are provisional: a loaded host, or a quick/partial run."""
    m = results["machine"]
    why = []
    cores = m.get("cores") or 1
    loads = [x[0] for x in (m.get("loadavg-start"), m.get("loadavg-end")) if x]
    if loads and max(loads) > 0.5 * cores:
        why.append(f"the host was loaded (1-minute load average {loads[0]:.1f} at the start, "
                   f"{loads[-1]:.1f} at the end, on {cores} cores), so latencies and "
                   "throughputs are noisy and pessimistic")
    spec = os.path.basename(results.get("spec", ""))
    if spec and spec != "default.toml":
        why.append(f"it ran `{spec}`, not the default scenarios")
    if not why:
        return ""
    return ("> **Provisional:** " + "; ".join(why) + ". Regenerate on an idle host with "
            "`scripts/bench-report.sh`.\n")


def render(results, md_path, plots, raw_rel, note=""):
    os.makedirs(plots, exist_ok=True)
    # Plots of an earlier report (a transport or page size that has no rows now) go away.
    for name in os.listdir(plots):
        if name.startswith(("fault-cdf-", "throughput-channels", "migration-dirty-rate")) and \
                name.endswith(".png"):
            os.remove(os.path.join(plots, name))
    tmp = tempfile.mkdtemp(prefix="tern-bench-plot.")
    figures = []
    try:
        if shutil.which("gnuplot"):
            for fn in (plot_cdfs, plot_throughput, plot_dirty):
                try:
                    figures += fn(results, plots, tmp)
                except RuntimeError as e:
                    print(f"tern-bench report: {fn.__name__}: {e}")
        else:
            note += "\n\n(gnuplot not installed: no plots; scripts/install-deps.sh adds it.)"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    md_dir = os.path.dirname(os.path.abspath(md_path))
    plots_rel = os.path.relpath(plots, md_dir)
    spec = os.path.basename(results.get("spec", "default.toml"))
    parts = [INTRO.format(spec=spec, raw=raw_rel, plots=plots_rel, repeat=results.get("repeat"))]
    warn = conditions_warning(results)
    if warn:
        parts.append(warn)
    if note:
        parts.append(note.strip() + "\n")
    parts.append("## Conditions\n\n" + _machine(results))
    parts.append("## References\n\n" + _references(results))
    parts.append(_ratios(results))
    parts.append(_fault_section(results))
    parts.append(_bulk_section(results))
    parts.append(_migration_section(
        results, "ram", "Whole migrations against guest size",
        "Precopy; guest RAM is shared by source and destination on this host. `rounds` is "
        "dirty-sync-count, `forced` whether precopy hit x-max-rounds; RSS+ is resident memory "
        "beyond the guest's RAM."))
    parts.append(_migration_section(
        results, "rate", "Whole migrations against dirty rate",
        "Precopy with `x-max-rounds` as in the spec; with the dirty limit, `--dirty-limit` and "
        "`vcpu-dirty-limit` as shown."))
    if figures:
        parts.append("## Plots\n\n" + "\n".join(f"### {t}\n\n![{t}]({plots_rel}/{png})\n"
                                                 for t, png in figures))
    parts.append(_not_run(results))
    with open(md_path, "w") as f:
        f.write("\n".join(p for p in parts if p))
    print(f"tern-bench report: wrote {md_path} and {len(figures)} plot(s) in {plots}")


def compare_markdown(res):
    la, lb = res["labels"]
    body = []
    for r in res["rows"]:
        if r["status"] != "ok":
            body.append((r["name"], r["status"], "", "", (r.get("reason") or
                                                          "; ".join(r["errors"])[:80])))
            continue
        for k, c in r["compare"].items():
            if k.startswith(("wall-", "first-touches")):
                continue
            ratio = c["ratio"]
            spread = (f"{ratio['median']:.3f} [{ratio['min']:.3f}..{ratio['max']:.3f}]"
                      if ratio else "-")
            body.append((r["name"], k, fmt(c["a"]["median"]), fmt(c["b"]["median"]), spread))
    return (f"# tern-bench compare: {la} vs {lb}\n\n{res['repeat']} interleaved pairs per row; "
            f"ratio = {lb} / {la} per pair, median [min..max].\n\n" +
            table(["row", "metric", la, lb, f"{lb} / {la}"], body))
