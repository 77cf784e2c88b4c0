"""Scenario spec files (TOML). A file has `repeat`, a `[defaults]` table, `[[reference]]`
entries and `[[scenario]]` entries. In a scenario (or in defaults) a key whose value is a list
is an axis: the scenario expands into one row per combination, named
`NAME/key=value,key=value` after the axes. Keys:

  kind        postcopy | bulk | migration (scenarios); micro | tcp-rtt | rdma-perftest |
              dpdk-testpmd (references)
  transport   tcp, rdma, dpdk (a row whose transport is not built is skipped with the reason)
  vcpus, ram, page, wss, rate, pattern, read, readers, seed, ring   the thread guest (vm/workload.h)
  channels    multifd-channels;  preempt, postcopy, dirty_limit (MB/s per vCPU, 0/absent = off)
  max_bandwidth (bytes/s, e.g. "64M"; 0 = unlimited), downtime_limit (ms), max_rounds,
  chunk_size, workers (ternd --workers), prefill (default true), timeout (s per run)
"""
import itertools
import tomllib

SCENARIO_KINDS = {"postcopy", "bulk", "migration"}
REFERENCE_KINDS = {"micro", "tcp-rtt", "rdma-perftest", "dpdk-testpmd"}


class SpecError(Exception):
    pass


def _fmt(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def expand(entry, defaults):
    """Rows of one scenario: dicts with every key scalar, plus 'name', 'scenario', 'axes'."""
    merged = {**defaults, **entry}
    axes = [k for k, v in merged.items() if isinstance(v, list)]
    rows = []
    for combo in itertools.product(*(merged[k] for k in axes)):
        row = dict(merged)
        row.update(zip(axes, combo))
        row["scenario"] = entry["name"]
        row["axes"] = {k: row[k] for k in axes}
        label = ",".join(f"{k}={_fmt(row[k])}" for k in axes)
        row["name"] = entry["name"] + ("/" + label if label else "")
        rows.append(row)
    return rows


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
