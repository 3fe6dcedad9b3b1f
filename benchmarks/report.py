"""Run every benchmark and write ``benchmarks/results/``: ``results.json``, ``report.md`` and PNG plots.

Run (from the repository root; ``make bench`` runs the first)::

    .venv/bin/python -m benchmarks.report                        # everything (about half an hour on 2 cores)
    .venv/bin/python -m benchmarks.report --quick                # tiny sizes, seconds: checks that it all runs
    .venv/bin/python -m benchmarks.report --embedders hash --sections memory env
    .venv/bin/python -m benchmarks.report --minilm-max-size 100000   # MiniLM at 100k too (embeds ~100k texts once)
    .venv/bin/python -m benchmarks.report --render-only benchmarks/results/results.json   # re-render, measure nothing

Every figure is measured beside its baseline in the same run, interleaved call by call (see
:mod:`benchmarks.common`), so ratios hold on a noisy machine even when absolute times do not; the load average and
pressure-stall figures at the start and the end are recorded with the results. Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tyro

from benchmarks import env_steps, memory_ops, trainer_perf
from benchmarks.common import (
    CACHE_DIR,
    HOTPOTQA_SAMPLE,
    RESULTS_DIR,
    Corpus,
    Log,
    blas_threads,
    embed_cached,
    jsonable,
    load_average,
    load_corpus,
    loglog_slope,
    machine_info,
    pressure,
)

__all__ = ["Args", "breakdown", "growth", "main", "render_markdown", "targets"]

Section = Literal["memory", "env", "vec", "trainer"]
EmbedderName = Literal["hash", "minilm"]


@dataclass
class Args:
    """Run the benchmarks and write results.json, report.md and PNG plots."""

    sizes: tuple[int, ...] = (100, 1000, 10_000, 100_000)
    """store sizes N for the memory operations"""
    embedders: tuple[EmbedderName, ...] = ("hash", "minilm")
    """embedders for the memory operations (the env and the trainer always use the hashing embedder)"""
    minilm_max_size: int = 10_000
    """MiniLM store sizes above this are skipped: embedding 100k texts with MiniLM on 2 CPU cores takes about an
    hour (vectors are cached under benchmarks/results/cache, so a second run pays nothing)"""
    calls: int = 300
    """timed calls per operation and size (hashing embedder)"""
    burn_in: int = 30
    """untimed calls before them"""
    minilm_calls: int = 30
    """timed calls per operation and size with MiniLM (each embeds text with the model)"""
    minilm_burn_in: int = 3
    """untimed calls before them (the first loads the model)"""
    batch: int = 32
    """items per batched store call (add_many, search_many)"""
    env_sizes: tuple[int, ...] = (0, 1000, 10_000, 100_000)
    """store sizes the env's store is pre-filled to"""
    env_contexts: tuple[str, ...] = ("compact", "paper", "long")
    """context settings of the env (see benchmarks.env_steps.CONTEXTS)"""
    env_episodes: int = 10
    """oracle episodes per (size, context) cell"""
    vec_envs: tuple[int, ...] = (2, 4)
    """sub-env counts for gym.make_vec"""
    vec_steps: int = 1200
    """env transitions per make_vec variant"""
    trainer_models: tuple[str, ...] = ("tiny", "smollm2")
    """models for the trainer throughput ("smollm2" takes several minutes on 2 cores; drop it to skip)"""
    smollm2_updates: int = 1
    """GRPO updates of SmolLM2 (the tiny model runs 3; the first update pays one-off costs)"""
    sections: tuple[Section, ...] = ("memory", "env", "vec", "trainer")
    """which parts to run"""
    profile: bool = True
    """cProfile the API's RETRIEVE@5 and ADD and the env step at the target size (10k)"""
    quick: bool = False
    """tiny sizes and a few calls (what the smoke test runs): seconds, and the figures mean nothing"""
    out_dir: Path = RESULTS_DIR
    """where results.json, report.md and the PNGs go"""
    cache_dir: Path | None = CACHE_DIR
    """MiniLM vector cache (None: no cache)"""
    data_path: Path | None = HOTPOTQA_SAMPLE
    """the HotpotQA sample (texts and the env's tasks); absent, the synthetic suite stands in"""
    plots: bool = True
    """write the PNG plots"""
    render_only: Path | None = None
    """measure nothing: render report.md and the plots into out_dir from this results.json"""
    quiet: bool = False
    """no progress lines on stderr"""


