"""Settings and helpers of the pytest-benchmark suites (``bench_*.py``), which time the same series as
:mod:`benchmarks.report` (``benchmarks/conftest.py`` holds their fixtures).

Run (from the repository root)::

    .venv/bin/python -m pytest benchmarks -o python_files='bench_*.py' -p no:cacheprovider --benchmark-only
    AGEMEM_BENCH_SIZES=1000,100000 AGEMEM_BENCH_EMBEDDERS=hash,minilm .venv/bin/python -m pytest benchmarks \\
        -o python_files='bench_*.py' --benchmark-only --benchmark-group-by=group --benchmark-json=runs/bench.json

Environment variables (comma-separated lists):

| variable | default | meaning |
|---|---|---|
| ``AGEMEM_BENCH_SIZES`` | ``1000,10000`` | store sizes for the memory operations and the footprint |
| ``AGEMEM_BENCH_EMBEDDERS`` | ``hash`` | ``hash`` and/or ``minilm`` |
| ``AGEMEM_BENCH_ENV_SIZES`` | ``0,10000`` | pre-filled store sizes for the env step |
| ``AGEMEM_BENCH_CONTEXTS`` | ``paper`` | env context settings (see ``benchmarks.env_steps.CONTEXTS``) |
| ``AGEMEM_BENCH_VARIANTS`` | ``single,syncx2,asyncx2,syncx4,asyncx4`` | make_vec variants |
| ``AGEMEM_BENCH_MODELS`` | ``tiny`` | trainer models (``smollm2`` takes minutes); empty to skip |
| ``AGEMEM_BENCH_ROUNDS`` | ``100`` | timed rounds per benchmark (``WARMUP``: burn-in rounds, default 10) |
| ``AGEMEM_BENCH_QUICK`` | unset | ``1``: a few rounds of tiny sizes, for the smoke test |

Benchmarks of one operation share a group (``--benchmark-group-by=group``), so the API and its raw baselines sit
in one table. Nothing asserts a timing.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

from benchmarks.corpus import CACHE_DIR
from benchmarks.timing import Timed

__all__ = [
    "CONTEXTS",
    "EMBEDDERS",
    "ENV_SIZES",
    "MODELS",
    "QUICK",
    "ROUNDS",
    "SIZES",
    "VARIANTS",
    "VECTOR_CACHE",
    "WARMUP",
    "pedantic",
]

QUICK = os.environ.get("AGEMEM_BENCH_QUICK", "") not in ("", "0")


def _list(name: str, default: str, quick: str) -> list[str]:
    value = os.environ.get(name, quick if QUICK else default)
    return [v.strip() for v in value.split(",") if v.strip()]


SIZES = [int(v) for v in _list("AGEMEM_BENCH_SIZES", "1000,10000", "100")]
EMBEDDERS = _list("AGEMEM_BENCH_EMBEDDERS", "hash", "hash")
ENV_SIZES = [int(v) for v in _list("AGEMEM_BENCH_ENV_SIZES", "0,10000", "0,100")]
CONTEXTS = _list("AGEMEM_BENCH_CONTEXTS", "paper", "paper")
VARIANTS = _list("AGEMEM_BENCH_VARIANTS", "single,syncx2,asyncx2,syncx4,asyncx4", "single,syncx2,asyncx2")
MODELS = _list("AGEMEM_BENCH_MODELS", "tiny", "tiny")
ROUNDS = int(os.environ.get("AGEMEM_BENCH_ROUNDS", "3" if QUICK else "100"))
WARMUP = int(os.environ.get("AGEMEM_BENCH_WARMUP", "1" if QUICK else "10"))
VECTOR_CACHE = CACHE_DIR


def pedantic(benchmark: Any, series: Callable[[int], Any] | Timed, *, rounds: int, warmup: int) -> None:
    """Benchmark one series of :mod:`benchmarks.timing`: call i of ``rounds + warmup`` runs ``series(i)`` (a
    :class:`~benchmarks.timing.Timed` runs its set-up untimed first)."""
    plan = series if isinstance(series, Timed) else Timed(series)
    counter = itertools.count()

    def setup() -> tuple[tuple[int], dict[str, Any]]:
        i = next(counter)
        if plan.setup is not None:
            plan.setup(i)
        return (i,), {}

    benchmark.pedantic(plan.run, setup=setup, rounds=rounds, warmup_rounds=warmup, iterations=1)
