"""Run a policy over N episodes and aggregate the paper's metrics (task score, EM/F1, memory quality, tokens,
tool counts per tool as in the paper's Table 3), one episode at a time (:func:`evaluate`) or many at once for
served models (:func:`evaluate_async`).

>>> import gymnasium as gym, agemem_gym
>>> from agemem_gym.evaluation.agents import NoMemoryPolicy
>>> env = gym.make("AgeMem-Synthetic-v0")
>>> result = evaluate(env, NoMemoryPolicy(), episodes=2, seed=0, progress=False)
>>> list(result.summary)[:4], result.summary["episodes"], result.summary["tool/Add_memory"]
(['R', 'task_score', 'EM', 'F1'], 2.0, 0.0)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agemem_gym.errors import ConfigError
from agemem_gym.evaluation.agents import ConcurrentPolicy, Policy, TokenUsage
from agemem_gym.rewards import exact_match, f1_score
from agemem_gym.tools import TOOL_NAMES

__all__ = ["USAGE_COLUMNS", "EvalResult", "episode_row", "evaluate", "evaluate_async", "summarize_rows"]

USAGE_COLUMNS: tuple[str, ...] = (
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_per_turn",
    "completion_tokens_per_turn",
)
"""Row keys from a served model's ``usage``; None (n/a) for policies that report none, or when a response lacked it."""


def episode_row(
    episode: Mapping[str, Any], *, steps_per_s: float | None = None, usage: TokenUsage | None = None
) -> dict[str, Any]:
    """One flat row of metrics from a final ``info["episode"]`` (and the token usage the policy reported, if any).

    The :data:`USAGE_COLUMNS` are always there: the server's counts, summed over the episode and divided by its
    agent turns, or None where a count is not known (a scripted policy, or a response without ``usage``).
    """
    answer, gold = episode.get("answer"), episode.get("gold_answer", "")
    row: dict[str, Any] = {
        "R": episode["R"],
        "task_score": episode["task_score"],
        "EM": exact_match(answer, gold) if answer is not None else 0.0,
        "F1": f1_score(answer, gold) if answer is not None else 0.0,
        "R_context": episode["R_context"],
        "R_memory": episode["R_memory"],
        "penalty": episode["penalty"],
        "MQ_precision": episode["memory_quality"]["precision"],
        "MQ_recall": episode["memory_quality"]["recall"],
        "MQ_f1": episode["memory_quality"]["f1"],
        "tokens_peak": episode["context_tokens_peak"],
        "tokens_final": episode.get("context_tokens_final", 0),
        "steps": episode.get("steps", 0),
        "truncated": episode.get("truncation_reason") is not None,
        "retrieved_before_answer": bool(episode.get("retrieved_before_answer", False)),
        "errors": sum(episode.get("error_counts", {}).values()),
    }
    for name in TOOL_NAMES:
        row[f"tool/{name}"] = episode["tool_counts"].get(name, 0)
    known = usage is not None and usage.complete
    turns = max(1, int(row["steps"]))
    row["prompt_tokens"] = usage.prompt_tokens if known else None  # type: ignore[union-attr]
    row["completion_tokens"] = usage.completion_tokens if known else None  # type: ignore[union-attr]
    row["prompt_tokens_per_turn"] = usage.prompt_tokens / turns if known else None  # type: ignore[union-attr]
    row["completion_tokens_per_turn"] = usage.completion_tokens / turns if known else None  # type: ignore[union-attr]
    if steps_per_s is not None:
        row["steps_per_s"] = steps_per_s
    return row


