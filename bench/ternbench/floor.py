"""The floor rows (spec key `floor`): tern-bench-micro's BM_TcpFloor moves a row's written bytes
(its wss) from one process to another over TCP loopback into fresh memory, and nothing else,
interleaved with the same guest's tern and QEMU rows. Any TCP migration of that guest costs at
least this on this host, so a target below it (a time or CPU ratio against QEMU) is out of any
TCP transport's reach here, and tern over the floor is what tern itself adds."""
from . import references
from .scenarios import parse_size, wss_bytes


def run(row, build):
    """One floor run of a migration row: the metrics the vs-QEMU tables read (no setup, no
    downtime: it has neither)."""
    n = wss_bytes(row)
    if n <= 0:
        raise ValueError(f"row {row['name']}: nothing written (wss {row.get('wss')}), no floor")
    got = references._micro_json(build, r"^BM_TcpFloor/", {"TERN_BENCH_FLOOR_BYTES": str(n)})
    if not got:
        raise RuntimeError("BM_TcpFloor reported no result: run `tern-bench-micro "
                           "--benchmark_filter=^BM_TcpFloor` with TERN_BENCH_FLOOR_BYTES="
                           f"{n} to see why")
    b = got[0]
    out = {"total-time-ms": b["wall_ms"], "active-time-ms": b["wall_ms"],
           "transferred-bytes": b["bytes"], "ram-bytes": parse_size(row["ram"])}
    for side in ("src", "dst"):
        cpu = b[f"{side}_cpu_s"]
        out[f"cpu-s-{side}"] = cpu
        out[f"minor-faults-{side}"] = b[f"{side}_minflt"]
        out[f"bytes-per-cpu-s-{side}"] = b["bytes"] / cpu if cpu > 0 else None
    return out
