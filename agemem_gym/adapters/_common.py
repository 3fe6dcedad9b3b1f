"""Helpers shared by the adapters (private)."""

from __future__ import annotations

from typing import Any

__all__ = ["unfinished_reward"]


def unfinished_reward(env: Any) -> float:
    """R(τ) of an episode that a library's rollout loop stopped before the env ended it.

    Scored as the env scores a truncated episode (``AgeMemEnv.step``): the reward so far (the closed-form R of the
    ledger), plus P_rounds once, plus w_task · P_no-answer (paper Eq. 17 and 26).
    """
    base = env.unwrapped
    return float(base.episode_reward() + base.penalties.rounds + base.weights.task * base.penalties.no_answer)
