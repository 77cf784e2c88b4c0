"""The `qemu` reference: Debian's QEMU (7.2) migrating its own guest on this host, beside tern's
matching rows. A source and a destination qemu-system-x86_64 (TCG: no usable KVM here), both
driven over QMP unix sockets, no disk, no NIC; the guest is the Debian kernel that
tests/rdma/vm.sh already fetches and caches (`vm.sh --kernel`) plus an initramfs holding one
static program (qemuguest.c) that fills the row's working set with pseudo-random pages, says
TERN-READY on the serial console, then idles or dirties `rate` pages/s. After the migration the
destination's guest checks every page (TERN-VERIFY): a run with a mismatch fails.

Facts that shape it: QEMU 7.2 under TCG loses dirty pages in its fast bitmap sync when the RAM
size is a multiple of 256 KiB (fixed upstream in 9.0, 03bfc2188f), so the VM gets the row's RAM
+ 8 KiB (`-m 2097160k` for 2G; the row key qemu_ram_pad changes it). The price: 7.2 then syncs
the bitmap page by page, resetting the emulated TLBs for each dirty page, and at setup every page
is dirty (2 GiB: setup ~4.3 s at load 13, 2 ms without the pad; with the exact size the page
check found no lost page in 3 runs here, idle and dirtying, but the pad stays the default).
QEMU's default max-bandwidth (128 MiB/s) is lifted; the `multifd` variant sets the multifd
capability and 2 channels on both sides. Beside tern's postcopy rows (row key qemu_of) QEMU
migrates in postcopy, with postcopy-preempt where the row's preempt is on; the guest then
times the first touch of each page (guest side only: 7.2 has no fault-latency histogram).

Per run (same names as tern's rows, so the report sets them side by side): total, setup and
downtime from the source's query-migrate, transferred bytes, CPU seconds and minor faults of
each QEMU process from /proc/PID/stat between right before `migrate` and right after that side
completed, bytes per CPU second."""
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

from . import stats
from .daemons import (SkipRow, cpu_seconds, host_vmstat, host_vmstat_delta,
                      migration_figures, minor_faults, reap)
from .qmp import Qmp, wait_status

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GUEST_SRC = os.path.join(HERE, "qemuguest.c")
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                     "tern", "qemu-ref")
QEMU = "qemu-system-x86_64"
RAM_PAD = 8 << 10          # keeps the RAM size off a multiple of 256 KiB (QEMU 7.2 TCG bug)
MAX_BANDWIDTH = 1 << 40    # bytes/s: "unlimited" (the default is 128 MiB/s)
VARIANTS = {"plain": {}, "multifd": {"multifd-channels": 2}}
READY, VERIFY = "TERN-READY", "TERN-VERIFY"


def why_not():
    """None when a qemu row can run here, else the reason."""
    missing = [t for t in (QEMU, "gcc") if not shutil.which(t)]
    if missing:
        return f"not run: missing {', '.join(missing)} (scripts/install-deps.sh)"
    if not os.path.exists(os.path.join(ROOT, "tests", "rdma", "vm.sh")):
        return "not run: tests/rdma/vm.sh (which fetches the guest kernel) not found"
    return None


def version():
    """'QEMU emulator version 7.2.22 (Debian ...)' -> '7.2.22 (Debian ...)', or None."""
    try:
        r = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    first = (r.stdout.splitlines() or [""])[0]
    return first.removeprefix("QEMU emulator version ").strip() or None


def _newc(entries):
    """An initramfs (cpio newc) of (name, mode, data) entries; data None for a directory."""
    out = bytearray()
    ino = 1
    for name, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        data = data or b""
        nm = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nm), 0))
        out += hdr.encode() + nm
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
        ino += 1
    return bytes(out)


_prepared = {}


def kernel():
    """The cached Debian vmlinux (tests/rdma/vm.sh --kernel fetches it once)."""
    if "kernel" not in _prepared:
        r = subprocess.run([os.path.join(ROOT, "tests", "rdma", "vm.sh"), "--kernel"],
                           capture_output=True, text=True, timeout=900)
        path = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        if r.returncode != 0 or not os.path.exists(path):
            raise SkipRow("not run: no guest kernel: tests/rdma/vm.sh --kernel failed: " +
                          (r.stderr.strip().splitlines() or ["?"])[-1])
        _prepared["kernel"] = path
    return _prepared["kernel"]


