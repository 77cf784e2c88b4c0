"""dpdk-testpmd forwarding over memif: the reference the dpdk rows are compared with (issue 6).
Two memif ports of one testpmd process (server and client on one abstract socket), io
forwarding on one core, 8 KiB packets (a tern segment's payload) started with a burst
(`start tx_first`), no hugepages (--no-huge, as tern's EAL). GB/s = the bytes both ports
receive per second between two stats reports, i.e. what crossed memif per second. Also run by
scripts/bench-dpdk.sh (`python3 -m ternbench.testpmd`)."""
import os
import re
import shutil
import signal
import subprocess
import time


class TestpmdMissing(Exception):
    """dpdk-testpmd is not installed or could not run here (the message says why)."""


def _run(exe, seconds, packet):
    tag = f"tern-testpmd-{os.getpid()}"
    sock = f"/run/{tag}.sock"  # abstract in DPDK 22.11's memif: nothing to clean up
    memif = "bsize=8448,rsize=9"
    cmd = [exe, "-l", "0-1", "--no-huge", "-m", "1024", "--no-pci", "--no-shconf",
           "--file-prefix", tag,
           f"--vdev=net_memif0,role=server,socket={sock},{memif}",
           f"--vdev=net_memif1,role=client,socket={sock},{memif}", "--", "-i",
           "--mbuf-size=9000", "--total-num-mbufs=16384", "--forward-mode=io",
           f"--txpkts={packet}", "--burst=32", "--nb-cores=1"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)

    def say(line, wait):
        p.stdin.write(line + "\n")
        p.stdin.flush()
        time.sleep(wait)

    try:
        # The memif client connects asynchronously: a first burst sent before the link is up
        # is lost and nothing would circulate, so start once the link had time to come up,
        # then measure between two stats reports (Rx-bps is "since last show").
        time.sleep(3)
        say("start tx_first 4", 2)
        say("show port stats all", seconds)
        say("show port stats all", 0.5)
        say("stop", 0.5)
        say("quit", 0)
        out, _ = p.communicate(timeout=30)
    except (subprocess.TimeoutExpired, BrokenPipeError):
        p.kill()
        out, _ = p.communicate()
    return out


def memif_forward(seconds=5, packet=8192):
    exe = shutil.which("dpdk-testpmd")
    if exe is None:
        raise TestpmdMissing("not run: dpdk-testpmd not found (Debian package dpdk)")
    for _ in range(2):  # a slow start on a loaded host can miss the link once
        out = _run(exe, seconds, packet)
        rx = [int(x) for x in re.findall(r"Rx-bps:\s*(\d+)", out)]
        # One Rx-bps line per port per report: the second report's pair is the measurement.
        if len(rx) >= 4 and sum(rx[-2:]) > 0:
            return {"testpmd-memif-GBps": sum(rx[-2:]) / 8 / 1e9}
    tail = "\n".join(out.strip().splitlines()[-3:])
    raise TestpmdMissing(f"not run: dpdk-testpmd forwarded nothing over memif: {tail}")


if __name__ == "__main__":
    import sys
    try:
        print(f"{memif_forward()['testpmd-memif-GBps']:.3f}")
    except TestpmdMissing as e:
        print(e, file=sys.stderr)
        sys.exit(2)
