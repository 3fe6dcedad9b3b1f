"""Supervised warm start before GRPO: imitate a scripted policy's turns (e.g. ``agemem_gym.evaluation.agents.OraclePolicy``).

Runs:
    python -m agemem_gym.trainers.sft --policy oracle --episodes 64 --out runs/sft-smollm2
    python -m agemem_gym.trainers.sft --data steps.jsonl --out runs/sft-smollm2       # step records
    python -m agemem_gym.trainers.sft --data rec/oracle.jsonl --out runs/sft-smollm2  # an episode recording
    python -m agemem_gym.trainers.grpo --model runs/sft-smollm2 ...        # then GRPO from the warm start

The data are step records (:mod:`agemem_gym.step_records`, the project's one training format): ``--policy``
collects them (``--save-data`` keeps them), ``--data`` reads a file of them, or an episode recording
(:mod:`agemem_gym.evaluation.recorder`), which is replayed into step records of its well-formed turns. A record's
``messages`` (the context the env showed, ``info["messages"]``) is the prompt and its ``response`` (the action text
the policy answered) the target; a record whose ``loss_mask`` is all 0 is left out. Prompts are tokenised exactly as
in GRPO rollouts (:func:`~agemem_gym.chat.encode_chat`; token ids stored in the records are not used, since they may
come from another tokenizer) and the loss covers the response tokens only (plus EOS, the end-of-turn token the chat
template would write). The warm-started model is saved as a plain folder (LoRA merged), so that GRPO's reference
policy is the warm-started model.

A file of the earlier SFT pair format (``{"messages", "response"}`` lines) is refused with the fix: collect the
records again with ``--policy NAME --save-data FILE``, or export them from the episode recording
(``agemem_gym.evaluation.recorder.export_sft``).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from agemem_gym.evaluation.recorder import load_episodes, to_step_records
from agemem_gym.jsonl import decode_line
from agemem_gym.step_records import collect_records, read_records, tokenize_step, write_records
from agemem_gym.trainers.lora import DEFAULT_TARGETS, apply_lora, merge_lora
from agemem_gym.trainers.models import load_model
from agemem_gym.trainers.policy import response_logprobs

__all__ = ["SFTArgs", "collect_pairs", "encode_pair", "main", "read_jsonl", "sft_loss", "train_sft", "write_jsonl"]


def collect_pairs(env: Any, policy: Any, task_ids: Iterable[Any], *, seed: int = 0) -> list[dict[str, Any]]:
    """Step records of ``policy`` (``reset(info)``, ``act(observation, info) -> str``), one episode per task
    reset with ``seed``: :func:`~agemem_gym.step_records.collect_records` with ``group_size=1``."""
    return list(collect_records(env, policy, task_ids, group_size=1, seed=seed))


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> None:
    """Write step records, validated and atomically (:func:`~agemem_gym.step_records.write_records`)."""
    write_records(records, path)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The step records of a file: a file of step records, or an episode recording (replayed into step records of
    its well-formed turns, :func:`~agemem_gym.evaluation.recorder.to_step_records`).

    Raises:
        DataError: (a ``ValueError``) ``path:line: ...`` naming what is wrong with a line, or the fix for a file of
            the earlier pair format; or a recording that does not replay.
    """
    if _is_recording(path):
        return list(to_step_records(load_episodes(path)))
    return list(read_records(path))


def _is_recording(path: str | Path) -> bool:
    """Whether the file's first line is an episode recording's header (:mod:`agemem_gym.evaluation.recorder`)."""
    with Path(path).open("rb") as f:
        first = next((raw for raw in f if raw.strip()), b"")
    try:
        value = decode_line(first)
    except ValueError:
        return False  # read_records reports the line
    return isinstance(value, dict) and value.get("type") == "header"


def encode_pair(
    tokenizer: Any, record: dict[str, Any], *, max_prompt_tokens: int | None = None
) -> tuple[list[int], list[int]]:
    """Prompt ids (as GRPO rollouts render them) and response ids (the action text, then EOS) of a step record."""
    return tokenize_step(tokenizer, record["messages"], record["response"], max_prompt_tokens=max_prompt_tokens)


def sft_loss(
    model: nn.Module,
    prompts: Sequence[list[int]],
    responses: Sequence[list[int]],
    pad_id: int,
    *,
    n_tokens: int | None = None,
) -> Tensor:
    """Mean negative log-likelihood of the response tokens (prompt tokens carry no loss).

    ``n_tokens`` divides the summed NLL instead of this call's own token count: pass the whole batch's count when
    the batch is split into micro-batches, so that their losses (and gradients) add up to the batch mean exactly.
    """
    logp, mask = response_logprobs(model, prompts, responses, pad_id)  # (N, R), (N, R)
    return -(logp * mask).sum() / (mask.sum() if n_tokens is None else n_tokens)


