"""GRPO trainer throughput on CPU: rollout and learning tokens/s, beside generation and training without the trainer.

For each model, :func:`run_model` runs :func:`agemem_gym.trainers.grpo.main` for a few updates (the ``tiny`` or
``demo`` preset; groups whose rewards are all equal are kept, so that every update learns) and reads its per-update
``perf/`` metrics: ``perf/rollout_tokens_per_s`` (generated tokens over the rollout's wall time, env steps and
chat-template encoding included) and ``perf/learn_tokens_per_s`` (prompt + response tokens through the policy's
forward and backward passes over the update's wall time, reference log-probs included). The first update also
pays one-off costs, so the steady figures are medians over the later updates when there are any.

Baselines, measured right after the trainer run on batches of the shape it saw (as many sequences
as envs, the mean prompt and response lengths): ``policy.generate`` alone (the trainer's sampler without the env),
transformers' own ``model.generate`` (KV cache, sampling, same number of new tokens), and one plain forward and
backward pass of a causal-LM loss over micro-batches of the same token count.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.records import Record
from benchmarks.timing import Log, median, torch_threads

__all__ = ["TrainerConfig", "records", "run", "run_model"]

_PRESET = {"tiny": "tiny"}  # every other model runs the "demo" preset's settings


@dataclass(frozen=True)
class TrainerConfig:
    """What :func:`run` measures."""

    models: tuple[str, ...] = ("tiny", "smollm2")
    updates: dict[str, int] = field(default_factory=lambda: {"tiny": 3, "smollm2": 1})
    overrides: dict[str, Any] = field(default_factory=dict)
    """extra ``Args`` fields for every model (e.g. a smaller rollout for the smoke test)"""
    baselines: bool = True
    threads: int | None = None
    """torch threads (None: torch's default)"""


def _baselines(model_name: str, batch: int, prompt_len: int, new_tokens: int, micro: int) -> dict[str, float]:
    import torch

    from agemem_gym.trainers.models import load_model
    from agemem_gym.trainers.policy import Sampling, generate

    model, tokenizer = load_model(model_name)
    model.eval()
    g = torch.Generator().manual_seed(0)
    vocab = int(model.config.vocab_size)
    prompts = [torch.randint(32, min(vocab, 30_000), (prompt_len,), generator=g).tolist() for _ in range(batch)]
    out: dict[str, float] = {}
    torch.manual_seed(0)
    start = time.perf_counter()
    # stop_strings=() and no EOS cut: every row generates exactly new_tokens tokens, like the HF call below.
    turns = generate(model, tokenizer, prompts, Sampling(max_new_tokens=new_tokens, stop_strings=()))
    out["policy_generate_tokens_per_s"] = sum(len(t.response_ids) for t in turns) / (time.perf_counter() - start)
    ids = torch.tensor(prompts)
    with torch.no_grad():
        start = time.perf_counter()
        gen = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=True,
            pad_token_id=tokenizer.pad_token_id,
        )
        out["hf_generate_tokens_per_s"] = (gen.shape[1] - prompt_len) * batch / (time.perf_counter() - start)
    model.train()
    seq = prompt_len + new_tokens
    tokens = 0
    start = time.perf_counter()
    for lo in range(0, batch, micro):
        rows = min(micro, batch - lo)
        x = torch.randint(32, min(vocab, 30_000), (rows, seq), generator=g)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        tokens += rows * seq
    out["forward_backward_tokens_per_s"] = tokens / (time.perf_counter() - start)
    return out


