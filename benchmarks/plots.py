"""PNG plots of a results dict (matplotlib, Agg backend): ops/s by size, overhead ratio, step cost, growth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["write_plots"]

_LTM = ("RETRIEVE@3", "RETRIEVE@5", "RETRIEVE@10", "ADD", "UPDATE", "DELETE")


def _sizes(res: dict[str, Any]) -> list[int]:
    return sorted(int(n) for n in res["by_size"])


def _series(res: dict[str, Any], op: str, *keys: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for n in _sizes(res):
        value: Any = res["by_size"][str(n)]["ops"].get(op)
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if isinstance(value, (int, float)) and value > 0:
            xs.append(n)
            ys.append(float(value))
    return xs, ys


def _log_axes(ax: Any) -> None:
    """Log-log axes, where the plotted data allow it (log scales need positive values)."""
    xs = [x for line in ax.get_lines() for x in line.get_xdata() if x > 0]
    ys = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
    if xs:
        ax.set_xscale("log")
    if ys:
        ax.set_yscale("log")


def _from_1k(xs: list[int], ys: list[float]) -> list[tuple[int, float]]:
    """The points from 1k items up (growth is about large stores), or all of them when fewer than two are."""
    big = [(x, y) for x, y in zip(xs, ys) if x >= 1000]
    return big if len(big) >= 2 else list(zip(xs, ys))


def _ops_by_size(mem: dict[str, Any], path: Path) -> Path:
    fig, axes = plt.subplots(1, len(mem), figsize=(6.5 * len(mem), 4.5), squeeze=False)
    for ax, (name, res) in zip(axes[0], mem.items()):
        for i, op in enumerate(o for o in res["by_size"][str(_sizes(res)[0])]["ops"]):
            color = f"C{i % 10}"
            ax.plot(*_series(res, op, "api", "ops_per_s"), "o-", color=color, label=f"{op} API")
            if op in _LTM:
                ax.plot(*_series(res, op, "raw", "ops_per_s"), "x--", color=color, alpha=0.6, label=f"{op} raw")
        _log_axes(ax)
        ax.set(xlabel="store items", ylabel="ops/s", title=f"{name}: API (—) and raw (--)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _overhead(mem: dict[str, Any], path: Path) -> Path:
    fig, axes = plt.subplots(1, len(mem), figsize=(6.5 * len(mem), 4.5), squeeze=False)
    for ax, (name, res) in zip(axes[0], mem.items()):
        for i, op in enumerate(_LTM):
            color = f"C{i}"
            ax.plot(*_series(res, op, "ratio_api_raw"), "o-", color=color, label=f"{op}")
            ax.plot(*_series(res, op, "ratio_api_excl_embed_raw"), "x:", color=color, alpha=0.6)
        ax.axhline(1.5, color="red", lw=1, ls="--", label="target 1.5×")
        _log_axes(ax)
        ax.set(
            xlabel="store items",
            ylabel="API / raw hnswlib (median)",
            title=f"{name}: overhead (—) and excl. embedder (··)",
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _step_cost(env: dict[str, Any], path: Path) -> Path:
    single, vec = env.get("single"), env.get("vec")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    if single:
        sizes = sorted({c["size"] for c in single["cells"]})
        pos = {s: i for i, s in enumerate(sizes)}
        for i, context in enumerate(dict.fromkeys(c["context"] for c in single["cells"])):
            cells = sorted((c for c in single["cells"] if c["context"] == context), key=lambda c: c["size"])
            x = [pos[c["size"]] for c in cells]
            axes[0].plot(x, [c["step"]["median_us"] for c in cells], "o-", color=f"C{i}", label=f"{context}")
            axes[0].plot(
                x,
                [c["step_excl_embed"]["median_us"] for c in cells],
                "x--",
                color=f"C{i}",
                label=f"{context} excl. emb.",
            )
        axes[0].axhline(1000, color="red", lw=1, ls="--", label="target 1 ms (excl. embedder)")
        axes[0].set_xticks(range(len(sizes)), [f"{s:,}" for s in sizes])
        axes[0].set(xlabel="store items (pre-filled)", ylabel="median µs per env.step", title="env step cost")
        axes[0].set_ylim(bottom=0)
        axes[0].grid(True, alpha=0.3)
        axes[0].legend(fontsize=7)
    if vec:
        names = [v["variant"] for v in vec["variants"]]
        axes[1].bar(names, [v["steps_per_s"] for v in vec["variants"]], color="C2")
        axes[1].set(ylabel="env transitions / s", title="one env vs gym.make_vec")
        axes[1].grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _growth(results: dict[str, Any], path: Path) -> Path:
    mem = results.get("memory_ops") or {}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    res = mem.get("hash") or next(iter(mem.values()))
    for i, op in enumerate(_LTM):
        api = _from_1k(*_series(res, op, "api", "median_us"))
        if api:
            axes[0].plot(*zip(*api), "o-", color=f"C{i}", label=f"{op} API")
        raw = _from_1k(*_series(res, op, "raw", "median_us"))
        if raw:
            axes[0].plot(*zip(*raw), "x--", color=f"C{i}", alpha=0.6)
    _log_axes(axes[0])
    axes[0].set(
        xlabel="store items",
        ylabel="median µs",
        title=f"{res['embedder']}: latency growth, API (—) and raw (--)",
    )
    axes[0].grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    for i, (name, r) in enumerate(mem.items()):
        sizes = [n for n, _ in _from_1k(_sizes(r), [1.0] * len(_sizes(r)))]
        fps = [r["by_size"][str(n)]["footprint"] for n in sizes]
        for key, style, label in (("store_bytes_per_item", "o-", "store"), ("raw_index_bytes_per_item", "x--", "raw")):
            pts = [(n, f[key]) for n, f in zip(sizes, fps) if f[key] is not None and f[key] > 0]
            if pts:
                axes[1].plot(*zip(*pts), style, color=f"C{i}", label=f"{name} {label}")
    _log_axes(axes[1])
    axes[1].set(xlabel="store items", ylabel="bytes per item", title="memory footprint")
    axes[1].grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the plots whose data the results hold; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    mem = results.get("memory_ops") or {}
    if mem:
        written.append(_ops_by_size(mem, out_dir / "ops_by_size.png"))
        written.append(_overhead(mem, out_dir / "overhead_ratio.png"))
    if results.get("env_steps"):
        written.append(_step_cost(results["env_steps"], out_dir / "step_cost.png"))
    if mem:
        written.append(_growth(results, out_dir / "growth.png"))
    return written