@dataclass(frozen=True)
class _Plan:
    """The settings a run uses, derived from ``Args`` (``--quick`` shrinks them) without changing ``Args``."""

    sizes: tuple[int, ...]
    ops: dict[str, memory_ops.OpsConfig]
    env: env_steps.EnvConfig
    trainer: trainer_perf.TrainerConfig
    profile_at: int | None


def _plan(args: Args) -> _Plan:
    if args.quick:
        small = memory_ops.OpsConfig(
            ks=(3, 5, 10), calls=5, burn_in=1, recall_queries=50, batch=4, batch_calls=2, batch_burn_in=1
        )
        sizes = tuple(sorted({min(n, 200) for n in args.sizes}))
        env = env_steps.EnvConfig(
            sizes=tuple(sorted({min(n, 200) for n in args.env_sizes})),
            contexts=args.env_contexts[:2],
            episodes=1,
            vec_envs=args.vec_envs[:1],
            vec_steps=20,
            vec_rounds=2,
            profile_size=min(args.env_sizes[-1], 200) if args.profile and args.env_sizes else None,
            profile_episodes=1,
        )
        overrides = {"groups_per_update": 1, "group_size": 2, "max_new_tokens": 4, "max_prompt_tokens": 128}
        trainer = trainer_perf.TrainerConfig(
            models=tuple(m for m in args.trainer_models if m == "tiny"), updates={"tiny": 1}, overrides=overrides
        )
        return _Plan(sizes, {"hash": small, "minilm": small}, env, trainer, sizes[-1] if args.profile else None)
    base = memory_ops.OpsConfig(calls=args.calls, burn_in=args.burn_in, batch=args.batch)
    minilm = replace(base, calls=args.minilm_calls, burn_in=max(1, args.minilm_burn_in), batch_calls=3)
    env = env_steps.EnvConfig(
        sizes=args.env_sizes,
        contexts=args.env_contexts,
        episodes=args.env_episodes,
        vec_envs=args.vec_envs,
        vec_steps=args.vec_steps,
        profile_size=10_000 if args.profile and 10_000 in args.env_sizes else None,
    )
    trainer = trainer_perf.TrainerConfig(
        models=args.trainer_models, updates={"tiny": 3, "smollm2": max(1, args.smollm2_updates)}
    )
    profile_at = 10_000 if args.profile and 10_000 in args.sizes else None
    return _Plan(args.sizes, {"hash": base, "minilm": minilm}, env, trainer, profile_at)


# ---------------------------------------------------------------------------------------------------------------
# Targets and growth
# ---------------------------------------------------------------------------------------------------------------

# Issue 7's targets, with issue 13's tighter API ratio (reported, never asserted).
TARGET_RATIO = 1.3
TARGET_STEP_US = 1000.0
TARGET_SIZE = 10_000


def _get(d: Any, *keys: Any) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the run stands against issue 7's targets (at 10k items, or the largest size measured)."""
    out: list[dict[str, Any]] = []
    ops = _get(results, "memory_ops", "hash", "by_size") or {}
    size = str(TARGET_SIZE) if str(TARGET_SIZE) in ops else (max(ops, key=int) if ops else "0")
    for op in ("RETRIEVE@3", "RETRIEVE@5", "RETRIEVE@10", "ADD"):
        row = _get(ops, size, "ops", op)
        if row is None:
            continue
        r = row.get("ratio_api_raw")
        out.append(
            {
                "target": f"{op}: API / raw hnswlib <= {TARGET_RATIO}x (hashing embedder, {int(size):,} items)",
                "value": r,
                "unit": "x",
                "excl_embed": row.get("ratio_api_excl_embed_raw"),
                "met": r is not None and r <= TARGET_RATIO,
            }
        )
    cells = _get(results, "env_steps", "single", "cells") or []
    sizes = sorted({c["size"] for c in cells})
    if sizes:
        n = TARGET_SIZE if TARGET_SIZE in sizes else sizes[-1]
        for c in cells:
            if c["size"] == n:
                v = c["step_excl_embed"]["median_us"]
                kinds = {
                    k: x["median_excl_embed_us"] for k, x in c["by_kind"].items() if k not in ("answer", "invalid")
                }
                out.append(
                    {
                        "target": f"env step excl. policy and embedder < 1 ms median ({n:,} items, {c['context']} context)",
                        "value": v,
                        "unit": "us",
                        "with_embed": c["step"]["median_us"],
                        "tool_steps": kinds,
                        "met": v is not None and v < TARGET_STEP_US,
                    }
                )
    return out