def run_model(model: str, updates: int, config: TrainerConfig, log: Log) -> dict[str, Any]:
    """Train ``model`` for ``updates`` GRPO updates and return its throughput and the baselines."""
    from agemem_gym.trainers import grpo

    preset = _PRESET.get(model, "demo")
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            "model": model,
            "num_updates": updates,
            "output_dir": tmp,
            "run_name": "bench",
            "progress": False,
            "plot": False,
            "checkpoint_every": 0,
            "skip_zero_spread": False,
            "log_samples": 0,
            "device": "cpu",
            **config.overrides,
        }
        args = grpo.preset(preset, **overrides)
        log(f"trainer: {model} ({preset} preset), {updates} update(s)")
        start = time.perf_counter()
        grpo.main(args)
        wall = time.perf_counter() - start
        rows = [json.loads(line) for line in (Path(tmp) / "bench" / "metrics.jsonl").read_text().splitlines()]
    keys = (
        "perf/rollout_s",
        "perf/update_s",
        "perf/rollout_tokens_per_s",
        "perf/learn_tokens_per_s",
        "perf/peak_mem_mb",
        "rollout/samples",
        "rollout/turns_per_episode",
        "rollout/prompt_tokens_mean",
        "rollout/response_tokens_mean",
    )
    per_update = [{k: r.get(k) for k in keys} for r in rows]
    steady = per_update[1:] or per_update
    result: dict[str, Any] = {
        "model": model,
        "preset": preset,
        "updates": updates,
        "wall_s": wall,
        "envs": args.groups_per_update * args.group_size,
        "max_new_tokens": args.max_new_tokens,
        "micro_batch_size": args.micro_batch_size,
        "steady_updates": len(steady),
        "rollout_tokens_per_s": median([float(u["perf/rollout_tokens_per_s"]) for u in steady]),
        "learn_tokens_per_s": median([float(u["perf/learn_tokens_per_s"]) for u in steady]),
        "per_update": per_update,
    }
    if config.baselines:
        shape = {
            "batch": result["envs"],
            "prompt_len": max(16, round(median([float(u["rollout/prompt_tokens_mean"]) for u in steady]))),
            "new_tokens": max(1, round(median([float(u["rollout/response_tokens_mean"]) for u in steady]))),
            "micro": args.micro_batch_size,
        }
        log(f"trainer: {model} baselines on batches of {shape}")
        after = _baselines(model, **shape)
        result["baseline_shape"] = shape
        result["baselines"] = after
        result["ratio_rollout_vs_hf_generate"] = result["rollout_tokens_per_s"] / after["hf_generate_tokens_per_s"]
        result["ratio_learn_vs_forward_backward"] = (
            result["learn_tokens_per_s"] / after["forward_backward_tokens_per_s"]
        )
    return result


def records(result: dict[str, Any], torch_threads: int) -> list[Record]:
    """:func:`run_model`'s result as records: ``trainer`` (throughput against the baselines, wall time) and
    ``trainer_update`` (each update's ``perf/`` and ``rollout/`` metrics)."""
    at = {
        "model": result["model"],
        "preset": result["preset"],
        "updates": result["updates"],
        "steady_updates": result["steady_updates"],
        "envs": result["envs"],
        "torch_threads": torch_threads,
    }
    base = result.get("baselines", {})
    vs = {"rollout_tokens_per_s": "hf_generate_tokens_per_s", "learn_tokens_per_s": "forward_backward_tokens_per_s"}
    out = []
    for name in ("rollout_tokens_per_s", "learn_tokens_per_s"):
        value, b = result[name], vs[name]
        ratio = value / base[b] if base.get(b) else None
        out.append(
            Record("trainer", name, value, "tokens/s", at, baseline=b if b in base else None,
                   baseline_value=base.get(b), ratio=ratio, repeats=result["steady_updates"])
        )  # fmt: skip
    out += [Record("trainer", name, v, "tokens/s", at) for name, v in base.items()]
    out.append(Record("trainer", "wall_s", result["wall_s"], "s", at))
    for i, update in enumerate(result["per_update"]):
        for key, v in update.items():
            if isinstance(v, (int, float)):
                out.append(Record("trainer_update", key, v, "", {"model": result["model"], "update": i}))
    return out


def run(config: TrainerConfig, log: Log) -> list[Record]:
    """:func:`run_model` for every model in ``config.models``, as records."""
    with torch_threads(config.threads):
        import torch

        threads = torch.get_num_threads()
        return [r for m in config.models for r in records(run_model(m, config.updates.get(m, 1), config, log), threads)]
