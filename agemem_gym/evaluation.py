"""Run a policy over N episodes and aggregate the paper's metrics (task score, EM/F1, memory quality, tokens,
tool counts per tool as in the paper's Table 3).

>>> import gymnasium as gym, agemem_gym
>>> from agemem_gym.agents import NoMemoryPolicy
>>> env = gym.make("AgeMem-Synthetic-v0")
>>> result = evaluate(env, NoMemoryPolicy(), episodes=2, seed=0, progress=False)
>>> sorted(result.summary)[:3]
['R', 'R_context', 'R_memory']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agemem_gym.agents import Policy
from agemem_gym.rewards import exact_match, f1_score
from agemem_gym.tools import TOOL_NAMES

__all__ = ["EvalResult", "episode_row", "evaluate", "summarize_rows"]


def episode_row(episode: Mapping[str, Any], *, steps_per_s: float | None = None) -> dict[str, Any]:
    """One flat row of metrics from a final ``info["episode"]``."""
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
    if steps_per_s is not None:
        row["steps_per_s"] = steps_per_s
    return row


def summarize_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean of every numeric column (booleans become rates)."""
    if not rows:
        return {}
    return {k: float(np.mean([float(r[k]) for r in rows])) for k in rows[0]}


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
        result.rows.append(episode_row(info["episode"], steps_per_s=n / dt if dt > 0 else 0.0))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(R=f"{result.summary['R']:.3f}")
    if bar is not None:
        bar.close()
    return result
