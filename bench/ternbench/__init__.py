"""tern-bench: the end-to-end latency benchmarking suite (see bench/README in docs/benchmarks.md).

Drives real ternd processes through ternctl and their QMP sockets, runs reference
measurements in the same run, writes JSON results and renders docs/benchmarks.md.
Python 3.11 standard library only.
"""
