"""The floor rows (spec key `floor`), interleaved with the same guest's tern and QEMU rows: a
row's written bytes (its wss) landed in fresh memory and nothing else. `tcp`: tern-bench-micro's
BM_TcpFloor sends them from one process to another over TCP loopback; any TCP migration of the
guest costs at least this here, so a target below it (a time or CPU ratio against QEMU) is out of
any TCP transport's reach on this host. `copy`: BM_CopyFloor copies them once in one process;
any destination that lands pages by copying pays at least its CPU. tern over a floor is what
tern itself adds."""
from . import references
from .scenarios import wss_bytes

BENCHMARKS = {"tcp": "BM_TcpFloor", "copy": "BM_CopyFloor"}  # floor variant -> tern-bench-micro


def run(row, build):
    """One floor run of a migration row: the metrics the vs-QEMU tables read (no setup, no
    downtime: it has neither)."""
    n = wss_bytes(row)
    if n <= 0:
        raise ValueError(f"row {row['name']}: nothing written (wss {row.get('wss')}), no floor")
    bench = BENCHMARKS[row.get("floor", "tcp")]
    got = references._micro_json(build, f"^{bench}/", {"TERN_BENCH_FLOOR_BYTES": str(n)})
    if not got:
        raise RuntimeError(f"{bench} reported no result: run `tern-bench-micro "
                           f"--benchmark_filter=^{bench}` with TERN_BENCH_FLOOR_BYTES={n} "
                           "to see why")
    b = got[0]
    out = {"total-time-ms": b["wall_ms"], "active-time-ms": b["wall_ms"],
           "transferred-bytes": b["bytes"]}
    for side in ("src", "dst"):
        cpu = b[f"{side}_cpu_s"]
        out[f"cpu-s-{side}"] = cpu
        out[f"minor-faults-{side}"] = b[f"{side}_minflt"]
        if cpu > 0:
            out[f"bytes-per-cpu-s-{side}"] = b["bytes"] / cpu
    return out
