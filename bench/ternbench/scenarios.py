"""The end-to-end scenario kinds. Each run() starts a fresh ternd pair, migrates once and
returns one run's metrics (a flat dict of numbers, plus histograms under "hist-*").

  postcopy   fault latency: host side (destination postcopy-fault-latency) and guest side
             (the thread guest's first-touch wait, counters.first-touch-latency)
  bulk       precopy throughput of a prefilled, nearly idle guest (GB/s of RAM moved)
  migration  a whole precopy migration: total time, downtime, setup time, bytes sent
  qemu       the same guest migrated by QEMU itself, for comparison (qemuref.py)
  floor      the same guest's written bytes landed in fresh memory and nothing else: over bare
             TCP loopback, or by one copy (floor.py)
All kinds also report cost: CPU seconds and minor faults of each ternd (or QEMU) during the
migration, bytes moved per CPU second, and (ternd) resident memory beyond the guest's RAM.
"""
import time

from . import daemons, stats
from .qmp import QmpError, ext, wait_status

SIZE = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text):
    text = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in SIZE:
        return int(float(text[:-1]) * SIZE[text[-1]])
    return int(text)


def guest_spec(row):
    """The --guest threads,SPEC of a row (vm/workload.h keys)."""
    keys = ["vcpus", "ram", "page", "wss", "rate", "pattern", "read", "readers", "seed", "ring",
            "free", "reuse"]
    return ",".join(f"{k}={row[k]}" for k in keys if k in row)


def wss_bytes(row):
    ram = parse_size(row["ram"])
    w = str(row.get("wss", "100%"))
    if w.endswith("%"):
        return int(ram * float(w[:-1]) / 100)
    if "." in w:
        return int(ram * float(w))
    return min(ram, parse_size(w))


