"""Figures computed from a run's records, as records: growth with the store size and issue 7's targets.

Nothing here measures: both read the ``memory_ops`` and ``env_step`` records and are recomputed on ``--render-only``.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.records import Record, select
from benchmarks.timing import loglog_slope

__all__ = ["TARGET_RATIO", "TARGET_SIZE", "TARGET_STEP_US", "derive", "growth", "targets"]

# Issue 7's targets, with issue 13's tighter API ratio (reported, never asserted).
TARGET_RATIO = 1.3
TARGET_STEP_US = 1000.0
TARGET_SIZE = 10_000


def _slope(points: Sequence[tuple[int, float]]) -> float:
    """The log-log slope from 1k items up (growth is about large stores), or over all points when fewer than two
    are that large."""
    big = [(s, v) for s, v in points if s >= 1000]
    use = big if len(big) >= 2 else list(points)
    return loglog_slope([s for s, _ in use], [v for _, v in use]) if len(use) >= 2 else float("nan")


def growth(records: Sequence[Record]) -> list[Record]:
    """Log-log slopes of each op's median latency (API, raw, exact) against the store size, and of the env step
    (excluding the embedder) per context: benchmark ``"growth"``, metric ``"slope"``."""
    out = []
    ops = select(records, "memory_ops", metric="latency", series=("api", "raw", "exact"))
    for key in dict.fromkeys((r["embedder"], r["op"], r["series"]) for r in ops):
        pts = [(int(r["size"]), r.value) for r in ops if (r["embedder"], r["op"], r["series"]) == key and r.value]
        at = {"embedder": key[0], "op": key[1], "series": key[2]}
        out.append(Record("growth", "slope", _slope(pts), "", at, repeats=len(pts)))
    steps = select(records, "env_step", metric="latency", action="all", series="step_excl_embed")
    for context in dict.fromkeys(r["context"] for r in steps):
        pts = [(int(r["size"]), r.value) for r in steps if r["context"] == context and r.value]
        out.append(Record("growth", "slope", _slope(pts), "", {"context": context, "series": "step_excl_embed"}))
    return out


def targets(records: Sequence[Record]) -> list[Record]:
    """Where the run stands against issue 7's targets, at 10k items or the largest size measured: benchmark
    ``"target"``; metric ``"measured"`` (with ``status`` met / missed) and its companion figure."""
    out = []
    ops = select(records, "memory_ops", metric="latency", embedder="hash")
    sizes = sorted({int(r["size"]) for r in ops})
    if sizes:
        n = TARGET_SIZE if TARGET_SIZE in sizes else sizes[-1]
        for op in ("RETRIEVE@3", "RETRIEVE@5", "RETRIEVE@10", "ADD"):
            api = select(ops, size=n, op=op, series="api")
            if not api or api[0].ratio is None:
                continue
            r = api[0].ratio
            name = f"{op}: API / raw hnswlib <= {TARGET_RATIO}x (hashing embedder, {n:,} items)"
            status = "met" if r <= TARGET_RATIO else "missed"
            out.append(Record("target", "measured", r, "x", {"target": name, "status": status}))
            excl = select(ops, size=n, op=op, series="api_excl_embed")
            if excl:
                out.append(Record("target", "excl_embed", excl[0].ratio, "x", {"target": name}))
    steps = select(records, "env_step", metric="latency", action="all")
    sizes = sorted({int(r["size"]) for r in steps})
    if sizes:
        n = TARGET_SIZE if TARGET_SIZE in sizes else sizes[-1]
        for r in select(steps, size=n, series="step_excl_embed"):
            name = f"env step excl. policy and embedder < 1 ms median ({n:,} items, {r['context']} context)"
            status = "met" if r.value is not None and r.value < TARGET_STEP_US else "missed"
            out.append(Record("target", "measured", r.value, "us", {"target": name, "status": status}))
            with_embed = select(steps, size=n, context=r["context"], series="step")
            if with_embed:
                out.append(Record("target", "with_embed", with_embed[0].value, "us", {"target": name}))
    return out


def derive(records: Sequence[Record]) -> list[Record]:
    """:func:`targets` and :func:`growth` of ``records``."""
    return [*targets(records), *growth(records)]
