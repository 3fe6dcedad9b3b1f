"""Command line: ``agemem-eval`` (scripted policies over N tasks, as a table) and ``agemem-play`` (be the agent).

agemem-eval --env-id AgeMem-Synthetic-v0 --episodes 50
agemem-eval --audit --episodes 50          # the reward audit: exploit policies vs honest memory use, every term
agemem-eval --env-id AgeMem-HotpotQA-v0 --data-path hotpot_dev_distractor_v1.json --episodes 200 --json-out r.json
agemem-eval --policies no_memory model:runs/learn__1/grpo/checkpoint.pt --episodes 64   # a trained checkpoint
agemem-eval --policies "openai:http://127.0.0.1:8000/v1?model=NAME&concurrency=16"      # a served model (vLLM, ...)
agemem-play --env-id AgeMem-Synthetic-v0 --seed 3
python -m agemem_gym.evaluation.cli {eval,play} ...
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import tyro

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.errors import ConfigError, EndpointError
from agemem_gym.evaluation import EvalResult, evaluate, evaluate_async
from agemem_gym.evaluation.agents import POLICIES, answer, make_policy, tool_call
from agemem_gym.evaluation.audit import AUDIT_POLICIES, audit_table, reward_audit
from agemem_gym.evaluation.recorder import RecordEpisodes, merge_recordings
from agemem_gym.textenv import TextEvalResult, TextGameEnv, evaluate_text_game
from agemem_gym.tools import TOOL_NAMES

__all__ = [
    "EvalArgs",
    "PlayArgs",
    "eval_main",
    "main",
    "play_main",
    "render_table",
    "render_text_table",
    "run_eval",
    "run_text_eval",
]


def _make_env(env_id: str, data_path: str | None, env_kwargs: str) -> gym.Env[str, str]:
    try:
        kwargs: dict[str, Any] = json.loads(env_kwargs)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--env-kwargs must be a JSON object, got {env_kwargs!r} ({err.msg})") from None
    if not isinstance(kwargs, dict):
        raise ConfigError(f"--env-kwargs must be a JSON object, got {env_kwargs!r}")
    if data_path is not None:
        kwargs["data_path"] = data_path
    return gym.make(env_id, **kwargs)


@dataclass
class EvalArgs:
    """Evaluate scripted policies on the same tasks and print the paper's metrics as a table."""

    env_id: str = "AgeMem-Synthetic-v0"
    """Registered env id."""
    policies: tuple[str, ...] = POLICIES
    """Policies to evaluate: oracle, oracle_heuristic, rag, no_memory, random, model:<checkpoint.pt | model name |
    folder>[?sample=1&temperature=T] for a trained model (needs the [train] extra), or
    openai:<base_url>?model=NAME[&temperature=T&max_tokens=N&concurrency=C&...] for any OpenAI-compatible chat
    endpoint (vLLM, SGLang, llama.cpp; the [openai] extra; the key from $OPENAI_API_KEY; options: see
    agemem_gym.evaluation.openai_policy)."""
    episodes: int = 20
    """Tasks to run per policy (a seeded sample without repeats; all policies get the same tasks)."""
    seed: int = 0
    """Seed for the task sample and the policies."""
    data_path: str | None = None
    """HotpotQA file (for the HotpotQA id); else AGEMEM_HOTPOTQA_PATH or the cache dir."""
    env_kwargs: str = "{}"
    """Extra env constructor kwargs as JSON, e.g. '{"reward_weights": "released_weights"}'."""
    json_out: str | None = None
    """Write the per-policy summaries and per-episode rows here."""
    record_dir: str | None = None
    """Record every episode to <dir>/<policy>.jsonl (replayable; exportable as SFT data), in task order; characters
    other than letters, digits, '.', '-' and '_' in the policy's name become '_'."""
    progress: bool = True
    """Show progress bars."""
    audit: bool = False
    """Print the reward audit instead (agemem_gym.evaluation.audit): every term and memory quality for the exploit policies,
    the honest policies and the oracle on the same tasks; --policies is ignored unless given explicitly."""
    audit_reader: Literal["none", "heuristic"] = "none"
    """With --audit: "none" answers "unknown" (holds the task term fixed), "heuristic" reads the retrieved memories."""


