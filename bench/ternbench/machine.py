"""What the results were measured on: CPU, cores, kernel, memory, load, commit, build type."""
import os
import platform
import subprocess
import time


def _meminfo():
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, rest = line.split(":", 1)
                out[key] = int(rest.split()[0])  # kB (or a page count)
    except OSError:
        pass
    return out


def mem_available_bytes():
    return _meminfo().get("MemAvailable", 0) * 1024


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(root, *args):
    try:
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def build_type(build_dir):
    try:
        out = subprocess.run(["meson", "introspect", "--buildoptions", build_dir],
                             capture_output=True, text=True, timeout=30).stdout
        import json
        for opt in json.loads(out):
            if opt["name"] == "buildtype":
                return opt["value"]
    except Exception:  # noqa: BLE001 - meson missing or dir not configured: say so
        pass
    return "unknown"


def describe(root, build_dir):
    mem = _meminfo()
    if os.environ.get("TERN_BENCH_IN_VM") == "1":
        # In the soft-RoCE VM: git and meson over 9p on an emulated CPU take most of a minute,
        # and the host's own description already names the commit and build.
        _git = build_type = lambda *a: ""  # noqa: E731
    else:
        _git, build_type = globals()["_git"], globals()["build_type"]
    return {
        "hostname": platform.node(),
        "cpu-model": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "memory-bytes": mem.get("MemTotal", 0) * 1024,
        "memory-available-bytes": mem.get("MemAvailable", 0) * 1024,
        "hugepages-total": mem.get("HugePages_Total", 0),
        "loadavg-start": loadavg(),
        "git-commit": _git(root, "rev-parse", "HEAD"),
        "git-dirty": bool(_git(root, "status", "--porcelain", "--untracked-files=no")),
        "git-branch": _git(root, "rev-parse", "--abbrev-ref", "HEAD"),
        "build-dir": build_dir,
        "build-type": build_type(build_dir),
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
