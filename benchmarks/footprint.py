"""Memory footprint per item: the store against a bare hnswlib index over the same vectors.

Bytes are counted, not sampled from the resident set size (which an allocator that reuses freed memory makes
useless between builds in one process): the store's build runs under :mod:`tracemalloc`, which sees every Python
object and numpy buffer (items, metadata, id maps, content strings and the float32 vector matrix the store keeps
for exact re-scoring and rebuilds); hnswlib's C++ allocations are invisible to it, so they are measured on a copy
of the store's graph (the ``raw`` figure: same capacity, same links) with glibc's ``mallinfo2`` (bytes in use),
falling back to the resident set size elsewhere. Store = traced Python side + graph. Capacity grows
geometrically, so the per-item figures include the growth slack of the current capacity. ``snapshot`` is the
size of :meth:`MemoryStore.snapshot` pickled, which is what ``env.get_state()`` copies for branching rollouts.
"""

from __future__ import annotations

import ctypes
import gc
import pickle
import time
import tracemalloc
from collections.abc import Callable
from typing import Any, TypeVar

import hnswlib

from agemem_gym.memory import MemoryStore
from benchmarks.machine import rss_bytes
from benchmarks.records import Record

__all__ = ["allocated_bytes", "measure", "per_item", "records"]

T = TypeVar("T")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"
        )
    ]  # fmt: skip


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn  # type: ignore[no-any-return]


_MALLINFO2 = _mallinfo2()


def allocated_bytes() -> int:
    """Bytes the C allocator has handed out and not had back (glibc), else the resident set size."""
    if _MALLINFO2 is None:
        return rss_bytes()
    info = _MALLINFO2()
    return int(info.uordblks + info.hblkhd)


def measure(build: Callable[[], T], *, trace: bool = False) -> tuple[T, dict[str, float]]:
    """Run ``build()``; return its result, the seconds it took and the bytes it left allocated.

    ``native_bytes`` counts C allocations (see :func:`allocated_bytes`); with ``trace`` the build also runs under
    tracemalloc and ``python_bytes`` counts what Python and numpy kept (tracing slows Python allocations, so
    ``seconds`` is then an upper bound).
    """
    gc.collect()
    native = allocated_bytes()
    if trace:
        tracemalloc.start()
    traced = tracemalloc.get_traced_memory()[0] if trace else 0
    start = time.perf_counter()
    obj = build()
    seconds = time.perf_counter() - start
    gc.collect()
    out = {"seconds": seconds, "native_bytes": float(allocated_bytes() - native)}
    if trace:
        out["python_bytes"] = float(tracemalloc.get_traced_memory()[0] - traced)
        tracemalloc.stop()
    return obj, out


def per_item(
    n: int,
    store_build: dict[str, float],
    raw_build: dict[str, float],
    store: MemoryStore,
    raw: hnswlib.Index,
    *,
    snapshot: bool = True,
) -> dict[str, Any]:
    """Bytes per item of the store and of its parts, from the measured builds (see the module docstring)."""
    st = store.stats()
    n = max(n, 1)
    vectors = st["capacity"] * st["dim"] * 4
    graph = raw_build["native_bytes"]
    python = store_build.get("python_bytes", float("nan"))
    out: dict[str, Any] = {
        "items": n,
        "capacity": st["capacity"],
        "dim": st["dim"],
        "store_bytes_per_item": (python + graph) / n,
        "raw_index_bytes_per_item": graph / n,
        "vector_matrix_bytes_per_item": vectors / n,
        "python_bytes_per_item": python / n,
        "items_and_maps_bytes_per_item": (python - vectors) / n,
        "index_file_bytes_per_item": raw.index_file_size() / n,
        "raw_vector_bytes_per_item": st["dim"] * 4,
        "build_us_per_item": 1e6 * store_build["seconds"] / n,
    }
    out["ratio_store_raw"] = (
        out["store_bytes_per_item"] / out["raw_index_bytes_per_item"] if graph > 0 else float("nan")
    )
    if snapshot:
        start = time.perf_counter()
        blob = pickle.dumps(store.snapshot(), protocol=pickle.HIGHEST_PROTOCOL)
        out["snapshot_s"] = time.perf_counter() - start
        out["snapshot_bytes_per_item"] = len(blob) / n
    return out


def records(figures: dict[str, Any], config: dict[str, Any]) -> list[Record]:
    """:func:`per_item`'s figures as records of benchmark ``"footprint"`` (the store's bytes against raw hnswlib's)."""
    out = []
    for name, value in figures.items():
        if name in ("items", "ratio_store_raw"):
            continue
        unit = "us" if name.endswith("_us_per_item") else "s" if name.endswith("_s") else "B" if "bytes" in name else ""
        if name == "store_bytes_per_item":
            base = figures["raw_index_bytes_per_item"]
            rec = Record(
                "footprint",
                name,
                value,
                unit,
                config,
                baseline="raw_index_bytes_per_item",
                baseline_value=base,
                ratio=figures["ratio_store_raw"],
                repeats=figures["items"],
            )
        else:
            rec = Record("footprint", name, value, unit, config, repeats=figures["items"])
        out.append(rec)
    return out
