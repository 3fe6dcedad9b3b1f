"""Helpers shared by the adapters (private)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import gymnasium as gym

__all__ = ["Closing", "Start", "close_episode", "since_last_agent_turn", "starts"]

M = TypeVar("M", bound=Mapping[str, Any])


def since_last_agent_turn(messages: Sequence[M]) -> list[M]:
    """The messages after the last assistant message (all but the first when there is none): what the env said in
    answer to the agent's turn, which a library that appends to one transcript shows the model next.

    >>> since_last_agent_turn([{"role": "system"}, {"role": "assistant"}, {"role": "tool"}, {"role": "user"}])
    [{'role': 'tool'}, {'role': 'user'}]
    """
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=0)
    return list(messages[last + 1 :])


class Closing(NamedTuple):
    """How an episode that a library's rollout loop stopped was closed by the env."""

    R: float
    """R(τ) of the episode: the env's ``info["episode"]["R"]``, the closing step's reward included"""
    reward: float
    """the closing step's reward (P_rounds, w_task · P_no-answer); 0 when the episode had already ended"""
    episode: dict[str, Any] | None
    """the closing step's ``info["episode"]``; None when the episode had already ended (nothing was stepped)"""


def close_episode(env: Any, reason: str) -> Closing:
    """End an episode that a library's rollout loop stopped before the env ended it, and return its R(τ).

    The env ends it (``env.unwrapped.truncate(reason=reason)``) exactly as it ends an episode that runs past its own
    limits, with P_rounds and P_no-answer (paper Eq. 26 and 17), so R(τ) is the env's and the episode's step rewards,
    the closing one included, sum to it. ``reason`` lands in ``info["truncation_reason"]``. If the episode has
    already ended, nothing is stepped and R(τ) is the ended episode's (``episode_reward()``, equal to the sum of its
    step rewards).

    Raises:
        gymnasium.error.ResetNeeded: The env was never reset.
    """
    base = env.unwrapped
    try:
        _, reward, _, _, info = base.truncate(reason=reason)
    except gym.error.ResetNeeded:  # ended already (or never reset, which episode_reward() reports in turn)
        return Closing(float(base.episode_reward()), 0.0, None)
    episode = dict(info["episode"])
    return Closing(float(episode["R"]), float(reward), episode)


class Start(NamedTuple):
    """Where one task's episode starts, for a library's dataset row (one row per task)."""

    task_id: str
    material_seed: int
    messages: list[dict[str, Any]]
    """the env's first context (``info["messages"]`` after ``reset``): the system prompt, then the first user message"""
    answer: str | None
    """the gold answer (privileged: for a library's reference column, never shown to the agent); None for a text
    game, whose tasks have no answer"""
    context_budget: int
    instructions: str | None
    """a text game's instructions (for a system prompt of the library's own); None for the three-stage suites"""


def starts(
    env_id: str,
    *,
    task_ids: Iterable[str] | None = None,
    n_tasks: int | None = None,
    material_seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[Start]:
    """The start of each task's episode, for the adapters' dataset builders (each lays the rows out its own way).

    ``task_ids`` defaults to the suite's first ``n_tasks`` tasks (all when ``n_tasks`` is None). One env is made
    and reset once per task with ``options={"task_id": ..., "material_seed": material_seed}``, so every row starts
    exactly where the env does. A text game (:class:`~agemem_gym.textenv.TextGameEnv`) has no material: it is
    reset with the task id alone.
    """
    from agemem_gym.textenv import TextGameEnv

    env = gym.make(env_id, **dict(env_kwargs or {}))
    try:
        base: Any = env.unwrapped
        game = isinstance(base, TextGameEnv)
        if task_ids is None:
            ids = list(base.suite.task_ids)
            task_ids = ids if n_tasks is None else ids[:n_tasks]
        out = []
        for task_id in task_ids:
            options = {"task_id": task_id} if game else {"task_id": task_id, "material_seed": material_seed}
            _, info = env.reset(options=options)
            out.append(
                Start(
                    task_id=task_id,
                    material_seed=material_seed,
                    messages=info["messages"],
                    answer=None if game else base.task.answer,
                    context_budget=int(base.episode_config.context_budget),
                    instructions=base.game.instructions.strip() if game else None,
                )
            )
        return out
    finally:
        env.close()