def growth(results: dict[str, Any]) -> dict[str, Any]:
    """Log-log slopes of each op's median latency (API and raw) against the store size, 1k items and up."""
    out: dict[str, Any] = {}
    for name, res in (results.get("memory_ops") or {}).items():
        by_size = res["by_size"]
        sizes = sorted(int(n) for n in by_size if int(n) >= 1000)
        if len(sizes) < 2:  # growth is about large stores; with fewer than two, use what there is
            sizes = sorted(int(n) for n in by_size)
        if len(sizes) < 2:
            continue
        rows = {}
        for op in by_size[str(sizes[0])]["ops"]:
            row: dict[str, Any] = {"sizes": sizes}
            for series in ("api", "raw", "exact"):
                values = [_get(by_size, str(n), "ops", op, series, "median_us") for n in sizes]
                if all(v is not None for v in values):
                    row[f"{series}_us"] = values
                    row[f"{series}_slope"] = loglog_slope(sizes, values)
            rows[op] = row
        fp = [_get(by_size, str(n), "footprint", "store_bytes_per_item") for n in sizes]
        out[name] = {"ops": rows, "store_bytes_per_item": fp, "sizes": sizes}
    cells = _get(results, "env_steps", "single", "cells") or []
    env = {}
    for context in sorted({c["context"] for c in cells}):
        pts = sorted((c["size"], c["step_excl_embed"]["median_us"]) for c in cells if c["context"] == context)
        big = [(s, v) for s, v in pts if s >= 1000]
        env[context] = {
            "sizes": [s for s, _ in pts],
            "step_excl_embed_us": [v for _, v in pts],
            "slope_from_1k": loglog_slope([s for s, _ in big], [v for _, v in big]) if len(big) >= 2 else None,
        }
    out["env_step"] = env
    return out


# ---------------------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------------------


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    x = float(x)
    if x == 0:
        return "0"
    if abs(x) >= 10**digits:
        return f"{x:,.0f}"
    return f"{x:.{max(0, digits - 1 - math.floor(math.log10(abs(x))))}f}"


def _ratio(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.2f}×"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return [*lines, ""]


def _machine_lines(results: dict[str, Any]) -> list[str]:
    m = results.get("machine", {})
    pk = m.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in pk.items() if v)
    commit = (m.get("commit") or "unknown")[:10]
    dirty = f" (+{m['dirty_files']} uncommitted files)" if m.get("dirty_files") else ""
    pressure_start, pressure_end = m.get("pressure_start") or {}, results.get("pressure_end") or {}
    psi = ", ".join(
        f"{k.split('_')[0]} {pressure_start.get(k, float('nan')):.0f}% → {pressure_end.get(k, float('nan')):.0f}%"
        for k in sorted(set(pressure_start) | set(pressure_end))
    )
    return [
        f"- **When / what**: {m.get('date')}, commit `{commit}`{dirty}, {results.get('seconds', 0) / 60:.1f} min"
        + (" (**quick mode: the figures mean nothing**)" if results.get("args", {}).get("quick") else ""),
        f"- **Machine**: {m.get('cpu_model')}, {m.get('cpu_count')} CPUs ({m.get('affinity_cores')} usable), "
        f"{m.get('memory_gib')} GiB, Python {m.get('python')}, torch threads {m.get('torch_threads_default')}",
        f"- **Load average** (1/5/15 min): {m.get('load_average_start')} at the start, "
        f"{results.get('load_average_end')} at the end"
        + (f"; time some task waited for a resource (pressure stall, last 60 s): {psi}" if psi else ""),
        f"- **Packages**: {versions}",
        f"- **Corpus**: {_get(results, 'corpus', 'note')}",
        "",
    ]


def _target_lines(results: dict[str, Any]) -> list[str]:
    rows = []
    for t in results.get("targets", []):
        value = _ratio(t["value"]) if t["unit"] == "x" else f"{_num(t['value'])} µs"
        if t["unit"] == "x":
            extra = f"excl. embedder {_ratio(t.get('excl_embed'))}"
        else:
            tools = ", ".join(f"{k} {_num(v)}" for k, v in (t.get("tool_steps") or {}).items())
            extra = f"with embedder {_num(t.get('with_embed'))} µs" + (
                f"; tool steps alone (median µs, excl. embedder): {tools}" if tools else ""
            )
        rows.append([t["target"], value, extra, "**met**" if t["met"] else "**missed**"])
    if not rows:
        return []
    return [
        "## Targets",
        "",
        "Issue 7's targets (the API ratio tightened to 1.3x by issue 13), reported, never asserted. The API ratio is "
        "the whole tool call (parsing the action, validating, embedding the text, the store's exact re-scoring of "
        "hnswlib's k + 16 candidates, rendering the tool message) over the raw hnswlib call given the same "
        "embedder output, precomputed; *excl. embedder* subtracts the time measured inside the embedder. The env-step median runs over every step of the "
        "episodes, about half of which are cheap answers, so the memory-tool steps are listed beside it.",
        "",
        *_table(["target", "measured", "also", "status"], rows),
    ]


