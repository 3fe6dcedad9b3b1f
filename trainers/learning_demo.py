"""SFT, then GRPO: the smallest run that shows step-wise GRPO raising R(τ) on the real env (CPU, a few minutes).

Runs:
    python -m agemem_gym.trainers.learning_demo                  # seed 1; prints warm-start vs trained R(τ)
    python -m agemem_gym.trainers.learning_demo --seed 2 --num-updates 48
    python -m agemem_gym.trainers.plots runs/learn__1/grpo/metrics.jsonl curves.png   # (curves.png is written too)

The setting is ``AgeMem-Synthetic-v0`` at difficulty ``"easy"`` with short episodes: stage 1 shares the two gold
paragraphs (no distractors), stage 2 one distractor, each user message allows two tool rounds, and the system
prompt is the compact one. Everything runs on one CPU core with the byte-level ``"tiny-128"`` random Qwen2:

1. **Warm start (SFT).** The random model imitates the turns of a scripted baseline
   (:class:`~agemem_gym.agents.NoMemoryPolicy`: acknowledge each shared paragraph, answer the question) for about a
   minute, with a learning rate that decays to 0. It picks up the protocol, but not reliably: sampled turns come
   out malformed now and then (unclosed tags, stray text); each costs a format penalty, and a user message with
   too many of them truncates the episode (P_rounds and P_no-answer: R(τ) about -1.6 instead of about +0.2).
2. **Step-wise GRPO** from the warm start (which is also the frozen KL reference), 24 updates of 4 tasks × 4
   trajectories, sampled at temperature 0.7.
3. **Evaluation.** The warm start (update 0) and the policy every ``eval_every`` updates play the same 64 tasks
   of a held-out world (``suite_seed`` 1), sampled at the rollout temperature from a seeded RNG (the policy GRPO
   optimises is the sampling one); the ``eval/`` metrics land in ``metrics.jsonl`` and the reward panel of
   ``curves.png``.

Measured (seeds 1-4, one core): warm start R(τ) -0.39 / -0.43 / -0.28 / -0.28, after 24 updates -0.11 / +0.08 /
-0.04 / +0.03, with about half as many truncated episodes; about 2.5 minutes per seed on an idle core.

What GRPO learns here is mostly the protocol itself: fewer malformed turns, hence fewer truncated episodes. The
oracle's turns would teach more, but they copy whole sentences into JSON arguments, which a byte-level model this
small does not learn in minutes (its warm start never completes an episode, so every GRPO group has zero spread);
the baseline's turns are short. For a real model, run the two steps by hand:
``python -m agemem_gym.trainers.sft --policy oracle ...`` then ``python -m agemem_gym.trainers.grpo --model ...``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agemem_gym.trainers import grpo, sft
from agemem_gym.trainers.plots import read_metrics

__all__ = ["DemoArgs", "easy_short_episodes", "main"]


def easy_short_episodes(max_tool_rounds: int = 2) -> dict[str, Any]:
    """Env kwargs: difficulty "easy", the gold paragraphs only in stage 1, one distractor in stage 2, compact prompt."""
    episode = {
        "stage1_distractors": 0,
        "paragraphs_per_turn": 1,
        "stage2_paragraphs": 1,
        "max_tool_rounds": max_tool_rounds,
    }
    return {"difficulty": "easy", "episode": episode, "prompt_style": "compact"}


@dataclass
class DemoArgs:
    """SFT warm start, then step-wise GRPO, on the easy synthetic setting; reports R(τ) before and after."""

    seed: int = 1
    """seed of the SFT step (model init, shuffling) and of the GRPO run"""
    output_dir: str = "runs"
    """parent folder of the run folder"""
    run_name: str | None = None
    """run folder name; default: learn__{seed}. It holds warm_start/ (the SFT model) and grpo/ (the GRPO run)"""
    model: str = "tiny-128"
    """the model SFT starts from (a tiny random one by default; any name load_model accepts)"""
    sft_policy: str = "no_memory"
    """scripted policy whose turns SFT imitates (agemem_gym.agents.make_policy)"""
    sft_episodes: int = 64
    """episodes of the scripted policy to imitate (the training suite's first tasks)"""
    sft_epochs: int = 6
    """passes over the scripted turns"""
    sft_learning_rate: float = 3e-3
    """SFT AdamW learning rate (decays linearly to 0)"""
    num_updates: int = 24
    """GRPO updates"""
    learning_rate: float = 1e-4
    """GRPO AdamW learning rate"""
    beta: float = 0.1
    """KL penalty coefficient to the warm start (paper: 0.1)"""
    groups_per_update: int = 4
    """B: tasks per GRPO update"""
    group_size: int = 4
    """K: trajectories per task"""
    max_tool_rounds: int = 2
    """tool or malformed turns allowed per user message; one more truncates the episode (the oracle needs 2)"""
    max_prompt_tokens: int = 384
    """prompts keep their last this many tokens (bytes, for the tiny model) in SFT and GRPO alike"""
    max_new_tokens: int = 96
    """most tokens per agent turn"""
    temperature: float = 0.7
    """sampling temperature of the rollouts and the evaluations (the policy GRPO optimises)"""
    eval_tasks: int = 64
    """held-out tasks the warm start and the trained policy play (sampled, seeded alike)"""
    eval_every: int = 8
    """evaluate every this many GRPO updates (and at update 0, the warm start)"""
    threads: int = 1
    """torch CPU threads (the tiny model runs fastest on one; the documented numbers used one); 0: torch's default"""
    progress: bool = True
    """show GRPO's progress bar"""


def main(args: DemoArgs) -> dict[str, float]:
    """Run SFT then GRPO; returns the eval R(τ) of the warm start and of the trained policy, and the gain."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.output_dir) / (args.run_name or f"learn__{args.seed}")
    warm_start = run_dir / "warm_start"
    env_kwargs = json.dumps(easy_short_episodes(args.max_tool_rounds))

    # ---- warm start: imitate the scripted policy ----
    sft.main(
        sft.SFTArgs(
            out=str(warm_start),
            model=args.model,
            policy=args.sft_policy,
            episodes=args.sft_episodes,
            env_kwargs=env_kwargs,
            epochs=args.sft_epochs,
            learning_rate=args.sft_learning_rate,
            max_prompt_tokens=args.max_prompt_tokens,
            seed=args.seed,
        )
    )

    # ---- GRPO from the warm start, evaluated on a held-out world along the way ----
    grpo.main(
        grpo.preset(
            "tiny",
            exp_name="learn",
            model=str(warm_start),
            seed=args.seed,
            output_dir=str(run_dir),
            run_name="grpo",
            env_kwargs=env_kwargs,
            eval_env_kwargs=json.dumps({"suite_seed": 1}),
            num_updates=args.num_updates,
            groups_per_update=args.groups_per_update,
            group_size=args.group_size,
            learning_rate=args.learning_rate,
            beta=args.beta,
            max_prompt_tokens=args.max_prompt_tokens,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            eval_greedy=False,
            micro_batch_size=32,
            eval_tasks=args.eval_tasks,
            eval_every=args.eval_every,
            checkpoint_every=0,
            progress=args.progress,
        )
    )

    # ---- report ----
    evals = [r for r in read_metrics(run_dir / "grpo" / "metrics.jsonl") if "eval/reward/mean" in r]
    before, after = evals[0], evals[-1]
    result = {
        "warm_start/reward": before["eval/reward/mean"],
        "trained/reward": after["eval/reward/mean"],
        "gain": after["eval/reward/mean"] - before["eval/reward/mean"],
        "warm_start/action_error_rate": before["eval/rollout/action_error_rate"],
        "trained/action_error_rate": after["eval/rollout/action_error_rate"],
        "warm_start/truncated_episodes": before["eval/rollout/truncated_episodes"],
        "trained/truncated_episodes": after["eval/rollout/truncated_episodes"],
    }
    curve = ", ".join(f"{int(r['update'])}: {r['eval/reward/mean']:+.3f}" for r in evals)
    print(f"eval R(τ) by update ({args.eval_tasks} held-out tasks, T={args.temperature}): {curve}", file=sys.stderr)
    print(
        f"warm start {result['warm_start/reward']:+.3f} -> after {args.num_updates} GRPO updates "
        f"{result['trained/reward']:+.3f} (gain {result['gain']:+.3f}); curves in {run_dir / 'grpo' / 'curves.png'}",
        file=sys.stderr,
    )
    (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    import tyro

    main(tyro.cli(DemoArgs))
