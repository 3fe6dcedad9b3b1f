"""Interleaved timing and its statistics.

Timing follows nanoGPT's ``bench.py``: untimed burn-in calls first, then timed calls. On a shared, noisy machine the
series being compared (the tool API and its raw baselines) are *interleaved* call by call, so that a burst of
load from another process hits all of them alike and their ratio stays meaningful. numpy's BLAS (and torch) can be
held to a number of threads for the block being timed.
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.records import Record, Scalar

__all__ = [
    "Log",
    "Timed",
    "blas_threads",
    "interleaved",
    "latency",
    "loglog_slope",
    "median",
    "ratio",
    "recall_at_k",
    "stats",
    "torch_threads",
]


@dataclass(frozen=True)
class Timed:
    """A series whose ``setup(i)`` runs untimed before each timed ``run(i)`` (e.g. restoring a context to edit)."""

    run: Callable[[int], Any]
    setup: Callable[[int], Any] | None = None


def interleaved(
    series: Mapping[str, Callable[[int], Any] | Timed],
    *,
    calls: int,
    burn_in: int,
    alternate: bool = True,
) -> dict[str, list[float]]:
    """Time each ``series[name](i)`` for i in ``range(burn_in + calls)``, all series call by call.

    Iteration i runs every series once (in the given order, or reversed on odd i when ``alternate``); the first
    ``burn_in`` iterations are not recorded. A :class:`Timed` series runs its ``setup(i)`` untimed first. Returns
    seconds per call, per series.
    """
    names = list(series)
    plans = {n: s if isinstance(s, Timed) else Timed(s) for n, s in series.items()}
    out: dict[str, list[float]] = {n: [] for n in names}
    gc.collect()
    clock = time.perf_counter
    for i in range(burn_in + calls):
        order = names[::-1] if alternate and i % 2 else names
        for name in order:
            plan = plans[name]
            if plan.setup is not None:
                plan.setup(i)
            run = plan.run
            start = clock()
            run(i)
            elapsed = clock() - start
            if i >= burn_in:
                out[name].append(elapsed)
    return out


def stats(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p99, mean (microseconds), and ops/s (calls over their total time) of a series."""
    if not seconds:
        return {"n": 0, "median_us": float("nan"), "p99_us": float("nan"), "mean_us": float("nan"), "ops_per_s": 0.0}
    arr = np.asarray(seconds, dtype=np.float64)
    return {
        "n": len(arr),
        "median_us": float(np.median(arr) * 1e6),
        "p99_us": float(np.percentile(arr, 99) * 1e6),
        "mean_us": float(arr.mean() * 1e6),
        "ops_per_s": float(len(arr) / arr.sum()) if arr.sum() > 0 else float("inf"),
    }


def latency(
    benchmark: str,
    seconds: Sequence[float],
    config: Mapping[str, Scalar],
    *,
    baseline: tuple[str, Sequence[float]] | None = None,
    per: int = 1,
) -> Record:
    """The record of a timed series: median, p99 and mean µs per call (per item when ``per`` > 1), the number of
    calls, and the ratio of its median to ``baseline``'s (a ``(name, seconds)`` series timed beside it)."""
    s = stats([t / per for t in seconds])
    base = None
    if baseline is not None:
        base = stats([t / per for t in baseline[1]])["median_us"]
    return Record(
        benchmark,
        "latency",
        s["median_us"],
        "us",
        config,
        p99=s["p99_us"],
        mean=s["mean_us"],
        baseline=baseline[0] if baseline is not None else None,
        baseline_value=base,
        ratio=ratio(s["median_us"], base) if base is not None else None,
        repeats=len(seconds),
    )


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is not positive."""
    return a / b if b > 0 else float("nan")


def recall_at_k(found: Sequence[Sequence[int]], queries: np.ndarray, vectors: np.ndarray, k: int) -> float:
    """Share of returned rows whose exact score reaches the exact k-th best (rows tied with the k-th count).

    ``found[i]`` are row indices into ``vectors`` returned for ``queries[i]``; the denominator is ``k`` per query
    (or the number of vectors when fewer), so returning fewer than k rows lowers recall.
    """
    if not len(found):
        return float("nan")
    exact = queries @ vectors.T  # (Q, N)
    kk = min(k, vectors.shape[0])
    kth = np.partition(exact, exact.shape[1] - kk, axis=1)[:, exact.shape[1] - kk]  # (Q,)
    hits = sum(int((exact[i, list(rows)] >= kth[i] - 1e-5).sum()) for i, rows in enumerate(found) if len(rows))
    return hits / (kk * len(found))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (no-op for None or without torch)."""
    if n is None:
        yield
        return
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _openblas() -> tuple[Any, Any] | None:
    """numpy's OpenBLAS thread getter and setter (found the way threadpoolctl finds them), or None."""
    import ctypes

    import numpy  # noqa: F401  (loads the library)

    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    for path in sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype = ctypes.c_int
                    return get, set_
    return None


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[int | None]:
    """Run the block with numpy's OpenBLAS limited to ``n`` threads; yields the previous count (None: not found).

    hnswlib answers one query on one thread. numpy's multi-threaded matrix-vector product (the exact-search
    baseline) on a shared 2-core machine leaves its worker threads spinning after each call, which slowed the calls
    interleaved with it several-fold; one thread keeps the series independent.
    """
    found = _openblas()
    if found is None:
        yield None
        return
    get, set_ = found
    before = int(get())
    set_(n)
    try:
        yield before
    finally:
        set_(before)


@dataclass
class Log:
    """Progress lines on stderr, with the elapsed time since the start."""

    quiet: bool = False
    start: float = field(default_factory=time.perf_counter)

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:7.1f}s] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return float(statistics.median(values)) if values else float("nan")


def loglog_slope(sizes: Sequence[float], values: Sequence[float]) -> float:
    """The least-squares slope of log(value) against log(size): ~0 flat, ~1 linear in the store size."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(sizes, values) if x > 0 and y > 0 and math.isfinite(y)]
    if len(pairs) < 2:
        return float("nan")
    xs, ys = np.array(pairs).T
    if np.ptp(xs) == 0:
        return float("nan")
    return float(np.polyfit(xs, ys, 1)[0])