def train_sft(
    model: nn.Module,
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    *,
    epochs: int = 1,
    learning_rate: float = 1e-4,
    batch_size: int = 8,
    micro_batch_size: int | None = None,
    max_prompt_tokens: int | None = 4096,
    seed: int = 0,
    lr_decay: bool = True,
) -> list[float]:
    """Fine-tune ``model`` on step records with AdamW (shuffled each epoch); returns the loss of every step.

    Each record's ``messages`` is the prompt and its ``response`` the target (:func:`encode_pair`); records whose
    ``loss_mask`` is all 0 are left out.

    Each optimizer step takes ``batch_size`` records; with ``micro_batch_size`` they go through the model that many
    at a time, gradients accumulating (same step, a fraction of the activation memory). With ``lr_decay`` the
    learning rate falls linearly from ``learning_rate`` to 0 over the run, so the weights that are kept do not
    depend on where the last full-size (noisy) step happened to land.
    """
    micro = micro_batch_size or batch_size
    trained = [r for r in records if any(r.get("loss_mask", (1,)))]  # a record masked out entirely is not a target
    pairs = [encode_pair(tokenizer, r, max_prompt_tokens=max_prompt_tokens) for r in trained]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate)
    total = epochs * -(-len(pairs) // batch_size)  # optimizer steps in the run
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total if lr_decay else 1.0)
    rng = random.Random(seed)
    losses = []
    model.train()
    for _ in range(epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = [pairs[i] for i in order[start : start + batch_size]]
            n_tokens = sum(len(r) for _, r in batch)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for m in range(0, len(batch), micro):
                part = batch[m : m + micro]
                loss = sft_loss(
                    model, [p for p, _ in part], [r for _, r in part], tokenizer.pad_token_id, n_tokens=n_tokens
                )
                loss.backward()
                step_loss += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            losses.append(step_loss)
    return losses


@dataclass
class SFTArgs:
    """Supervised warm start from a scripted policy's episodes or a JSONL file of records."""

    out: str
    """folder to save the warm-started model and tokenizer into (load it in GRPO with --model OUT)"""
    model: str = "smollm2"
    """"tiny", "tiny-128", "smollm2", or any HF causal LM name or local folder"""
    data: str | None = None
    """step records (agemem_gym.step_records) or an episode recording (agemem_gym.evaluation.recorder) to train on; default:
    collect step records with --policy"""
    policy: str = "oracle"
    """scripted policy from agemem_gym.evaluation.agents.make_policy that plays the episodes"""
    episodes: int = 32
    """episodes to collect with --policy (one per task, the suite's first tasks)"""
    env_id: str = "AgeMem-Synthetic-v0"
    """Gymnasium id of the environment"""
    env_kwargs: str = "{}"
    """JSON object passed to gym.make"""
    save_data: str | None = None
    """also write the collected step records to this JSONL file (readable with --data)"""
    epochs: int = 2
    """passes over the records"""
    learning_rate: float = 1e-4
    """AdamW learning rate (at the first step; see lr_decay)"""
    lr_decay: bool = True
    """decay the learning rate linearly to 0 over the run"""
    batch_size: int = 8
    """records per optimizer step"""
    micro_batch_size: int | None = None
    """records per forward/backward (gradients accumulate up to batch_size); default: the whole batch"""
    max_prompt_tokens: int = 4096
    """longer prompts keep their last tokens (as in GRPO)"""
    lora_rank: int = 0
    """LoRA rank (adapters are merged before saving); 0 trains every weight"""
    lora_alpha: float = 32.0
    """LoRA scaling numerator"""
    seed: int = 0
    """seed of torch, the shuffling and the env resets"""
    allow_download: bool = False
    """allow transformers to download --model from the Hub"""


def main(args: SFTArgs) -> list[float]:
    """Collect or read the records, fine-tune, save the model folder; returns the step losses."""
    import gymnasium as gym

    import agemem_gym  # noqa: F401  (registers the env ids)

    torch.manual_seed(args.seed)
    if args.data is not None:
        records = read_jsonl(args.data)
    else:
        from agemem_gym.evaluation.agents import make_policy

        env = gym.make(args.env_id, **json.loads(args.env_kwargs))
        task_ids = tuple(env.unwrapped.suite.task_ids)[: args.episodes]  # type: ignore[attr-defined]
        records = collect_pairs(env, make_policy(args.policy, env.unwrapped, seed=args.seed), task_ids, seed=args.seed)
        if args.save_data:
            write_jsonl(records, args.save_data)
    model, tokenizer = load_model(args.model, seed=args.seed, allow_download=args.allow_download)
    if args.lora_rank > 0:
        apply_lora(model, rank=args.lora_rank, alpha=args.lora_alpha, targets=DEFAULT_TARGETS)
    losses = train_sft(
        model,
        tokenizer,
        records,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        lr_decay=args.lr_decay,
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        max_prompt_tokens=args.max_prompt_tokens,
        seed=args.seed,
    )
    merge_lora(model).save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(
        f"SFT: {len(records)} records, loss {losses[0]:.3f} -> {losses[-1]:.3f}; saved to {args.out}", file=sys.stderr
    )
    return losses


if __name__ == "__main__":
    import tyro

    main(tyro.cli(SFTArgs))
