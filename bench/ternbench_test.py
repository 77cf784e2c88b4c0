#!/usr/bin/env python3
"""Unit tests of tern-bench's pure parts (meson test bench/tern_bench_unit): spec expansion,
histogram percentiles and tails, bucket bounds of references, pair ratios, report cells."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternbench import common, daemons, qemuref, rdmavm, report, runner, spec, stats  # noqa: E402


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
        for name in ("default.toml", "quick.toml", "smoke.toml", "qemu-smoke.toml"):
            _, refs, rows = spec.load(os.path.join(here, name))
            self.assertTrue(rows, name)


class QemuSpecTest(unittest.TestCase):
    write = SpecTest.write

    def test_qemu_rows_follow_each_guests_tern_rows(self):
        path = self.write('[defaults]\ntransport = ["tcp", "rdma", "dpdk"]\nvcpus = 2\n'
                          '[[scenario]]\nname = "vs"\nkind = "migration"\nram = "2G"\n'
                          'vcpus = 1\nrate = [1, 20000]\ntransport = ["tcp", "dpdk"]\n'
                          'qemu = ["plain", "multifd"]\n')
        _, _, rows = spec.load(path)
        self.assertEqual([r["name"] for r in rows], [
            "vs/transport=tcp,rate=1", "vs/transport=dpdk,rate=1", "vs/rate=1,qemu=plain",
            "vs/rate=1,qemu=multifd", "vs/transport=tcp,rate=20000",
            "vs/transport=dpdk,rate=20000", "vs/rate=20000,qemu=plain",
            "vs/rate=20000,qemu=multifd"])
        q = rows[2]
        self.assertEqual((q["kind"], q["transport"], q["qemu"], q["ram"], q["vcpus"]),
                         ("qemu", "tcp", "plain", "2G", 1))
        self.assertEqual(q["axes"], {"rate": 1, "qemu": "plain"})
        self.assertNotIn("qemu", rows[0])
        self.assertEqual(spec.comparable_key(rows[0]), spec.comparable_key(q))
        self.assertNotEqual(spec.comparable_key(rows[0]), spec.comparable_key(rows[4]))

    def test_qemu_true_is_plain_and_bad_variants_or_kinds_are_errors(self):
        path = self.write('[[scenario]]\nname = "s"\nkind = "migration"\nram = ["1G", "8G"]\n'
                          'transport = "tcp"\nqemu = true\n')
        _, _, rows = spec.load(path)
        self.assertEqual([r["name"] for r in rows], ["s/ram=1G", "s/ram=1G,qemu=plain",
                                                     "s/ram=8G", "s/ram=8G,qemu=plain"])
        with self.assertRaisesRegex(spec.SpecError, "variants"):
            spec.load(self.write('[[scenario]]\nname = "s"\nkind = "migration"\n'
                                 'qemu = "kvm"\n'))
        with self.assertRaisesRegex(spec.SpecError, "beside kind migration or postcopy"):
            spec.load(self.write('[[scenario]]\nname = "s"\nkind = "bulk"\nqemu = true\n'))
        _, _, rows = spec.load(self.write('[[scenario]]\nname = "q"\nkind = "qemu"\n'
                                          'ram = "256M"\n'))
        self.assertEqual([(r["name"], r["kind"]) for r in rows], [("q/qemu=plain", "qemu")])

    def test_shipped_specs_have_qemu_rows(self):
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
        for name in ("default.toml", "quick.toml"):
            _, _, rows = spec.load(os.path.join(here, name))
            self.assertTrue([r for r in rows if r["kind"] == "qemu"], name)

    def test_qemu_command_line(self):
        row = {"ram": "2G", "wss": "50%", "rate": 20000, "vcpus": 1, "seed": 3}
        self.assertEqual(qemuref.vm_ram_kib(row), 2097160)  # 2 GiB + 8 KiB: not a 256 KiB multiple
        cmd = qemuref.command("/k", "/i", row, "/t", "dst")
        joined = " ".join(cmd)
        self.assertIn("-m 2097160k", joined)
        self.assertIn("-accel tcg", joined)
        self.assertIn("tern_data=1073741824 tern_rate=20000 tern_seed=3", joined)
        self.assertEqual(cmd[-2:], ["-incoming", "defer"])
        self.assertNotIn("-incoming", qemuref.command("/k", "/i", row, "/t", "src"))

    def test_initramfs_is_a_newc_archive(self):
        blob = qemuref._newc([("dev", 0o040755, None), ("init", 0o100755, b"abc")])
        self.assertTrue(blob.startswith(b"070701"))
        self.assertIn(b"init\0", blob)
        self.assertIn(b"TRAILER!!!\0", blob)
        self.assertEqual(len(blob) % 4, 0)


class QemuReportTest(unittest.TestCase):
    def result(self):
        def row(name, kind, axes, status="ok", **metrics):
            params = {"transport": "tcp", "ram": "2G", "wss": "50%", "rate": 1, **axes}
            r = {"name": name, "scenario": "vs", "kind": kind, "axes": axes, "params": params,
                 "status": status, "runs": [{}], "errors": []}
            if status == "ok":
                r["summary"] = _summary(**metrics)
            else:
                r["reason"] = "not run: missing qemu-system-x86_64 (scripts/install-deps.sh)"
            return r
        tern = {"total-time-ms": 1000, "setup-time-ms": 50, "active-time-ms": 950, "cpu-s-src": 2.0, "cpu-s-dst": 4.0,
                "minor-faults-src": 500, "minor-faults-dst": 3000,
                "transferred-bytes": 2**30, "bytes-per-cpu-s-src": 5e8}
        qemu = {"total-time-ms": 5000, "setup-time-ms": 600, "active-time-ms": 4400, "cpu-s-src": 2.5, "cpu-s-dst": 4.0,
                "minor-faults-src": 600, "minor-faults-dst": 1500,
                "transferred-bytes": 2**30}
        rows = [row("vs/transport=tcp", "migration", {"transport": "tcp"}, **tern),
                row("vs/qemu=plain", "qemu", {"qemu": "plain"}, **qemu),
                row("vs/qemu=multifd", "qemu", {"qemu": "multifd"}, status="skipped"),
                row("other/transport=tcp", "migration", {"transport": "tcp"}, **tern)]
        rows[3]["scenario"] = "other"
        return {"machine": {"qemu-version": "7.2.22"}, "references": [], "rows": rows}

    def test_side_by_side_table_and_ratios(self):
        res = self.result()
        groups = common.qemu_groups(res)
        self.assertEqual(len(groups), 1)  # "other" has no QEMU row
        text = report._qemu_section(res)
        self.assertIn("tern vs QEMU on this machine", text)
        self.assertIn("7.2.22", text)
        self.assertIn("| tern tcp | 1000 | 50 | 950 |", text)
        self.assertIn("| QEMU plain | 5000 | 600 | 4400 |", text)
        self.assertIn("| QEMU multifd | skipped: not run: missing qemu-system-x86_64", text)
        # time, worst, setup, active, src CPU, dst CPU, src faults, dst faults: tern / QEMU
        self.assertIn("| tern tcp | QEMU plain | 0.2 | 0.2 | 0.0833 | 0.216 | 0.8 | 1 | 0.833 | 2 |",
                      text)
        r = runner.ratios(res)
        self.assertAlmostEqual(r["vs/transport=tcp: total-time-ms / QEMU plain"], 0.2)
        self.assertAlmostEqual(r["vs/transport=tcp: minor-faults-dst / QEMU plain"], 2.0)
        self.assertFalse([k for k in r if "multifd" in k])

    def test_postcopy_rows_get_their_own_table(self):
        res = self.result()
        axes = {"preempt": True}
        params = {"transport": "tcp", "ram": "256M", "wss": "100%", "rate": 20000,
                  "preempt": True}
        res["rows"] = [
            {"name": "fault/transport=tcp,preempt=on", "scenario": "fault", "kind": "postcopy",
             "axes": dict(axes, transport="tcp"), "params": params, "status": "ok",
             "runs": [{}], "errors": [],
             "summary": _summary(**{"faults": 300, "guest-p50-us": 64, "guest-p99-us": 512})},
            {"name": "fault/preempt=on,qemu=plain", "scenario": "fault", "kind": "qemu",
             "axes": dict(axes, qemu="plain"),
             "params": dict(params, qemu="plain", qemu_of="postcopy"),
             "status": "ok", "runs": [{}], "errors": [],
             "summary": _summary(**{"faults": 280, "guest-p50-us": 512, "guest-p99-us": 8192})}]
        text = report._qemu_section(res)
        self.assertIn("### Postcopy first touch, guest side: tern vs QEMU", text)
        self.assertIn("| preempt=on | 256M, 100% written, 20000 pages/s | QEMU postcopy-preempt "
                      "| 280 | 512 |", text)
        self.assertIn("| preempt=on | tern tcp | QEMU postcopy-preempt | 0.125 | 0.0625 |", text)
        self.assertNotIn("| total ms | setup ms |", text)  # no precopy rows, no precopy table

    def test_postcopy_scenarios_get_postcopy_qemu_rows(self):
        path = SpecTest.write(self, '[[scenario]]\nname = "fault"\nkind = "postcopy"\n'
                                    'transport = "tcp"\npreempt = [true, false]\n'
                                    'qemu = "plain"\n')
        _, _, rows = spec.load(path)
        q = [r for r in rows if r["kind"] == "qemu"]
        self.assertEqual([(r["name"], r["qemu_of"], r["preempt"]) for r in q],
                         [("fault/preempt=on,qemu=plain", "postcopy", True),
                          ("fault/preempt=off,qemu=plain", "postcopy", False)])
        self.assertTrue(qemuref.postcopy(q[0]))
        # A 100% working set leaves the guest kernel room: the VM is the data + 128 MiB.
        self.assertEqual(qemuref.vm_ram_kib({"ram": "256M", "wss": "100%"}),
                         (384 << 10) + 8)

    def test_floor_row_is_compared_with_qemu_and_tern_over_it(self):
        res = self.result()
        floor = {"total-time-ms": 400, "active-time-ms": 400, "cpu-s-src": 0.5, "cpu-s-dst": 2.0,
                 "minor-faults-src": 1, "minor-faults-dst": 600, "transferred-bytes": 2**30}
        res["rows"].insert(3, {"name": "vs/floor=tcp", "scenario": "vs", "kind": "floor",
                               "axes": {"floor": "tcp"},
                               "params": {"transport": "tcp", "ram": "2G", "wss": "50%",
                                          "rate": 1, "floor": "tcp"},
                               "status": "ok", "runs": [{}], "errors": [],
                               "summary": _summary(**floor)})
        groups = common.qemu_groups(res)
        self.assertEqual([common.who(r) for r in groups[0][0]], ["tern tcp", "floor: bare tcp"])
        text = report._qemu_section(res)
        self.assertIn("| floor: bare tcp | 400 | - | 400 |", text)
        self.assertIn("| floor: bare tcp | QEMU plain | 0.08 |", text)  # floor / QEMU
        # total, active, src CPU, dst CPU, src faults, dst faults: tern / floor
        self.assertIn("| tern tcp | floor: bare tcp | 2.5 | 2.38 | 4 | 2 | 500 | 5 |", text)
        r = runner.ratios(res)
        self.assertAlmostEqual(r["vs/transport=tcp: total-time-ms / floor: bare tcp"], 2.5)
        self.assertAlmostEqual(r["vs/floor=tcp: total-time-ms / QEMU plain"], 0.08)

    def test_floor_rows_follow_each_guests_qemu_rows(self):
        path = SpecTest.write(self, '[[scenario]]\nname = "vs"\nkind = "migration"\n'
                                    'ram = "2G"\ntransport = ["tcp", "dpdk"]\n'
                                    'rate = [1, 20000]\nqemu = "plain"\nfloor = ["tcp", "copy"]\n')
        _, _, rows = spec.load(path)
        self.assertEqual([r["name"] for r in rows][:4], [
            "vs/transport=tcp,rate=1", "vs/transport=dpdk,rate=1", "vs/rate=1,qemu=plain",
            "vs/rate=1,floor=tcp"])
        f = rows[3]
        self.assertEqual((f["kind"], f["transport"], f["ram"]), ("floor", "tcp", "2G"))
        self.assertEqual(spec.comparable_key(rows[0]), spec.comparable_key(f))
        self.assertEqual((rows[4]["name"], rows[4]["floor"]), ("vs/rate=1,floor=copy", "copy"))
        self.assertEqual(common.who({"kind": "floor", "params": {"floor": "copy"}}),
                         "floor: one copy")
        with self.assertRaisesRegex(spec.SpecError, "floor rows go beside kind migration only"):
            spec.load(SpecTest.write(self, '[[scenario]]\nname = "s"\nkind = "postcopy"\n'
                                           'floor = true\n'))
        with self.assertRaisesRegex(spec.SpecError, "variants are"):
            spec.load(SpecTest.write(self, '[[scenario]]\nname = "s"\nkind = "migration"\n'
                                           'floor = "rdma"\n'))

    def test_no_qemu_rows_no_section(self):
        res = self.result()
        res["rows"] = [r for r in res["rows"] if r["kind"] != "qemu"]
        self.assertEqual(report._qemu_section(res), "")


class ListenUriTest(unittest.TestCase):
    def test_dpdk_opts_go_on_a_memif_socket_of_the_rows_own(self):
        self.assertEqual(daemons.listen_uri("dpdk"), "dpdk:")
        self.assertEqual(daemons.listen_uri("dpdk", "/tmp/x", "idle_us=50,window=128"),
                         "dpdk:net_memif0,socket=/tmp/x/memif.sock,idle_us=50,window=128")
        self.assertEqual(daemons.listen_uri("tcp", "/tmp/x", "idle_us=50"), "tcp:127.0.0.1:0")


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


def _summary(**kv):
    return {k: {"median": v, "min": v, "max": v, "n": 1} for k, v in kv.items()}


class RdmaVmMergeTest(unittest.TestCase):
    """The host's placeholders for rdma rows/reference replaced by the soft-RoCE VM's results,
    and the ratios of those rows taken against the VM's references only."""

    def host_result(self):
        rows = [{"name": "bulk/transport=tcp", "kind": "bulk", "status": "ok", "runs": [{}],
                 "errors": [], "params": {"transport": "tcp", "page": "4K", "channels": 1},
                 "summary": _summary(**{"throughput-GBps": 2.0})},
                {"name": "bulk/transport=rdma", "kind": "bulk", "status": "ok", "runs": [],
                 "errors": [], "params": {"transport": "rdma", "page": "4K", "channels": 1},
                 "vm-pending": True},
                {"name": "fault/transport=rdma", "kind": "postcopy", "status": "ok", "runs": [],
                 "errors": [], "params": {"transport": "rdma", "page": "4K"},
                 "vm-pending": True}]
        refs = [{"name": "micro", "kind": "micro", "status": "ok",
                 "metrics": {"memcpy-4K-GBps": 4.0, "uffd-spinning-p50-us": 3.0,
                             "uffd-spinning-p99-us": 20.0}},
                {"name": "ib_write_bw/ib_write_lat", "kind": "rdma-perftest", "vm-pending": True}]
        return {"machine": {}, "references": refs, "rows": rows}

    def vm_result(self):
        rows = [{"name": "bulk/transport=rdma", "kind": "bulk", "status": "ok", "runs": [{}],
                 "errors": [], "params": {"transport": "rdma", "page": "4K", "channels": 1},
                 "summary": _summary(**{"throughput-GBps": 0.08})},
                {"name": "fault/transport=rdma", "kind": "postcopy", "status": "ok",
                 "runs": [{}], "errors": [], "params": {"transport": "rdma", "page": "4K"},
                 "summary": _summary(**{"host-p50-us": 64, "host-p99-us": 512})}]
        refs = [{"name": "ib_write_bw/ib_write_lat", "kind": "rdma-perftest", "status": "ok",
                 "metrics": {"ib-write-bw-GBps": 0.1, "ib-write-lat-rtt-us": 30.0,
                             "tern-urgent-rtt-us": 45.0}}]
        return {"machine": {"kernel": "6.1.0-vm", "cores": 2}, "repeat": 1, "rows": rows,
                "references": refs, "vm-wall-s": 150.0}

    def test_vm_rows_replace_the_placeholders_and_ratios_use_the_vm_references(self):
        res = rdmavm.merge(self.host_result(), self.vm_result(), conf={"ram": "128M"})
        rdma = [r for r in res["rows"] if r["params"]["transport"] == "rdma"]
        self.assertTrue(all(r["where"] == rdmavm.WHERE and "vm-pending" not in r for r in rdma))
        self.assertEqual(res["references"][1]["status"], "ok")
        self.assertEqual(res["rdma-vm"]["wall-s"], 150.0)
        r = res["ratios"]
        self.assertAlmostEqual(r["bulk/transport=rdma: throughput / ib_write_bw"], 0.8)
        self.assertAlmostEqual(r["bulk/transport=tcp: throughput / memcpy 4K"], 0.5)
        # The VM's rows are not divided by the host's memcpy or bare fault.
        self.assertNotIn("bulk/transport=rdma: throughput / memcpy 4K", r)
        self.assertFalse([k for k in r if k.startswith("fault/transport=rdma: host p50 / bare")])
        # 64 us bucket over the bucket ib_write_lat's 30 us falls in (32).
        self.assertEqual(r["fault/transport=rdma: host p50 / ib_write_lat rtt"], 2.0)
        self.assertAlmostEqual(r["rdma urgent round trip / ib_write_lat rtt"], 1.5)

    def test_without_the_vm_the_placeholders_are_skipped_or_failed_with_the_reason(self):
        res = rdmavm.merge(self.host_result(), None, skip_reason="missing qemu-system-x86_64")
        rdma = [r for r in res["rows"] if r["params"]["transport"] == "rdma"]
        self.assertEqual({r["status"] for r in rdma}, {"skipped"})
        self.assertEqual(rdma[0]["reason"], "missing qemu-system-x86_64")
        self.assertEqual(res["references"][1]["status"], "skipped")
        self.assertIn("missing qemu", report.rdma_vm_section(res))
        res = rdmavm.merge(self.host_result(), None, skip_reason="VM said nothing", failed=True)
        self.assertEqual({r["status"] for r in res["rows"][1:]}, {"failed"})
        self.assertEqual(res["rows"][1]["errors"], ["VM said nothing"])

    def test_report_labels_the_rows_as_soft_roce_under_emulation(self):
        res = rdmavm.merge(self.host_result(), self.vm_result(), conf={"ram": "128M"})
        text = report.rdma_vm_section(res)
        self.assertIn("TCG", text)
        self.assertIn("not NIC figures", text)
        self.assertIn("128M guests", text)
        bulk = report._bulk_section(res)
        self.assertIn("| rdma (soft-RoCE VM, TCG) | 4K | 1 | 0.08 | - | 0.8 |", bulk)
        self.assertIn("| tcp | 4K | 1 | 2 | 0.5 | - |", bulk)

    def test_perftest_output_is_parsed(self):
        bw = (" #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]\n"
              " 65536      1024             95.10              93.37               0.001494\n")
        lat = (" #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    "
               "t_avg[usec]\n 32      1000          20.11          180.3        24.50"
               "          25.91\n")
        self.assertEqual(rdmavm.parse_bw(bw), 93.37)
        self.assertEqual(rdmavm.parse_lat(lat), 24.5)
        self.assertIsNone(rdmavm.parse_bw("no figures"))

    def test_vm_rows_are_sized_by_the_rdma_vm_table(self):
        conf = rdmavm.settings({"ram": "64M"})
        self.assertEqual(conf["repeat"], 1)
        rows = rdmavm.vm_rows([{"name": "x", "ram": "1G", "timeout": 300}], conf)
        self.assertEqual((rows[0]["ram"], rows[0]["timeout"]), ("64M", 150))


