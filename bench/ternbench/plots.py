"""The report's PNG plots, drawn with gnuplot (Debian's gnuplot-nox): fault-latency CDFs per
transport and page size, bulk throughput against channels, migration time against dirty rate.
Each function returns [(title, png file name)] for what it drew."""
import os
import subprocess

from . import stats
from .common import axes_label, bulk_label, dirty_rate_mbps, ok_rows, onoff, run_hist

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
            label = f"bulk {bulk_label(r)}, preempt {onoff(bool(r['params'].get('preempt')))}"
            for side, dt in (("host", 1), ("guest", 2)):
                h = stats.merge(run_hist(run, f"hist-{side}") for run in r["runs"])
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
                 "set logscale x 2\nset format x '%.0f'\nset xtics rotate by -30\nset xlabel 'latency (us, power-of-two bucket upper bound)'\n"
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
            for r in sorted(rs, key=dirty_rate_mbps):
                s = r["summary"].get("total-time-ms")
                if s:
                    f.write(f"{dirty_rate_mbps(r)} {s['median']} {s['min']} {s['max']}\n")
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


