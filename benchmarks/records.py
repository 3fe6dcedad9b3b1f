"""The benchmarks' one result format: flat :class:`Record` s, one JSON line per configuration.

A results file (``benchmarks/results/results.jsonl``) is JSON Lines: the first line is ``{"meta": {...}}`` (the
machine, the arguments, the corpus: once per file), every further line one record with its configuration fields
inline::

    {"meta": {"date": "...", "cpu_model": "...", "packages": {...}, ...}}
    {"benchmark": "memory_ops", "embedder": "hash", "size": 10000, "op": "RETRIEVE@5", "series": "api",
     "metric": "latency", "value": 907.1, "unit": "us", "p99": 1402.0, "mean": 951.3, "baseline": "raw",
     "baseline_value": 574.2, "ratio": 1.58, "repeats": 300}

Tables (:mod:`benchmarks.render`) and plots (:mod:`benchmarks.plots`) read nothing else: they select records by
benchmark, metric and configuration fields and pivot them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["REPO", "RESULTS_DIR", "Record", "Results", "jsonable", "read_results", "relative", "write_results"]

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"

Scalar = str | int | float | bool | None


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class Record:
    """One measured figure of one configuration, beside its baseline when it has one.

    Attributes:
        benchmark: What was measured: ``"memory_ops"``, ``"recall"``, ``"env_step"``, ``"trainer"``, ...
        metric: The figure's name (``"latency"``, ``"recall"``, ``"store_bytes_per_item"``, ...).
        value: For a timing, the median over ``repeats`` calls; otherwise the measured figure. None: not finite.
        unit: ``"us"``, ``"tokens/s"``, ``"B"``, ``""`` (a share or a count), ...
        config: The configuration fields (op, size, embedder, k, series, ...): scalars, written inline.
        p99: The 99th percentile of a timing.
        mean: The mean of a timing (``1e6 / mean`` µs is its calls per second).
        baseline: The name of the series this one is compared against, measured in the same run.
        baseline_value: The baseline's ``value``.
        ratio: ``value / baseline_value``.
        repeats: How many calls (or items, or queries) the figure summarises.
    """

    benchmark: str
    metric: str
    value: float | None
    unit: str = ""
    config: Mapping[str, Scalar] = field(default_factory=dict)
    p99: float | None = None
    mean: float | None = None
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    repeats: int | None = None

    def __post_init__(self) -> None:
        clash = set(self.config) & _FIELDS
        if clash:
            raise ValueError(f"config fields must not be named like Record fields, got {sorted(clash)}")
        for name in ("value", "p99", "mean", "baseline_value", "ratio"):
            object.__setattr__(self, name, _finite(getattr(self, name)))
        object.__setattr__(self, "config", {k: jsonable(v) for k, v in self.config.items()})

    def __getitem__(self, key: str) -> Any:
        """A configuration field or a record field by name (what the renderer pivots on); None if absent."""
        if key in _FIELDS:
            return getattr(self, key)
        return self.config.get(key)

    def matches(self, **where: Any) -> bool:
        """Whether every ``where`` field equals the given value (is one of them, for a tuple, list or set; passes
        it, for a callable)."""
        for key, want in where.items():
            got = self[key]
            if callable(want):
                if not want(got):
                    return False
            elif isinstance(want, (tuple, list, set, frozenset)):
                if got not in want:
                    return False
            elif got != want:
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        """The flat JSON object: configuration fields inline, empty fields left out."""
        out: dict[str, Any] = {"benchmark": self.benchmark, **self.config, "metric": self.metric, "value": self.value}
        for f in fields(self):
            if f.name not in ("benchmark", "metric", "value", "config"):
                v = getattr(self, f.name)
                if v is not None and not (f.name == "unit" and v == ""):
                    out[f.name] = v
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Record:
        known = {k: v for k, v in obj.items() if k in _FIELDS}
        return cls(**known, config={k: v for k, v in obj.items() if k not in _FIELDS})


_FIELDS = frozenset(f.name for f in fields(Record))


@dataclass(frozen=True)
class Results:
    """A run: its metadata and its records (what :func:`write_results` writes and :func:`read_results` reads)."""

    meta: Mapping[str, Any]
    records: tuple[Record, ...]

    def select(self, benchmark: Any = None, **where: Any) -> list[Record]:
        """The records of ``benchmark`` whose fields match ``where`` (see :meth:`Record.matches`), in order."""
        return select(self.records, benchmark, **where)


def select(records: Iterable[Record], benchmark: Any = None, **where: Any) -> list[Record]:
    """The records of ``benchmark`` (any, for None; one of them, for a tuple) whose fields match ``where``."""
    if benchmark is not None:
        where = {"benchmark": benchmark, **where}
    return [r for r in records if r.matches(**where)]


def write_results(path: Path, meta: Mapping[str, Any], records: Sequence[Record]) -> Path:
    """Write ``meta`` and ``records`` as JSON Lines (strict JSON: no NaN), atomically; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"meta": jsonable(meta)}, allow_nan=False)]
    lines += [json.dumps(r.to_json(), allow_nan=False) for r in records]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def read_results(path: Path) -> Results:
    """The metadata and records of a file written by :func:`write_results`."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines or "meta" not in json.loads(lines[0]):
        raise ValueError(f"{relative(path)} is not a results file: its first line must be {{'meta': ...}}")
    return Results(json.loads(lines[0])["meta"], tuple(Record.from_json(json.loads(line)) for line in lines[1:]))


def relative(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the repository root (results and reports never name this machine's paths)."""
    return os.path.relpath(Path(path).resolve(), REPO)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars made Python, tuples made lists, paths made relative to the repository, and
    NaN / infinity made None (strict JSON)."""
    if isinstance(value, Path):
        return relative(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value
