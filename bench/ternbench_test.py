#!/usr/bin/env python3
"""Unit tests of tern-bench's pure parts (meson test bench/tern_bench_unit): spec expansion,
histogram percentiles and tails, bucket bounds of references, pair ratios, report cells."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternbench import common, spec, stats  # noqa: E402


class SpecTest(unittest.TestCase):
    def write(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_lists_are_axes_and_name_the_rows(self):
        path = self.write('repeat = 3\n[defaults]\ntransport = ["tcp", "rdma"]\nvcpus = 2\n'
                          '[[scenario]]\nname = "fault"\nkind = "postcopy"\npage = ["4K", "2M"]\n'
                          'preempt = [true, false]\n')
        repeat, refs, rows = spec.load(path)
        self.assertEqual(repeat, 3)
        self.assertEqual(refs, [])
        self.assertEqual(len(rows), 8)
        self.assertEqual(rows[0]["name"], "fault/transport=tcp,page=4K,preempt=on")
        self.assertEqual(rows[0]["vcpus"], 2)
        self.assertEqual(rows[-1]["axes"], {"transport": "rdma", "page": "2M", "preempt": False})

    def test_overrides_apply_after_expansion(self):
        path = self.write('[[scenario]]\nname = "b"\nkind = "bulk"\nchannels = [1, 2]\n')
        _, _, rows = spec.load(path, {"transport": "tcp", "channels": 4})
        self.assertEqual([r["channels"] for r in rows], [4, 4])
        self.assertEqual(spec.parse_override("preempt=false"), ("preempt", False))
        self.assertEqual(spec.parse_override("ram=1G"), ("ram", "1G"))

    def test_bad_kind_is_an_error_that_names_it(self):
        path = self.write('[[scenario]]\nname = "x"\nkind = "warp"\n')
        with self.assertRaisesRegex(spec.SpecError, "scenario 'x': kind"):
            spec.load(path)

    def test_shipped_specs_load(self):
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
        for name in ("default.toml", "quick.toml", "smoke.toml"):
            _, refs, rows = spec.load(os.path.join(here, name))
            self.assertTrue(rows, name)


class StatsTest(unittest.TestCase):
    def test_quantiles_are_bucket_bounds_as_the_engine_computes_them(self):
        h = {1: 50, 64: 40, 1024: 9, 8192: 1}
        p = stats.percentiles(h)
        self.assertEqual((p["p50"], p["p90"], p["p99"], p["p99.9"]), (1, 64, 1024, 8192))
        self.assertEqual(p["count"], 100)
        self.assertIsNone(stats.quantile({}, 0.5))

    def test_tail_keeps_the_slowest_samples(self):
        self.assertEqual(stats.tail({1: 100, 64: 5, 512: 2}, 4), {512: 2, 64: 2})
        self.assertEqual(stats.tail({1: 3}, 10), {1: 3})

    def test_bucket_bound_matches_the_histogram(self):
        # Bucket i counts [2^(i-1), 2^i) us.
        self.assertEqual([stats.bucket_bound(x) for x in (0.3, 1, 1.5, 23.2, 32, 5268)],
                         [1, 2, 2, 32, 64, 8192])

    def test_ratio_spread_and_median_low(self):
        r = stats.ratio_spread([(1, 2), (2, 2), (4, 2), (0, 1)])
        self.assertEqual((r["median"], r["min"], r["max"], r["n"]), (1.0, 0.5, 2.0, 3))
        self.assertEqual(stats.summarize([1, 2, 3, 4])["median"], 2)

    def test_cdf_ends_at_one(self):
        self.assertEqual(stats.cdf({2: 1, 8: 3}), [(2, 0.25), (8, 1.0)])


class CellTest(unittest.TestCase):
    def test_median_and_range(self):
        s = {"x": {"median": 64, "min": 32, "max": 512, "n": 5}, "y": None}
        self.assertEqual(common.cell(s, "x"), "64 [32..512]")
        self.assertEqual(common.cell(s, "y"), "-")
        self.assertEqual(common.fmt(0.12345), "0.123")


class TestpmdRatioTest(unittest.TestCase):
    def test_dpdk_rows_only_are_divided_by_testpmd(self):
        from ternbench import report
        ref = {"testpmd-memif-GBps": 2.0}
        dpdk = {"params": {"transport": "dpdk"}, "summary": {"throughput-GBps": {"median": 3.0}}}
        tcp = {"params": {"transport": "tcp"}, "summary": {"throughput-GBps": {"median": 3.0}}}
        self.assertEqual(report._over_testpmd(dpdk, ref), common.fmt(1.5))
        self.assertEqual(report._over_testpmd(tcp, ref), "-")
        self.assertEqual(report._over_testpmd(dpdk, {}), "-")


if __name__ == "__main__":
    unittest.main()