_OP_HEADER = [
    "op",
    "API median µs",
    "API p99 µs",
    "API ops/s",
    "API excl. embedder µs",
    "raw µs",
    "exact numpy µs",
    "embedder alone µs",
    "API / raw",
    "API excl. embedder / raw",
    "API / exact",
]


def _ops_lines(name: str, res: dict[str, Any]) -> list[str]:
    lines = [
        f"### {name} ({res['embedder_name']}, {res['dim']}-d): "
        f"{res['config']['calls']} timed calls per op after {res['config']['burn_in']} burn-in",
        "",
    ]
    for n, r in res["by_size"].items():
        rows = []
        for op, row in r["ops"].items():
            rows.append(
                [
                    op,
                    _num(row["api"]["median_us"]),
                    _num(row["api"]["p99_us"]),
                    _num(row["api"]["ops_per_s"]),
                    _num(_get(row, "api_excl_embed", "median_us")),
                    _num(_get(row, "raw", "median_us")),
                    _num(_get(row, "exact", "median_us")),
                    _num(_get(row, "embed", "median_us")),
                    _ratio(row.get("ratio_api_raw")),
                    _ratio(row.get("ratio_api_excl_embed_raw")),
                    _ratio(row.get("ratio_api_exact")),
                ]
            )
        errors = sum(row.get("errors", 0) for row in r["ops"].values())
        lines += [
            f"**{name}, {int(n):,} items** (errors: {errors}, index rebuilds while timing: "
            f"{r.get('rebuilds_during_timing', 0)})",
            "",
        ]
        lines += _table(_OP_HEADER, rows)
    return lines


def _recall_lines(results: dict[str, Any]) -> list[str]:
    rows = []
    for name, res in (results.get("memory_ops") or {}).items():
        for n, r in res["by_size"].items():
            rec = r["recall"]
            ks = list(rec["store"])
            rows.append(
                [
                    name,
                    f"{int(n):,}",
                    str(rec["queries"]),
                    " / ".join(_num(rec["store"][k], 4) for k in ks),
                    " / ".join(_num(rec["raw"][k], 4) for k in ks),
                    ", ".join(f"{ef}: {_num(v, 4)}" for ef, v in rec["raw_by_ef"].items()),
                    str(rec["exact_fallbacks"]),
                ]
            )
    if not rows:
        return []
    first = next(iter(results["memory_ops"].values()))["by_size"]
    k_list = "/".join(next(iter(first.values()))["recall"]["store"])
    return [
        "## Recall against exact search",
        "",
        "HotpotQA questions as queries; recall@k counts returned items whose exact score reaches the exact k-th "
        "best (ties count). The raw index is a copy of the store's own graph at the store's ef; the ef sweep is at "
        "the largest k.",
        "",
        *_table(
            [
                "embedder",
                "items",
                "queries",
                f"store recall@{k_list}",
                f"raw recall@{k_list}",
                "raw by ef",
                "exact fallbacks",
            ],
            rows,
        ),
    ]


def _batched_lines(results: dict[str, Any]) -> list[str]:
    rows = []
    for name, res in (results.get("memory_ops") or {}).items():
        for n, r in res["by_size"].items():
            for kind, b in r["batched"].items():
                rows.append(
                    [
                        name,
                        f"{int(n):,}",
                        f"{kind} ×{b['batch']}",
                        _num(b["store_batch"]["median_us"]),
                        _num(b["store_loop"]["median_us"]),
                        _ratio(b["store_loop"]["median_us"] / b["store_batch"]["median_us"]),
                        _num(b["raw_batch"]["median_us"]),
                        _num(b["raw_loop"]["median_us"]),
                        _num(b["embed_batch"]["median_us"]),
                        _num(b["embed_loop"]["median_us"]),
                    ]
                )
    if not rows:
        return []
    return [
        "## Batched store calls against one at a time",
        "",
        "Median µs **per item**: `add_many` / `search_many` (top 5) against a loop of `add` / `search`, and the same "
        "for raw hnswlib and for the embedder alone.",
        "",
        *_table(
            [
                "embedder",
                "items",
                "call",
                "store batched",
                "store one by one",
                "speed-up",
                "raw batched",
                "raw one by one",
                "embedder batched",
                "embedder one by one",
            ],
            rows,
        ),
    ]


