"""Step-wise GRPO for AgeMem-Gym, in one readable file (after CleanRL's ppo.py and nanoGPT's train.py).

Runs:
    python -m agemem_gym.trainers.grpo --preset tiny     # tiny random model, synthetic suite, CPU, seconds
    python -m agemem_gym.trainers.grpo --preset demo     # SmolLM2-135M-Instruct, synthetic suite, CPU, minutes
    python -m agemem_gym.trainers.learning_demo          # SFT warm start then GRPO: R(τ) rises (tiny model, CPU)
    agemem-grpo --model Qwen/Qwen2.5-1.5B-Instruct --allow-download --lora-rank 16 --num-updates 200
    torchrun --nproc-per-node 4 -m agemem_gym.trainers.grpo --model <name> --lora-rank 16   # DDP, one GPU each
    agemem-grpo --resume runs/<run>/checkpoint.pt --num-updates 20             # continue, exactly
    agemem-grpo --resume runs/<run>/checkpoint.pt --num-updates 0 --eval-tasks 50   # evaluate a checkpoint
    agemem-grpo --preset tiny --eval-tasks 8 --eval-every 1 --eval-env-kwargs '{"suite_seed": 1}'  # eval curve

SmolLM2-135M never writes the protocol zero-shot, so under ``--preset demo`` every group has zero spread and nothing
trains (the run measures the loop). Warm-start it on 8 oracle episodes first (about 15 minutes on 2 CPU cores),
then train from the warm start with two tool rounds per message (the oracle's consolidation needs the second):
    SHORT='{"episode": {"stage1_distractors": 0, "stage2_paragraphs": 1, "max_tool_rounds": 2}, "prompt_style": "compact"}'
    python -m agemem_gym.trainers.sft --model smollm2 --policy oracle --episodes 8 --epochs 2 --learning-rate 2e-4 \
        --micro-batch-size 2 --max-prompt-tokens 1024 --env-kwargs "$SHORT" --out runs/sft-smollm2
    python -m agemem_gym.trainers.grpo --preset demo --model runs/sft-smollm2 --max-new-tokens 128 --env-kwargs "$SHORT"

The algorithm (AgeMem paper §3.4, Alg. 2):
    for each update:
        B tasks; K envs per task reset with the same task_id (a group shares its start exactly)
        play all B·K episodes, stepping every unfinished env together; every agent turn is one training sample:
            (exact prompt ids the model saw, exact response ids it sampled, their log-probs at sampling time)
        R(τ) = the env's info["episode"]["R"]; A = (R − mean_group) / (std_group + ε)        (Eq. 5)
            with the sample std (K − 1 degrees of freedom) as in Alg. 2 (--adv-std population: K)
        broadcast A to every turn of its trajectory (all three stages)
        for each epoch: one optimizer step on the clipped-ratio loss with a k3 KL penalty     (Eq. 6)
            to the frozen reference, accumulated over micro-batches

A trajectory's turns are independent samples: nothing is re-tokenised from decoded text, and the prompt of each
turn is the context *after* the agent's own SUMMARY/FILTER edits, as the env reports it in ``info["messages"]``.

R(τ) is always the env's. By default (``--max-turns`` unset) the trainer never cuts an episode: the env's own limits
(``max_tool_rounds`` per user message, ``max_steps``) end every one, with P_rounds and P_no-answer when they
truncate it. With ``--max-turns N`` an episode still running after N turns is ended through the env
(``env.unwrapped.truncate(reason="turn_cap")``), which prices it exactly as its own truncation: such an episode
counts in ``rollout/capped_episodes`` and, like every episode, in the reward, task and memory means.

The loss average (``--loss-average``): ``trajectory`` (default; each trajectory's tokens, then the trajectories, so
long trajectories do not dominate), ``token`` (every token of the batch alike) or ``step`` (Eq. 6 as written: each
step's tokens, then 1/|E| over the batch's steps).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import torch
import torch.distributed as dist
import tyro
from torch import Tensor, nn
from tqdm import tqdm

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.env import SHORT_EPISODE
from agemem_gym.trainers.lora import DEFAULT_TARGETS, adapters_disabled, apply_lora, lora_state_dict
from agemem_gym.trainers.models import load_model
from agemem_gym.trainers.policy import Sampling, encode_chat, generate, left_pad, response_logprobs, token_logprobs
from agemem_gym.trainers.saved_args import trusted_saved_args

__all__ = [
    "PRESETS",
    "Args",
    "Step",
    "Trajectory",
    "cli",
    "draw_tasks",
    "evaluate",
    "evaluate_checkpoint",
    "group_advantages",
    "grpo_loss",
    "kl_k3",
    "load_checkpoint_model",
    "main",
    "masked_mean",
    "parse_args",
    "preset",
    "rollout",
    "token_logprobs",
    "token_weights",
]


@dataclass
class Args:
    """Step-wise GRPO on an AgeMem-Gym environment."""

    # ---- experiment ----
    exp_name: str = "grpo"
    """name of this experiment (part of the run folder's name)"""
    preset: Literal["none", "tiny", "demo"] = "none"
    """defaults to start from: "tiny" (tiny random model, seconds), "demo" (SmolLM2 on CPU, minutes); flags override"""
    seed: int = 1
    """seed of every RNG (torch, python, task sampling, env resets)"""
    output_dir: str = "runs"
    """folder that holds one sub-folder per run (metrics.jsonl, curves.png, checkpoint.pt)"""
    run_name: str | None = None
    """run folder name; default: {exp_name}__{seed}__{unix time}"""
    device: str = "auto"
    """"auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"; under torchrun, cuda:LOCAL_RANK"""

    # ---- environment ----
    env_id: str = "AgeMem-Synthetic-v0"
    """Gymnasium id of the environment"""
    env_kwargs: str = "{}"
    """JSON object passed to gym.make, e.g. '{"episode": {"max_tool_rounds": 2}, "prompt_style": "compact"}'"""
    eval_env_kwargs: str = "{}"
    """JSON object merged over env_kwargs for the evaluation envs, e.g. '{"suite_seed": 1}' for held-out tasks"""
    pass_tools: bool = False
    """also pass info["tools"] to the chat template (the env's system prompt already lists the tools)"""
    max_turns: int | None = None
    """optional cap on agent turns per episode. None (default): no trainer cap; the env's own limits (max_tool_rounds
    per user message, max_steps) end every episode. A capped episode is ended through the env
    (env.unwrapped.truncate(reason="turn_cap")), so it pays P_rounds and P_no-answer as when the env truncates it,
    its R(τ) is the env's, it counts in rollout/capped_episodes and it stays in every mean"""

    # ---- model ----
    model: str = "smollm2"
    """"tiny" / "tiny-128" (random, for tests), "smollm2" (offline GGUF), or any HF causal LM name or local folder"""
    allow_download: bool = False
    """allow transformers to download `model` from the Hub (off: only local files are read)"""
    lora_rank: int = 0
    """LoRA rank; 0 trains every weight"""
    lora_alpha: float = 32.0
    """LoRA scaling numerator (the update is scaled by alpha / rank)"""
    lora_dropout: float = 0.0
    """dropout on the LoRA input"""
    lora_targets: tuple[str, ...] = DEFAULT_TARGETS
    """attribute names of the nn.Linear layers that get adapters"""
    bf16: bool = True
    """on CUDA: bf16 autocast (and bf16 frozen base weights under LoRA); ignored on CPU"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass (less memory, ~30% more compute)"""

    # ---- rollout ----
    num_updates: int = 10
    """total number of GRPO updates (a resumed run continues up to this number)"""
    groups_per_update: int = 4
    """B: tasks per update (split across ranks under torchrun)"""
    group_size: int = 4
    """K: trajectories per task; the advantage compares them"""
    temperature: float = 1.0
    """sampling temperature (the optimised policy is softmax(logits / temperature))"""
    top_p: float = 1.0
    """nucleus sampling mass"""
    max_new_tokens: int = 128
    """most tokens per agent turn; a turn also ends at </tool_call>, </answer> or EOS"""
    max_prompt_tokens: int = 4096
    """longer prompts keep their last max_prompt_tokens tokens (counted in rollout/prompt_truncated)"""
    gen_batch_size: int = 64
    """most sequences generated together (the unfinished envs are chunked by this)"""

    # ---- update ----
    learning_rate: float = 1e-5
    """AdamW learning rate"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    max_grad_norm: float = 1.0
    """gradient clipping threshold"""
    update_epochs: int = 1
    """optimizer steps per batch of rollouts (the paper's μ); >1 makes the clipping matter"""
    micro_batch_size: int = 8
    """samples (agent turns) per forward/backward; gradients accumulate over micro-batches"""
    clip_eps: float = 0.2
    """PPO clipping range ε of the ratio (Eq. 6)"""
    beta: float = 0.1
    """KL penalty coefficient β (Eq. 6; paper: 0.1); 0 skips the reference model"""
    adv_eps: float = 1e-6
    """ε in A = (R - mean) / (std + ε) (Eq. 5)"""
    adv_std: Literal["sample", "population"] = "sample"
    """the group's std in Eq. 5: "sample" (Bessel-corrected, divides by K - 1, as in the paper's Alg. 2) or
    "population" (divides by K)"""
    loss_average: Literal["trajectory", "token", "step"] = "trajectory"
    """how the token losses of a batch are averaged: "trajectory" (mean over each trajectory's tokens, then over
    trajectories: long trajectories do not dominate, DESIGN §8), "token" (one mean over all tokens, as in DAPO) or
    "step" (the paper's Eq. 6: mean over each step's tokens, then 1/|E| over all steps of the batch)"""
    skip_zero_spread: bool = False
    """drop groups whose K rewards are all equal (their advantage is 0; only the KL term would train on them)"""

    # ---- logging, checkpoints, evaluation ----
    checkpoint_every: int = 1
    """save checkpoint.pt every this many updates (and after the last); 0: only after the last"""
    resume: str | None = None
    """checkpoint.pt to resume from (the run continues in that checkpoint's folder)"""
    eval_tasks: int = 0
    """after training, evaluate on the eval suite's first this many tasks (0: never); written to eval.json"""
    eval_every: int = 0
    """also evaluate before the first update and every this many updates (0: only after training); the eval/
    metrics join that update's row of metrics.jsonl (update 0: the starting policy) and the reward curve"""
    eval_greedy: bool = True
    """evaluate with greedy decoding (else sample like the rollouts)"""
    progress: bool = True
    """show a tqdm progress bar"""
    plot: bool = True
    """write curves.png (reward and memory quality) next to metrics.jsonl"""
    log_samples: int = 1
    """episodes per update whose turns (decoded text) are appended to samples.jsonl, for reading what the agent does"""


# Short synthetic episodes for CPU work: the gold paragraphs only in stage 1, one distractor in stage 2, and the
# env's compact system prompt. Two tool rounds per user message is the fewest under which the scripted oracle
# finishes (it stores, then updates; with one round it is truncated, R -1.11 instead of +0.995 on 20 tasks).
_SHORT_EPISODES = json.dumps({"episode": dict(SHORT_EPISODE), "prompt_style": "compact"})

_THREE_STAGE_IDS = ("AgeMem-Synthetic-v0", "AgeMem-HotpotQA-v0")

# Presets only set defaults; flags given on the command line still win (see parse_args()).
PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    # The tiny random model: a smoke test of the whole loop in seconds.
    "tiny": dict(
        model="tiny",
        exp_name="tiny",
        env_kwargs=_SHORT_EPISODES,
        num_updates=3,
        groups_per_update=2,
        group_size=4,
        max_new_tokens=32,
        max_prompt_tokens=2048,
        learning_rate=1e-3,
        micro_batch_size=16,
    ),
    # SmolLM2-135M-Instruct: a real GRPO run on a 2-core CPU in a few minutes. A CPU learns at roughly 100 tokens/s
    # per core on this model (prompt tokens included), so groups whose rewards are all equal, which carry no
    # policy-gradient signal, are skipped rather than paid for. Zero-shot the model never writes the protocol, so
    # every group is skipped: start from an SFT warm start to learn (see the module docstring).
    "demo": dict(
        model="smollm2",
        exp_name="demo",
        env_kwargs=_SHORT_EPISODES,
        num_updates=2,
        groups_per_update=2,
        group_size=2,
        max_new_tokens=48,
        max_prompt_tokens=1024,
        learning_rate=5e-6,
        micro_batch_size=4,
        skip_zero_spread=True,
    ),
}


def preset(name: str, **overrides: Any) -> Args:
    """The ``Args`` of a preset with ``overrides`` applied, e.g. ``main(preset("tiny", num_updates=1))``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[name])
    # The presets' env_kwargs are settings of the three-stage suites (HotpotQA, synthetic); other ids (the text
    # games of agemem_gym.textenv) reject them, so there the preset leaves env_kwargs at the env's defaults.
    if overrides.get("env_id", Args.env_id) not in _THREE_STAGE_IDS:
        values.pop("env_kwargs", None)
    return Args(**{**values, "preset": name, **overrides})


# ---------------------------------------------------------------------------------------------------------------
# Pure tensor functions (imported by the tests)
# ---------------------------------------------------------------------------------------------------------------


def group_advantages(
    rewards: Tensor, eps: float = 1e-6, std: Literal["sample", "population"] = "sample"
) -> tuple[Tensor, Tensor]:
    """Group-normalised advantages (paper Eq. 5): ``rewards`` (G, K) -> ``A`` (G, K) and ``zero_spread`` (G,).

    ``A = (r - mean) / (std + eps)`` within each group of K trajectories of one task. ``std="sample"`` (default)
    is the Bessel-corrected std (divides by K - 1), as the paper's Alg. 2 computes it; ``"population"`` divides by
    K. A group whose rewards are all equal carries no signal: its advantages are set to exactly 0 (rather than
    rounding noise over eps) and it is flagged in ``zero_spread``. A group of one is such a group: it has no
    spread, so its advantage is 0 under either std, never NaN (the sample std of one value is 0/0).

    Raises:
        ValueError: ``std`` is neither ``"sample"`` nor ``"population"``.
    """
    if std not in ("sample", "population"):
        raise ValueError(f"'adv_std' must be 'sample' or 'population', got {std!r}")
    k = rewards.shape[1]
    # K - 1 degrees of freedom for the sample std; clamped to 1 so that a group of one divides 0 by 1, not by 0.
    dof = max(k - 1, 1) if std == "sample" else k
    mean = rewards.mean(dim=1, keepdim=True)  # (G, 1)
    spread = (rewards - mean).pow(2).sum(dim=1, keepdim=True).div(dof).sqrt()  # (G, 1)
    zero_spread = rewards.amax(dim=1) == rewards.amin(dim=1)  # (G,)
    adv = (rewards - mean) / (spread + eps)
    return adv.masked_fill(zero_spread.unsqueeze(1), 0.0), zero_spread


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` where ``mask`` is 1 (over ``dim``, or everything); 0 where the mask is empty."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token KL(π_θ || π_ref) estimate k3 = exp(ref − logp) − (ref − logp) − 1 (Schulman, 2020): ≥ 0, unbiased."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1.0


def token_weights(traj_index: Tensor, n_tokens: Tensor, mode: Literal["trajectory", "token", "step"]) -> Tensor:
    """Per-sample weight w such that ``Σ_i w_i Σ_t ℓ_it`` is the chosen mean of the token losses ℓ: (N,) -> (N,).

    ``traj_index`` (N,) names the trajectory of each sample (one agent turn, a step) and ``n_tokens`` (N,) its
    response length. The three means:

    - ``"trajectory"``: mean over each trajectory's tokens, then mean over trajectories, so long trajectories do
      not dominate (DESIGN §8): ``w_i = 1 / (n_tokens of i's trajectory · number of trajectories)``.
    - ``"token"``: one mean over every token of the batch (as in DAPO): ``w_i = 1 / total tokens``.
    - ``"step"``: the paper's Eq. 6, ``1/|E| Σ_e 1/|e| Σ_t``: mean over each step's tokens, then mean over all
      steps of the batch: ``w_i = 1 / (n_tokens_i · N)``, so every turn counts alike whatever its length.

    The weights are computed once per batch, so summing micro-batch losses gives exactly the full-batch loss.

    Raises:
        ValueError: ``mode`` is not one of the three.
    """
    n_tokens = n_tokens.to(torch.float64)
    if mode == "token":
        return torch.full_like(n_tokens, 1.0 / n_tokens.sum().item())
    if mode == "step":
        # clamp: an empty response has no unmasked token, so its weight multiplies nothing (and stays finite).
        return 1.0 / (n_tokens.clamp(min=1) * len(n_tokens))
    if mode != "trajectory":
        raise ValueError(f"'loss_average' must be 'trajectory', 'token' or 'step', got {mode!r}")
    _, inverse = torch.unique(traj_index, return_inverse=True)  # (N,) trajectory ids made contiguous
    n_traj = int(inverse.max()) + 1
    per_traj = torch.zeros(n_traj, dtype=torch.float64).index_add_(0, inverse, n_tokens)  # tokens per trajectory
    return 1.0 / (per_traj[inverse] * n_traj)


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    weights: Tensor,
    *,
    clip_eps: float = 0.2,
    beta: float = 0.1,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The step-wise GRPO loss (paper Eq. 6) of one micro-batch, and its parts (detached, same weighting).

    Shapes: ``logp``, ``old_logp``, ``ref_logp``, ``mask``: (N, T); ``advantages``, ``weights``: (N,).
    Per token: ``−min(ρ·A, clip(ρ, 1−ε, 1+ε)·A) + β·k3`` with ``ρ = π_θ / π_old``; summed with ``weights``
    (from :func:`token_weights`) over the mask. ``ref_logp=None`` drops the KL term.
    """
    # Padding positions hold arbitrary log-probs; zero them *before* exp() so that no inf (and then 0·inf = NaN in
    # the forward or backward pass) can appear where the mask is 0.
    valid = mask.bool()
    logp = torch.where(valid, logp, 0.0)
    ratio = torch.exp(logp - torch.where(valid, old_logp, 0.0))  # (N, T)
    adv = advantages.unsqueeze(1)  # (N, 1): one advantage for every token of the turn
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
    policy = -torch.min(unclipped, clipped)  # (N, T) Eq. 6, clipped surrogate (PPO, Schulman et al., 2017)
    # (N, T) Eq. 6, KL penalty to the frozen reference
    kl = kl_k3(logp, torch.where(valid, ref_logp, 0.0)) if ref_logp is not None else torch.zeros_like(logp)
    w = weights.to(logp.dtype).unsqueeze(1) * mask.to(logp.dtype)  # (N, T)
    loss = ((policy + beta * kl) * w).sum()
    with torch.no_grad():
        clip_active = (clipped < unclipped).to(logp.dtype)  # the min picked the clipped term
        stats = {
            "policy": (policy * w).sum(),
            "kl": (kl * w).sum(),
            "clip_frac": (clip_active * w).sum(),
            "ratio": (ratio * w).sum(),
        }
    return loss, stats


# ---------------------------------------------------------------------------------------------------------------
# Rollouts
# ---------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------
# Set-up helpers
# ---------------------------------------------------------------------------------------------------------------


def _json_object(text: str, name: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name!r} must be a JSON object, got {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name!r} must be a JSON object, got {text!r}")
    return value


def _eval_env_kwargs(args: Args) -> dict[str, Any]:
    return {**_json_object(args.env_kwargs, "env_kwargs"), **_json_object(args.eval_env_kwargs, "eval_env_kwargs")}


def check_args(args: Args, world_size: int = 1) -> None:
    """Raise ``ValueError`` naming the rule, the value and the fix for settings that cannot work."""
    rules = [
        (
            args.group_size >= 2,
            f"'group_size' must be >= 2 (a group of one has no spread to learn from), got {args.group_size}",
        ),
        (args.groups_per_update >= 1, f"'groups_per_update' must be >= 1, got {args.groups_per_update}"),
        (
            args.groups_per_update % world_size == 0,
            f"'groups_per_update' ({args.groups_per_update}) must be divisible by the number of ranks ({world_size})",
        ),
        (
            args.temperature > 0,
            f"'temperature' must be > 0 (use eval_greedy for argmax decoding), got {args.temperature}",
        ),
        (0 < args.top_p <= 1, f"'top_p' must be in (0, 1], got {args.top_p}"),
        (args.max_new_tokens >= 1, f"'max_new_tokens' must be >= 1, got {args.max_new_tokens}"),
        (args.max_prompt_tokens >= 16, f"'max_prompt_tokens' must be >= 16, got {args.max_prompt_tokens}"),
        (args.micro_batch_size >= 1, f"'micro_batch_size' must be >= 1, got {args.micro_batch_size}"),
        (args.update_epochs >= 1, f"'update_epochs' must be >= 1, got {args.update_epochs}"),
        (args.beta >= 0, f"'beta' must be >= 0, got {args.beta}"),
        (args.lora_rank >= 0, f"'lora_rank' must be >= 0 (0 trains every weight), got {args.lora_rank}"),
        (args.num_updates >= 0, f"'num_updates' must be >= 0, got {args.num_updates}"),
        (args.eval_tasks >= 0, f"'eval_tasks' must be >= 0 (0: no evaluation), got {args.eval_tasks}"),
        (args.eval_every >= 0, f"'eval_every' must be >= 0 (0: only after training), got {args.eval_every}"),
        (
            args.max_turns is None or args.max_turns >= 1,
            f"'max_turns' must be None (the env's own limits end episodes) or >= 1, got {args.max_turns}",
        ),
        (
            args.adv_std in ("sample", "population"),
            f"'adv_std' must be 'sample' (the paper's Alg. 2) or 'population', got {args.adv_std!r}",
        ),
        (
            args.loss_average in ("trajectory", "token", "step"),
            f"'loss_average' must be 'trajectory', 'token' or 'step', got {args.loss_average!r}",
        ),
    ]
    for ok, message in rules:
        if not ok:
            raise ValueError(message)
    _json_object(args.env_kwargs, "env_kwargs")
    _json_object(args.eval_env_kwargs, "eval_env_kwargs")


def _device(name: str, local_rank: int = 0) -> torch.device:
    if name != "auto":
        return torch.device(name)
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def _setup_distributed(args: Args) -> tuple[int, int, torch.device]:
    """This process's rank, the world size and its device; joins the process group under torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    check_args(args, world_size)
    device = _device(args.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world_size, device


def _autocast(device: torch.device, bf16: bool) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of autocast contexts: bf16 on CUDA (weights stay fp32 unless frozen under LoRA), nothing on CPU."""
    if device.type == "cuda" and bf16:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _build_model(args: Args, device: torch.device) -> tuple[nn.Module, Any]:
    """The policy model (with LoRA adapters when asked) on ``device``, and its tokenizer."""
    on_cuda = device.type == "cuda"
    # Under LoRA the frozen base can live in bf16 (half the memory); full fine-tuning keeps fp32 master weights.
    dtype = torch.bfloat16 if (on_cuda and args.bf16 and args.lora_rank > 0) else torch.float32
    model, tokenizer = load_model(args.model, seed=args.seed, dtype=dtype, allow_download=args.allow_download)
    if args.lora_rank > 0:
        apply_lora(
            model, rank=args.lora_rank, alpha=args.lora_alpha, dropout=args.lora_dropout, targets=args.lora_targets
        )
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model.to(device), tokenizer


def _trainable_state(model: nn.Module, lora: bool) -> dict[str, Tensor]:
    return lora_state_dict(model) if lora else model.state_dict()


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, update: int, args: Args) -> None:
    """Write weights (adapters only under LoRA), optimizer, RNG states, update count and args, atomically."""
    state = {
        "update": update,
        "args": dataclasses.asdict(args),
        "model": _trainable_state(model, args.lora_rank > 0),
        "optimizer": optimizer.state_dict(),
        "rng": _gather_rng_states(),
    }
    if _rank() == 0:
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # never leaves a half-written checkpoint.pt behind


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def _gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's RNG state (each rank samples its own rollouts, so each needs its own stream back)."""
    states: list[Any] = [None] * _world()
    if dist.is_initialized():
        dist.all_gather_object(states, _rng_state())
    else:
        states[0] = _rng_state()
    return states


def _all_trajectories(trajs: list[Trajectory]) -> list[Trajectory]:
    """Every rank's trajectories (for metrics); the step data stays local."""
    if not dist.is_initialized():
        return trajs
    light = [dataclasses.replace(t, steps=[]) for t in trajs]
    gathered: list[Any] = [None] * _world()
    dist.all_gather_object(gathered, light)
    return [t for part in gathered for t in part]


def _all_sum(values: list[float], device: torch.device) -> list[float]:
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# ---------------------------------------------------------------------------------------------------------------
# The update
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class MicroBatch:
    """Tensors of a few samples, right-aligned like :func:`~agemem_gym.trainers.policy.response_logprobs` output."""

    prompts: list[list[int]]
    responses: list[list[int]]
    old_logp: Tensor  # (N, R)
    advantages: Tensor  # (N,)
    weights: Tensor  # (N,)
    ref_logp: Tensor | None = None  # (N, R)

    @property
    def tokens(self) -> int:
        return sum(len(p) + len(r) for p, r in zip(self.prompts, self.responses))


def make_micro_batches(
    samples: Sequence[tuple[Step, float, int]],
    *,
    fallback: Step,
    size: int,
    loss_average: Literal["trajectory", "token", "step"],
    device: torch.device,
) -> list[MicroBatch]:
    """Micro-batches of (step, advantage, trajectory index) samples, with their loss weights for the whole batch.

    Samples are sorted by length so that each micro-batch wastes little padding (the loss is a weighted sum, so
    order is free). With no samples (every group skipped), ``fallback`` forms one micro-batch at weight 0, so that
    this rank still runs a backward pass and DDP's gradient all-reduce stays in step.
    """
    scale = 1.0 if samples else 0.0
    samples = samples or [(fallback, 0.0, 0)]
    n_tokens = torch.tensor([len(step.response_ids) for step, _, _ in samples])
    weights = scale * token_weights(torch.tensor([j for _, _, j in samples]), n_tokens, loss_average)  # (N,)
    if dist.is_initialized():
        # DDP averages gradients over ranks; rescale so that the sum over ranks is the global batch's mean: the
        # local weights divide by this rank's count of what the mean is over (trajectories, tokens or steps).
        counts = {
            "trajectory": float(len({j for _, _, j in samples})),
            "token": float(n_tokens.sum()),
            "step": float(len(samples)),
        }
        local = scale * counts[loss_average]
        weights = weights * _world() * local / max(_all_sum([local], device)[0], 1.0)
    order = sorted(range(len(samples)), key=lambda i: len(samples[i][0].prompt_ids) + len(samples[i][0].response_ids))
    batches = []
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        steps = [samples[i][0] for i in idx]
        old_logp, _ = left_pad([s.logprobs for s in steps], 0.0, device, dtype=torch.float32)  # (N, R)
        batches.append(
            MicroBatch(
                prompts=[s.prompt_ids for s in steps],
                responses=[s.response_ids for s in steps],
                old_logp=old_logp,
                advantages=torch.tensor([samples[i][1] for i in idx], dtype=torch.float32, device=device),
                weights=weights[idx].to(device),
            )
        )
    return batches


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------


def main(args: Args) -> dict[str, float]:
    """Train with step-wise GRPO; returns the last update's metrics (plus eval/ metrics when eval_tasks > 0)."""
    # ---- set-up ----
    rank, world_size, device = _setup_distributed(args)
    amp = _autocast(device, args.bf16)
    checkpoint = torch.load(args.resume, map_location="cpu", weights_only=True) if args.resume else None
    _seed_everything(args.seed + rank)  # each rank samples different rollouts
    model, tokenizer = _build_model(args, device)
    lora = args.lora_rank > 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"], strict=not lora)
    # The frozen reference π_ref (Eq. 6). Under LoRA it is the same module with adapters disabled (the base model);
    # otherwise a copy of the starting weights. On resume the starting weights are reloaded, not the checkpoint's.
    ref_model: nn.Module | None = None
    if args.beta > 0 and not lora:
        ref_model = _build_model(args, device)[0] if checkpoint is not None else copy.deepcopy(model)
        ref_model.requires_grad_(False).eval()
    train_model: nn.Module = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay)
    start_update = 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        _set_rng_state(checkpoint["rng"][rank])
        start_update = int(checkpoint["update"])

    run_dir = (
        Path(args.resume).parent
        if args.resume
        else Path(args.output_dir) / (args.run_name or f"{args.exp_name}__{args.seed}__{int(time.time())}")
    )
    if rank == 0 and not args.resume:  # a resumed run keeps its first args.json (each checkpoint has its own)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=2))
    metrics_path = run_dir / "metrics.jsonl"

    groups_per_rank = args.groups_per_update // world_size
    env_kwargs = _json_object(args.env_kwargs, "env_kwargs")
    envs = [gym.make(args.env_id, **env_kwargs) for _ in range(groups_per_rank * args.group_size)]
    all_task_ids = tuple(envs[0].unwrapped.suite.task_ids)  # type: ignore[attr-defined]
    sampling = Sampling(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    eval_sampling = dataclasses.replace(sampling, greedy=args.eval_greedy)
    eval_kwargs = _eval_env_kwargs(args)

    def run_eval() -> dict[str, float]:
        return evaluate(
            model,
            tokenizer,
            args.env_id,
            eval_kwargs,
            num_tasks=args.eval_tasks,
            sampling=eval_sampling,
            args=args,
            amp=amp,
        )

    pad_id = tokenizer.pad_token_id
    metrics: dict[str, float] = {}
    if args.eval_tasks > 0 and args.eval_every > 0 and start_update == 0 < args.num_updates:
        start = {"update": 0, **run_eval()}  # the starting policy (e.g. the SFT warm start), for the curve
        if rank == 0:
            with metrics_path.open("a") as f:
                f.write(json.dumps(start) + "\n")
    bar = tqdm(range(start_update, args.num_updates), disable=not args.progress or rank != 0, desc="grpo")
    for update in bar:
        # ---- rollout ----
        t0 = time.perf_counter()
        # Tasks and reset seeds depend only on (seed, update), so a resumed run draws the same ones; every rank
        # draws the same list and plays its own slice of groups.
        task_ids, reset_seeds = draw_tasks(all_task_ids, args.seed, update, args.groups_per_update)
        mine = slice(rank * groups_per_rank, (rank + 1) * groups_per_rank)
        trajs = rollout(
            model,
            tokenizer,
            envs,
            task_ids[mine],
            reset_seeds[mine],
            sampling,
            max_prompt_tokens=args.max_prompt_tokens,
            max_turns=args.max_turns,
            gen_batch_size=args.gen_batch_size,
            pass_tools=args.pass_tools,
            amp=amp,
        )
        rollout_s = time.perf_counter() - t0
        gen_tokens = sum(len(s.response_ids) for t in trajs for s in t.steps)

        # ---- advantages ----
        rewards = torch.tensor([t.reward for t in trajs], dtype=torch.float64)  # (G·K,) env i is in group i // K
        rewards = rewards.view(groups_per_rank, args.group_size)  # (G, K)
        adv, zero_spread = group_advantages(rewards, args.adv_eps, args.adv_std)  # (G, K), (G,)
        samples = [
            (step, float(adv[traj.group, j % args.group_size]), j)  # A(τ) on every turn, all three stages
            for j, traj in enumerate(trajs)
            if not (args.skip_zero_spread and zero_spread[traj.group])
            for step in traj.steps
        ]
        micro_batches = make_micro_batches(
            samples,
            fallback=trajs[0].steps[0],
            size=args.micro_batch_size,
            loss_average=args.loss_average,
            device=device,
        )

        # ---- update ----
        t1 = time.perf_counter()
        if args.beta > 0:
            # Reference log-probs once per batch, on the very micro-batches (same padding) the policy will see.
            model.eval()
            with torch.no_grad():
                for mb in micro_batches:
                    ref = ref_model if ref_model is not None else model
                    ref_guard = adapters_disabled(model) if ref_model is None else nullcontext()
                    with ref_guard, amp():
                        mb.ref_logp, _ = response_logprobs(ref, mb.prompts, mb.responses, pad_id, args.temperature)
        model.train()
        sums: dict[str, float] = {"loss": 0.0, "policy": 0.0, "kl": 0.0, "clip_frac": 0.0, "ratio": 0.0}
        first_kl = float("nan")
        grad_norm = torch.zeros(())
        for epoch in range(args.update_epochs):
            optimizer.zero_grad(set_to_none=True)
            for j, mb in enumerate(micro_batches):
                last = j == len(micro_batches) - 1
                sync = train_model.no_sync() if (world_size > 1 and not last) else nullcontext()  # type: ignore[operator]
                with sync:
                    with amp():
                        logp, mask = response_logprobs(train_model, mb.prompts, mb.responses, pad_id, args.temperature)
                    loss, stats = grpo_loss(
                        logp,
                        mb.old_logp,
                        mb.ref_logp,
                        mb.advantages,
                        mask,
                        mb.weights,
                        clip_eps=args.clip_eps,
                        beta=args.beta,
                    )
                    loss.backward()
                if epoch == 0 and j == 0:
                    first_kl = (
                        float(masked_mean(kl_k3(logp.detach(), mb.ref_logp), mask)) if mb.ref_logp is not None else 0.0
                    )
                if epoch == args.update_epochs - 1:  # report the last epoch's loss, summed over micro-batches
                    sums["loss"] += float(loss.detach())
                    for key, value in stats.items():
                        sums[key] += float(value)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            optimizer.step()
        update_s = time.perf_counter() - t1
        learn_tokens = sum(mb.tokens for mb in micro_batches) * args.update_epochs  # policy forward+backward tokens

        # ---- logging ----
        everyone = _all_trajectories(trajs)
        totals = _all_sum([gen_tokens, learn_tokens, float(zero_spread.sum()), *sums.values()], device)
        gen_total, learn_total, zero_total, *loss_totals = totals
        metrics = {
            "update": update + 1,
            **episode_metrics(everyone),
            "rollout/zero_spread_groups": zero_total,
            "rollout/samples": float(sum(len(mb.prompts) for mb in micro_batches)),
            **{f"loss/{k}": v / world_size for k, v in zip(sums, loss_totals)},
            "loss/kl_first_microbatch": first_kl,
            "loss/grad_norm": float(grad_norm),
            "perf/rollout_s": rollout_s,
            "perf/update_s": update_s,
            "perf/rollout_tokens_per_s": gen_total / max(rollout_s, 1e-9),
            "perf/learn_tokens_per_s": learn_total / max(update_s, 1e-9),
            "perf/peak_mem_mb": _peak_mem_mb(device),
        }
        done = update + 1 == args.num_updates
        if args.eval_tasks > 0 and (done or (args.eval_every > 0 and (update + 1) % args.eval_every == 0)):
            metrics.update(run_eval())
        if rank == 0:
            with metrics_path.open("a") as f:
                f.write(json.dumps(metrics) + "\n")
            with (run_dir / "samples.jsonl").open("a") as f:
                for t in trajs[: args.log_samples]:
                    turns = [tokenizer.decode(s.response_ids, skip_special_tokens=True) for s in t.steps]
                    f.write(
                        json.dumps({"update": update + 1, "task_id": t.task_id, "R": t.reward, "turns": turns}) + "\n"
                    )
            bar.set_postfix(R=f"{metrics['reward/mean']:.3f}", tok_s=f"{metrics['perf/rollout_tokens_per_s']:.0f}")
        if done or (args.checkpoint_every and (update + 1) % args.checkpoint_every == 0):
            save_checkpoint(run_dir / "checkpoint.pt", model, optimizer, update + 1, args)
            if rank == 0 and args.plot:
                from agemem_gym.trainers.plots import plot_metrics

                plot_metrics(metrics_path, run_dir / "curves.png")

    # ---- evaluation ----
    if args.eval_tasks > 0:
        if start_update >= args.num_updates:  # nothing left to train (e.g. --resume ... --num-updates 0)
            metrics.update(run_eval())
        if rank == 0:
            with (run_dir / "eval.json").open("w") as f:
                json.dump(metrics, f, indent=2)
    for env in envs:
        env.close()
    if world_size > 1 and dist.is_initialized():
        dist.barrier()
    return metrics


def evaluate(
    model: nn.Module,
    tokenizer: Any,
    env_id: str,
    env_kwargs: dict[str, Any],
    *,
    num_tasks: int,
    sampling: Sampling,
    args: Args,
    amp: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> dict[str, float]:
    """Play one episode on each of the suite's first ``num_tasks`` tasks; returns ``eval/``-prefixed metrics.

    Under torchrun each rank plays its share of the tasks and the metrics cover all of them. Sampled decoding draws
    from its own torch RNG, seeded by ``args.seed`` (and the rank), inside a fork of the caller's: every evaluation
    of a run sees the same random numbers (two policies compare on equal terms, and a checkpoint evaluates the same
    way twice), and training after an evaluation samples exactly what it would have sampled without it.
    """
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(args.seed + _rank())
        probe = gym.make(env_id, **env_kwargs)
        task_ids = tuple(probe.unwrapped.suite.task_ids)[:num_tasks]  # type: ignore[attr-defined]
        probe.close()
        mine = task_ids[_rank() :: _world()]
        batch = max(1, min(len(mine), args.gen_batch_size))
        envs = [gym.make(env_id, **env_kwargs) for _ in range(batch)]
        trajs: list[Trajectory] = []
        for start in range(0, len(mine), batch):
            chunk = range(start, min(len(mine), start + batch))
            ids = [mine[i] for i in chunk]
            trajs += rollout(
                model,
                tokenizer,
                envs[: len(ids)],
                ids,
                [args.seed + i for i in chunk],
                sampling,
                max_prompt_tokens=args.max_prompt_tokens,
                max_turns=args.max_turns,
                gen_batch_size=args.gen_batch_size,
                pass_tools=args.pass_tools,
                amp=amp,
            )
        for env in envs:
            env.close()
        return episode_metrics(_all_trajectories(trajs), prefix="eval/")


def load_checkpoint_model(
    path: str | Path, *, trust_remote_module: bool = False, **overrides: Any
) -> tuple[nn.Module, Any, Args]:
    """The model (with its LoRA adapters), tokenizer and ``Args`` of a checkpoint written by :func:`main`.

    ``overrides`` replace saved settings (e.g. ``device="cpu"``). The model is on ``args.device``. checkpoint.pt is
    a torch pickle read with ``weights_only=True`` (no code runs), and its saved settings cannot run code either:
    its ``allow_download`` is ignored (pass it here to download) and its ``env_id`` must be registered unless
    ``trust_remote_module=True`` (see :mod:`agemem_gym.trainers.saved_args`).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = trusted_saved_args(
        state["args"], Args, source=f"checkpoint {str(path)!r}", trust_remote_module=trust_remote_module
    )
    args = Args(**{**saved, **overrides})
    model, tokenizer = _build_model(args, _device(args.device))
    model.load_state_dict(state["model"], strict=args.lora_rank == 0)
    return model, tokenizer, args


def evaluate_checkpoint(
    path: str | Path, num_tasks: int = 20, *, greedy: bool = True, **overrides: Any
) -> dict[str, float]:
    """Load a checkpoint written by :func:`main` and evaluate it (single process) on ``num_tasks`` tasks.

    ``overrides`` (``trust_remote_module`` among them) go to :func:`load_checkpoint_model`.
    """
    model, tokenizer, args = load_checkpoint_model(path, **overrides)
    amp = _autocast(next(model.parameters()).device, args.bf16)

    sampling = Sampling(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, greedy=greedy
    )
    env_kwargs = _eval_env_kwargs(args)
    return evaluate(
        model, tokenizer, args.env_id, env_kwargs, num_tasks=num_tasks, sampling=sampling, args=args, amp=amp
    )


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """Parse command-line flags: ``--preset NAME`` picks the defaults, every other flag overrides them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    found: dict[str, str] = {}
    for i, arg in enumerate(argv):  # pre-scan for the preset and the env id; tyro then parses everything
        for flag in ("--preset", "--env-id"):
            if arg == flag and i + 1 < len(argv):
                found[flag] = argv[i + 1]
            elif arg.startswith(flag + "="):
                found[flag] = arg.split("=", 1)[1]
    env = {"env_id": found["--env-id"]} if "--env-id" in found else {}
    return tyro.cli(Args, default=preset(found.get("--preset", "none"), **env), args=argv)


def cli() -> None:
    """The ``agemem-grpo`` console script."""
    main(parse_args())


if __name__ == "__main__":
    cli()
