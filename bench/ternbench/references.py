"""Reference measurements taken in the same run, so every tern figure is also a ratio:
memcpy bandwidth and a bare userfaultfd fault (tern-bench-micro's BM_Memcpy and
BM_BareUffdFault), a TCP loopback round trip, and the rows for ib_write_bw/ib_write_lat
(rdma) and dpdk-testpmd over memif (dpdk), which run only where those transports exist."""
import json
import os
import subprocess

from . import testpmd
from .daemons import SkipRow, require_transport

MICRO_FILTER = (r"^BM_Memcpy/(4096|2097152)$|^BM_BareUffdFault/spinning:(0|1)"
                r"|^BM_BareUffdFault2M")


def _micro_json(build, bench_filter, env=None):
    exe = os.path.join(build, "bench", "tern-bench-micro")
    if not os.path.exists(exe):
        raise SkipRow(f"{exe} not built (meson option bench)")
    r = subprocess.run([exe, f"--benchmark_filter={bench_filter}", "--benchmark_format=json",
                        "--benchmark_min_time=0.2"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, **(env or {})})
    if r.returncode != 0:
        raise RuntimeError(f"tern-bench-micro failed: {r.stderr.strip()[-300:]}")
    return [b for b in json.loads(r.stdout)["benchmarks"] if not b.get("error_occurred")]


def micro(build):
    out = {}
    for b in _micro_json(build, MICRO_FILTER):
        name = b["name"]
        if name.startswith("BM_Memcpy/"):
            size = "4K" if name.endswith("/4096") else "2M"
            out[f"memcpy-{size}-GBps"] = b["bytes_per_second"] / 1e9
        elif name.startswith("BM_BareUffdFault2M"):
            out["uffd-2M-p50-us"] = b["p50_us"]
            out["uffd-2M-p99-us"] = b["p99_us"]
        elif name.startswith("BM_BareUffdFault"):
            kind = "spinning" if "spinning:1" in name else "blocking"
            out[f"uffd-{kind}-p50-us"] = b["p50_us"]
            out[f"uffd-{kind}-p99-us"] = b["p99_us"]
    if not out:
        raise RuntimeError("tern-bench-micro reported no reference benchmark")
    return out


def tcp_rtt(build, rounds=20000):
    """64-byte ping-pong over TCP loopback between two C++ processes (tern-bench-micro's
    BM_TcpRoundTrip): p50/p99 round trip (us)."""
    for b in _micro_json(build, r"^BM_TcpRoundTrip", {"TERN_BENCH_RTT_ROUNDS": str(rounds)}):
        return {"tcp-rtt-p50-us": b["p50_us"], "tcp-rtt-p99-us": b["p99_us"]}
    raise RuntimeError("tern-bench-micro reported no BM_TcpRoundTrip")


def rdma_perftest(build, entry):
    """ib_write_bw/ib_write_lat (and tern's urgent round trip) on this host's RDMA device; where
    there is none, runner.run_suite runs this inside the soft-RoCE VM (rdmavm.py)."""
    require_transport(build, "rdma")
    from .rdmavm import perftest
    return perftest(build, entry)


def dpdk_testpmd(build):
    require_transport(build, "dpdk")
    try:
        return testpmd.memif_forward()
    except testpmd.TestpmdMissing as e:
        raise SkipRow(str(e))


# kind -> fn(build, entry): the entry's keys (e.g. `rounds` for tcp-rtt) tune the reference.
KINDS = {"micro": lambda build, e: micro(build),
         "tcp-rtt": lambda build, e: tcp_rtt(build, int(e.get("rounds", 20000))),
         "rdma-perftest": lambda build, e: rdma_perftest(build, e),
         "dpdk-testpmd": lambda build, e: dpdk_testpmd(build)}
