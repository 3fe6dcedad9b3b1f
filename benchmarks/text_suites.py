"""Text suites: the AgeMem-BabyAI-v0 table (bot, random, bot with memory) and the wrapper's cost per step.

    .venv/bin/python -m benchmarks.text_suites                  # 50 episodes per policy, 3,000 timed steps
    .venv/bin/python -m benchmarks.text_suites --quick          # seconds; figures meaningless
    .venv/bin/python -m benchmarks.text_suites --level BabyAI-GoToLocal-v0

The step cost is measured in one run, interleaved call by call (benchmarks.common.interleaved), on three envs
fed the same seeded random actions from the same seeds: the raw minigrid step (``env.step(action_id)``), the text
game (:class:`~agemem_gym.envs.babyai.BabyAIGame`: the same step plus the text view), and the whole AgeMem step
(``TextGameEnv.step`` on protocol text: parsing, the game, the context and the info). Resets are not timed.
Nothing is asserted; medians and ratios are printed and written as JSON (``--json-out``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro

from benchmarks.common import Timed, blas_threads, interleaved, jsonable, machine_info, ratio, stats

COLUMNS = (
    ("success", "success", ".2f"),
    ("R", "R", ".3f"),
    ("score", "score", ".3f"),
    ("turns", "steps", ".1f"),
    ("game steps", "game_steps", ".1f"),
    ("tok peak", "tokens_peak", ".0f"),
    ("ADD", "tool/Add_memory", ".2f"),
    ("RET", "tool/Retrieve_memory", ".2f"),
    ("UPD", "tool/Update_memory", ".2f"),
    ("DEL", "tool/Delete_memory", ".2f"),
    ("SUM", "tool/Summary_context", ".2f"),
    ("FIL", "tool/Filter_context", ".2f"),
    ("trunc", "truncated", ".2f"),
)


@dataclass
class Args:
    """The BabyAI table and the wrapper's step cost."""

    level: str = "BabyAI-GoToRedBall-v0"
    """BabyAI level."""
    episodes: int = 50
    """Episodes per policy (seeds seed .. seed + episodes - 1, the same for every policy)."""
    seed: int = 0
    """Base seed (episodes and the random policy)."""
    calls: int = 3000
    """Timed steps per series."""
    burn_in: int = 200
    """Untimed steps first."""
    quick: bool = False
    """Tiny sizes (a smoke run)."""
    json_out: Path | None = Path("benchmarks/results/text_suites.json")
    """Where to write the results (None: do not write)."""


def policy_table(args: Args) -> dict[str, dict[str, float]]:
    """Success rate, R, steps and tool counts per policy over the same seeded episodes."""
    from agemem_gym.envs.babyai import BabyAIBotMemoryPolicy, BabyAIBotPolicy, BabyAIEnv, BabyAIRandomPolicy
    from agemem_gym.textenv import evaluate_text_game

    plans: dict[str, Callable[[], tuple[Any, Any]]] = {}

    def plan(name: str, lifelong: bool, make: Callable[[Any], Any]) -> None:
        def build() -> tuple[Any, Any]:
            env = BabyAIEnv(level=args.level, lifelong=lifelong)
            return env, make(env)

        plans[name] = build

    plan("bot", False, BabyAIBotPolicy)
    plan("random", False, lambda env: BabyAIRandomPolicy(seed=args.seed))
    plan("bot_memory", False, BabyAIBotMemoryPolicy)
    plan("bot_memory (lifelong)", True, BabyAIBotMemoryPolicy)
    out: dict[str, dict[str, float]] = {}
    for name, build in plans.items():
        env, policy = build()
        out[name] = evaluate_text_game(env, policy, episodes=args.episodes, seed=args.seed).summary
    return out


def step_cost(args: Args) -> dict[str, Any]:
    """Median µs per step of the raw minigrid env, the text game and the AgeMem wrapper (interleaved)."""
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the ids)

    from agemem_gym.envs.babyai import ACTIONS, BabyAIEnv, BabyAIGame

    total = args.burn_in + args.calls
    rng = np.random.default_rng(args.seed)
    actions = rng.integers(0, 6, size=total)  # no "done": it would end most episodes at once
    raw = gym.make(args.level, disable_env_checker=True).unwrapped
    game = BabyAIGame(args.level)
    wrapped = BabyAIEnv(level=args.level, episode={"max_turns": 10**6})
    texts = [f"<think>I act.</think><answer>{ACTIONS[int(a)]}</answer>" for a in actions]

    def series(reset: Callable[[int], None], step: Callable[[int], bool]) -> Timed:
        state = {"done": True, "episode": 0}

        def setup(i: int) -> None:
            if state["done"]:
                reset(args.seed + state["episode"])
                state["episode"] += 1
                state["done"] = False

        def run(i: int) -> None:
            state["done"] = step(i)

        return Timed(run, setup)

    def raw_step(i: int) -> bool:
        _, _, te, tr, _ = raw.step(int(actions[i]))
        return bool(te or tr)

    def game_step(i: int) -> bool:
        _, _, te, tr, _ = game.step(ACTIONS[int(actions[i])])
        return te or tr

    def wrapped_step(i: int) -> bool:
        _, _, te, tr, _ = wrapped.step(texts[i])
        return te or tr

    with blas_threads(1):
        seconds = interleaved(
            {
                "minigrid step": series(lambda s: raw.reset(seed=s), raw_step),
                "text game step": series(lambda s: game.reset(seed=s), game_step),
                "AgeMem step": series(lambda s: wrapped.reset(seed=s), wrapped_step),
            },
            calls=args.calls,
            burn_in=args.burn_in,
        )
    out: dict[str, Any] = {name: stats(s) for name, s in seconds.items()}
    base = out["minigrid step"]["median_us"]
    for name in out:
        out[name]["ratio_to_minigrid"] = ratio(out[name]["median_us"], base)
    return out


def render(table: dict[str, dict[str, float]], cost: dict[str, Any], args: Args) -> str:
    """The two tables as markdown."""
    lines = [f"{args.level}: {args.episodes} episodes per policy, seeds {args.seed}..{args.seed + args.episodes - 1}"]
    lines += ["", "| policy | " + " | ".join(c[0] for c in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, s in table.items():
        lines.append(f"| {name} | " + " | ".join(format(s.get(key, 0.0), fmt) for _, key, fmt in COLUMNS) + " |")
    lines += ["", f"Step cost ({args.calls} steps each, interleaved, random actions):", ""]
    lines += ["| series | median µs | p99 µs | × minigrid |", "|---|---:|---:|---:|"]
    for name, s in cost.items():
        lines.append(f"| {name} | {s['median_us']:.1f} | {s['p99_us']:.1f} | {s['ratio_to_minigrid']:.1f} |")
    return "\n".join(lines)


def main(args: Args) -> dict[str, Any]:
    """Run both parts, print the tables, write the JSON; returns the results."""
    if args.quick:
        args.episodes, args.calls, args.burn_in = min(args.episodes, 3), min(args.calls, 30), min(args.burn_in, 5)
    results = {"machine": machine_info(), "args": vars(args), "table": policy_table(args), "step_cost": step_cost(args)}
    print(render(results["table"], results["step_cost"], args))
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(jsonable(results), indent=1))
        print(f"wrote {args.json_out}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