def _env_lines(results: dict[str, Any]) -> list[str]:
    single = _get(results, "env_steps", "single")
    lines: list[str] = []
    if single:
        rows = []
        for c in single["cells"]:
            rows.append(
                [
                    f"{c['size']:,}",
                    c["context"],
                    _num(c["context_tokens_mean"], 4),
                    str(c["steps"]),
                    _num(c["step"]["median_us"]),
                    _num(c["step"]["p99_us"]),
                    _num(c["step_excl_embed"]["median_us"]),
                    _num(c["embed"]["median_us"]),
                    _num(c["steps_per_s"]),
                    _num(c["last_step"]["median_us"]),
                    _num(c["reset"]["median_us"]),
                    _num(c["policy"]["median_us"]),
                ]
            )
        lines += [
            "## Environment cost per step",
            "",
            f"`{single['env_id']}` driven by the scripted oracle (all six tools) through whole episodes; the store "
            "pre-filled with N corpus memories (restored from a snapshot right after `reset`, untimed). Only "
            "`env.step` is timed; the last step of each episode (it computes the episode summary) and `reset` (which "
            "also frees the previous episode's store) are reported apart, and so is the policy's own time.",
            "",
            *_table(
                [
                    "store items",
                    "context",
                    "mean context tokens",
                    "steps",
                    "step median µs",
                    "step p99 µs",
                    "excl. embedder µs",
                    "embedder µs",
                    "steps/s",
                    "last step µs",
                    "reset µs",
                    "policy µs",
                ],
                rows,
            ),
        ]
        kinds = sorted({k for c in single["cells"] for k in c["by_kind"]})
        krows = [
            [f"{c['size']:,}", c["context"]] + [_num(_get(c, "by_kind", k, "median_excl_embed_us")) for k in kinds]
            for c in single["cells"]
        ]
        lines += [
            "Median step µs excluding the embedder, by what the action did:",
            "",
            *_table(["store items", "context", *kinds], krows),
        ]
    vec = _get(results, "env_steps", "vec")
    if vec:
        rows = [
            [
                v["variant"],
                str(v["num_envs"]),
                str(v["transitions"]),
                str(v["episodes"]),
                _num(v["steps_per_s"]),
                _ratio(v["speedup_vs_single"]),
                _num(v["us_per_vector_step"]),
            ]
            for v in vec["variants"]
        ]
        lines += [
            "## gym.make_vec",
            "",
            f"`{vec['env_id']}` driven by the RAG baseline policy (no privileged access, so it can drive envs in "
            "other processes), empty stores at each reset. Env transitions per second of `step` time (resets, "
            "which the vector envs do inside `step`, count in the time, not as transitions).",
            "",
            *_table(
                ["variant", "envs", "transitions", "episodes", "steps/s", "vs one env", "µs per vector step"], rows
            ),
        ]
    return lines


def _growth_lines(results: dict[str, Any]) -> list[str]:
    g = results.get("growth") or {}
    lines: list[str] = []
    for name, res in g.items():
        if name == "env_step":
            continue
        sizes = res["sizes"]
        rows = []
        for op, row in res["ops"].items():
            rows.append(
                [op]
                + [_num(v) for v in row.get("api_us", [None] * len(sizes))]
                + [_num(row.get("api_slope"), 2), _num(row.get("raw_slope"), 2)]
            )
        if not lines:
            lines += [
                "## Growth with the store size",
                "",
                "Median API latency (µs) by store size and the log-log slope from 1k items up (0: flat, 1: linear "
                "in N), for the API and for raw hnswlib. `growth.png` plots both, and the footprint per item.",
                "",
            ]
        lines += [f"**{name}**", ""]
        lines += _table(["op", *[f"{n:,}" for n in sizes], "API slope", "raw slope"], rows)
    env = g.get("env_step") or {}
    if env:
        sizes = sorted({s for v in env.values() for s in v["sizes"]})
        rows = [
            [ctx]
            + [_num(dict(zip(v["sizes"], v["step_excl_embed_us"])).get(s)) for s in sizes]
            + [_num(v["slope_from_1k"], 2)]
            for ctx, v in env.items()
        ]
        lines += ["**env step, median µs excluding the embedder**", ""]
        lines += _table(["context", *[f"{s:,}" for s in sizes], "slope from 1k"], rows)
    return lines