def _is_text_game(env_id: str) -> bool:
    """Whether the registered id makes a :class:`~agemem_gym.textenv.TextGameEnv` (read from its entry point,
    without making one)."""
    entry = gym.spec(env_id).entry_point
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return isinstance(entry, type) and issubclass(entry, TextGameEnv)


def run_text_eval(args: EvalArgs) -> dict[str, TextEvalResult]:
    """Every policy of ``args`` on the same games of a text-game id (``--policies`` by default: the suite's own
    scripted ones, ``TextGameEnv.SCRIPTED``); episode i plays game seed ``args.seed + i``."""
    results: dict[str, TextEvalResult] = {}
    probe = _make_env(args.env_id, args.data_path, args.env_kwargs)
    names = tuple(probe.unwrapped.SCRIPTED) if args.policies == POLICIES else args.policies  # type: ignore[attr-defined]
    probe.close()
    for name in names:
        env = _make_env(args.env_id, args.data_path, args.env_kwargs)
        game_env: TextGameEnv = env.unwrapped  # type: ignore[assignment]
        policy = (
            make_policy(name, game_env, seed=args.seed) if ":" in name else game_env.scripted_policy(name, args.seed)
        )
        try:
            results[name] = evaluate_text_game(env, policy, episodes=args.episodes, seed=args.seed)
        finally:
            env.close()
    return results


_TEXT_COLUMNS = (
    ("success", "success", ".2f"),
    ("progress", "progress", ".3f"),
    ("R", "R", ".3f"),
    ("turns", "steps", ".1f"),
    ("game steps", "game_steps", ".1f"),
    ("errors", "errors", ".2f"),
    ("tok peak", "tokens_peak", ".0f"),
    *((n.split("_")[0][:3].upper(), f"tool/{n}", ".2f") for n in TOOL_NAMES),
    ("trunc", "truncated", ".2f"),
)


def render_text_table(results: dict[str, TextEvalResult]) -> str:
    """A markdown table of a text game's per-policy means (success rate, progress, R, tool calls per episode)."""
    return _markdown({name: res.summary for name, res in results.items()}, _TEXT_COLUMNS)


