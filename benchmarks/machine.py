"""What a reader needs to compare two runs: versions, CPU, cores, commit, date, and how loaded the machine was."""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.records import REPO

__all__ = ["PACKAGES", "load_average", "machine_info", "pressure", "rss_bytes"]

PACKAGES = (
    "agemem-gym", "numpy", "hnswlib", "gymnasium", "torch", "transformers", "rapidfuzz", "pytest-benchmark",
    "matplotlib",
)  # fmt: skip


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty_files": len(git("status", "--porcelain").splitlines())}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other processes compete for the cores), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def pressure() -> dict[str, float] | None:
    """Linux pressure-stall figures: the share of the last 60 s in which some task waited for CPU, memory or I/O."""
    out: dict[str, float] = {}
    for resource in ("cpu", "memory", "io"):
        try:
            first = Path(f"/proc/pressure/{resource}").read_text().splitlines()[0]
        except (OSError, IndexError):
            continue
        fields = dict(part.split("=", 1) for part in first.split()[1:] if "=" in part)
        if "avg60" in fields:
            out[f"{resource}_some_avg60"] = float(fields["avg60"])
    return out or None


def machine_info() -> dict[str, Any]:
    """Versions, CPU, core count, Python, commit and date: what a reader needs to compare two runs."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        import psutil

        memory_gib: float | None = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        memory_gib = None
    torch_threads_default = None
    with contextlib.suppress(ImportError):
        import torch

        torch_threads_default = torch.get_num_threads()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **_commit(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory_gib,
        "torch_threads_default": torch_threads_default,
        "load_average_start": load_average(),
        "pressure_start": pressure(),
        "packages": versions,
        "argv": sys.argv[1:],
    }


def rss_bytes() -> int:
    """This process's resident set size."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover - psutil is in the dev environment
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
