"""Environment cost per step, excluding the policy: one env at several store and context sizes, and ``make_vec``.

**One env.** A scripted agent (:class:`~agemem_gym.evaluation.agents.OraclePolicy`, which uses all six tools) plays whole
episodes of ``AgeMem-HotpotQA-v0`` (the synthetic suite when the HotpotQA sample is absent) with the store
pre-filled with N corpus memories and under several context settings. Only ``env.step`` is timed (the policy's
``act`` and the pre-fill are not); the env's embedder is wrapped so that each step's seconds inside it are
recorded too, which gives the step cost without the embedder. Steps are grouped by what the action did
(``Add_memory``, ``Filter_context``, ``answer``, ...), and the final step (which computes the episode summary) is
reported apart. The cells (size x context) are interleaved episode by episode.

Pre-filling goes through :meth:`~agemem_gym.memory.MemoryStore.restore` of a snapshot built once per size, right
after ``reset`` (``reset(options={"memories": ...})`` would embed and insert N items at every reset, which
at 100k items takes about a minute).

**Vectorised.** ``gym.make_vec`` in ``sync`` and ``async`` mode (``shared_memory=False``, which text observations
need) with 2 and 4 envs against one env, all driven by :class:`~agemem_gym.evaluation.agents.RagPolicy` (it needs no
privileged access to the env, so it can drive envs in other processes), with an empty store at the start of each
episode. Only the ``step`` calls are timed; resets (the vector envs reset inside ``step``) count in the time but
not as steps, for one env as for the vector envs. Variants run in interleaved rounds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.evaluation.agents import OraclePolicy, RagPolicy
from agemem_gym.memory import MemoryStore, StoreConfig
from agemem_gym.protocol import parse_action
from benchmarks import profiles
from benchmarks.corpus import HOTPOTQA_SAMPLE, BenchEmbedder, Corpus, make_inner_embedder
from benchmarks.records import Record
from benchmarks.timing import Log, latency

__all__ = [
    "CONTEXTS",
    "EnvConfig",
    "Stepper",
    "VecDriver",
    "env_spec",
    "make_driver",
    "make_env",
    "prefill_snapshot",
    "run",
    "run_single",
    "run_vec",
]

# Context settings, shortest first (the mean context tokens per step are reported with each).
CONTEXTS: dict[str, dict[str, Any]] = {
    "compact": {"prompt_style": "compact"},  # the short system prompt
    "paper": {},  # the defaults: paper prompt with full tool schemas, one paragraph per user turn
    # every distractor in stage 1 (never filtered there), five paragraphs per user turn, twenty in stage 2
    "long": {"episode": {"stage1_distractors": 8, "paragraphs_per_turn": 5, "stage2_paragraphs": 20}},
}


@dataclass(frozen=True)
class EnvConfig:
    """What :func:`run` measures."""

    sizes: tuple[int, ...] = (0, 1000, 10_000, 100_000)
    contexts: tuple[str, ...] = ("compact", "paper", "long")
    episodes: int = 10
    vec_envs: tuple[int, ...] = (2, 4)
    vec_steps: int = 400
    vec_rounds: int = 4
    profile_size: int | None = 10_000
    profile_context: str = "paper"
    profile_episodes: int = 4
    build_threads: int = 2


def env_spec(data_path: Path | None = HOTPOTQA_SAMPLE) -> tuple[str, dict[str, Any]]:
    """The env id and kwargs: HotpotQA on the shared sample when it is there, else the synthetic suite."""
    if data_path is not None and Path(data_path).is_file():
        return "AgeMem-HotpotQA-v0", {"data_path": str(data_path)}
    return "AgeMem-Synthetic-v0", {}


def _kind(action: str) -> str:
    parsed = parse_action(action)
    if parsed.kind == "answer":
        return "answer"
    if parsed.kind == "invalid":
        return "invalid"
    return "+".join(sorted({c.name for c in parsed.tool_calls}))


@dataclass
class _Cell:
    size: int
    context: str
    env: Any
    embedder: BenchEmbedder
    snapshot: dict[str, Any] | None
    steps: list[float]
    embed: list[float]
    kinds: list[str]
    tokens: list[int]
    last: list[float]
    resets: list[float]
    policy: list[float]


def prefill_snapshot(
    size: int, embedder: BenchEmbedder, corpus: Corpus, vectors: np.ndarray, threads: int = 2
) -> dict[str, Any]:
    """A snapshot of a store holding ``corpus.items[:size]`` (``vectors`` are their rows: nothing is embedded)."""
    store = MemoryStore(embedder, config=StoreConfig(num_threads=threads))
    with embedder.preloaded(corpus.items[:size], vectors[:size]):
        store.add_many(corpus.items[:size])
    return store.snapshot()


def make_env(context: str, embedder: Any, *, data_path: Path | None = HOTPOTQA_SAMPLE) -> Any:
    """``gym.make`` of the benchmark's env with one of :data:`CONTEXTS` and the given embedder."""
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; expected one of {sorted(CONTEXTS)}")
    env_id, kwargs = env_spec(data_path)
    return gym.make(env_id, embedder=embedder, **kwargs, **CONTEXTS[context])


