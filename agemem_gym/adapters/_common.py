"""Helpers shared by the adapters (private)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import gymnasium as gym

__all__ = ["Closing", "close_episode", "since_last_agent_turn"]

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
