"""Training curves from a run's ``metrics.jsonl``: reward and memory quality per update, as one PNG.

python -m agemem_gym.trainers.plots runs/<run>/metrics.jsonl runs/<run>/curves.png
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

__all__ = ["plot_metrics", "read_metrics"]

PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("reward", ("reward/mean", "reward/task_score", "eval/reward/mean")),
    ("memory quality", ("memory/precision", "memory/recall", "memory/f1")),
    ("loss", ("loss/policy", "loss/kl")),
)


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The JSONL rows, keeping the last row of each update (a resumed run may repeat updates)."""
    rows: dict[int, dict[str, float]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[int(row["update"])] = row
    return [rows[k] for k in sorted(rows)]


def plot_metrics(metrics_path: str | Path, png_path: str | Path) -> Path:
    """Draw reward, memory-quality and loss curves against the update number into ``png_path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.5), constrained_layout=True)
    updates = [r["update"] for r in rows]
    for ax, (title, keys) in zip(axes, PANELS):
        for key in keys:
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