class Stepper:
    """One env stepped one oracle action at a time, its store pre-filled from ``snapshot`` at every reset.

    :meth:`next_action` (untimed: resets when the episode ended, then asks the policy) and :meth:`step` (the
    timed part) alternate, which is what pytest-benchmark's ``pedantic(setup=...)`` needs.
    """

    def __init__(self, env: Any, snapshot: dict[str, Any] | None) -> None:
        self.env, self.snapshot = env, snapshot
        self.task_ids = list(env.unwrapped.suite.task_ids)
        self.done, self.episodes = True, 0
        self.obs: str = ""
        self.info: dict[str, Any] = {}
        self.policy = OraclePolicy(env.unwrapped)

    def next_action(self) -> str:
        if self.done:
            task_id = self.task_ids[self.episodes % len(self.task_ids)]
            self.obs, self.info = self.env.reset(seed=self.episodes, options={"task_id": task_id})
            if self.snapshot is not None:
                self.env.unwrapped.store.restore(self.snapshot)
            self.policy.reset(self.info)
            self.done, self.episodes = False, self.episodes + 1
        return self.policy.act(self.obs, self.info)

    def step(self, action: str) -> None:
        self.obs, _, terminated, truncated, self.info = self.env.step(action)
        self.done = bool(terminated or truncated)


def _episode(cell: _Cell, task_id: Any, seed: int, profiler: Any = None) -> None:
    """One whole episode of the oracle in ``cell``; appends the timings (``profiler``: profile the steps only)."""
    env, emb, clock = cell.env, cell.embedder, time.perf_counter
    start = clock()
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    cell.resets.append(clock() - start)
    if cell.snapshot is not None:
        env.unwrapped.store.restore(cell.snapshot)
    policy = OraclePolicy(env.unwrapped)
    policy.reset(info)
    while True:
        start = clock()
        action = policy.act(obs, info)
        cell.policy.append(clock() - start)
        before = emb.seconds
        if profiler is not None:
            profiler.enable()
        start = clock()
        obs, _, terminated, truncated, info = env.step(action)
        elapsed = clock() - start
        if profiler is not None:
            profiler.disable()
        elif terminated or truncated:
            cell.last.append(elapsed)
        else:
            cell.steps.append(elapsed)
            cell.embed.append(emb.seconds - before)
            cell.kinds.append(_kind(action))
            cell.tokens.append(int(info["context_tokens"]))
        if terminated or truncated:
            return


def _cell_records(cell: _Cell, env_id: str) -> list[Record]:
    """A cell's records: each timed series (``step``, ``step_excl_embed``, ``embed``, ``last_step``, ``reset``,
    ``policy``) over all steps (``action="all"``), the steps by what the action did, and the cell's own figures."""
    steps, embed = cell.steps, cell.embed
    at = {"env_id": env_id, "size": cell.size, "context": cell.context}
    series = {
        "step": steps,
        "step_excl_embed": [t - e for t, e in zip(steps, embed)],
        "embed": embed,
        "last_step": cell.last,
        "reset": cell.resets,
        "policy": cell.policy,
    }
    out = [latency("env_step", v, {**at, "action": "all", "series": k}) for k, v in series.items()]
    by_kind: dict[str, list[tuple[float, float]]] = {}
    for kind, t, e in zip(cell.kinds, steps, embed):
        by_kind.setdefault(kind, []).append((t, e))
    for kind, v in sorted(by_kind.items()):
        out.append(latency("env_step", [t for t, _ in v], {**at, "action": kind, "series": "step"}))
        out.append(latency("env_step", [t - e for t, e in v], {**at, "action": kind, "series": "step_excl_embed"}))
    total = sum(steps) + sum(cell.last) + sum(cell.resets)
    figures = {
        "episodes": (len(cell.last), "episodes"),
        "steps_per_s": (len(steps) / sum(steps) if steps else float("nan"), "steps/s"),
        "steps_per_s_incl_last_and_reset": ((len(steps) + len(cell.last)) / max(total, 1e-12), "steps/s"),
        "context_tokens_mean": (float(np.mean(cell.tokens)) if cell.tokens else float("nan"), "tokens"),
        "context_tokens_max": (int(max(cell.tokens, default=0)), "tokens"),
    }
    out += [Record("env_step", k, v, unit, at, repeats=len(steps)) for k, (v, unit) in figures.items()]
    return out