def initramfs():
    """The guest's initramfs, rebuilt when qemuguest.c or the compiler changes."""
    if "initrd" in _prepared:
        return _prepared["initrd"]
    with open(GUEST_SRC, "rb") as f:
        src = f.read()
    cc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(src + cc.encode()).hexdigest()[:16]
    path = os.path.join(CACHE, f"initramfs-{key}.cpio")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="tern-qemu-guest.")
        try:
            exe = os.path.join(tmp, "init")
            r = subprocess.run(["gcc", "-O2", "-static", "-Wall", "-o", exe, GUEST_SRC],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"cannot build the QEMU guest's init: {r.stderr.strip()[-400:]}")
            with open(exe, "rb") as f:
                init = f.read()
            blob = _newc([("dev", 0o040755, None), ("proc", 0o040755, None),
                          ("init", 0o100755, init)])
            with open(path + ".tmp", "wb") as f:
                f.write(blob)
            os.replace(path + ".tmp", path)
            for old in os.listdir(CACHE):  # earlier builds of the guest
                if old.startswith("initramfs-") and old != os.path.basename(path):
                    os.remove(os.path.join(CACHE, old))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _prepared["initrd"] = path
    return path


def _wait_path(path, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before opening {path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not open {path} in {timeout} s")
        time.sleep(0.02)


class Serial:
    """The guest's ttyS0, a QEMU socket chardev: lines out, commands in."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.lines = []

    def send(self, text):
        self.sock.sendall(text.encode())

    def wait_for(self, prefix, timeout, proc=None):
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace").strip("\r\x00 ")
                self.lines = (self.lines + [text])[-20:]
                # The firmware's and kernel's output may share the line ("Booting from ROM..").
                if prefix in text:
                    return text[text.index(prefix):]
                if "TERN-ERROR" in text:
                    raise RuntimeError(f"guest: {text[text.index('TERN-ERROR'):]}")
            left = deadline - time.monotonic()
            if left <= 0 or (proc is not None and proc.poll() is not None):
                raise RuntimeError(f"no {prefix} from the guest in {timeout:.0f} s; console: " +
                                   " / ".join(x for x in self.lines[-5:] if x))
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise RuntimeError(f"the guest console closed before {prefix}")
            self.buf += chunk

    def close(self):
        self.sock.close()


def _fields(line):
    return {k: v for k, v in (w.split("=", 1) for w in line.split()[1:] if "=" in w)}


def parse_size(text):
    from .scenarios import parse_size as ps
    return ps(text)


KERNEL_ROOM = 128 << 20   # what the guest kernel needs beside the data (64 MiB is too little)


def vm_ram_kib(row):
    """The VM's -m in KiB: the row's RAM + `qemu_ram_pad` (default RAM_PAD; 0 shows the bug),
    or, when the data would leave the guest kernel less than KERNEL_ROOM (wss 100%), the data +
    KERNEL_ROOM + the pad (the figures then say vm-ram-bytes)."""
    from .scenarios import wss_bytes
    ram = max(parse_size(row["ram"]), wss_bytes(row) + KERNEL_ROOM)
    return (ram + parse_size(row.get("qemu_ram_pad", RAM_PAD))) >> 10


def command(kernel_path, initrd, row, tmp, side):
    """The qemu-system-x86_64 command line of one side."""
    from .scenarios import wss_bytes
    vcpus = int(row.get("vcpus", 1))
    rate = int(row.get("rate", 0)) * vcpus
    append = (f"console=ttyS0 quiet loglevel=3 panic=-1 tsc=reliable tern_data={wss_bytes(row)} "
              f"tern_rate={rate} tern_seed={int(row.get('seed', 1))}")
    cmd = [QEMU, "-name", f"tern-ref-{side}", "-accel", "tcg", "-cpu", "qemu64",
           "-smp", str(vcpus), "-m", f"{vm_ram_kib(row)}k", "-nodefaults", "-nographic",
           "-no-user-config", "-no-reboot", "-kernel", kernel_path, "-initrd", initrd,
           "-append", append,
           "-chardev", f"socket,id=ser0,path={tmp}/{side}.serial,server=on,wait=off,"
                       f"logfile={tmp}/{side}.console",
           "-serial", "chardev:ser0",
           "-qmp", f"unix:{tmp}/{side}.qmp,server=on,wait=off"]
    if side == "dst":
        cmd += ["-incoming", "defer"]
    return cmd


def check_resources(row):
    """Both VMs hold the working set (the guest kernel's few MiB aside); the plain variant's
    destination does not write the zero pages it receives, multifd's (7.2: no zero-page
    detection on its channels) may write every page."""
    from .machine import mem_available_bytes
    from .scenarios import wss_bytes
    ram = parse_size(row["ram"])
    dst = ram if row.get("qemu") == "multifd" else wss_bytes(row)
    need = wss_bytes(row) + dst + ram // 32 + (1 << 30)
    have = mem_available_bytes()
    if have < need:
        raise SkipRow(f"needs about {need >> 20} MiB free for two {row['ram']} QEMU guests, "
                      f"{have >> 20} MiB available")


class Pair:
    def __init__(self, row):
        self.tmp = tempfile.mkdtemp(prefix="tern-bench-qemu.")
        self.procs, self.qmp, self.serial = {}, {}, {}
        try:
            k, ird = kernel(), initramfs()
            for side in ("dst", "src"):
                log = open(os.path.join(self.tmp, side + ".log"), "w")
                self.procs[side] = subprocess.Popen(command(k, ird, row, self.tmp, side),
                                                    stdin=subprocess.DEVNULL, stdout=log,
                                                    stderr=log)
                log.close()
            for side in ("dst", "src"):
                p = self.procs[side]
                _wait_path(f"{self.tmp}/{side}.qmp", p, 30, f"{side} QEMU")
                _wait_path(f"{self.tmp}/{side}.serial", p, 30, f"{side} QEMU")
                self.serial[side] = Serial(f"{self.tmp}/{side}.serial")
                self.qmp[side] = Qmp(f"{self.tmp}/{side}.qmp")
        except BaseException:
            self.close()
            raise

    def pid(self, side):
        return self.procs[side].pid

    def log_tail(self, side, lines=3):
        out = []
        for name in (side + ".log", side + ".console"):
            try:
                with open(os.path.join(self.tmp, name), errors="replace") as f:
                    out += [x.strip() for x in f.readlines()[-lines:] if x.strip()]
            except OSError:
                pass
        return f"{side}: " + " / ".join(out)

    def close(self):
        for side, q in list(self.qmp.items()):
            try:
                q.execute("quit")
            except Exception:  # noqa: BLE001 - already gone
                pass
            q.close()
        self.qmp = {}
        for s in self.serial.values():
            s.close()
        self.serial = {}
        reap(self.procs.values())
        self.procs = {}
        shutil.rmtree(self.tmp, ignore_errors=True)


def postcopy(row):
    """A QEMU row beside tern's postcopy (fault) rows migrates in postcopy too."""
    return row.get("qemu_of") == "postcopy" or bool(row.get("postcopy"))


def _caps(q, names):
    q.execute("migrate-set-capabilities",
              {"capabilities": [{"capability": n, "state": True} for n in names]})


def _stat(pid):
    return cpu_seconds(pid), minor_faults(pid)


def run(row):
    """One QEMU migration of the row's guest; returns the run's metrics or raises."""
    reason = why_not()
    if reason:
        raise SkipRow(reason)
    variant = row.get("qemu", "plain")
    if variant not in VARIANTS:
        raise RuntimeError(f"qemu variant {variant!r}: one of {sorted(VARIANTS)}")
    if str(row.get("page", "4K")).upper() != "4K":
        raise SkipRow("not run: the QEMU reference guest has 4K pages only")
    if postcopy(row) and variant != "plain":
        raise SkipRow(f"not run: QEMU 7.2 has no postcopy with {variant}")
    check_resources(row)
    pair = Pair(row)
    try:
        return _run(row, pair, variant)
    except Exception as e:
        raise RuntimeError(f"{e}\n{pair.log_tail('src')}\n{pair.log_tail('dst')}") from e
    finally:
        pair.close()


def _run(row, pair, variant):
    from .scenarios import wss_bytes
    src, dst = pair.qmp["src"], pair.qmp["dst"]
    data = wss_bytes(row)
    t_boot = time.monotonic()
    # Boot (a few s under TCG) plus the fill (some 100-300 MB/s of emulated writes).
    ready = pair.serial["src"].wait_for(READY, 120 + data / 20e6, pair.procs["src"])
    boot_s = time.monotonic() - t_boot
    bw = parse_size(row.get("max_bandwidth") or 0)
    src.execute("migrate-set-parameters", {"max-bandwidth": bw or MAX_BANDWIDTH})
    if row.get("downtime_limit"):
        src.execute("migrate-set-parameters", {"downtime-limit": int(row["downtime_limit"])})
    pc = postcopy(row)
    if pc:
        caps = ["postcopy-ram"] + (["postcopy-preempt"] if row.get("preempt") else [])
        for q in (src, dst):
            _caps(q, caps)
        if bw:  # the bulk channel's bandwidth once in postcopy too (0 = unlimited)
            src.execute("migrate-set-parameters", {"max-postcopy-bandwidth": bw})
    if VARIANTS[variant]:
        for q in (src, dst):
            _caps(q, ["multifd"])
            q.execute("migrate-set-parameters", VARIANTS[variant])
    if pc:  # first touches from here on (the guest times each page's first touch)
        pair.serial["src"].send("r\n")
        pair.serial["src"].wait_for("TERN-RESET", 30, pair.procs["src"])
    dst.execute("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
    addrs = dst.execute("query-migrate").get("socket-address") or []
    port = next((a.get("port") for a in addrs if a.get("port")), None)
    if not port:
        raise RuntimeError(f"destination QEMU reported no listening port: {addrs}")
    uri = f"tcp:127.0.0.1:{port}"
    timeout = float(row.get("timeout", 300))
    s0 = {side: _stat(pair.pid(side)) for side in ("src", "dst")}
    vm0 = host_vmstat()
    t0 = time.monotonic()
    src.execute("migrate", {"uri": uri})
    if pc:  # as tern's fault rows: postcopy as soon as the migration is active
        st = wait_status(src, {"active", "postcopy-active"}, timeout, interval=0.02)
        if st.get("status") == "active":
            try:
                src.execute("migrate-start-postcopy")
            except Exception:  # noqa: BLE001 - precopy may have completed first
                if src.execute("query-migrate").get("status") == "active":
                    raise
    if pc:  # the guest, now on the destination, touches every page it has not touched yet
        wait_status(dst, {"postcopy-active", "completed"}, timeout, interval=0.01)
        pair.serial["dst"].send("s\n")
    info = wait_status(src, set(), timeout, interval=0.05)
    s1 = {"src": _stat(pair.pid("src"))}
    wall = time.monotonic() - t0
    dinfo = wait_status(dst, set(), 60, interval=0.05)
    s1["dst"] = _stat(pair.pid("dst"))
    vm1 = host_vmstat()
    if info.get("status") != "completed" or dinfo.get("status") != "completed":
        raise RuntimeError(f"QEMU migration {info.get('status')} (destination "
                           f"{dinfo.get('status')}): {info.get('error-desc') or ''}")
    if not info.get("total-time") or info["total-time"] < (info.get("setup-time") or 0):
        # Seen once at load 6: total-time 0 with setup-time 3438 (a negative active time and an
        # absurd rate would enter the medians); the run counts as failed instead.
        raise RuntimeError(f"QEMU reported total-time {info.get('total-time')} ms with "
                           f"setup-time {info.get('setup-time')} ms")
    if pc:
        pair.serial["dst"].wait_for("TERN-SWEPT", 60 + data / 10e6, pair.procs["dst"])
    # Every page checked on the destination (TCG: ~0.5-1 s per GiB).
    pair.serial["dst"].send("v\n")
    verify = _fields(pair.serial["dst"].wait_for(VERIFY, 60 + data / 10e6, pair.procs["dst"]))
    if int(verify.get("mismatches", -1)) != 0:
        raise RuntimeError(f"QEMU guest: {verify.get('mismatches')} of {verify.get('pages')} "
                           "pages differ on the destination")
    r = info["ram"]
    out = {
        **migration_figures(info),
        **host_vmstat_delta(vm0, vm1),
        "wall-s": wall,
        "boot-fill-s": boot_s,
        "guest-fill-ms": float(_fields(ready).get("fill-ms", 0)),
        "vm-ram-bytes": vm_ram_kib(row) << 10,
    }
    if pc:
        # Every first touch since the reset is in the histogram, pages already present too (the
        # lowest buckets): the guest side of a fault is the slowest N, N = the pages the
        # destination requested from the source (as tern's rows do with the host's faults).
        touch = {int(le): int(n) for le, n in (x.split(":") for x in
                                                verify.get("hist", "").split(",") if x)}
        nfaults = int(r.get("postcopy-requests") or 0)
        out["faults"] = nfaults
        out["postcopy-requests"] = nfaults
        out["first-touches"] = sum(touch.values())
        guest = stats.tail(touch, nfaults)
        for k, v in stats.percentiles(guest).items():
            if k != "count":
                out[f"guest-{k}-us"] = v
        out["hist-guest"] = guest
    secs = float(verify.get("seconds", 0))
    if int(row.get("rate", 0)) > 1 and secs > 0:
        out["guest-dirty-pages-per-s"] = int(verify.get("writes", 0)) / secs
    for side in ("src", "dst"):
        cpu = s1[side][0] - s0[side][0]
        out[f"cpu-s-{side}"] = cpu
        out[f"minor-faults-{side}"] = s1[side][1] - s0[side][1]
        out[f"bytes-per-cpu-s-{side}"] = r["transferred"] / cpu if cpu > 0 else None
    return out

