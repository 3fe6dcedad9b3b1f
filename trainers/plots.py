"""Training curves from a run's ``metrics.jsonl``: reward and memory quality per update, as one PNG.

python -m agemem_gym.trainers.plots runs/<run>/metrics.jsonl runs/<run>/curves.png
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

__all__ = ["MEMORY_PANELS", "PANELS", "plot_metrics", "read_metrics"]

# (title, metric keys); a key ending in "*" stands for every key with that prefix.
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("reward", ("reward/mean", "reward/task_score", "eval/reward/mean")),
    ("memory quality", ("memory/precision", "memory/recall", "memory/f1")),
    ("loss", ("loss/policy", "loss/kl")),
)

# What the policy does with its memory, on the held-out evaluation tasks (the eval/ rows).
MEMORY_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("held-out: memory use", ("eval/memory/f1", "eval/memory/retrieve_before_answer", "eval/reward/task_score")),
    ("held-out: tool calls per episode", ("eval/memory/tool/*",)),
    ("held-out: R(τ)", ("eval/reward/mean",)),
)


def _expand(keys: tuple[str, ...], rows: list[dict[str, float]]) -> list[str]:
    present = sorted({k for r in rows for k in r})
    out: list[str] = []
    for key in keys:
        out += [k for k in present if k.startswith(key[:-1])] if key.endswith("*") else [key]
    return out


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The JSONL rows, keeping the last row of each update (a resumed run may repeat updates)."""
    rows: dict[int, dict[str, float]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[int(row["update"])] = row
    return [rows[k] for k in sorted(rows)]


def plot_metrics(
    metrics_path: str | Path,
    png_path: str | Path,
    panels: tuple[tuple[str, tuple[str, ...]], ...] = PANELS,
) -> Path:
    """Draw curves against the update number into ``png_path``, one panel per ``(title, keys)`` of ``panels``
    (default: reward, memory quality and loss; :data:`MEMORY_PANELS`: the held-out memory behaviour)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), constrained_layout=True, squeeze=False)
    updates = [r["update"] for r in rows]
    for ax, (title, keys) in zip(axes[0], panels):
        for key in _expand(keys, rows):
            # Only the rows that hold the key: eval/ metrics appear every eval_every updates, and update 0 (the
            # starting policy) has nothing but eval/ metrics.
            points = [(u, r[key]) for u, r in zip(updates, rows) if isinstance(r.get(key), (int, float))]
            points = [(u, v) for u, v in points if not math.isnan(v)]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    out = Path(png_path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":
    plot_metrics(sys.argv[1], sys.argv[2])
