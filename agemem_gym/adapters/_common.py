"""Helpers shared by the adapters (private)."""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym

__all__ = ["Closing", "close_episode"]


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
