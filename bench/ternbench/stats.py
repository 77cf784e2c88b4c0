"""Summaries: medians and ranges of repeated runs, percentiles of power-of-two histograms."""
import statistics


def summarize(values):
    """{median, min, max, n} of the numbers in `values` (None entries ignored)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    # median_low: with an even count, the lower middle run, so a cell is always a value some
    # run measured (a latency bucket bound stays a bucket bound).
    return {"median": statistics.median_low(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def hist_counts(h):
    """{upper bound us: count} from a fault_latency_json histogram (may be None)."""
    if not h:
        return {}
    return {int(b["le"]): int(b["count"]) for b in h.get("buckets", []) if b["count"]}


def merge(counts_list):
    out = {}
    for c in counts_list:
        for le, n in c.items():
            out[le] = out.get(le, 0) + n
    return out


def tail(counts, k):
    """The `k` largest samples of a histogram (the slowest touches), as a histogram."""
    out, left = {}, k
    for le in sorted(counts, reverse=True):
        if left <= 0:
            break
        take = min(counts[le], left)
        out[le] = take
        left -= take
    return out


def quantile(counts, q):
    """Upper bound (us) of the bucket holding quantile q, as the engine computes it."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = max(1, int(q * total + 0.999999))
    seen = 0
    for le in sorted(counts):
        seen += counts[le]
        if seen >= rank:
            return le
    return max(counts)


QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p99.9": 0.999}


def percentiles(counts):
    out = {k: quantile(counts, q) for k, q in QUANTILES.items()}
    out["count"] = sum(counts.values())
    return out


def cdf(counts):
    """[(upper bound us, cumulative fraction)] for plotting."""
    total = sum(counts.values())
    pts, seen = [], 0
    for le in sorted(counts):
        seen += counts[le]
        pts.append((le, seen / total))
    return pts


def bucket_bound(us):
    """The histogram bucket upper bound (us) an exact latency falls under: bucket i counts
    [2^(i-1), 2^i) us. References are put in buckets before they divide a bucketed figure."""
    if us is None:
        return None
    if us < 1:
        return 1
    return 1 << (int(us).bit_length())


def ratio_spread(pairs):
    """Per-pair ratios b/a: {median, min, max, n}, or None when no pair has both values."""
    ratios = [b / a for a, b in pairs if a and b is not None]
    return summarize(ratios)