def _footprint_lines(results: dict[str, Any]) -> list[str]:
    rows = []
    for name, res in (results.get("memory_ops") or {}).items():
        for n, r in res["by_size"].items():
            f = r["footprint"]
            rows.append(
                [
                    name,
                    f"{int(n):,}",
                    f"{f['capacity']:,}",
                    _num(f["store_bytes_per_item"], 4),
                    _num(f["raw_index_bytes_per_item"], 4),
                    _ratio(f["ratio_store_raw"]),
                    _num(f["vector_matrix_bytes_per_item"], 4),
                    _num(f["items_and_maps_bytes_per_item"], 4),
                    _num(f["index_file_bytes_per_item"], 4),
                    _num(f.get("snapshot_bytes_per_item"), 4),
                    _num(f["build_us_per_item"]),
                ]
            )
    if not rows:
        return []
    return [
        "## Memory footprint per item",
        "",
        "Bytes per live item (`benchmarks/footprint.py`): the store (Python side traced with tracemalloc, plus its "
        "hnswlib graph) against a bare hnswlib index over the same vectors (glibc `mallinfo2` bytes in use). "
        "hnswlib allocates 65,536 mutexes per index (~2.6 MB), which dominates below ~10k items. Capacity grows "
        "geometrically, so the figures include the slack. The build ran under tracemalloc.",
        "",
        *_table(
            [
                "embedder",
                "items",
                "capacity",
                "store B/item",
                "raw hnswlib B/item",
                "store / raw",
                "vector matrix B/item",
                "items + maps B/item",
                "index file B/item",
                "snapshot B/item",
                "build µs/item",
            ],
            rows,
        ),
    ]


def _trainer_lines(results: dict[str, Any]) -> list[str]:
    tr = results.get("trainer")
    if not tr:
        return []
    rows = []
    for m in tr["models"]:
        b = m.get("baselines", {})
        rows.append(
            [
                m["model"],
                f"{m['updates']} ({m['steady_updates']} steady)",
                str(m["envs"]),
                _num(m["rollout_tokens_per_s"]),
                _num(b.get("policy_generate_tokens_per_s")),
                _num(b.get("hf_generate_tokens_per_s")),
                _num(m["learn_tokens_per_s"]),
                _num(b.get("forward_backward_tokens_per_s")),
                _num(m["wall_s"]),
            ]
        )
    return [
        "## Trainer throughput (CPU)",
        "",
        f"`agemem_gym.trainers.grpo.main` with the `tiny` / `demo` presets (torch threads: {tr['torch_threads']}); "
        "rollout tokens/s = generated tokens over the rollout's wall time (env steps and chat templating included); "
        "learning tokens/s = prompt + response tokens through forward and backward over the update's wall time "
        "(reference log-probs included). Baselines on batches of the same shape, right after: the trainer's "
        "sampler alone, transformers' `generate`, a plain causal-LM forward + backward.",
        "",
        *_table(
            [
                "model",
                "updates",
                "envs",
                "rollout tok/s",
                "policy.generate tok/s",
                "HF generate tok/s",
                "learning tok/s",
                "forward+backward tok/s",
                "wall s",
            ],
            rows,
        ),
    ]


def _tree_lines(nodes: Sequence[dict[str, Any]], depth: int = 0, max_depth: int = 4) -> list[str]:
    """Nested bullets of a profile tree; a node with a single callee is folded into one line (a → b → c)."""
    out = []
    for node in nodes:
        chain = [node]
        while len(chain[-1].get("callees") or []) == 1:
            chain.append(chain[-1]["callees"][0])
        label = " → ".join(f"`{n['function']}` {n['share'] * 100:.0f}%" for n in chain)
        out.append(f"{'  ' * depth}- {label} ({node['calls']} calls)")
        if depth + 1 < max_depth:
            out += _tree_lines(chain[-1].get("callees") or [], depth + 1, max_depth)
    return out