def run_single(
    corpus: Corpus, vectors: np.ndarray, config: EnvConfig, log: Log, *, data_path: Path | None = HOTPOTQA_SAMPLE
) -> list[Record]:
    """The oracle through whole episodes at each (store size, context) cell; see the module docstring."""
    cells: list[_Cell] = []
    for size in config.sizes:
        if size > len(vectors):
            raise ValueError(f"store size {size} needs {size} embedded corpus texts, got {len(vectors)}")
        snapshot = None
        for context in config.contexts:
            embedder = BenchEmbedder(make_inner_embedder("hash"))
            if size and snapshot is None:
                log(f"env steps: pre-filling a store of {size} items")
                snapshot = prefill_snapshot(size, embedder, corpus, vectors, config.build_threads)
            env = make_env(context, embedder, data_path=data_path)
            cells.append(_Cell(size, context, env, embedder, snapshot, [], [], [], [], [], [], []))
    task_ids = list(cells[0].env.unwrapped.suite.task_ids)[: config.episodes]
    for j, task_id in enumerate(task_ids):
        for cell in cells if j % 2 == 0 else cells[::-1]:
            _episode(cell, task_id, seed=j)
        log(f"env steps: episode {j + 1}/{len(task_ids)} of every cell done")
    env_id = env_spec(data_path)[0]
    out = [r for c in cells for r in _cell_records(c, env_id)]
    target = [c for c in cells if c.size == config.profile_size and c.context == config.profile_context]
    if target and config.profile_episodes > 0:
        import cProfile

        cell = target[0]
        prof = cProfile.Profile()
        for j in range(config.profile_episodes):
            _episode(cell, task_ids[j % len(task_ids)], seed=j, profiler=prof)
        summary = profiles.summarise_profile(prof, root=("agemem_gym/env.py", "step"))
        out += profiles.records(summary, f"env step, {cell.size:,} items, {cell.context} context")
    for cell in cells:
        cell.env.close()
    return out


# ---------------------------------------------------------------------------------------------------------------
# make_vec
# ---------------------------------------------------------------------------------------------------------------


