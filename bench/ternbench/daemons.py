"""A source and a destination ternd on this host, as scripts/demo.sh starts them, plus the
per-process cost figures (CPU seconds from /proc/PID/stat, VmRSS/VmHWM from /proc/PID/status)."""
import os
import shutil
import subprocess
import tempfile
import time

from .qmp import Qmp, ext

TICK = os.sysconf("SC_CLK_TCK")


class SkipRow(Exception):
    """The row cannot run here (transport not built, not enough memory...): reported, not failed."""


def _stat_fields(pid):
    """/proc/PID/stat after the command name: fields[0] is field 3 (state) of proc(5)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def minor_faults(pid):
    return int(_stat_fields(pid)[7])  # minflt: faults that needed no I/O, every thread's


# Host-wide /proc/vmstat counters that say a run's transparent huge pages were hard to get: a
# fault that had to compact memory (compact_stall) or fell back to 4 KiB pages (a fault per
# 4 KiB page from then on: thp_fault_fallback), on a host whose free memory is fragmented or
# held by the page cache. Both sides of every row fault THPs in, so a slow run with these is the
# host's memory state, not the migration.
HOST_VMSTAT = {"thp_fault_fallback": "host-thp-fallbacks", "compact_stall": "host-compact-stalls"}


def host_vmstat():
    out = {}
    with open("/proc/vmstat") as f:
        for line in f:
            name, _, value = line.partition(" ")
            if name in HOST_VMSTAT:
                out[name] = int(value)
    return out


def host_vmstat_delta(before, after):
    """The HOST_VMSTAT counters' growth between two host_vmstat() readings, as run metrics."""
    return {key: after[name] - before[name] for name, key in HOST_VMSTAT.items()
            if name in before and name in after}


