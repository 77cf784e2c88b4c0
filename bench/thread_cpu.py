#!/usr/bin/env python3
"""CPU seconds per thread of running processes, sampled until SIGTERM or SIGINT.

  bench/thread_cpu.py OUT.json LABEL=PID [LABEL=PID ...]

Reads /proc/PID/task/*/stat every 5 ms and keeps each thread's last utime+stime, so threads
that exit meanwhile (migration workers) are counted up to their last sample (at most 5 ms
short). On SIGTERM it writes {label: {thread name: cpu s, ...}, ...}: the CPU each thread
used since the sampler started, threads of the same name summed (tern-recv0, CPU 0/TCG, ...),
and "runqueue-wait-s": {label: s}, the time its threads were runnable but waited for a CPU
(/proc/.../schedstat): on a loaded host, the part of a slow run that is the host's, not ours.
Used by bench/mem_cost.sh (THREADS=1).
"""
import json
import os
import signal
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


def sample(pid):
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        name = s[s.index("(") + 1 : s.rindex(")")]
        fields = s[s.rindex(")") + 2 :].split()
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                wait_ns = int(f.read().split()[1])  # time spent on a runqueue, waiting
        except (OSError, IndexError, ValueError):
            wait_ns = 0
        out[tid] = (name, int(fields[11]) + int(fields[12]), wait_ns)  # utime + stime
    return out


def main():
    path = sys.argv[1]
    procs = dict(a.split("=", 1) for a in sys.argv[2:])
    first = {label: sample(pid) for label, pid in procs.items()}
    last = {label: dict(s) for label, s in first.items()}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        for label, pid in procs.items():
            last[label].update(sample(pid))
        time.sleep(0.005)
    for label, pid in procs.items():
        last[label].update(sample(pid))
    report = {"runqueue-wait-s": {}}
    for label in procs:
        per_name, wait = {}, 0
        for tid, (name, ticks, wait_ns) in last[label].items():
            base = first[label].get(tid, (name, 0, 0))
            per_name[name] = per_name.get(name, 0) + (ticks - base[1])
            wait += wait_ns - base[2]
        report[label] = {n: round(t / CLK, 2) for n, t in sorted(per_name.items()) if t}
        report["runqueue-wait-s"][label] = round(wait / 1e9, 3)
    with open(path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