# Where a profiled call's time goes, by disjoint subtrees: (category, test on a tree node's function label).
_CATEGORIES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("hnswlib (C++)", lambda f: "hnswlib" in f),
    ("embedder", lambda f: f.startswith("benchmarks/common.py:") and f.endswith("(__call__)")),
    ("parse_action", lambda f: f.endswith("(parse_action)")),
    ("render_results", lambda f: f.endswith("(render_results)")),
    ("info dict", lambda f: f.startswith("agemem_gym/env.py:") and f.endswith("(_info)")),
    ("context render", lambda f: f.startswith("agemem_gym/context.py:") and f.endswith("(render)")),
    ("reward potential", lambda f: f.endswith("(potential)")),
)


def breakdown(tree: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Shares of a profile tree's root time by category (the first matching node on each path counts, with all
    below it); ``other Python`` is the rest: validation, dispatch, bookkeeping, numpy glue."""
    out = dict.fromkeys((c for c, _ in _CATEGORIES), 0.0)

    def walk(nodes: Sequence[dict[str, Any]]) -> None:
        for node in nodes:
            for category, match in _CATEGORIES:
                if match(node["function"]):
                    out[category] += node["share"]
                    break
            else:
                walk(node.get("callees") or [])

    walk(tree)
    shares = {k: v for k, v in out.items() if v > 0}
    shares["other Python"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def _profile_lines(results: dict[str, Any]) -> list[str]:
    profiles: list[tuple[str, dict[str, Any]]] = []
    for name, res in (results.get("memory_ops") or {}).items():
        for n, r in res["by_size"].items():
            for op, p in (r.get("profile") or {}).items():
                profiles.append((f"API {op}, {name}, {int(n):,} items", p))
    envp = _get(results, "env_steps", "single", "profile")
    if envp:
        profiles.append((f"env step, {envp['size']:,} items, {envp['context']} context", envp))
    if not profiles:
        return []
    lines = [
        "## Where the time goes (cProfile)",
        "",
        "Share of the profiled call's time per callee (the profiler inflates Python-heavy code more than C "
        "calls, so compare with the medians above), then the functions with the most own time.",
        "",
    ]
    for title, p in profiles:
        split = " · ".join(f"{k} {v * 100:.0f}%" for k, v in breakdown(p["tree"]).items())
        lines += [
            f"**{title}**: {p['root_calls']} calls of `{p['root']}`, {_num(1e6 * p['total_s_per_call'])} µs each "
            f"under the profiler. Split: {split}.",
            "",
            *_tree_lines(p["tree"]),
            "",
        ]
        lines += _table(
            ["function (own time)", "calls", "share"],
            [[f"`{t['function']}`", str(t["calls"]), f"{t['share'] * 100:.1f}%"] for t in p["top"][:8]],
        )
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    """The human-readable report of a results dict (what :func:`main` writes as ``report.md``)."""
    lines = [
        "# AgeMem-Gym benchmarks",
        "",
        "Written by `python -m benchmarks.report` (`make bench`). Every figure stands beside its baseline, measured "
        "in the same run with the series interleaved call by call, so the ratios hold on a noisy machine even when "
        "absolute times do not. Nothing asserts a timing.",
        "",
        *_machine_lines(results),
        *_target_lines(results),
    ]
    mem = results.get("memory_ops") or {}
    if mem:
        lines += [
            "## Memory operations through the tool API",
            "",
            "API = one agent turn through `parse_action` → `execute` (validation, dispatch to the store or the "
            "context) → `render_results`. Raw = the hnswlib call on a copy of the store's own graph with the same "
            "vectors and ef (`knn_query`, `add_items`, `add_items` on an existing label, `mark_deleted`); for the "
            "context tools, the library call without the API (`Context.summarize`, the summariser, the similarity "
            "on precomputed vectors). The API's embedder is the library default (LRU cache) and every timed text is "
            "new to it; *API excl. embedder* subtracts the time measured inside the embedder during each call. "
            "Stores at small N use replicas so that ADD/DELETE never move a store by more than 20% of N. numpy's "
            "BLAS runs on one thread here (hnswlib answers a query on one thread; a multi-threaded exact-search "
            "baseline left spinning threads that slowed the calls interleaved with it).",
            "",
        ]
        for name, res in mem.items():
            lines += _ops_lines(name, res)
        for name, skipped in (results.get("skipped_sizes") or {}).items():
            lines += [f"*{name}: sizes {skipped} skipped ({results.get('skip_reason', '')}).*", ""]
        lines += _recall_lines(results)
        lines += _batched_lines(results)
    lines += _env_lines(results)
    lines += _growth_lines(results)
    lines += _footprint_lines(results)
    lines += _trainer_lines(results)
    lines += _profile_lines(results)
    if results.get("plots"):
        lines += ["## Plots", "", *[f"![{Path(p).stem}]({p})" for p in results["plots"]], ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------


def main(args: Args) -> dict[str, Any]:
    """Run the chosen sections, write ``results.json``, ``report.md`` and the plots; return the results."""
    log = Log(quiet=args.quiet)
    if args.render_only is not None:
        return _write(json.loads(args.render_only.read_text()), args, log, results_json=False)
    started = time.perf_counter()
    plan = _plan(args)
    results: dict[str, Any] = {"machine": machine_info(), "args": jsonable(asdict(args))}
    sizes_needed = [*plan.sizes, *plan.env.sizes] if "env" in args.sections else list(plan.sizes)
    corpus = load_corpus(max(sizes_needed, default=0), data_path=args.data_path)
    results["corpus"] = {
        "source": corpus.source,
        "note": corpus.note,
        "digest": corpus.digest,
        "items": len(corpus.items),
        "fresh": len(corpus.fresh),
        "queries": len(corpus.queries),
    }
    log(f"corpus: {corpus.note}")
    hash_vectors = None
    with blas_threads(1) as blas_before:  # see benchmarks.common.blas_threads: numpy's BLAS on one thread
        results["numpy_blas_threads"] = {"default": blas_before, "used": 1 if blas_before is not None else None}
        hash_vectors = _measure_memory_and_env(args, plan, corpus, results, log)
    if "trainer" in args.sections and plan.trainer.models:
        results["trainer"] = trainer_perf.run(plan.trainer, log)
    results["targets"] = targets(results)
    results["growth"] = growth(results)
    results["load_average_end"] = load_average()
    results["pressure_end"] = pressure()
    results["seconds"] = time.perf_counter() - started
    del hash_vectors
    return _write(jsonable(results), args, log)


def _measure_memory_and_env(
    args: Args, plan: _Plan, corpus: Corpus, results: dict[str, Any], log: Log
) -> np.ndarray | None:
    """The memory-operation and env sections into ``results``; returns the hashing embedder's corpus vectors."""
    hash_vectors = None
    if "memory" in args.sections:
        results["memory_ops"] = {}
        results["skipped_sizes"] = {}
        for name in args.embedders:
            sizes = list(plan.sizes)
            if name == "minilm":
                from agemem_gym.memory.embedders import minilm_available

                if not minilm_available():
                    results["skipped_sizes"][name] = sizes
                    results["skip_reason"] = "MiniLM is not installed"
                    continue
                sizes = [n for n in sizes if n <= args.minilm_max_size]
                skipped = [n for n in plan.sizes if n > args.minilm_max_size]
                if skipped:
                    results["skipped_sizes"][name] = skipped
                    results["skip_reason"] = (
                        f"--minilm-max-size {args.minilm_max_size}: embedding that many texts with MiniLM on this "
                        "CPU takes about an hour; pass a larger value to include them (vectors are cached)"
                    )
            if not sizes:
                continue
            cache = args.cache_dir if name == "minilm" else None
            log(f"memory ops: embedding the corpus with {name}")
            emb = memory_ops.embed_corpus(name, corpus, max(sizes), cache_dir=cache, log=log)
            if name == "hash":
                hash_vectors = emb.items
            results["memory_ops"][name] = memory_ops.run(
                emb, corpus, sizes, plan.ops[name], log, profile_at=plan.profile_at if name == "hash" else None
            )
            del emb
    env_sections = [part for part, section in (("single", "env"), ("vec", "vec")) if section in args.sections]
    if env_sections:
        need = max(plan.env.sizes, default=0)
        if hash_vectors is None or len(hash_vectors) < need:
            hash_vectors = embed_cached("hash", corpus.items[:need], cache_dir=None, log=log)
        results["env_steps"] = env_steps.run(
            corpus, hash_vectors, plan.env, log, data_path=args.data_path, sections=env_sections
        )
    return hash_vectors


def _write(results: dict[str, Any], args: Args, log: Log, *, results_json: bool = True) -> dict[str, Any]:
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.plots:
        from benchmarks.plots import write_plots

        results["plots"] = [p.name for p in write_plots(results, args.out_dir)]
    if results_json:
        (args.out_dir / "results.json").write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    (args.out_dir / "report.md").write_text(render_markdown(results))
    log(f"wrote the report into {args.out_dir}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