def check_resources(row):
    """Raises SkipRow when this host cannot hold the row's two guests. 4K source guests are
    resident only where written (the working set, prefilled) plus the version table; 2M guests
    are hugetlb pages, which daemons.HugePages reserves."""
    if str(row.get("page", "4K")).upper() == "2M":
        return
    ram = parse_size(row["ram"])
    # Source: the working set + version table; destination: the same (it no longer pre-faults
    # guest RAM; never-populated memory arrives as zero ranges and is not touched). 2 GiB to
    # spare: a 16G row that passed with 1 GiB, when the destination pre-faulted, drove this
    # 23 GiB host out of memory (the OOM killer took the destination ternd).
    need = 2 * (wss_bytes(row) + ram // 1024) + (2 << 30)
    from .machine import mem_available_bytes
    have = mem_available_bytes()
    if have < need:
        raise daemons.SkipRow(f"needs about {need >> 20} MiB free for two {row['ram']} guests, "
                              f"{have >> 20} MiB available")


def _migrate_args(row, uri):
    args = ["migrate", uri, "--channels", str(row.get("channels", 2))]
    if row["kind"] == "postcopy" or row.get("postcopy") or row.get("preempt"):
        args.append("--postcopy")
    if row.get("preempt"):
        args.append("--preempt")
    if row.get("dirty_limit"):
        args.append("--dirty-limit")
    if row.get("free_page_hint"):
        args.append("--free-page-hint")
    if row.get("max_bandwidth"):
        args += ["--max-bandwidth", str(row["max_bandwidth"])]
    if row.get("downtime_limit"):
        args += ["--downtime-limit", str(row["downtime_limit"])]
    return args


def _cost(row, pair, cpu0, cpu1, info, mem, flt0=None, flt1=None):
    ram = parse_size(row["ram"])
    # Guest RAM resident by design: all of it with hugetlb pages and on the destination (every
    # page placed); on a 4K source, what was written (the working set, prefilled) + version table.
    guest = {"dst": ram, "src": ram if str(row.get("page", "4K")).upper() == "2M"
             else min(ram, wss_bytes(row) + ram // 1024)}
    moved = info.get("ram", {}).get("transferred", 0)
    out = {}
    for side in ("src", "dst"):
        cpu = cpu1[side] - cpu0[side]
        out[f"cpu-s-{side}"] = cpu
        out[f"bytes-per-cpu-s-{side}"] = moved / cpu if cpu > 0 else None
        if flt0 and flt1:
            out[f"minor-faults-{side}"] = flt1[side] - flt0[side]
        m = mem.get(side, {})
        resident = m.get("VmHWM", 0) + m.get("HugetlbPages", 0)
        out[f"rss-overhead-mib-{side}"] = (resident - guest[side]) / (1 << 20)
    # A guest in a VMM process of its own (vmm rows): its vCPUs and serving run there, so the
    # cost of the migration is both ternds plus both VMMs (cpu-s-all), comparable with a guest
    # whose vCPUs run inside ternd.
    for side in ("vmm-src", "vmm-dst"):
        if side in cpu0 and side in cpu1:
            out[f"cpu-s-{side}"] = cpu1[side] - cpu0[side]
            if flt0 and flt1 and side in flt0 and side in flt1:
                out[f"minor-faults-{side}"] = flt1[side] - flt0[side]
    out["cpu-s-all"] = sum(cpu1[s] - cpu0[s] for s in cpu1 if s in cpu0)
    return out


def run(row, build):
    """One run of one row; returns {metric: value} or raises (SkipRow / any error = failed)."""
    if row["kind"] == "qemu":
        from . import qemuref
        return qemuref.run(row)
    if row["kind"] == "floor":
        from . import floor
        return floor.run(row, build)
    daemons.require_transport(build, row["transport"])
    if row["transport"] == "loopback":
        raise daemons.SkipRow("loopback joins two engines in one process; ternd pairs need tcp, "
                              "rdma or dpdk")
    check_resources(row)
    ram = parse_size(row["ram"])
    huge = row.get("page", "4K").upper() == "2M"
    need = 2 * (ram >> 21) if huge else 0
    with daemons.HugePages(need) if huge else _null():
        pair = daemons.Pair(build, row["transport"], guest_spec(row), row.get("workers", 1),
                            prefill=row.get("prefill", True), pin=row.get("pin", True),
                            vmm=row.get("vmm", False), dpdk_opts=row.get("dpdk_opts", ""))
        try:
            return _run(row, pair, ram)
        except Exception as e:
            tail = pair.log_tail("src", 3) + "\n" + pair.log_tail("dst", 3)
            raise RuntimeError(f"{e}\n{tail.strip()}") from e
        finally:
            pair.close()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _run(row, pair, ram):
    src, dst = pair.qmp["src"], pair.qmp["dst"]
    if row.get("max_rounds"):
        src.execute("migrate-set-parameters", {ext("max-rounds"): int(row["max_rounds"])})
    if row.get("dirty_limit"):
        src.execute("migrate-set-parameters", {"vcpu-dirty-limit": int(row["dirty_limit"])})
    if row.get("chunk_size"):
        src.execute("migrate-set-parameters", {ext("chunk-size"): parse_size(row["chunk_size"])})
    cpu0, flt0, vm0 = pair.cpu(), pair.faults(), daemons.host_vmstat()
    t0 = time.monotonic()
    pair.ternctl_run("src", *_migrate_args(row, pair.uri))
    timeout = float(row.get("timeout", 300))
    if row["kind"] == "postcopy":
        st = wait_status(src, {"active", "postcopy-active"}, timeout)
        if st.get("status") == "active":
            try:
                src.execute("migrate-start-postcopy")
            except QmpError:
                # Precopy converged first (a small guest): the row then has no faults.
                if src.execute("query-migrate").get("status") == "active":
                    raise
    info = wait_status(src, set(), timeout, interval=0.05)
    wall = time.monotonic() - t0
    # The destination finishes placing after the source says completed; let it settle.
    dinfo = wait_status(dst, set(), 60, interval=0.05)
    cpu1, flt1, vm1 = pair.cpu(), pair.faults(), daemons.host_vmstat()
    mem = pair.mem()
    if info.get("status") != "completed" or dinfo.get("status") != "completed":
        raise RuntimeError(f"migration {info.get('status')} (destination {dinfo.get('status')}): "
                           f"{info.get('error-desc') or dinfo.get('error-desc') or ''}")
    guest = dst.execute(ext("query-guest"))
    counters = guest.get("counters", {})
    if counters.get("touched-mismatches", 0) or counters.get("mismatches", 0):
        raise RuntimeError(f"page mismatches on the destination: {counters}")
    r = info["ram"]
    out = {
        **daemons.migration_figures(info),
        "switchover-forced": 1 if info.get(ext("switchover-forced")) else 0,
        "wall-s": wall,
        **daemons.host_vmstat_delta(vm0, vm1),
    }
    if r.get(ext("free-page-hints")):
        out["free-page-hints"] = r[ext("free-page-hints")]
        out["free-pages-skipped"] = r.get(ext("free-pages-skipped"))
    if info.get("dirty-limit-throttle-time-per-round") is not None:
        out["dirty-limit-throttle-us"] = info["dirty-limit-throttle-time-per-round"]
    out.update(_cost(row, pair, cpu0, cpu1, info, mem, flt0, flt1))
    if row["kind"] == "postcopy":
        host = stats.hist_counts(dinfo.get(ext("postcopy-fault-latency")))
        touch = stats.hist_counts(counters.get("first-touch-latency"))
        # Every first touch is in the guest histogram, present pages too (lowest buckets): the
        # guest side of a fault is the slowest N touches, N = the faults the host resolved.
        nfaults = sum(host.values())
        guest_faults = stats.tail(touch, nfaults)
        out["faults"] = nfaults
        out["postcopy-requests"] = r.get("postcopy-requests")
        out["preemptions"] = r.get(ext("preemptions"))
        out["first-touches"] = sum(touch.values())
        for k, v in stats.percentiles(host).items():
            if k != "count":
                out[f"host-{k}-us"] = v
        for k, v in stats.percentiles(guest_faults).items():
            if k != "count":
                out[f"guest-{k}-us"] = v
        out["hist-host"] = host
        out["hist-guest"] = guest_faults
    return out
