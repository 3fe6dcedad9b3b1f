"""Rollouts for the GRPO trainer: K envs per task play whole episodes together, turn by turn, and every agent turn
is kept as the exact tokens the model saw and produced.

:func:`rollout` plays one episode in every env (all unfinished envs generate as one batch), :func:`play_tasks` one
episode per task a batch at a time (evaluation), :func:`draw_tasks` is
the rule that picks an update's tasks (shared by every rank, a resumed run and ``benchmarks/compare_trl.py``), and
:func:`episode_metrics` summarises a batch of episodes under namespaced keys (``reward/``, ``memory/``, ``rollout/``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from agemem_gym.trainers.policy import Sampling, encode_chat, generate

__all__ = ["Step", "Trajectory", "draw_tasks", "episode_metrics", "play_tasks", "rollout"]


@dataclass
class Step:
    """One agent turn: the exact tokens the model saw and produced, and their log-probs at sampling time."""

    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]


@dataclass
class Trajectory:
    """One episode of one env: its turns, its terminal reward R(τ) and the env's episode summary.

    ``truncated``: the env ended the episode at its own limits; ``capped``: the trainer's ``max_turns`` ended it,
    through the env (``truncate(reason="turn_cap")``), so ``reward_sum`` includes that closing step's reward.
    """

    group: int
    task_id: Any
    steps: list[Step] = field(default_factory=list)
    reward_sum: float = 0.0
    episode: dict[str, Any] = field(default_factory=dict)
    turns: int = 0
    prompt_tokens: int = 0
    response_tokens: int = 0
    action_errors: int = 0
    prompt_cut: int = 0
    length_stops: int = 0
    capped: bool = False
    truncated: bool = False

    @property
    def reward(self) -> float:
        """R(τ): the env's episode total, ``info["episode"]["R"]`` (equal to the sum of the step rewards, which stands
        in only for an env that reports no summary)."""
        return float(self.episode.get("R", self.reward_sum))


def rollout(
    model: nn.Module,
    tokenizer: Any,
    envs: Sequence[gym.Env],
    task_ids: Sequence[Any],
    seeds: Sequence[int],
    sampling: Sampling,
    *,
    max_prompt_tokens: int,
    max_turns: int | None = None,
    gen_batch_size: int,
    pass_tools: bool = False,
    amp: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> list[Trajectory]:
    """Play one episode in every env; env i plays task ``task_ids[i // K]`` with K = len(envs) // len(task_ids).

    All unfinished envs take their turn together: their prompts are generated as one left-padded batch (in chunks
    of ``gen_batch_size``, sorted by length so that chunks waste little padding), then each env steps.

    ``max_turns=None`` leaves every episode to the env's own limits. With a cap, an episode still running after
    ``max_turns`` turns is ended through the env, ``env.unwrapped.truncate(reason="turn_cap")``: its closing
    reward (P_rounds and P_no-answer, as when the env truncates) joins the trajectory's reward sum and its
    ``info["episode"]`` is the trajectory's, so R(τ) is the env's and the episode counts in every mean.

    Raises:
        TypeError: A cap is set and an env has no ``truncate(reason)`` to end an episode with.
    """
    if max_turns is not None:
        _check_truncate(envs)
    k = len(envs) // len(task_ids)
    trajs = [Trajectory(group=i // k, task_id=task_ids[i // k]) for i in range(len(envs))]
    infos: list[dict[str, Any]] = []
    for i, env in enumerate(envs):
        _, info = env.reset(seed=seeds[i // k], options={"task_id": task_ids[i // k]})
        infos.append(info)
    active = list(range(len(envs)))
    model.eval()
    while active:
        prompts: dict[int, list[int]] = {}
        for i in active:
            tools = infos[i].get("tools") if pass_tools else None
            prompts[i], cut = encode_chat(
                tokenizer, infos[i]["messages"], max_prompt_tokens=max_prompt_tokens, tools=tools
            )
            trajs[i].prompt_cut += int(cut > 0)
        order = sorted(active, key=lambda i: len(prompts[i]))
        turns = {}
        for start in range(0, len(order), gen_batch_size):
            chunk = order[start : start + gen_batch_size]
            with amp():
                for i, turn in zip(chunk, generate(model, tokenizer, [prompts[i] for i in chunk], sampling)):
                    turns[i] = turn
        still_active = []
        for i in active:
            turn, traj = turns[i], trajs[i]
            traj.steps.append(Step(turn.prompt_ids, turn.response_ids, turn.logprobs))
            traj.turns += 1
            traj.prompt_tokens += len(turn.prompt_ids)
            traj.response_tokens += len(turn.response_ids)
            traj.length_stops += int(turn.finish == "length")
            _, reward, terminated, truncated, info = envs[i].step(turn.text)
            traj.reward_sum += float(reward)
            traj.action_errors += int(info.get("action_error") is not None)
            traj.truncated = bool(truncated)  # by the env, at its own limits
            if not (terminated or truncated) and max_turns is not None and traj.turns >= max_turns:
                # End it through the env, so that R(τ) gets the env's P_rounds and P_no-answer (Eq. 26, 17), as
                # the env's own truncation would: a running sum alone would score a never-answering policy higher.
                base: Any = envs[i].unwrapped  # has truncate(): checked by _check_truncate above
                _, closing, terminated, truncated, info = base.truncate(reason="turn_cap")
                traj.reward_sum += float(closing)
                traj.capped = True
            if terminated or truncated:
                traj.episode = dict(info.get("episode") or {})
            else:
                infos[i] = info
                still_active.append(i)
        active = still_active
    return trajs


def play_tasks(
    model: nn.Module,
    tokenizer: Any,
    make_env: Callable[[], gym.Env],
    task_ids: Sequence[Any],
    reset_seeds: Sequence[int],
    sampling: Sampling,
    *,
    gen_batch_size: int,
    **rollout_kwargs: Any,
) -> list[Trajectory]:
    """One episode on each task (with its reset seed), ``gen_batch_size`` episodes at a time in envs from
    ``make_env`` (closed at the end); ``rollout_kwargs`` go to :func:`rollout`. Evaluation plays its tasks so."""
    batch = max(1, min(len(task_ids), gen_batch_size))
    envs = [make_env() for _ in range(batch)]
    trajs: list[Trajectory] = []
    try:
        for start in range(0, len(task_ids), batch):
            chunk = range(start, min(len(task_ids), start + batch))
            trajs += rollout(
                model,
                tokenizer,
                envs[: len(chunk)],
                [task_ids[i] for i in chunk],
                [reset_seeds[i] for i in chunk],
                sampling,
                gen_batch_size=gen_batch_size,
                **rollout_kwargs,
            )
    finally:
        for env in envs:
            env.close()
    return trajs


def _check_truncate(envs: Sequence[gym.Env]) -> None:
    """Raise unless every env can end an episode early through ``env.unwrapped.truncate(reason)``."""
    for env in envs:
        if not callable(getattr(env.unwrapped, "truncate", None)):
            raise TypeError(
                f"'max_turns' ends capped episodes through env.unwrapped.truncate(reason), which "
                f"{type(env.unwrapped).__name__} does not have; set max_turns=None (the env's own limits end "
                "every episode) or give the env a truncate(reason) that ends the episode as AgeMemEnv.truncate does"
            )


def draw_tasks(task_ids: Sequence[str], seed: int, update: int, groups: int) -> tuple[list[str], list[int]]:
    """The ``groups`` task ids of one update (uniform, with replacement) and their reset seeds.

    They depend only on ``(seed, update)``: a resumed run draws the same ones, every DDP rank draws the same list,
    and another trainer given the same seed plays the same tasks (``benchmarks/compare_trl.py``).
    """
    rng = random.Random(f"{seed}-{update}")
    drawn = [task_ids[rng.randrange(len(task_ids))] for _ in range(groups)]
    return drawn, [rng.randrange(2**31) for _ in range(groups)]


def episode_metrics(trajs: Sequence[Trajectory], prefix: str = "") -> dict[str, float]:
    """Mean episode statistics under namespaced keys (reward/, memory/ with memory/tool/<name> calls, rollout/).

    Every episode counts in every mean, capped ones included (the env's summary of their truncation).
    ``rollout/truncated_episodes`` counts the env's own truncations, ``rollout/capped_episodes`` the trainer's cap.
    """
    n = len(trajs)

    def mean(values: Sequence[float]) -> float:
        return float(sum(values) / len(values)) if values else float("nan")

    rewards = [t.reward for t in trajs]
    eps = [t.episode for t in trajs]
    n_steps = [t.turns for t in trajs]
    n_turns = max(1, sum(n_steps))
    out = {
        "reward/mean": mean(rewards),
        "reward/std": float(torch.tensor(rewards, dtype=torch.float64).std(correction=0)) if n else float("nan"),
        "reward/min": min(rewards, default=float("nan")),
        "reward/max": max(rewards, default=float("nan")),
        "rollout/episodes": float(n),
        "rollout/turns_per_episode": mean(n_steps),
        "rollout/action_error_rate": sum(t.action_errors for t in trajs) / n_turns,
        "rollout/prompt_truncated": float(sum(t.prompt_cut for t in trajs)),
        "rollout/length_stop_rate": sum(t.length_stops for t in trajs) / n_turns,
        "rollout/truncated_episodes": float(sum(t.truncated for t in trajs)),
        "rollout/capped_episodes": float(sum(t.capped for t in trajs)),
        "rollout/response_tokens_mean": sum(t.response_tokens for t in trajs) / n_turns,
        "rollout/prompt_tokens_mean": sum(t.prompt_tokens for t in trajs) / n_turns,
    }
    for key in ("task_score", "R_context", "R_memory", "penalty"):
        out[f"reward/{key}"] = mean([float(e[key]) for e in eps if key in e])
    for key in ("precision", "recall", "f1"):
        out[f"memory/{key}"] = mean([float(e["memory_quality"][key]) for e in eps if "memory_quality" in e])
    # A stage-3 Retrieve_memory before the answer: the paper's "retrieve when the question needs it".
    retrieved = [float(e["retrieved_before_answer"]) for e in eps if "retrieved_before_answer" in e]
    if retrieved:  # envs whose summaries do not say (other suites, capped episodes) leave it out
        out["memory/retrieve_before_answer"] = mean(retrieved)
    out["memory/context_tokens_peak"] = mean(
        [float(e["context_tokens_peak"]) for e in eps if "context_tokens_peak" in e]
    )
    tools = sorted({name for e in eps for name in e.get("tool_counts", {})})
    for name in tools:
        out[f"memory/tool/{name}"] = mean([float(e.get("tool_counts", {}).get(name, 0)) for e in eps])
    return {prefix + k: v for k, v in out.items()}