class TestpmdRatioTest(unittest.TestCase):
    def test_dpdk_rows_only_are_divided_by_testpmd(self):
        from ternbench import report
        ref = {"testpmd-memif-GBps": 2.0}
        dpdk = {"params": {"transport": "dpdk"}, "summary": {"throughput-GBps": {"median": 3.0}}}
        tcp = {"params": {"transport": "tcp"}, "summary": {"throughput-GBps": {"median": 3.0}}}
        self.assertEqual(report._over_testpmd(dpdk, ref), common.fmt(1.5))
        self.assertEqual(report._over_testpmd(tcp, ref), "-")
        self.assertEqual(report._over_testpmd(dpdk, {}), "-")


class VmmRatioTest(unittest.TestCase):
    @staticmethod
    def row(scenario, vmm, page, **metrics):
        summ = {k: {"median": v, "min": v, "max": v, "n": 1} for k, v in metrics.items()}
        kind = "postcopy" if "host-p50-us" in metrics else "bulk"
        return {"name": f"{scenario}/page={page},vmm={'on' if vmm else 'off'}",
                "scenario": scenario, "kind": kind, "status": "ok",
                "axes": {"page": page, "vmm": vmm}, "summary": summ,
                "params": {"transport": "tcp", "page": page, "vmm": vmm}}

    def test_out_of_process_is_divided_by_in_process_of_the_same_guest(self):
        res = {"rows": [self.row("vmm-bulk", False, "4K", **{"throughput-GBps": 2.0, "cpu-s-all": 0.2}),
                        self.row("vmm-bulk", True, "4K", **{"throughput-GBps": 1.6, "cpu-s-all": 0.3}),
                        self.row("vmm-bulk", True, "2M", **{"throughput-GBps": 1.0}),
                        self.row("vmm-fault", False, "4K", **{"host-p50-us": 32, "host-p99-us": 64}),
                        self.row("vmm-fault", True, "4K", **{"host-p50-us": 32, "host-p99-us": 128})],
               "references": []}
        pairs = common.vmm_pairs(res)
        self.assertEqual([(i["name"], o["name"]) for i, o in pairs],
                         [("vmm-bulk/page=4K,vmm=off", "vmm-bulk/page=4K,vmm=on"),
                          ("vmm-fault/page=4K,vmm=off", "vmm-fault/page=4K,vmm=on")])
        r = runner.ratios(res)
        self.assertAlmostEqual(r["vmm-bulk/page=4K,vmm=on: time per page out / in process"], 1.25)
        self.assertAlmostEqual(r["vmm-bulk/page=4K,vmm=on: cpu-s-all out / in process"], 1.5)
        self.assertEqual(r["vmm-fault/page=4K,vmm=on: host-p50-us out / in process"], 1.0)
        self.assertEqual(r["vmm-fault/page=4K,vmm=on: host-p99-us out / in process"], 2.0)
        self.assertFalse(any("2M" in k for k in r if "out / in" in k))


