"""Step-wise GRPO for AgeMem-Gym, read top to bottom like CleanRL's ppo.py: Args, then main(args), then evaluation.

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

The file holds the settings (``Args``, presets, the CLI) and the loop; the parts it calls each live in one module:
``grpo_math`` (advantages, loss, micro-batches: pure tensor functions), ``rollouts`` (playing episodes, task
draws, episode metrics), ``checkpoint`` (save, load, and where a run starts, reference model included) and
``distributed`` (ranks, devices, collectives under torchrun). It is ~700 lines because the settings are a third
of it (``Args``: every flag with its documentation, the presets, and ``check_args``'s rule-value-fix messages),
which belong beside the loop that reads them, as in CleanRL; ``main`` is ~200 lines.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import torch
import tyro
from torch import nn
from tqdm import tqdm

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.env import SHORT_EPISODE
from agemem_gym.trainers import distributed
from agemem_gym.trainers.checkpoint import load_checkpoint, restore_run, save_checkpoint, save_json
from agemem_gym.trainers.grpo_math import (
    LossAverage,
    group_advantages,
    grpo_loss,
    kl_k3,
    make_micro_batches,
    masked_mean,
    mean_count,
    token_weights,
)
from agemem_gym.trainers.lora import DEFAULT_TARGETS, adapters_disabled, apply_lora
from agemem_gym.trainers.models import load_model
from agemem_gym.trainers.policy import Sampling, response_logprobs, token_logprobs
from agemem_gym.trainers.rollouts import Step, Trajectory, draw_tasks, episode_metrics, play_tasks, rollout
from agemem_gym.trainers.saved_args import trusted_saved_args

__all__ = [  # the pure functions and rollouts live in grpo_math and rollouts; they are re-exported here
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

PresetName = Literal["none", "tiny", "demo"]


@dataclass
class Args:
    """Step-wise GRPO on an AgeMem-Gym environment."""

    # ---- experiment ----
    exp_name: str = "grpo"
    """name of this experiment (part of the run folder's name)"""
    preset: PresetName = "none"
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
    loss_average: LossAverage = "trajectory"
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


def _json_object(text: str, name: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name!r} must be a JSON object, got {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name!r} must be a JSON object, got {text!r}")
    return value


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


def _eval_due(args: Args, updates_done: int) -> bool:
    """Whether the policy after ``updates_done`` updates is evaluated: after the last update (or when none is left
    to do) and, with ``eval_every``, every that many updates, the starting policy (0) included."""
    if args.eval_tasks == 0:
        return False
    return updates_done >= args.num_updates or (args.eval_every > 0 and updates_done % args.eval_every == 0)


def _every_rank(trajs: list[Trajectory]) -> list[Trajectory]:
    """Every rank's trajectories, for metrics (gathered without their steps: the step data stays local)."""
    if distributed.world_size() == 1:
        return trajs
    return distributed.gather_lists([dataclasses.replace(t, steps=[]) for t in trajs])


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------


def main(args: Args) -> dict[str, float]:
    """Train with step-wise GRPO; returns the last update's metrics (plus eval/ metrics when eval_tasks > 0).

    One signposted loop, as CleanRL's: set-up, then per update rollout -> advantages -> update -> logging and
    evaluation -> checkpoint, then the run's final files.
    """
    # ---- set-up: this rank, the model and its optimizer, where the run starts, the envs ----
    launch = distributed.Launch.from_environment()
    check_args(args, launch.world_size)
    device = distributed.setup(launch, args.device)
    rank, world_size = launch.rank, launch.world_size
    amp = distributed.autocast(device, args.bf16)
    checkpoint = load_checkpoint(args.resume) if args.resume else None
    random.seed(args.seed + rank)  # each rank samples different rollouts
    torch.manual_seed(args.seed + rank)  # (also seeds every CUDA device)
    model, tokenizer = _build_model(args, device)
    lora = args.lora_rank > 0
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay)
    # Update 0 or the checkpoint's exact state; the reference model π_ref of Eq. 6 for each case (None under LoRA:
    # the policy with its adapters disabled, and with beta = 0): see checkpoint.restore_run.
    start = restore_run(
        checkpoint,
        model,
        optimizer,
        lora=lora,
        beta=args.beta,
        starting_model=lambda: _build_model(args, device)[0],
        source=f"checkpoint {args.resume!r}",
    )
    train_model = distributed.wrap_ddp(model, device)  # after the restore: DDP broadcasts rank 0's weights

    run_dir = (
        Path(args.resume).parent
        if args.resume
        else Path(args.output_dir) / (args.run_name or f"{args.exp_name}__{args.seed}__{int(time.time())}")
    )
    if rank == 0 and not args.resume:  # a resumed run keeps its first args.json (each checkpoint has its own)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_json(run_dir / "args.json", dataclasses.asdict(args))
    metrics_path = run_dir / "metrics.jsonl"
    groups_per_rank = args.groups_per_update // world_size
    env_kwargs = _json_object(args.env_kwargs, "env_kwargs")
    envs = [gym.make(args.env_id, **env_kwargs) for _ in range(groups_per_rank * args.group_size)]
    all_task_ids = tuple(envs[0].unwrapped.suite.task_ids)  # type: ignore[attr-defined]
    sampling = Sampling(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    pad_id = tokenizer.pad_token_id

    # ---- evaluation of the starting policy ----
    # A fresh run's starting policy (e.g. the SFT warm start) is update 0 of the eval curve; a run with nothing left
    # to train (--num-updates 0, or resumed at its last update) is evaluated as it is. A run resumed mid-way was
    # evaluated at this update before it stopped.
    metrics: dict[str, float] = {}
    if _eval_due(args, start.update) and (start.update == 0 or start.update >= args.num_updates):
        metrics = evaluate(model, tokenizer, args)
        if start.update < args.num_updates and rank == 0:
            _append_jsonl(metrics_path, {"update": 0, **metrics})

    bar = tqdm(range(start.update, args.num_updates), disable=not args.progress or rank != 0, desc="grpo")
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
        adv, zero_spread = group_advantages(rewards, args.adv_eps, args.adv_std)  # (G, K), (G,)  Eq. 5
        samples = [
            (step, float(adv[traj.group, j % args.group_size]), j)  # A(τ) on every turn, all three stages
            for j, traj in enumerate(trajs)
            if not (args.skip_zero_spread and zero_spread[traj.group])
            for step in traj.steps
        ]
        # Under DDP the batch mean divides by the count over every rank's samples (identity on one process).
        global_count = distributed.all_sum([mean_count(samples, args.loss_average)], device)[0]
        micro_batches = make_micro_batches(
            samples,
            fallback=trajs[0].steps[0],
            size=args.micro_batch_size,
            loss_average=args.loss_average,
            device=device,
            world_size=world_size,
            global_count=global_count,
        )

        # ---- update ----
        t1 = time.perf_counter()
        if args.beta > 0:
            # Reference log-probs once per batch, on the very micro-batches (same padding) the policy will see.
            ref = start.reference if start.reference is not None else model
            model.eval()
            with torch.no_grad():
                for mb in micro_batches:
                    ref_guard = adapters_disabled(model) if start.reference is None else nullcontext()
                    with ref_guard, amp():
                        mb.ref_logp, _ = response_logprobs(ref, mb.prompts, mb.responses, pad_id, args.temperature)
        model.train()
        sums: dict[str, float] = {"loss": 0.0, "policy": 0.0, "kl": 0.0, "clip_frac": 0.0, "ratio": 0.0}
        first_kl = float("nan")
        grad_norm = torch.zeros(())
        for epoch in range(args.update_epochs):
            optimizer.zero_grad(set_to_none=True)
            for j, mb in enumerate(micro_batches):
                with distributed.gradient_sync(train_model, last=j == len(micro_batches) - 1):
                    with amp():
                        logp, mask = response_logprobs(train_model, mb.prompts, mb.responses, pad_id, args.temperature)
                    loss, stats = grpo_loss(  # Eq. 6
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

        # ---- logging and evaluation ----
        everyone = _every_rank(trajs)
        totals = distributed.all_sum([gen_tokens, learn_tokens, float(zero_spread.sum()), *sums.values()], device)
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
            "perf/peak_mem_mb": distributed.peak_memory_mb(device),
        }
        if _eval_due(args, update + 1):
            metrics.update(evaluate(model, tokenizer, args))
        if rank == 0:
            _append_jsonl(metrics_path, metrics)
            for t in trajs[: args.log_samples]:
                turns = [tokenizer.decode(s.response_ids, skip_special_tokens=True) for s in t.steps]
                _append_jsonl(
                    run_dir / "samples.jsonl",
                    {"update": update + 1, "task_id": t.task_id, "R": t.reward, "turns": turns},
                )
            bar.set_postfix(R=f"{metrics['reward/mean']:.3f}", tok_s=f"{metrics['perf/rollout_tokens_per_s']:.0f}")

        # ---- checkpoint ----
        if update + 1 == args.num_updates or (args.checkpoint_every and (update + 1) % args.checkpoint_every == 0):
            save_checkpoint(
                run_dir / "checkpoint.pt", model, optimizer, update + 1, dataclasses.asdict(args), lora=lora
            )
            if rank == 0 and args.plot:
                from agemem_gym.trainers.plots import plot_metrics

                plot_metrics(metrics_path, run_dir / "curves.png")

    # ---- the run's final files ----
    if args.eval_tasks > 0 and rank == 0:
        save_json(run_dir / "eval.json", metrics)
    for env in envs:
        env.close()
    distributed.barrier()
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# Evaluation: the one function that main (update 0, every eval_every, the last update, nothing left to train) and
# evaluate_checkpoint call
# ---------------------------------------------------------------------------------------------------------------


def evaluate(
    model: nn.Module, tokenizer: Any, args: Args, *, num_tasks: int | None = None, greedy: bool | None = None
) -> dict[str, float]:
    """Play one episode on each of the eval suite's first ``num_tasks`` tasks; returns ``eval/``-prefixed metrics.

    The eval suite is ``args.env_id`` with ``args.eval_env_kwargs`` merged over ``args.env_kwargs``; decoding is
    the rollouts' (temperature, top_p, max_new_tokens), greedy or sampled. ``num_tasks`` defaults to
    ``args.eval_tasks`` and ``greedy`` to ``args.eval_greedy``.

    Under torchrun each rank plays its share of the tasks and the metrics cover all of them. Sampled decoding draws
    from its own torch RNG, seeded by ``args.seed`` (and the rank), inside a fork of the caller's: every evaluation
    of a run sees the same random numbers (two policies compare on equal terms, and a checkpoint evaluates the same
    way twice), and training after an evaluation samples exactly what it would have sampled without it.
    """
    num_tasks = args.eval_tasks if num_tasks is None else num_tasks
    sampling = Sampling(
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        greedy=args.eval_greedy if greedy is None else greedy,
    )
    env_kwargs = {
        **_json_object(args.env_kwargs, "env_kwargs"),
        **_json_object(args.eval_env_kwargs, "eval_env_kwargs"),
    }
    device = next(model.parameters()).device
    rank, world_size = distributed.rank(), distributed.world_size()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(args.seed + rank)
        probe = gym.make(args.env_id, **env_kwargs)
        task_ids = tuple(probe.unwrapped.suite.task_ids)[:num_tasks]  # type: ignore[attr-defined]
        probe.close()
        trajs = play_tasks(
            model,
            tokenizer,
            lambda: gym.make(args.env_id, **env_kwargs),
            task_ids[rank::world_size],
            [args.seed + i for i in range(len(task_ids[rank::world_size]))],
            sampling,
            gen_batch_size=args.gen_batch_size,
            max_prompt_tokens=args.max_prompt_tokens,
            max_turns=args.max_turns,
            pass_tools=args.pass_tools,
            amp=distributed.autocast(device, args.bf16),
        )
        return episode_metrics(_every_rank(trajs), prefix="eval/")


def load_checkpoint_model(
    path: str | Path, *, trust_remote_module: bool = False, **overrides: Any
) -> tuple[nn.Module, Any, Args]:
    """The model (with its LoRA adapters), tokenizer and ``Args`` of a checkpoint written by :func:`main`.

    ``overrides`` replace saved settings (e.g. ``device="cpu"``). The model is on ``args.device``. checkpoint.pt is
    a torch pickle read with ``weights_only=True`` (no code runs), and its saved settings cannot run code either:
    its ``allow_download`` is ignored (pass it here to download) and its ``env_id`` must be registered unless
    ``trust_remote_module=True`` (see :mod:`agemem_gym.trainers.saved_args`).
    """
    state = load_checkpoint(path)
    saved = trusted_saved_args(
        state["args"], Args, source=f"checkpoint {str(path)!r}", trust_remote_module=trust_remote_module
    )
    args = Args(**{**saved, **overrides})
    model, tokenizer = _build_model(args, distributed.resolve_device(args.device))
    model.load_state_dict(state["model"], strict=args.lora_rank == 0)
    return model, tokenizer, args


def evaluate_checkpoint(
    path: str | Path, num_tasks: int = 20, *, greedy: bool = True, **overrides: Any
) -> dict[str, float]:
    """Load a checkpoint written by :func:`main` and evaluate it (single process) on ``num_tasks`` tasks.

    ``overrides`` (``trust_remote_module`` among them) go to :func:`load_checkpoint_model`.
    """
    model, tokenizer, args = load_checkpoint_model(path, **overrides)
    return evaluate(model, tokenizer, args, num_tasks=num_tasks, greedy=greedy)


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Defaults:
    """The two flags that decide the defaults of every other flag (the preset, and the env id it adapts to)."""

    preset: PresetName = "none"
    env_id: str = Args.env_id


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """Parse command-line flags: ``--preset NAME`` picks the defaults, every other flag overrides them, in any order.

    tyro parses twice: first only ``--preset`` and ``--env-id`` (everything else is passed over), then every flag of
    ``Args`` over the preset's defaults (``tyro.cli(default=...)``, so ``--help`` shows the preset's values). tyro's
    own choice between default configs (``tyro.extras.overridable_config_cli``, subcommands from defaults) is not
    used because it makes the preset a positional subcommand that must come first (``agemem-grpo tiny
    --num-updates 3``; ``--preset tiny``, flags before it, and no preset at all are all refused), which would break
    the documented ``--preset`` interface; and a preset's defaults depend on ``--env-id`` (the text games take no
    episode settings), which one fixed default per subcommand cannot say. tyro's docs suggest selecting the default
    from an argument parsed first (https://brentyi.github.io/tyro/building_configuration_systems/).
    """
    chosen, _ = tyro.cli(_Defaults, args=argv, return_unknown_args=True, add_help=False)
    return tyro.cli(Args, default=preset(chosen.preset, env_id=chosen.env_id), args=argv)


def cli() -> None:
    """The ``agemem-grpo`` console script."""
    main(parse_args())


if __name__ == "__main__":
    cli()
