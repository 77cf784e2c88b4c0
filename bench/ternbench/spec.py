"""Scenario spec files (TOML). A file has `repeat`, a `[defaults]` table, `[[reference]]`
entries and `[[scenario]]` entries. In a scenario (or in defaults) a key whose value is a list
is an axis: the scenario expands into one row per combination, named
`NAME/key=value,key=value` after the axes. Keys:

  kind        postcopy | bulk | migration | qemu | floor (scenarios); micro | tcp-rtt | rdma-perftest |
              dpdk-testpmd (references)
  transport   tcp, rdma, dpdk (a row whose transport is not built is skipped with the reason)
  vcpus, ram, page, wss, rate, pattern, read, readers, seed, ring, free, reuse   the thread
              guest (vm/workload.h; free/reuse: its heap, S5)
  channels    multifd-channels;  preempt, postcopy, dirty_limit (MB/s per vCPU, 0/absent = off);
              free_page_hint (the __io.github.tern_free-page-hint capability, S5: ternctl migrate --free-page-hint)
  max_bandwidth (bytes/s, e.g. "64M"; 0 = unlimited), downtime_limit (ms), max_rounds,
  chunk_size, workers (ternd --workers), prefill (default true), timeout (s per run)
  dpdk_opts   dpdk rows: tern's dpdk options for the link (docs/dpdk.md, e.g. "idle_us=50"),
              on a memif socket of the row's own
  vmm         true: the thread guest lives in a VMM process of its own (tern-thread-vmm,
              attached through libtern-vmm) instead of inside ternd; [false, true] compares
              both in one run
  qemu        QEMU's own migration of the same guest beside a migration or postcopy scenario's
              tern rows (qemuref.py): "plain", "multifd" or a list of them (true = "plain").
              After the tern rows of each combination of the other axes come its QEMU rows, one
              per variant (kind qemu, named NAME/...,qemu=VARIANT, always over TCP, so they have
              no transport axis); the runner interleaves them run by run with the tern rows.
              Beside postcopy rows QEMU migrates in postcopy (postcopy-preempt where the row's
              preempt is on; multifd is skipped). A [[scenario]] of kind "qemu" has QEMU rows
              only.
  floor       beside a migration scenario: "tcp", "copy" or a list of them (true = "tcp"): one
              more row per variant and combination of the other axes (kind floor, named
              NAME/...,floor=VARIANT) that lands the row's written bytes (wss) in fresh memory
              and does nothing else (floor.py): "tcp" sends them from one process to another
              over TCP loopback (BM_TcpFloor: what any TCP migration of that guest costs at
              least on this host), "copy" copies them once (BM_CopyFloor: what any destination
              that lands pages by copying pays at least); interleaved with tern's and QEMU's rows.
  qemu_ram_pad  QEMU rows: bytes added to the VM's RAM (default "8K": QEMU 7.2 under TCG is
              said to lose dirty pages when the size is a multiple of 256 KiB; 0 = the exact
              size: far shorter setup, and no lost page in 3 checked runs here, but unproven)
"""
import itertools
import tomllib

SCENARIO_KINDS = {"postcopy", "bulk", "migration", "qemu", "floor"}
QEMU_VARIANTS = ("plain", "multifd")
FLOOR_VARIANTS = ("tcp", "copy")
REFERENCE_KINDS = {"micro", "tcp-rtt", "rdma-perftest", "dpdk-testpmd"}


class SpecError(Exception):
    pass