class FreeHintTest(unittest.TestCase):
    @staticmethod
    def row(hint, sent, ms, ram="4G"):
        summ = {"transferred-bytes": {"median": sent, "min": sent, "max": sent, "n": 1},
                "total-time-ms": {"median": ms, "min": ms, "max": ms, "n": 1}}
        return {"name": f"free-hint/ram={ram},free_page_hint={'on' if hint else 'off'}",
                "scenario": "free-hint", "kind": "migration", "status": "ok",
                "axes": {"ram": ram, "free_page_hint": hint}, "summary": summ,
                "params": {"transport": "tcp", "ram": ram, "free": "75%", "free_page_hint": hint}}

    def test_hinting_on_is_divided_by_off_of_the_same_guest(self):
        res = {"rows": [self.row(False, 4000, 2000), self.row(True, 1000, 500),
                        self.row(False, 100, 10, "1G")], "references": []}
        pairs = common.hint_pairs(res)
        self.assertEqual([(o["params"]["ram"], n["params"]["ram"]) for o, n in pairs],
                         [("4G", "4G")])
        self.assertEqual(common.hint_ratios(*pairs[0]),
                         {"transferred-bytes": 0.25, "total-time-ms": 0.25})
        r = runner.ratios(res)
        self.assertEqual(r["free-hint/ram=4G,free_page_hint=on: transferred-bytes hint on / off"],
                         0.25)
        section = report._free_hint_section(res)
        self.assertIn("## Free page hinting (S5)", section)
        self.assertIn("| tcp | 4G | 75% | on | 500 |", section)

    def test_no_pair_no_section(self):
        self.assertEqual(report._free_hint_section({"rows": [self.row(True, 1, 1)]}), "")


if __name__ == "__main__":
    unittest.main()
