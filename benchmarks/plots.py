"""PNG plots of a run's records (matplotlib, Agg backend): ops/s by size, overhead ratio, step cost, growth.

Each plot selects records by benchmark, metric and configuration fields (see :mod:`benchmarks.records`); a plot
whose records are absent is not written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.records import Record, select

__all__ = ["write_plots"]

_LTM = ("RETRIEVE@3", "RETRIEVE@5", "RETRIEVE@10", "ADD", "UPDATE", "DELETE")


def _xy(records: Sequence[Record], show: str = "value") -> tuple[list[int], list[float]]:
    """(sizes, values) of records sorted by size, positive values only (the axes are logarithmic)."""
    pts = []
    for r in records:
        v = 1e6 / r.mean if show == "per_s" and r.mean else r[show] if show != "per_s" else None
        if isinstance(v, (int, float)) and v > 0:
            pts.append((int(r["size"]), float(v)))
    pts.sort()
    return [x for x, _ in pts], [y for _, y in pts]


def _from_1k(xs: list[int], ys: list[float]) -> tuple[list[int], list[float]]:
    """The points from 1k items up (growth is about large stores), or all of them when fewer than two are."""
    big = [(x, y) for x, y in zip(xs, ys) if x >= 1000]
    pts = big if len(big) >= 2 else list(zip(xs, ys))
    return [x for x, _ in pts], [y for _, y in pts]


def _log_axes(ax: Any) -> None:
    """Log-log axes, where the plotted data allow it (log scales need positive values)."""
    xs = [x for line in ax.get_lines() for x in line.get_xdata() if x > 0]
    ys = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
    if xs:
        ax.set_xscale("log")
    if ys:
        ax.set_yscale("log")


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _embedders(ops: Sequence[Record]) -> list[str]:
    return list(dict.fromkeys(str(r["embedder"]) for r in ops))


def _ops_by_size(ops: Sequence[Record], path: Path) -> Path:
    names = _embedders(ops)
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        mine = select(ops, embedder=name)
        for i, op in enumerate(dict.fromkeys(r["op"] for r in mine)):
            color = f"C{i % 10}"
            ax.plot(*_xy(select(mine, op=op, series="api"), "per_s"), "o-", color=color, label=f"{op} API")
            if op in _LTM:
                raw = _xy(select(mine, op=op, series="raw"), "per_s")
                ax.plot(*raw, "x--", color=color, alpha=0.6, label=f"{op} raw")
        _log_axes(ax)
        ax.set(xlabel="store items", ylabel="ops/s", title=f"{name}: API (—) and raw (--)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def _overhead(ops: Sequence[Record], path: Path) -> Path:
    names = _embedders(ops)
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for i, op in enumerate(_LTM):
            color = f"C{i}"
            ax.plot(*_xy(select(ops, embedder=name, op=op, series="api"), "ratio"), "o-", color=color, label=op)
            excl = _xy(select(ops, embedder=name, op=op, series="api_excl_embed"), "ratio")
            ax.plot(*excl, "x:", color=color, alpha=0.6)
        ax.axhline(1.5, color="red", lw=1, ls="--", label="target 1.5×")
        _log_axes(ax)
        ax.set(
            xlabel="store items",
            ylabel="API / raw hnswlib (median)",
            title=f"{name}: overhead (—) and excl. embedder (··)",
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _step_cost(steps: Sequence[Record], vec: Sequence[Record], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    if steps:
        sizes = sorted({int(r["size"]) for r in steps})
        pos = {s: i for i, s in enumerate(sizes)}
        for i, context in enumerate(dict.fromkeys(r["context"] for r in steps)):
            for series, style, label in (("step", "o-", ""), ("step_excl_embed", "x--", " excl. emb.")):
                xs, ys = _xy(select(steps, context=context, series=series))
                axes[0].plot([pos[x] for x in xs], ys, style, color=f"C{i}", label=f"{context}{label}")
        axes[0].axhline(1000, color="red", lw=1, ls="--", label="target 1 ms (excl. embedder)")
        axes[0].set_xticks(range(len(sizes)), [f"{s:,}" for s in sizes])
        axes[0].set(xlabel="store items (pre-filled)", ylabel="median µs per env.step", title="env step cost")
        axes[0].set_ylim(bottom=0)
        axes[0].grid(True, alpha=0.3)
        axes[0].legend(fontsize=7)
    if vec:
        axes[1].bar([str(r["variant"]) for r in vec], [r.value or 0.0 for r in vec], color="C2")
        axes[1].set(ylabel="env transitions / s", title="one env vs gym.make_vec")
        axes[1].grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def _growth(ops: Sequence[Record], footprint: Sequence[Record], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    names = _embedders(ops)
    name = "hash" if "hash" in names else names[0]
    for i, op in enumerate(_LTM):
        api = _from_1k(*_xy(select(ops, embedder=name, op=op, series="api")))
        if api[0]:
            axes[0].plot(*api, "o-", color=f"C{i}", label=f"{op} API")
        raw = _from_1k(*_xy(select(ops, embedder=name, op=op, series="raw")))
        if raw[0]:
            axes[0].plot(*raw, "x--", color=f"C{i}", alpha=0.6)
    _log_axes(axes[0])
    axes[0].set(xlabel="store items", ylabel="median µs", title=f"{name}: latency growth, API (—) and raw (--)")
    axes[0].grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    for i, emb in enumerate(_embedders(footprint)):
        for metric, style, label in (
            ("store_bytes_per_item", "o-", "store"),
            ("raw_index_bytes_per_item", "x--", "raw"),
        ):
            xs, ys = _from_1k(*_xy(select(footprint, embedder=emb, metric=metric)))
            if xs:
                axes[1].plot(xs, ys, style, color=f"C{i}", label=f"{emb} {label}")
    _log_axes(axes[1])
    axes[1].set(xlabel="store items", ylabel="bytes per item", title="memory footprint")
    axes[1].grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7)
    return _save(fig, path)


def write_plots(records: Sequence[Record], out_dir: Path) -> list[Path]:
    """Write the plots whose records are present; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ops = select(records, "memory_ops", metric="latency")
    steps = select(records, "env_step", metric="latency", action="all")
    vec = select(records, "make_vec", metric="steps_per_s")
    written = []
    if ops:
        written += [_ops_by_size(ops, out_dir / "ops_by_size.png"), _overhead(ops, out_dir / "overhead_ratio.png")]
    if steps or vec:
        written.append(_step_cost(steps, vec, out_dir / "step_cost.png"))
    if ops:
        written.append(_growth(ops, select(records, "footprint"), out_dir / "growth.png"))
    return written
