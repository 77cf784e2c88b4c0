"""tern-bench command line: run, compare, report, list."""
import argparse
import json
import os
import sys

from . import rdmavm, report, runner, spec

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH_DIR)
SPECS = os.path.join(BENCH_DIR, "scenarios")


def _spec_path(args):
    if args.spec:
        return args.spec
    return os.path.join(SPECS, "quick.toml" if args.quick else "default.toml")


def _write(obj, path):
    text = json.dumps(obj, indent=1, sort_keys=False) + "\n"
    if path in (None, "-"):
        sys.stdout.write(text)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        print(f"tern-bench: results written to {path}", file=sys.stderr)


def _common(p):
    p.add_argument("--spec", help="scenario file (default bench/scenarios/default.toml)")
    p.add_argument("--quick", action="store_true",
                   help="bench/scenarios/quick.toml: small guests, 2 runs per row")
    p.add_argument("--repeat", type=int, help="runs per row (default: the spec's, usually 5)")
    p.add_argument("--only", metavar="REGEX", help="rows and references whose name matches")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key in every row (e.g. transport=tcp, channels=4)")
    p.add_argument("--out", "-o", help="JSON results file (default: stdout)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")


def _vm_part(args):
    """The rdma rows (sized by the spec's [rdma_vm]) and the rdma-perftest reference, run here
    (inside the VM: an RDMA device is present), printed as rdmavm.MARK + one line of JSON."""
    path = _spec_path(args)
    conf = rdmavm.settings(spec.vm_table(path))
    _, refs, rows = spec.load(path)
    rows = rdmavm.vm_rows([r for r in rows if r.get("transport") == "rdma"], conf)
    refs = [dict(r, **{k: conf[k] for k in ("bw_mib", "lat_iters")})
            for r in refs if r["kind"] == "rdma-perftest"]
    res = runner.run_suite(ROOT, os.path.abspath(args.build), int(conf["repeat"]), refs, rows,
                           args.only)
    res["spec"] = os.path.relpath(path, ROOT)
    sys.stdout.write(rdmavm.MARK + json.dumps(res, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="tern-bench",
        description="tern's end-to-end benchmark suite: runs scenarios against real ternd "
                    "processes, with reference measurements, and renders the report.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the scenarios and write JSON results")
    r.add_argument("--build", default=os.path.join(ROOT, "build"), help="meson build dir")
    _common(r)
    c = sub.add_parser("compare", help="two builds or two configurations, interleaved")
    c.add_argument("--build", default=os.path.join(ROOT, "build"), help="build dir of A")
    c.add_argument("--build-b", help="build dir of B (default: the same as A)")
    c.add_argument("--set-b", action="append", default=[], metavar="KEY=VALUE",
                   help="configuration B: override a key in B's rows (e.g. preempt=false)")
    c.add_argument("--labels", default="A,B", help="names of A and B (default A,B)")
    c.add_argument("--markdown", help="also write the comparison table as Markdown here")
    _common(c)
    rp = sub.add_parser("report", help="render docs/benchmarks.md and the PNG plots")
    rp.add_argument("results", help="JSON results of 'tern-bench run'")
    rp.add_argument("--markdown", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    rp.add_argument("--plots", default=os.path.join(ROOT, "docs", "bench"),
                    help="directory for the PNGs (gnuplot)")
    rp.add_argument("--note", default="", help="a paragraph on the conditions of the run")
    v = sub.add_parser("vm-part", help="(inside the soft-RoCE VM, started by 'run') the rdma rows "
                                       "and reference, as one marked JSON line on stdout")
    v.add_argument("--build", default=os.path.join(ROOT, "build"))
    v.add_argument("--spec")
    v.add_argument("--quick", action="store_true")
    v.add_argument("--only", metavar="REGEX")
    ls = sub.add_parser("list", help="list the rows a spec expands to")
    ls.add_argument("--spec")
    ls.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)

    try:
        if args.cmd == "list":
            repeat, refs, rows = spec.load(_spec_path(args))
            print(f"# {_spec_path(args)}: repeat {repeat}")
            for ref in refs:
                print(f"reference {ref['name']} ({ref['kind']})")
            for row in rows:
                print(f"{row['kind']:9s} {row['name']}")
            return 0
        if args.cmd == "report":
            with open(args.results) as f:
                results = json.load(f)
            report.render(results, args.markdown, args.plots, os.path.relpath(
                args.results, os.path.dirname(os.path.abspath(args.markdown))), args.note)
            return 0
        if args.cmd == "vm-part":
            return _vm_part(args)
        overrides = dict(spec.parse_override(s) for s in args.set)
        repeat, refs, rows = spec.load(_spec_path(args), overrides)
        if args.repeat:
            repeat = args.repeat
        build = os.path.abspath(args.build)
        if not os.path.exists(os.path.join(build, "control", "ternd")):
            print(f"tern-bench: {build}/control/ternd not found: build first "
                  f"(meson setup {args.build} && ninja -C {args.build})", file=sys.stderr)
            return 2
        if args.cmd == "run":
            vm = {"spec": _spec_path(args), "conf": rdmavm.settings(spec.vm_table(_spec_path(args)))}
            if args.set:  # the VM reads the spec itself: it would not see --set
                vm = None
            res = runner.run_suite(ROOT, build, repeat, refs, rows, args.only, args.quiet, vm=vm)
            res["spec"] = os.path.relpath(_spec_path(args), ROOT)
            _write(res, args.out)
            bad = [r["name"] for r in res["rows"] if r["status"] in ("failed", "partial")]
            if bad:
                print(f"tern-bench: {len(bad)} row(s) failed at least once: {', '.join(bad)}",
                      file=sys.stderr)
            return 1 if any(r["status"] == "failed" for r in res["rows"]) else 0
        # compare
        build_b = os.path.abspath(args.build_b or args.build)
        over_b = dict(overrides, **dict(spec.parse_override(s) for s in args.set_b))
        _, _, rows_b = spec.load(_spec_path(args), over_b)
        labels = args.labels.split(",", 1)
        if len(labels) != 2:
            labels = ["A", "B"]
        res = runner.run_compare(ROOT, [build, build_b], repeat, rows, rows_b, labels, args.only,
                                 args.quiet)
        _write(res, args.out)
        table = report.compare_markdown(res)
        print(table, file=sys.stderr)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(table)
        return 0
    except spec.SpecError as e:
        print(f"tern-bench: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tern-bench: interrupted", file=sys.stderr)
        return 130
