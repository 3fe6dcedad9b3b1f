"""Run the benchmarks and write ``benchmarks/results/``: ``results.jsonl``, ``report.md`` and PNG plots.

Run (from the repository root; ``make bench`` runs the first)::

    .venv/bin/python -m benchmarks.report                        # everything (about half an hour on 2 cores)
    .venv/bin/python -m benchmarks.report --quick                # tiny sizes, seconds: checks that it all runs
    .venv/bin/python -m benchmarks.report --embedders hash --sections memory env
    .venv/bin/python -m benchmarks.report --minilm-max-size 100000   # MiniLM at 100k too (embeds ~100k texts once)
    .venv/bin/python -m benchmarks.report --render-only benchmarks/results/results.jsonl   # re-render only

Each section's module measures and returns flat records (:mod:`benchmarks.records`), one per configuration;
:mod:`benchmarks.derived` adds the targets and growth slopes, :mod:`benchmarks.layout` declares the report's
tables over the records and :mod:`benchmarks.plots` draws from them. Every figure is measured beside its baseline
in the same run, interleaved call by call (see :mod:`benchmarks.timing`), so ratios hold on a noisy machine even
when absolute times do not; the load average and pressure-stall figures at the start and the end are recorded
with the results. Nothing here asserts a timing.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tyro

from benchmarks import derived, env_steps, memory_ops, trainer_perf
from benchmarks.corpus import CACHE_DIR, HOTPOTQA_SAMPLE, Corpus, embed_cached, load_corpus
from benchmarks.layout import SECTIONS
from benchmarks.machine import load_average, machine_info, pressure
from benchmarks.records import RESULTS_DIR, Record, Results, jsonable, read_results, write_results
from benchmarks.render import render
from benchmarks.timing import Log, blas_threads

__all__ = ["Args", "main", "render_markdown"]

Section = Literal["memory", "env", "vec", "trainer"]
EmbedderName = Literal["hash", "minilm"]


@dataclass
class Args:
    """Run the benchmarks and write results.jsonl, report.md and PNG plots."""

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
    """where results.jsonl, report.md and the PNGs go"""
    cache_dir: Path | None = CACHE_DIR
    """MiniLM vector cache (None: no cache)"""
    data_path: Path | None = HOTPOTQA_SAMPLE
    """the HotpotQA sample (texts and the env's tasks); absent, the synthetic suite stands in"""
    plots: bool = True
    """write the PNG plots"""
    render_only: Path | None = None
    """measure nothing: render report.md and the plots into out_dir from this results.jsonl"""
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
# Markdown
# ---------------------------------------------------------------------------------------------------------------


def _machine_lines(meta: dict[str, Any]) -> list[str]:
    m = meta.get("machine", {})
    versions = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items() if v)
    commit = (m.get("commit") or "unknown")[:10]
    dirty = f" (+{m['dirty_files']} uncommitted files)" if m.get("dirty_files") else ""
    start, end = m.get("pressure_start") or {}, meta.get("pressure_end") or {}
    psi = ", ".join(
        f"{k.split('_')[0]} {start.get(k, float('nan')):.0f}% → {end.get(k, float('nan')):.0f}%"
        for k in sorted(set(start) | set(end))
    )
    lines = [
        f"- **When / what**: {m.get('date')}, commit `{commit}`{dirty}, {meta.get('seconds', 0) / 60:.1f} min"
        + (" (**quick mode: the figures mean nothing**)" if meta.get("args", {}).get("quick") else ""),
        f"- **Machine**: {m.get('cpu_model')}, {m.get('cpu_count')} CPUs ({m.get('affinity_cores')} usable), "
        f"{m.get('memory_gib')} GiB, Python {m.get('python')}, torch threads {m.get('torch_threads_default')}",
        f"- **Load average** (1/5/15 min): {m.get('load_average_start')} at the start, "
        f"{meta.get('load_average_end')} at the end"
        + (f"; time some task waited for a resource (pressure stall, last 60 s): {psi}" if psi else ""),
        f"- **Packages**: {versions}",
        f"- **Corpus**: {(meta.get('corpus') or {}).get('note')}",
    ]
    for name, skipped in (meta.get("skipped_sizes") or {}).items():
        lines.append(f"- **Skipped**: {name} at sizes {skipped} ({meta.get('skip_reason', '')})")
    return [*lines, ""]