def _fmt(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def _expand(merged, name):
    axes = [k for k, v in merged.items() if isinstance(v, list)]
    rows = []
    for combo in itertools.product(*(merged[k] for k in axes)):
        row = dict(merged)
        row.update(zip(axes, combo))
        row["scenario"] = name
        row["axes"] = {k: row[k] for k in axes}
        label = ",".join(f"{k}={_fmt(row[k])}" for k in axes)
        row["name"] = name + ("/" + label if label else "")
        rows.append(row)
    return rows


def _variants(key, value, allowed):
    """A scenario's `key` (qemu, floor) as a list of variants: [] for none or false, the first
    allowed one for true, else each one named (a SpecError for any other)."""
    if value is None or value is False:
        return []
    if value is True:
        return [allowed[0]]
    out = value if isinstance(value, list) else [value]
    bad = [v for v in out if v not in allowed]
    if bad:
        raise SpecError(f"{key} = {bad}: variants are {list(allowed)}")
    return out


def qemu_variants(value):
    """A scenario's `qemu` value as a list of variants ([] = no QEMU rows)."""
    return _variants("qemu", value, QEMU_VARIANTS)


def floor_variants(value):
    """A scenario's `floor` value as a list of variants ([] = no floor rows)."""
    return _variants("floor", value, FLOOR_VARIANTS)


def comparable_key(row):
    """What a tern row and a QEMU or floor row share when they measure the same guest: the
    scenario and its axes other than transport, qemu and floor (the report pairs result rows
    the same way)."""
    from .common import same_guest_key
    return same_guest_key(row)


def expand(entry, defaults):
    """Rows of one scenario: dicts with every key scalar, plus 'name', 'scenario', 'axes'."""
    merged = {**defaults, **entry}
    variants = qemu_variants(merged.pop("qemu", None))
    floor = floor_variants(merged.pop("floor", None))
    name = entry["name"]
    if merged.get("kind") == "qemu":
        variants = variants or ["plain"]
    # QEMU's rows: the same guest, TCP only, the variant as an axis.
    qemu = dict(merged, kind="qemu", transport="tcp", qemu=variants)
    if merged.get("kind") == "qemu":
        return _expand(qemu, name)
    rows = _expand(merged, name)
    if not variants and not floor:
        return rows
    if variants and merged["kind"] not in ("migration", "postcopy"):
        raise SpecError(f"scenario {name!r}: qemu rows go beside kind migration or postcopy only")
    if floor and merged["kind"] != "migration":
        raise SpecError(f"scenario {name!r}: floor rows go beside kind migration only")
    qemu["qemu_of"] = merged["kind"]  # QEMU migrates in postcopy beside tern's postcopy rows
    groups = {}  # each combination's tern rows (every transport), its QEMU rows, its floor
    for r in rows:
        groups.setdefault(comparable_key(r), []).append(r)
    for q in _expand(qemu, name) if variants else []:
        groups.setdefault(comparable_key(q), []).append(q)
    for f in _expand(dict(merged, kind="floor", transport="tcp", floor=floor), name) if floor else []:
        groups.setdefault(comparable_key(f), []).append(f)
    return [r for g in groups.values() for r in g]


def load(path, overrides=None):
    """(repeat, references, rows) from a spec file; `overrides` (key -> value) apply to every
    scenario row after expansion (the comparison mode's configuration B)."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SpecError(f"{path}: {e}") from e
    defaults = doc.get("defaults", {})
    refs = []
    for r in doc.get("reference", []):
        if r.get("kind") not in REFERENCE_KINDS:
            raise SpecError(f"{path}: reference {r.get('name')!r}: kind must be one of "
                            f"{sorted(REFERENCE_KINDS)}")
        refs.append({"name": r.get("name", r["kind"]), **r})
    rows = []
    for s in doc.get("scenario", []):
        if "name" not in s:
            raise SpecError(f"{path}: a [[scenario]] has no name")
        if s.get("kind") not in SCENARIO_KINDS:
            raise SpecError(f"{path}: scenario {s['name']!r}: kind must be one of "
                            f"{sorted(SCENARIO_KINDS)}")
        for row in expand(s, defaults):
            if overrides:
                row.update(overrides)
            rows.append(row)
    names = [r["name"] for r in rows]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SpecError(f"{path}: rows with the same name: {sorted(dup)}")
    return int(doc.get("repeat", 5)), refs, rows


def vm_table(path):
    """The spec's [rdma_vm] table (rdmavm.DEFAULTS keys: repeat, ram, timeout, vm_timeout,
    vm_mem, bw_mib, lat_iters): how the rdma rows run in the soft-RoCE VM."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f).get("rdma_vm", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SpecError(f"{path}: {e}") from e


def parse_override(text):
    """'key=value' -> (key, value) with TOML typing ('preempt=true', 'channels=4')."""
    if "=" not in text:
        raise SpecError(f"override {text!r}: expected key=value")
    key, value = text.split("=", 1)
    try:
        return key.strip(), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value