def summarize_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean of every numeric column (booleans become rates). A column with a None in any row (a count that is not
    known for every episode) is left out rather than averaged over the episodes that have it."""
    if not rows:
        return {}
    return {k: float(np.mean([float(r[k]) for r in rows])) for k in rows[0] if all(r.get(k) is not None for r in rows)}


@dataclass
class EvalResult:
    """Per-episode rows, their means, and the env-side throughput."""

    policy: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    steps: int = 0

    @property
    def summary(self) -> dict[str, float]:
        """Means over episodes, plus ``steps_per_s`` (env and policy together)."""
        out = summarize_rows(self.rows)
        out["steps_per_s"] = self.steps / self.wall_s if self.wall_s > 0 else 0.0
        out["episodes"] = float(len(self.rows))
        return out


def evaluate(
    env: gym.Env[str, str],
    policy: Policy | Callable[[Any], Policy],
    *,
    episodes: int = 10,
    seed: int = 0,
    task_ids: Iterable[str] | None = None,
    progress: bool = True,
    on_step: Callable[[str, dict[str, Any]], None] | None = None,
) -> EvalResult:
    """Run ``policy`` for ``episodes`` episodes (or once per id in ``task_ids``) and collect metrics.

    Args:
        env: A single AgeMem env (wrapped or not).
        policy: A policy, or a factory called with ``env.unwrapped`` (for privileged scripted oracles).
        episodes: Number of episodes when ``task_ids`` is None; episode i resets with ``seed + i``.
        seed: Base seed.
        task_ids: Run these tasks (in order) instead of seeded draws.
        progress: Show a progress bar.
        on_step: Called with (action, info) after every step (for logging or recording).
    """
    agent: Policy = policy if hasattr(policy, "act") else policy(env.unwrapped)  # type: ignore[operator,assignment]
    ids = list(task_ids) if task_ids is not None else [None] * episodes
    result = EvalResult(policy=getattr(agent, "name", type(agent).__name__))
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids), desc=f"eval {result.policy}", unit="ep", leave=False)
    for i, tid in enumerate(ids):
        obs, info = env.reset(seed=seed + i, options={"task_id": tid} if tid is not None else None)
        agent.reset(info)
        t0, n = time.perf_counter(), 0
        while True:
            action = agent.act(obs, info)
            obs, _, terminated, truncated, info = env.step(action)
            n += 1
            if on_step is not None:
                on_step(action, info)
            if terminated or truncated:
                break
        dt = time.perf_counter() - t0
        result.wall_s += dt
        result.steps += n
        result.task_ids.append(info["task_id"])
        usage = getattr(agent, "usage", None)
        row = episode_row(
            info["episode"],
            steps_per_s=n / dt if dt > 0 else 0.0,
            usage=usage if isinstance(usage, TokenUsage) else None,
        )
        result.rows.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(R=f"{result.summary['R']:.3f}")
    if bar is not None:
        bar.close()
    return result


async def evaluate_async(
    envs: Sequence[gym.Env[str, str]],
    policy: ConcurrentPolicy,
    *,
    episodes: int = 10,
    seed: int = 0,
    task_ids: Iterable[str] | None = None,
    progress: bool = True,
    on_step: Callable[[str, dict[str, Any]], None] | None = None,
) -> EvalResult:
    """:func:`evaluate` with up to ``len(envs)`` episodes in flight at once, for policies whose turns are awaited.

    Episode ``i`` resets with ``seed + i`` (and ``task_ids[i]``) and asks ``policy.episode(i)`` for its agent, on
    whichever env is free: what it sees depends on its position alone, never on which episode finished first, and
    the rows, task ids and tool counts come back in task order. Env steps run on the event loop's thread (they are
    short); only the model's turns overlap.

    Args:
        envs: One env per episode in flight, all made alike (``gym.make`` with the same id and kwargs).
        policy: A :class:`~agemem_gym.evaluation.agents.ConcurrentPolicy` (e.g. :class:`~agemem_gym.evaluation.openai_policy.OpenAIPolicy`).
        episodes, seed, task_ids, progress, on_step: As for :func:`evaluate`.

    Returns:
        The result; ``wall_s`` is the whole run's wall time, so ``summary["steps_per_s"]`` is the throughput of all
        episodes together, while each row's ``steps_per_s`` is its own episode's.

    Raises:
        ConfigError: ``envs`` is empty.
    """
    if not envs:
        raise ConfigError("evaluate_async needs at least one env, got none")
    ids = list(task_ids) if task_ids is not None else [None] * episodes
    rows: list[dict[str, Any] | None] = [None] * len(ids)
    done_ids: list[str] = [""] * len(ids)
    steps = [0] * len(ids)
    result = EvalResult(policy=getattr(policy, "name", type(policy).__name__))
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids), desc=f"eval {result.policy}", unit="ep", leave=False)
    queue = iter(range(len(ids)))  # shared by the workers; next() never yields the same index twice

    async def worker(env: gym.Env[str, str]) -> None:
        for i in queue:
            tid = ids[i]
            obs, info = env.reset(seed=seed + i, options={"task_id": tid} if tid is not None else None)
            agent = policy.episode(i)
            agent.reset(info)
            t0, n = time.perf_counter(), 0
            while True:
                action = await agent.act(obs, info)
                obs, _, terminated, truncated, info = env.step(action)
                n += 1
                if on_step is not None:
                    on_step(action, info)
                if terminated or truncated:
                    break
            dt = time.perf_counter() - t0
            usage = agent.usage if isinstance(agent.usage, TokenUsage) else None
            rows[i] = episode_row(info["episode"], steps_per_s=n / dt if dt > 0 else 0.0, usage=usage)
            done_ids[i], steps[i] = info["task_id"], n
            if bar is not None:
                bar.update(1)

    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(worker(env)) for env in envs[: max(1, len(ids))]]
    try:
        # The first failure (an EndpointError, say) stops the run: the other episodes are cancelled, not left
        # talking to a client that is about to close.
        finished, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in finished:
            task.result()  # re-raises the failure, if any
    finally:
        if bar is not None:
            bar.close()
        await policy.aclose()
    result.wall_s = time.perf_counter() - t0
    result.steps = sum(steps)
    result.rows = [r for r in rows if r is not None]
    result.task_ids = done_ids
    return result