def mem_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, rest = line.split(":", 1)
            if key in ("VmRSS", "VmHWM", "HugetlbPages"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def hugepages_free():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
    return 0


class HugePages:
    """Reserves 2 MiB pages for both guests and gives them back (as demo.sh does)."""

    def __init__(self, need):
        self.need, self.before, self.set_to = need, None, None

    def __enter__(self):
        free = hugepages_free()
        if free < self.need:
            with open("/proc/sys/vm/nr_hugepages") as f:
                self.before = int(f.read())
            self.set_to = self.before + self.need - free
            try:
                with open("/proc/sys/vm/nr_hugepages", "w") as f:
                    f.write(str(self.set_to))
            except OSError as e:
                raise SkipRow(f"cannot reserve {self.need} hugetlb pages: {e}") from e
            if hugepages_free() < self.need:
                self.__exit__(None, None, None)
                raise SkipRow(f"the kernel gave {hugepages_free()} free 2 MiB pages, "
                              f"{self.need} needed")
        return self

    def __exit__(self, *exc):
        if self.before is not None:
            with open("/proc/sys/vm/nr_hugepages") as f:
                now = int(f.read())
            if now == self.set_to:
                with open("/proc/sys/vm/nr_hugepages", "w") as f:
                    f.write(str(self.before))
            self.before = None


def listen_uri(transport, tmp=None, dpdk_opts=""):
    """The destination's --incoming URI. dpdk_opts: tern's dpdk options (docs/dpdk.md, e.g.
    "idle_us=50"), on a memif socket in `tmp`; the source learns them from query-incoming."""
    if transport == "dpdk":
        if dpdk_opts:
            return f"dpdk:net_memif0,socket={os.path.join(tmp, 'memif.sock')},{dpdk_opts}"
        return "dpdk:"
    if transport == "rdma":  # an address of the RDMA device's netdev (the VM's rxe0: 10.77.0.1)
        return f"rdma:{os.environ.get('TERN_RDMA_IP') or '127.0.0.1'}:0"
    return f"{transport}:127.0.0.1:0"


class Pair:
    """Destination first, then source; both stopped (quit, then SIGKILL) on close().
    vmm: each guest lives in a VMM process of its own (tern-thread-vmm, attached to its ternd
    through libtern-vmm, docs/embedding.md) instead of inside ternd."""

    def __init__(self, build, transport, guest_spec, workers=1, prefill=True, pin=True,
                 vmm=False, dpdk_opts=""):
        self.build = build
        self.ternd = os.path.join(build, "control", "ternd")
        self.ternctl = os.path.join(build, "control", "ternctl")
        self.tmp = tempfile.mkdtemp(prefix="tern-bench.")
        self.procs = {}
        self.vmms = {}
        self.qmp = {}
        self.transport = transport
        common = ["--workers", str(workers)] + ([] if pin else ["--no-pin"])
        common += ["--auth-key-file", throwaway_key(self.tmp)]
        if transport == "dpdk":  # the EAL starts with ternd, not in the first migration's setup
            common += ["--prepare-transport", "dpdk"]
        try:
            dst_args = ["--incoming", listen_uri(transport, self.tmp, dpdk_opts)] + common
            if vmm:
                dst_args += ["--attach-socket", self._vmm("dst", guest_spec, ["--incoming"])]
            self._start("dst", dst_args)
            self.uri = self.qmp["dst"].execute(ext("query-incoming"))["uri"]
            if vmm:  # ternd opens its QMP socket once the VMM attached
                src_args = ["--attach-socket",
                            self._vmm("src", guest_spec, ["--prefill"] if prefill else [])]
            else:
                src_args = ["--guest", "threads," + guest_spec] + (["--prefill"] if prefill else [])
            self._start("src", src_args + common, timeout=300)
        except Exception as e:
            # A ternd that refused its arguments (a bad --incoming URI) says why in its log.
            tail = (self.log_tail("dst", 3) + "\n" + self.log_tail("src", 3)).strip()
            self.close()
            if not tail:
                raise
            raise RuntimeError(f"{e}\n{tail}") from e
        except BaseException:
            self.close()
            raise

    def _vmm(self, side, guest_spec, args):
        """Starts the guest's VMM process for `side`; returns the attach socket it waits for."""
        att = os.path.join(self.tmp, side + ".att")
        log = open(os.path.join(self.tmp, side + "-vmm.log"), "w")
        self.vmms[side] = subprocess.Popen(
            [os.path.join(self.build, "vm", "tern-thread-vmm"), "--attach", att, "--spec",
             guest_spec, *args], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        return att

    def log_tail(self, side, lines=8):
        try:
            with open(os.path.join(self.tmp, side + ".log")) as f:
                return "".join(f.readlines()[-lines:]).strip()
        except OSError:
            return ""

    def _start(self, side, args, timeout=30):
        sock = os.path.join(self.tmp, side + ".sock")
        log = open(os.path.join(self.tmp, side + ".log"), "w")
        p = subprocess.Popen([self.ternd, "--socket", sock, *args], stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)
        log.close()
        self.procs[side] = p
        deadline = time.monotonic() + timeout
        while not os.path.exists(sock):
            if p.poll() is not None:
                raise RuntimeError(f"{side} ternd exited ({p.returncode}): {self.log_tail(side)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{side} ternd did not open its socket in {timeout} s")
            time.sleep(0.05)
        self.qmp[side] = Qmp(sock)

    def sock(self, side):
        return os.path.join(self.tmp, side + ".sock")

    def ternctl_run(self, side, *args, timeout=60):
        r = subprocess.run([self.ternctl, "--socket", self.sock(side), "--json", *args],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"ternctl {' '.join(args)}: {(r.stderr or r.stdout).strip()}")
        return r.stdout

    def _all(self):
        """ternd per side, and each side's VMM process as "vmm-src" / "vmm-dst"."""
        return {**self.procs, **{"vmm-" + s: p for s, p in self.vmms.items()}}

    def cpu(self):
        return {s: cpu_seconds(p.pid) for s, p in self._all().items()}

    def faults(self):
        return {s: minor_faults(p.pid) for s, p in self._all().items()}

    def mem(self):
        return {s: mem_status(p.pid) for s, p in self.procs.items()}

    def close(self):
        for side in ("src", "dst"):
            q = self.qmp.pop(side, None)
            if q:
                try:
                    q.execute("quit")
                except Exception:  # noqa: BLE001 - already gone
                    pass
                q.close()
        reap(self.procs.values())
        self.procs = {}
        for p in self.vmms.values():  # a destination VMM runs its guest until told to stop
            if p.poll() is None:
                p.terminate()
        reap(self.vmms.values())
        self.vmms = {}
        shutil.rmtree(self.tmp, ignore_errors=True)


def reap(procs, timeout=10):
    """Waits for processes told to quit; kills those still running after `timeout` s."""
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def migration_figures(info):
    """The figures every migration row reports, from the source's completed query-migrate."""
    r = info["ram"]
    setup = info.get("setup-time") or 0
    active_s = max(1e-9, (info["total-time"] - setup) / 1000)
    return {
        "total-time-ms": info["total-time"],
        "setup-time-ms": info.get("setup-time"),
        "active-time-ms": info["total-time"] - setup,
        "downtime-ms": info.get("downtime"),
        "transferred-bytes": r["transferred"],
        "normal-bytes": r.get("normal-bytes"),
        "dirty-sync-count": r.get("dirty-sync-count"),
        "throughput-GBps": r["transferred"] / active_s / 1e9,
    }


_available = {}


def throwaway_key(directory):
    """A fresh pre-shared key file (mode 0600) in `directory` for ternd --auth-key-file: both
    ternd of a pair authenticate their channels with it (docs/security.md)."""
    path = os.path.join(directory, "bench.psk")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    return path


def available_transports(build):
    """The transports compiled into this build's ternd (query-transports, a tern extension), cached per build."""
    if build not in _available:
        tmp = tempfile.mkdtemp(prefix="tern-bench-probe.")
        sock = os.path.join(tmp, "probe.sock")
        p = subprocess.Popen([os.path.join(build, "control", "ternd"), "--socket", sock,
                              "--incoming", "defer", "--log-level", "error", "--insecure"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                if os.path.exists(sock) or p.poll() is not None:
                    break
                time.sleep(0.05)
            q = Qmp(sock)
            _available[build] = q.execute(ext("query-transports"))["available"]
            q.execute("quit")
            q.close()
        finally:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            shutil.rmtree(tmp, ignore_errors=True)
    return _available[build]


def rdma_device_present():
    try:
        return bool(os.listdir("/sys/class/infiniband"))
    except OSError:
        return False


def require_transport(build, name):
    if name not in available_transports(build):
        raise SkipRow(f"not run: {name} transport not built "
                      f"(this build has {', '.join(available_transports(build))})")
    if name == "rdma" and not rdma_device_present():
        raise SkipRow("not run: no RDMA device on this host (tern-bench run runs the rdma rows "
                      "in the soft-RoCE VM)")
