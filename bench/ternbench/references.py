"""Reference measurements taken in the same run, so every tern figure is also a ratio:
memcpy bandwidth and a bare userfaultfd fault (tern-bench-micro's BM_Memcpy and
BM_BareUffdFault), a TCP loopback round trip, and the rows for ib_write_bw/ib_write_lat
(rdma) and dpdk-testpmd over memif (dpdk), which run only where those transports exist."""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

from . import testpmd
from .daemons import SkipRow, require_transport

MICRO_FILTER = r"^BM_Memcpy/(4096|2097152)$|^BM_BareUffdFault/spinning:(0|1)"


def micro(build):
    exe = os.path.join(build, "bench", "tern-bench-micro")
    if not os.path.exists(exe):
        raise SkipRow(f"{exe} not built (meson option bench)")
    r = subprocess.run([exe, f"--benchmark_filter={MICRO_FILTER}", "--benchmark_format=json",
                        "--benchmark_min_time=0.2"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"tern-bench-micro failed: {r.stderr.strip()[-300:]}")
    out = {}
    for b in json.loads(r.stdout)["benchmarks"]:
        name = b["name"]
        if b.get("error_occurred"):
            continue
        if name.startswith("BM_Memcpy/"):
            size = "4K" if name.endswith("/4096") else "2M"
            out[f"memcpy-{size}-GBps"] = b["bytes_per_second"] / 1e9
        elif name.startswith("BM_BareUffdFault"):
            kind = "spinning" if "spinning:1" in name else "blocking"
            out[f"uffd-{kind}-p50-us"] = b["p50_us"]
            out[f"uffd-{kind}-p99-us"] = b["p99_us"]
    if not out:
        raise RuntimeError("tern-bench-micro reported no reference benchmark")
    return out


_ECHO = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(1); print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    d = c.recv(64)
    if not d: break
    c.sendall(d)
"""


def tcp_rtt(rounds=20000):
    """64-byte ping-pong over TCP loopback with an echo process: p50/p99 round trip (us). Both
    ends are Python, so this is an upper bound of the kernel's round trip, a few us above it."""
    p = subprocess.Popen([sys.executable, "-c", _ECHO], stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        c = socket.create_connection(("127.0.0.1", port))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = b"x" * 64
        samples = []
        for i in range(rounds):
            t0 = time.perf_counter_ns()
            c.sendall(msg)
            got = 0
            while got < 64:
                got += len(c.recv(64 - got))
            if i >= 100:  # warm-up
                samples.append((time.perf_counter_ns() - t0) / 1000)
        c.close()
    finally:
        p.wait(timeout=10)
    samples.sort()
    return {"tcp-rtt-p50-us": statistics.median(samples),
            "tcp-rtt-p99-us": samples[int(len(samples) * 0.99)]}


def rdma_perftest(build):
    require_transport(build, "rdma")
    raise SkipRow("not run: ib_write_bw/ib_write_lat need the soft-RoCE VM harness (issue 4)")


def dpdk_testpmd(build):
    require_transport(build, "dpdk")
    try:
        return testpmd.memif_forward()
    except testpmd.TestpmdMissing as e:
        raise SkipRow(str(e))


# kind -> fn(build, entry): the entry's keys (e.g. `rounds` for tcp-rtt) tune the reference.
KINDS = {"micro": lambda build, e: micro(build),
         "tcp-rtt": lambda build, e: tcp_rtt(int(e.get("rounds", 20000))),
         "rdma-perftest": lambda build, e: rdma_perftest(build),
         "dpdk-testpmd": lambda build, e: dpdk_testpmd(build)}
