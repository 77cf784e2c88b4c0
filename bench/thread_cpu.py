#!/usr/bin/env python3
"""CPU seconds per thread of running processes, sampled until SIGTERM or SIGINT.

  bench/thread_cpu.py OUT.json LABEL=PID [LABEL=PID ...]

Reads /proc/PID/task/*/stat every 5 ms and keeps each thread's last utime+stime, so threads
that exit meanwhile (migration workers) are counted up to their last sample (at most 5 ms
short). On SIGTERM it writes {label: {thread name: cpu s, ...}, ...}: the CPU each thread
used since the sampler started, threads of the same name summed (tern-recv0, CPU 0/TCG, ...).
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
        out[tid] = (name, int(fields[11]) + int(fields[12]))  # utime + stime
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
    report = {}
    for label in procs:
        per_name = {}
        for tid, (name, ticks) in last[label].items():
            base = first[label].get(tid, (name, 0))[1]
            per_name[name] = per_name.get(name, 0) + (ticks - base)
        report[label] = {n: round(t / CLK, 2) for n, t in sorted(per_name.items()) if t}
    with open(path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