def _markdown(summaries: dict[str, dict[str, float]], columns: Sequence[tuple[str, str, str]]) -> str:
    """One row per policy, one column per ``(header, summary key, format)``; a missing key reads ``n/a``."""
    lines = ["| policy | " + " | ".join(c[0] for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, summary in summaries.items():
        lines.append(f"| {name} | " + " | ".join(_cell(summary, key, fmt) for _, key, fmt in columns) + " |")
    return "\n".join(lines)


def run_eval(args: EvalArgs) -> dict[str, EvalResult]:
    """Run every policy of ``args`` on the same task sample; returns results by policy name.

    A policy with ``concurrency`` (a served model: ``openai:...``) plays that many episodes at once, one env each;
    its episodes still see the same tasks, seeds and order as one at a time.
    """
    results: dict[str, EvalResult] = {}
    for name in args.policies:
        env = _make_env(args.env_id, args.data_path, args.env_kwargs)
        ids = list(env.unwrapped.suite.task_ids)  # type: ignore[attr-defined]
        order = np.random.default_rng(args.seed).permutation(len(ids))[: args.episodes]
        tasks = [ids[int(i)] for i in order]
        policy = make_policy(name, env.unwrapped, seed=args.seed)
        record = Path(args.record_dir) / f"{_file_name(name)}.jsonl" if args.record_dir is not None else None
        if hasattr(policy, "episode") and hasattr(policy, "concurrency"):
            results[name] = _run_concurrent(args, env, policy, tasks, record)
            continue
        if record is not None:
            env = RecordEpisodes(env, record)
        results[name] = evaluate(env, policy, task_ids=tasks, seed=args.seed, progress=args.progress)
        env.close()
    return results


def _file_name(policy: str) -> str:
    """A policy name as one file name (``openai:http://h:8000/v1?model=m`` holds slashes and a query)."""
    return re.sub(r"[^\w.-]+", "_", policy).strip("._") or "policy"


def _run_concurrent(
    args: EvalArgs, env: gym.Env[str, str], policy: Any, tasks: list[str], record: Path | None
) -> EvalResult:
    """``policy.concurrency`` envs made alike, the episodes spread over them; a recording is made one file per env
    and merged in task order."""
    n = max(1, min(int(policy.concurrency), len(tasks)))
    envs = [env] + [_make_env(args.env_id, args.data_path, args.env_kwargs) for _ in range(n - 1)]
    parts: list[Path] = []
    tmp: str | None = None
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{record.stem}.", dir=record.parent)
        parts = [Path(tmp) / f"env{k}.jsonl" for k in range(n)]
        envs = [RecordEpisodes(e, p) for e, p in zip(envs, parts)]
    try:
        result = asyncio.run(evaluate_async(envs, policy, task_ids=tasks, seed=args.seed, progress=args.progress))
    finally:
        for e in envs:
            e.close()
        if record is not None and tmp is not None:
            merge_recordings([p for p in parts if p.exists()], record)
            shutil.rmtree(tmp, ignore_errors=True)
    return result


_COLUMNS = (
    ("R", "R", ".3f"),
    ("task", "task_score", ".3f"),
    ("EM", "EM", ".3f"),
    ("F1", "F1", ".3f"),
    ("R_ctx", "R_context", ".3f"),
    ("R_mem", "R_memory", ".3f"),
    ("MQ-P", "MQ_precision", ".2f"),
    ("MQ-R", "MQ_recall", ".2f"),
    ("MQ-F1", "MQ_f1", ".2f"),
    ("ret→ans", "retrieved_before_answer", ".2f"),
    ("tok peak", "tokens_peak", ".0f"),
    ("P tok/turn", "prompt_tokens_per_turn", ".0f"),
    ("C tok/turn", "completion_tokens_per_turn", ".1f"),
    *((n.split("_")[0][:3].upper(), f"tool/{n}", ".2f") for n in TOOL_NAMES),
    ("trunc", "truncated", ".2f"),
    ("steps/s", "steps_per_s", ".0f"),
)


def _cell(summary: dict[str, float], key: str, fmt: str) -> str:
    if key not in summary:
        return "n/a"
    if key == "steps_per_s" and summary[key] < 10:  # a served or local model: "0" would hide its rate
        return format(summary[key], ".2f")
    return format(summary[key], fmt)


def render_table(results: dict[str, EvalResult]) -> str:
    """A markdown table of the per-policy means (tool columns: calls per episode, as the paper's Table 3).

    ``P tok/turn`` and ``C tok/turn`` are the prompt and completion tokens per agent turn that a served model
    reported in its responses' ``usage`` (mean over episodes); they read ``n/a`` for policies that report no usage
    (scripted ones, local models), or when a response came without it.
    """
    return _markdown({name: res.summary for name, res in results.items()}, _COLUMNS)


def eval_main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``agemem-eval``."""
    args = tyro.cli(EvalArgs, args=argv)
    try:
        _eval(args)
    except (ConfigError, ImportError, EndpointError) as err:
        print(f"agemem-eval: {err}", file=sys.stderr)
        sys.exit(2)


def _eval(args: EvalArgs) -> None:
    if args.audit:
        env = _make_env(args.env_id, args.data_path, args.env_kwargs)
        policies = AUDIT_POLICIES if args.policies == POLICIES else args.policies
        rows = reward_audit(env, policies, episodes=args.episodes, seed=args.seed, reader=args.audit_reader)
        print(
            f"{args.env_id}: reward audit, {args.episodes} tasks per policy, seed {args.seed}, reader {args.audit_reader}"
        )
        print(audit_table(rows))
        if args.json_out:
            Path(args.json_out).write_text(json.dumps({"args": asdict(args), "audit": rows}, indent=1))
            print(f"wrote {args.json_out}")
        return
    if _is_text_game(args.env_id):
        text_results = run_text_eval(args)
        print(f"{args.env_id}: {args.episodes} games per policy, seeds {args.seed}..{args.seed + args.episodes - 1}")
        print(render_text_table(text_results))
        if args.json_out:
            _write_json(args, text_results)
        return
    results = run_eval(args)
    print(f"{args.env_id}: {args.episodes} tasks per policy, seed {args.seed}")
    print(render_table(results))
    if args.json_out:
        _write_json(args, results, task_ids={k: v.task_ids for k, v in results.items()})


def _write_json(args: EvalArgs, results: Mapping[str, EvalResult | TextEvalResult], **extra: Any) -> None:
    """``--json-out``: the arguments, each policy's means and per-episode rows (and ``extra``)."""
    assert args.json_out is not None
    payload = {
        "args": asdict(args),
        "summary": {k: v.summary for k, v in results.items()},
        "rows": {k: v.rows for k, v in results.items()},
        **extra,
    }
    Path(args.json_out).write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.json_out}")


@dataclass
class PlayArgs:
    """Play the agent yourself in the terminal."""

    env_id: str = "AgeMem-Synthetic-v0"
    """Registered env id."""
    seed: int = 0
    """Seed (picks the task unless --task-id is given)."""
    task_id: str | None = None
    """Play this task."""
    data_path: str | None = None
    """HotpotQA file (for the HotpotQA id)."""
    env_kwargs: str = "{}"
    """Extra env constructor kwargs as JSON."""


_HELP = """Type raw protocol text, or a shortcut (end multi-line input with an empty line):
  /add <text>              Add_memory          /upd <id> <text>   Update_memory
  /del <id>                Delete_memory       /ret <query>       Retrieve_memory
  /sum <all|N> [summary]   Summary_context     /filter <criteria> Filter_context
  /answer <text>           answer              /quit              stop"""


def shortcut(line: str) -> str | None:
    """Expand a play-mode shortcut into protocol text (None for /quit; raw text passes through)."""
    cmd, _, rest = line.strip().partition(" ")
    rest = rest.strip()
    if cmd == "/quit":
        return None
    if cmd == "/add":
        return tool_call(("Add_memory", {"content": rest}))
    if cmd == "/upd":
        mid, _, text = rest.partition(" ")
        return tool_call(("Update_memory", {"memory_id": mid, "content": text}))
    if cmd == "/del":
        return tool_call(("Delete_memory", {"memory_id": rest, "confirmation": True}))
    if cmd == "/ret":
        return tool_call(("Retrieve_memory", {"query": rest}))
    if cmd == "/sum":
        span, _, summary = rest.partition(" ")
        args: dict[str, Any] = {"span": span or "all"}
        if summary:
            args["summary"] = summary
        return tool_call(("Summary_context", args))
    if cmd == "/filter":
        return tool_call(("Filter_context", {"criteria": rest}))
    if cmd == "/answer":
        return answer(rest)
    return line


def play_main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``agemem-play``."""
    _play(tyro.cli(PlayArgs, args=argv))


def _play(args: PlayArgs) -> None:
    env = _make_env(args.env_id, args.data_path, args.env_kwargs)
    obs, info = env.reset(seed=args.seed, options={"task_id": args.task_id} if args.task_id else None)
    print(_HELP)
    shown = 0
    while True:
        for m in info["messages"][shown:]:
            print(f"\n--- {m['role']} ---\n{m['content']}")
        shown = len(info["messages"])
        print(f"\n[stage {info['stage']} | {info['context_tokens']} tokens | {info['memory_size']} memories]")
        lines: list[str] = []
        while True:
            try:
                line = input("> " if not lines else ". ")
            except EOFError:
                return
            if not line.strip():
                break
            lines.append(line)
            if line.startswith("/"):
                break
        if not lines:
            continue
        action = shortcut("\n".join(lines))
        if action is None:
            return
        obs, reward, terminated, truncated, info = env.step(action)
        shown = min(shown, len(info["messages"]))
        if info["action_error"]:
            print(f"(error: {info['action_error']})")
        print(
            f"(reward {reward:+.4f}: {', '.join(f'{k} {v:+.3f}' for k, v in info['reward_components'].items() if v)})"
        )
        if terminated or truncated:
            ep = info["episode"]
            print(f"\nEpisode over. Your answer: {ep['answer']!r}; gold: {ep['gold_answer']!r}")
            print(json.dumps({k: ep[k] for k in ("R", "task_score", "R_context", "R_memory", "penalty")}, indent=1))
            return


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m agemem_gym.evaluation.cli {eval,play}``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("eval", "play"):
        print("usage: python -m agemem_gym.evaluation.cli {eval,play} [--help]")
        sys.exit(2)
    (eval_main if argv[0] == "eval" else play_main)(argv[1:])


if __name__ == "__main__":
    main()