def render_markdown(results: Results, plots: list[str] | None = None) -> str:
    """The human-readable report of a run (what :func:`main` writes as ``report.md``): the machine, then every
    section of :data:`benchmarks.layout.SECTIONS` that has records, then the plots."""
    records = [*results.records, *derived.derive(results.records)]
    lines = [
        "# AgeMem-Gym benchmarks",
        "",
        "Written by `python -m benchmarks.report` (`make bench`) from `results.jsonl` (one record per "
        "configuration). Every figure stands beside its baseline, measured in the same run with the series "
        "interleaved call by call, so the ratios hold on a noisy machine even when absolute times do not. Nothing "
        "asserts a timing.",
        "",
        *_machine_lines(dict(results.meta)),
        *render(records, SECTIONS),
    ]
    if plots:
        lines += ["## Plots", "", *[f"![{Path(p).stem}]({p})" for p in plots], ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------


def main(args: Args) -> Results:
    """Run the chosen sections, write ``results.jsonl``, ``report.md`` and the plots; return the run."""
    log = Log(quiet=args.quiet)
    if args.render_only is not None:
        return _write(read_results(args.render_only), args, log, results_file=False)
    started = time.perf_counter()
    plan = _plan(args)
    meta: dict[str, Any] = {"machine": machine_info(), "args": jsonable(asdict(args))}
    sizes_needed = [*plan.sizes, *plan.env.sizes] if "env" in args.sections else list(plan.sizes)
    corpus = load_corpus(max(sizes_needed, default=0), data_path=args.data_path)
    meta["corpus"] = {
        "source": corpus.source,
        "note": corpus.note,
        "digest": corpus.digest,
        "items": len(corpus.items),
        "fresh": len(corpus.fresh),
        "queries": len(corpus.queries),
    }
    log(f"corpus: {corpus.note}")
    records: list[Record] = []
    with blas_threads(1) as blas_before:  # see benchmarks.timing.blas_threads: numpy's BLAS on one thread
        meta["numpy_blas_threads"] = {"default": blas_before, "used": 1 if blas_before is not None else None}
        _measure_memory_and_env(args, plan, corpus, meta, records, log)
    if "trainer" in args.sections and plan.trainer.models:
        records += trainer_perf.run(plan.trainer, log)
    meta["load_average_end"] = load_average()
    meta["pressure_end"] = pressure()
    meta["seconds"] = time.perf_counter() - started
    return _write(Results(meta, tuple(records)), args, log)


def _measure_memory_and_env(
    args: Args, plan: _Plan, corpus: Corpus, meta: dict[str, Any], records: list[Record], log: Log
) -> None:
    """The memory-operation and env sections' records into ``records`` (skipped sizes into ``meta``)."""
    hash_vectors: np.ndarray | None = None
    if "memory" in args.sections:
        meta["skipped_sizes"] = {}
        for name in args.embedders:
            sizes = list(plan.sizes)
            if name == "minilm":
                from agemem_gym.memory.embedders import minilm_available

                if not minilm_available():
                    meta["skipped_sizes"][name] = sizes
                    meta["skip_reason"] = "MiniLM is not installed"
                    continue
                sizes = [n for n in sizes if n <= args.minilm_max_size]
                skipped = [n for n in plan.sizes if n > args.minilm_max_size]
                if skipped:
                    meta["skipped_sizes"][name] = skipped
                    meta["skip_reason"] = (
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
            records += memory_ops.run(
                emb, corpus, sizes, plan.ops[name], log, profile_at=plan.profile_at if name == "hash" else None
            )
            del emb
    env_sections = [part for part, section in (("single", "env"), ("vec", "vec")) if section in args.sections]
    if env_sections:
        need = max(plan.env.sizes, default=0)
        if hash_vectors is None or len(hash_vectors) < need:
            hash_vectors = embed_cached("hash", corpus.items[:need], cache_dir=None, log=log)
        records += env_steps.run(corpus, hash_vectors, plan.env, log, data_path=args.data_path, sections=env_sections)


def _write(results: Results, args: Args, log: Log, *, results_file: bool = True) -> Results:
    args.out_dir.mkdir(parents=True, exist_ok=True)
    plots: list[str] = []
    if args.plots:
        from benchmarks.plots import write_plots

        plots = [p.name for p in write_plots(results.records, args.out_dir)]
    elif not results_file:  # re-rendering without plots: keep the ones the run wrote
        plots = list(results.meta.get("plots") or [])
    if results_file:
        results = Results({**results.meta, "plots": plots}, results.records)
        write_results(args.out_dir / "results.jsonl", results.meta, results.records)
    (args.out_dir / "report.md").write_text(render_markdown(results, plots))
    log(f"wrote the report into {args.out_dir}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
