"""The rdma rows where this host has no RDMA device: one boot of the soft-RoCE VM of
tests/rdma/vm.sh (rdma_rxe over a dummy netdev, QEMU under TCG emulation) runs every rdma row
and the ib_write_bw/ib_write_lat reference (`tern-bench vm-part`), prints its results as one
marked JSON line on the console, and the host merges them into its own results (merge()).

The figures are soft-RoCE under an emulated CPU (~60-140 MB/s), not a NIC's: the rows carry
`where`, the report labels them, and their ratios are only against references measured in the
same VM (ib_write_bw, ib_write_lat), never against the host's memcpy or bare fault."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

from .daemons import SkipRow, rdma_device_present

MARK = "@@tern-bench-vm-json@@ "
WHERE = "soft-RoCE VM (rdma_rxe, QEMU TCG emulation)"
# What a spec's [rdma_vm] table may set; these defaults size the rows to what rxe under TCG
# moves (~60-140 MB/s) and keep the VM part of a report within a few minutes.
DEFAULTS = {"repeat": 1, "ram": "64M", "timeout": 150, "vm_timeout": 420, "vm_mem": "3G",
            "bw_mib": 64, "lat_iters": 1000}


def inside():
    return os.environ.get("TERN_BENCH_IN_VM") == "1"


def settings(doc_table):
    out = dict(DEFAULTS)
    out.update(doc_table or {})
    return out


def wants_vm(rows, refs):
    """Rows/references to move into the VM: rdma ones, when there is no device here."""
    if inside() or rdma_device_present():
        return [], []
    return ([r for r in rows if r.get("transport") == "rdma"],
            [r for r in refs if r["kind"] == "rdma-perftest"])


def why_not(root):
    """None when the VM can run here, else the reason (as tests/rdma/run.sh decides)."""
    if os.environ.get("TERN_RDMA_VM", "auto") == "never":
        return ("not run: no RDMA device on this host and TERN_RDMA_VM=never: the rdma rows "
                "need the soft-RoCE VM")
    missing = [t for t in ("qemu-system-x86_64", "busybox", "dpkg", "xz", "cpio", "apt-get",
                           "ib_write_bw", "ib_write_lat") if not shutil.which(t)]
    if missing:
        return (f"not run: no RDMA device on this host and the soft-RoCE VM for the rdma rows "
                f"cannot run: missing "
                f"{', '.join(missing)} (scripts/install-deps.sh)")
    if not os.path.exists(os.path.join(root, "tests", "rdma", "vm.sh")):
        return "tests/rdma/vm.sh not found"
    return None


def vm_rows(rows, conf):
    """The rows as the VM runs them: guest RAM and per-run timeout from [rdma_vm]."""
    out = []
    for r in rows:
        r = dict(r)
        r["ram"] = conf["ram"]
        r["timeout"] = min(int(r.get("timeout", 300)), int(conf["timeout"]))
        out.append(r)
    return out


def run(root, build, spec_path, only, conf, log=sys.stderr):
    """Boots the VM once; returns the VM's results dict (rows, references, machine). Raises
    SkipRow (with the reason) when it cannot run, RuntimeError when it ran and said nothing."""
    reason = why_not(root)
    if reason:
        raise SkipRow(reason)
    cmd = [os.path.join(root, "tests", "rdma", "vm.sh"), "--timeout", str(conf["vm_timeout"]),
           "--", "env", "TERN_BENCH_IN_VM=1", sys.executable,
           os.path.join(root, "bench", "tern-bench"), "vm-part", "--build", build,
           "--spec", os.path.abspath(spec_path)] + (["--only", only] if only else [])
    env = dict(os.environ, TERN_VM_MEM=str(conf["vm_mem"]))
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace")
    found = None
    tail = []
    for line in p.stdout:
        line = line.rstrip("\r\n")
        i = line.find(MARK)
        if i >= 0:
            found = line[i + len(MARK):]
            continue
        tail = (tail + [line])[-12:]
        print(f"  [vm] {line}", file=log, flush=True)
    rc = p.wait()
    if found is None:
        raise RuntimeError(f"the soft-RoCE VM reported no results (exit {rc}): "
                           + " / ".join(x for x in tail if x.strip())[-400:])
    res = json.loads(found)
    res["vm-wall-s"] = round(time.monotonic() - t0, 1)
    return res


def merge(result, vm_result=None, skip_reason=None, conf=None, failed=False):
    """Puts the VM's rdma rows and rdma reference into the host's result, in place of the
    placeholders the host left (rows named as the VM's, reference of kind rdma-perftest).
    Without vm_result, those placeholders become skipped with skip_reason (failed, with it as
    the error, when the VM ran but reported nothing). Recomputes the result's ratios."""
    conf = conf or DEFAULTS
    vm_rows_by_name = {r["name"]: r for r in (vm_result or {}).get("rows", [])}
    vm_refs = {r["kind"]: r for r in (vm_result or {}).get("references", [])}
    for i, row in enumerate(result["rows"]):
        if not row.get("vm-pending"):
            continue
        got = vm_rows_by_name.get(row["name"])
        if got is None:
            row.pop("vm-pending")
            why = skip_reason or "not run in the soft-RoCE VM"
            if failed:
                row.update(status="failed", errors=[why])
            else:
                row.update(status="skipped", reason=why)
            continue
        got = dict(got, where=WHERE)
        result["rows"][i] = got
    for i, ref in enumerate(result["references"]):
        if not ref.get("vm-pending"):
            continue
        got = vm_refs.get(ref["kind"])
        if got is None:
            result["references"][i] = {"name": ref["name"], "kind": ref["kind"],
                                       "status": "failed" if failed else "skipped",
                                       "reason": skip_reason or "not run in the soft-RoCE VM"}
        else:
            result["references"][i] = dict(got, where=WHERE)
    if vm_result is not None:
        m = vm_result.get("machine", {})
        result["rdma-vm"] = {"where": WHERE, "kernel": m.get("kernel"),
                             "cpu-model": m.get("cpu-model"), "cores": m.get("cores"),
                             "memory-bytes": m.get("memory-bytes"),
                             "repeat": vm_result.get("repeat"), "ram": conf.get("ram"),
                             "wall-s": vm_result.get("vm-wall-s")}
    elif skip_reason:
        result["rdma-vm"] = {"where": WHERE, "skipped": skip_reason}
    from .runner import ratios
    result["ratios"] = ratios(result)
    return result


# ---- the reference, run inside the VM (or natively where a device is) ----------------------


def _dev_ip():
    dev = sorted(os.listdir("/sys/class/infiniband"))[0]
    return dev, os.environ.get("TERN_RDMA_IP", "127.0.0.1")


def _pair(server, client, timeout=120):
    srv = subprocess.Popen(server, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1)
    try:
        cli = subprocess.run(client, capture_output=True, text=True, timeout=timeout)
    finally:
        try:
            srv.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.communicate()
    return cli.stdout


def parse_bw(text, size=65536):
    """ib_write_bw's BW average (MB/s, perftest's MB = 2^20 bytes) of SIZE-byte messages."""
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == str(size):
            return float(f[3])
    return None


def parse_lat(text, size=32):
    """ib_write_lat's t_typical (us; half a round trip) of SIZE-byte messages."""
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == str(size):
            return float(f[4])
    return None


def perftest(build, entry):
    """ib_write_bw (64 KiB writes, one QP) and ib_write_lat (32 B) on this host's first RDMA
    device, and tern's own urgent round trip (tests/rdma/rdma_bench lat) beside them."""
    if not rdma_device_present():
        raise SkipRow("no RDMA device")
    dev, ip = _dev_ip()
    conf = settings(entry)
    n = int(conf["bw_mib"]) * 16
    iters = int(conf["lat_iters"])
    bw_args = ["ib_write_bw", "-d", dev, "-s", "65536", "-n", str(n), "-F"]
    bw = parse_bw(_pair(bw_args, bw_args + [ip]))
    lat_args = ["ib_write_lat", "-d", dev, "-s", "32", "-n", str(iters), "-F"]
    half = parse_lat(_pair(lat_args, lat_args + [ip]))
    if bw is None or half is None:
        raise RuntimeError(f"perftest printed no figure on {dev} ({ip})")
    out = {"ib-write-bw-GBps": bw * (1 << 20) / 1e9, "ib-write-lat-rtt-us": 2 * half}
    exe = os.path.join(build, "tests", "rdma", "rdma_bench")
    if os.path.exists(exe):
        r = subprocess.run([exe, "lat", str(iters)], capture_output=True, text=True, timeout=120)
        m = re.search(r"^rtt_us\s+\S+\s+([0-9.]+)", r.stdout, re.M)
        if m:
            out["tern-urgent-rtt-us"] = float(m.group(1))
            out["tern-urgent-rtt / ib_write_lat rtt"] = out["tern-urgent-rtt-us"] / (2 * half)
    return out