def _unbatch(infos: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Env ``i``'s info from a vector env's batched info dict (only what RagPolicy reads)."""
    out: dict[str, Any] = {}
    for key in ("stage", "turn", "messages"):
        if key in infos and infos.get(f"_{key}", [True] * (i + 1))[i]:
            out[key] = infos[key][i]
    return out


class VecDriver:
    """A vector env (or one env) with one RagPolicy per sub-env: :meth:`actions` (the policies, untimed) and
    :meth:`step` (the env, timed) alternate; transitions and step seconds are counted."""

    def __init__(self, name: str, env: Any, n: int, *, vector: bool, seed: int) -> None:
        self.name, self.env, self.n, self.vector = name, env, n, vector
        self.policies = [RagPolicy() for _ in range(n)]
        obs, infos = env.reset(seed=seed)
        self.obs = list(obs) if vector else [obs]
        self.infos = [_unbatch(infos, i) for i in range(n)] if vector else [infos]
        for p, info in zip(self.policies, self.infos):
            p.reset(info)
        self.done = [False] * n
        self.transitions = 0
        self.episodes = 0
        self.seconds = 0.0
        self.calls = 0

    def actions(self) -> list[str]:
        """Each sub-env's next action (a placeholder for a sub-env that autoresets on this step)."""
        return [
            "<answer>(ignored: this env resets)</answer>" if self.done[i] else p.act(self.obs[i], self.infos[i])
            for i, p in enumerate(self.policies)
        ]

    def step(self, actions: Sequence[str]) -> None:
        """One ``step`` of the vector env (for one env: a step, and a reset when the episode ended)."""
        if self.vector:
            obs, _, term, trunc, infos = self.env.step(tuple(actions))
            ended = np.logical_or(term, trunc)
            self.transitions += sum(1 for d in self.done if not d)
            for i in range(self.n):
                self.obs[i] = obs[i]
                self.infos[i] = _unbatch(infos, i)
                if self.done[i]:  # this step was the autoreset: a new episode starts
                    self.policies[i].reset(self.infos[i])
            self.episodes += int(ended.sum())
            self.done = [bool(x) for x in ended]
        else:
            ob, _, t, tr, info = self.env.step(actions[0])
            if t or tr:
                ob, info = self.env.reset()
                self.policies[0].reset(info)
                self.episodes += 1
            self.transitions += 1
            self.obs[0], self.infos[0] = ob, info
        self.calls += 1

    def run(self, transitions: int) -> None:
        """Step until ``transitions`` more env transitions have happened, timing only :meth:`step`."""
        clock = time.perf_counter
        target = self.transitions + transitions
        while self.transitions < target:
            actions = self.actions()
            start = clock()
            self.step(actions)
            self.seconds += clock() - start

    def records(self, env_id: str, single: float | None) -> list[Record]:
        """Transitions per second of step time (against one env's, ``single``), µs per vector step, episodes."""
        at = {"env_id": env_id, "variant": self.name, "envs": self.n}
        rate = self.transitions / self.seconds if self.seconds else float("nan")
        return [
            Record(
                "make_vec",
                "steps_per_s",
                rate,
                "steps/s",
                at,
                repeats=self.transitions,
                baseline="single" if single else None,
                baseline_value=single,
                ratio=rate / single if single else None,
            ),
            Record(
                "make_vec", "us_per_vector_step", 1e6 * self.seconds / max(self.calls, 1), "us", at, repeats=self.calls
            ),
            Record("make_vec", "episodes", self.episodes, "episodes", at),
        ]


def make_driver(variant: str, *, data_path: Path | None = HOTPOTQA_SAMPLE, seed: int = 0) -> VecDriver:
    """``"single"``, or ``"sync"`` / ``"async"`` + ``"x"`` + the number of envs (e.g. ``"asyncx4"``)."""
    env_id, kwargs = env_spec(data_path)
    if variant == "single":
        return VecDriver(variant, gym.make(env_id, **kwargs), 1, vector=False, seed=seed)
    mode, _, count = variant.partition("x")
    if mode not in ("sync", "async") or not count.isdecimal():
        raise ValueError(f"unknown variant {variant!r}; expected 'single', 'syncxN' or 'asyncxN'")
    vector_kwargs = {"shared_memory": False} if mode == "async" else {}  # async Text observations need it
    env = gym.make_vec(env_id, num_envs=int(count), vectorization_mode=mode, vector_kwargs=vector_kwargs, **kwargs)
    return VecDriver(variant, env, int(count), vector=True, seed=seed)


def run_vec(config: EnvConfig, log: Log, *, data_path: Path | None = HOTPOTQA_SAMPLE) -> list[Record]:
    """Env transitions per second for one env and for ``make_vec`` sync / async with each of ``config.vec_envs``."""
    variants = ["single", *(f"{mode}x{n}" for n in config.vec_envs for mode in ("sync", "async"))]
    drivers = [make_driver(v, data_path=data_path) for v in variants]
    per_round = max(1, config.vec_steps // max(config.vec_rounds, 1))
    for r in range(max(config.vec_rounds, 1)):
        for d in drivers if r % 2 == 0 else drivers[::-1]:
            d.run(per_round)
        log(f"make_vec: round {r + 1}/{config.vec_rounds} done")
    env_id = env_spec(data_path)[0]
    single = drivers[0].transitions / drivers[0].seconds if drivers[0].seconds else None
    out = [r for d in drivers for r in d.records(env_id, single)]
    for d in drivers:
        d.env.close()
    return out


def run(
    corpus: Corpus,
    vectors: np.ndarray,
    config: EnvConfig,
    log: Log,
    *,
    data_path: Path | None = HOTPOTQA_SAMPLE,
    sections: Sequence[str] = ("single", "vec"),
) -> list[Record]:
    """Both parts; ``vectors`` are the hashing embedder's vectors of ``corpus.items`` (for the pre-fill)."""
    out: list[Record] = []
    if "single" in sections:
        out += run_single(corpus, vectors, config, log, data_path=data_path)
    if "vec" in sections:
        out += run_vec(config, log, data_path=data_path)
    return out
