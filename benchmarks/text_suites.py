"""Text suites: the AgeMem-BabyAI-v0, AgeMem-ScienceWorld-v0 and AgeMem-TextWorld-v0 tables (reference agent, no
memory, random, the reference with memory) and the wrapper's cost per step beside the raw library's.

    .venv/bin/python -m benchmarks.text_suites                  # BabyAI: 50 episodes per policy, 3,000 timed steps
    .venv/bin/python -m benchmarks.text_suites --quick          # seconds; figures meaningless
    .venv/bin/python -m benchmarks.text_suites --level BabyAI-GoToLocal-v0
    .venv/bin/python -m benchmarks.text_suites --suite scienceworld   # 50 episodes, 300 timed steps (minutes)
    .venv/bin/python -m benchmarks.text_suites --suite pddl           # 50 episodes, 3,000 timed steps (seconds)
    .venv/bin/python -m benchmarks.text_suites --suite textworld      # 50 episodes, 1,000 timed steps (minutes)

PDDL's step cost has three series on the same seeded random applicable actions: the bare STRIPS engine step
(``Task.holds`` and ``Task.apply`` on a ground action), the text game (:class:`~agemem_gym.envs.pddl.PDDLGame`:
parsing the command, the step, the progress and the text of the state) and the whole AgeMem step.

TextWorld's step cost has three series on the same compiled games and the same seeded admissible commands: the
library's ``env.step`` (``textworld.start(game, request_infos=...)`` with the infos the suite requests), the text
game (:class:`~agemem_gym.envs.textworld.TextWorldGame`: that step, the banner strip and the admissible hint) and
the whole AgeMem step. Games are compiled (untimed) before the timing starts.

ScienceWorld's step cost has four series: the library's public step (``scienceworld.ScienceWorldEnv.step``, which
also lists every valid action and looks around on each call), its simulator's bare step (``env.server.step``), the
text game (:class:`~agemem_gym.envs.scienceworld.ScienceWorldGame`: the bare step, score and completion) and the
whole AgeMem step; they play the same seeded commands from a pool that never ends a task, on the same variations.

The step cost is measured in one run, interleaved call by call (benchmarks.timing.interleaved), on three envs
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
from typing import Any, Literal

import numpy as np
import tyro

from benchmarks.machine import machine_info
from benchmarks.records import jsonable
from benchmarks.timing import Timed, blas_threads, interleaved, ratio, stats

COLUMNS = (
    ("success", "success", ".2f"),
    ("progress", "progress", ".3f"),
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


_DEFAULT_JSON = Path("benchmarks/results/text_suites.json")


@dataclass
class Args:
    """The BabyAI table and the wrapper's step cost."""

    suite: Literal["babyai", "scienceworld", "pddl", "textworld"] = "babyai"
    """Which suite: BabyAI (minigrid), ScienceWorld (needs the [scienceworld] extra and Java), PDDL, or TextWorld
    (the [textworld] extra)."""
    level: str = "BabyAI-GoToRedBall-v0"
    """BabyAI level."""
    episodes: int = 50
    """Episodes per policy (seeds seed .. seed + episodes - 1, the same for every policy)."""
    seed: int = 0
    """Base seed (episodes and the random policy)."""
    calls: int | None = None
    """Timed steps per series (default: 3,000 for BabyAI, 300 for ScienceWorld, whose library step is ~0.1 s)."""
    burn_in: int | None = None
    """Untimed steps first (default: 200 for BabyAI, 20 for ScienceWorld)."""
    sw_split: Literal["train", "dev", "test"] = "train"
    """ScienceWorld: which variations the episodes draw from."""
    tw_challenge: Literal["tw-simple", "tw-coin_collector", "tw-treasure_hunter"] = "tw-simple"
    """TextWorld: the challenge."""
    tw_level: int = 1
    """TextWorld: the difficulty level."""
    tw_cache_dir: Path | None = None
    """TextWorld: where compiled games go (default the cache directory)."""
    quick: bool = False
    """Tiny sizes (a smoke run)."""
    json_out: Path | None = _DEFAULT_JSON
    """Where to write the results (None: do not write; ScienceWorld's default is text_suites_scienceworld.json)."""


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

    assert args.calls is not None and args.burn_in is not None  # set by main()
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


# Commands that exist in every ScienceWorld task and never end one (no "focus on": a wrong focus fails the task).
SW_COMMANDS = (
    "look around",
    "inventory",
    "open door to kitchen",
    "go to kitchen",
    "open door to hallway",
    "go to hallway",
    "look at agent",
    "wait1",
    "task",
)


def sw_policy_table(args: Args) -> dict[str, dict[str, float]]:
    """Success rate, progress, R, steps and tool counts per ScienceWorld policy over the same seeded episodes."""
    from agemem_gym.envs.scienceworld import (
        ScienceWorldEnv,
        ScienceWorldGoldMemoryPolicy,
        ScienceWorldGoldPolicy,
        ScienceWorldRandomPolicy,
    )
    from agemem_gym.textenv import evaluate_text_game

    plans: list[tuple[str, bool, Callable[[Any], Any]]] = [
        ("gold", False, ScienceWorldGoldPolicy),
        ("random", False, lambda env: ScienceWorldRandomPolicy(env, seed=args.seed)),
        ("gold_memory", False, ScienceWorldGoldMemoryPolicy),
        ("gold_memory (lifelong)", True, ScienceWorldGoldMemoryPolicy),
    ]
    out: dict[str, dict[str, float]] = {}
    for name, lifelong, make in plans:
        env = ScienceWorldEnv(split=args.sw_split, lifelong=lifelong)
        try:
            out[name] = evaluate_text_game(env, make(env), episodes=args.episodes, seed=args.seed).summary
        finally:
            env.close()
    return out


def sw_step_cost(args: Args) -> dict[str, Any]:
    """Median µs per step: ScienceWorld's library step, its bare simulator step, the text game, the AgeMem wrapper."""
    from scienceworld import ScienceWorldEnv as Library

    from agemem_gym.envs.scienceworld import ScienceWorldEnv, ScienceWorldGame

    assert args.calls is not None and args.burn_in is not None  # set by main()
    total = args.burn_in + args.calls
    rng = np.random.default_rng(args.seed)
    commands = [SW_COMMANDS[int(i)] for i in rng.integers(0, len(SW_COMMANDS), size=total)]
    texts = [f"<think>I act.</think><answer>{c}</answer>" for c in commands]
    game = ScienceWorldGame(split=args.sw_split)
    wrapped = ScienceWorldEnv(split=args.sw_split, episode={"max_turns": 10**6})
    library, bare = Library("", envStepLimit=100), Library("", envStepLimit=100)

    def load(sim: Any, seed: int) -> None:
        # The variation the AgeMem env draws from this seed (the same draw as ScienceWorldGame.reset).
        task, variation = game.suite.draw(np.random.default_rng(seed))
        sim.load(task, variation, "")
        sim.reset()

    def series(reset: Callable[[int], None], step: Callable[[int], bool]) -> Timed:
        state = {"done": True, "episode": 0, "n": 0}

        def setup(i: int) -> None:
            if state["done"] or state["n"] >= 100:  # the pool never ends a task: a new variation every 100 steps
                reset(args.seed + state["episode"])
                state["episode"] += 1
                state["done"], state["n"] = False, 0

        def run(i: int) -> None:
            state["done"] = step(i)
            state["n"] += 1

        return Timed(run, setup)

    def library_step(i: int) -> bool:
        return bool(library.step(commands[i])[2])

    def bare_step(i: int) -> bool:
        bare.server.step(commands[i])
        return bool(bare.server.getCompleted())

    def game_step(i: int) -> bool:
        _, _, te, tr, _ = game.step(commands[i])
        return te or tr

    def wrapped_step(i: int) -> bool:
        _, _, te, tr, _ = wrapped.step(texts[i])
        return te or tr

    try:
        with blas_threads(1):
            seconds = interleaved(
                {
                    "library step": series(lambda s: load(library, s), library_step),
                    "simulator step": series(lambda s: load(bare, s), bare_step),
                    "text game step": series(lambda s: game.reset(seed=s) and None, game_step),
                    "AgeMem step": series(lambda s: wrapped.reset(seed=s) and None, wrapped_step),
                },
                calls=args.calls,
                burn_in=args.burn_in,
            )
    finally:
        for closable in (game, wrapped, library, bare):
            closable.close()
    out: dict[str, Any] = {name: stats(s) for name, s in seconds.items()}
    base = out["library step"]["median_us"]
    for name in out:
        out[name]["ratio_to_library"] = ratio(out[name]["median_us"], base)
    return out


def pddl_policy_table(args: Args) -> dict[str, dict[str, float]]:
    """Success, progress rate, R, steps and tool counts per PDDL policy over the same seeded tasks."""
    from agemem_gym.envs.pddl import PDDLEnv
    from agemem_gym.textenv import evaluate_text_game

    out: dict[str, dict[str, float]] = {}
    for name, lifelong in (("planner", False), ("planner_memory", False), ("no_memory", False), ("random", False)):
        env = PDDLEnv(lifelong=lifelong)
        out[name] = evaluate_text_game(
            env, env.scripted_policy(name, args.seed), episodes=args.episodes, seed=args.seed
        ).summary
    env = PDDLEnv(lifelong=True)
    policy = env.scripted_policy("planner_memory", args.seed)
    out["planner_memory (lifelong)"] = evaluate_text_game(env, policy, episodes=args.episodes, seed=args.seed).summary
    return out


def pddl_step_cost(args: Args) -> dict[str, Any]:
    """Median µs per step of the bare STRIPS engine, the text game and the AgeMem wrapper (interleaved)."""
    from agemem_gym.envs.pddl import PDDLEnv, PDDLGame

    assert args.calls is not None and args.burn_in is not None  # set by main()
    wrapped = PDDLEnv(episode={"max_turns": 10**6})
    game = PDDLGame(wrapped.suite, step_limit=wrapped.pddl.step_limit)
    # One seeded random walk of applicable actions per task (a new task at the goal or after step_limit steps),
    # computed on the engine first, so all three series play the same actions from the same states.
    rng = np.random.default_rng(args.seed)
    plan: list[tuple[int, Any]] = []  # (episode seed, ground action) per call
    commands: list[str] = []  # the same action as the agent writes it
    seed = args.seed
    while len(plan) < args.burn_in + args.calls:
        task, phrases = wrapped.suite.task(wrapped.suite.draw(seed))
        state = task.init
        for _ in range(game.step_limit):
            options = task.applicable(state)
            action = options[int(rng.integers(len(options)))]
            plan.append((seed, action))
            commands.append(phrases.action(action))
            state = task.apply(state, action)
            if task.is_goal(state):
                break
        seed += 1
    firsts = {i for i in range(len(plan)) if i == 0 or plan[i][0] != plan[i - 1][0]}
    engine: dict[str, Any] = {}

    def engine_reset(s: int) -> None:
        task, _ = wrapped.suite.task(wrapped.suite.draw(s))
        engine["task"], engine["state"] = task, task.init

    def engine_step(i: int) -> None:
        task, action = engine["task"], plan[i][1]
        if task.holds(engine["state"], action):
            engine["state"] = task.apply(engine["state"], action)
        task.progress(engine["state"])
        task.is_goal(engine["state"])

    protocol = [f"<think>I act.</think><answer>{c}</answer>" for c in commands]

    def series(reset: Any, step: Any) -> Timed:
        def setup(i: int) -> None:
            if i in firsts:
                reset(plan[i][0])

        return Timed(step, setup)

    with blas_threads(1):
        seconds = interleaved(
            {
                "engine step": series(engine_reset, engine_step),
                "text game step": series(lambda s: game.reset(seed=s), lambda i: game.step(commands[i])),
                "AgeMem step": series(lambda s: wrapped.reset(seed=s), lambda i: wrapped.step(protocol[i])),
            },
            calls=args.calls,
            burn_in=args.burn_in,
        )
    out: dict[str, Any] = {name: stats(s) for name, s in seconds.items()}
    base = out["engine step"]["median_us"]
    for name in out:
        out[name]["ratio_to_engine"] = ratio(out[name]["median_us"], base)
    return out


def _tw_env(args: Args, **kwargs: Any) -> Any:
    from agemem_gym.envs.textworld import TextWorldEnv

    return TextWorldEnv(challenge=args.tw_challenge, level=args.tw_level, cache_dir=args.tw_cache_dir, **kwargs)


def tw_policy_table(args: Args) -> dict[str, dict[str, float]]:
    """Success rate, progress, R, steps and tool counts per TextWorld policy over the same seeded games."""
    from agemem_gym.textenv import evaluate_text_game

    plans = [(name, False) for name in ("walkthrough", "no_memory", "random", "walkthrough_memory")]
    plans.append(("walkthrough_memory (lifelong)", True))
    out: dict[str, dict[str, float]] = {}
    for name, lifelong in plans:
        env = _tw_env(args, lifelong=lifelong)
        try:
            policy = env.scripted_policy(name.split(" ")[0], args.seed)
            out[name] = evaluate_text_game(env, policy, episodes=args.episodes, seed=args.seed).summary
        finally:
            env.close()
    return out


def tw_step_cost(args: Args) -> dict[str, Any]:
    """Median µs per step: TextWorld's own env.step, the text game, the AgeMem wrapper (interleaved, same games)."""
    import textworld

    from agemem_gym.envs.textworld import TextWorldGame

    assert args.calls is not None and args.burn_in is not None  # set by main()
    wrapped = _tw_env(args, episode={"max_turns": 10**6}, step_limit=10**6)
    game = TextWorldGame(wrapped.suite, step_limit=10**6)
    infos = game._infos  # the infos the suite requests, so the library does the same work per step
    rng = np.random.default_rng(args.seed)
    # The games the AgeMem env draws from these seeds, compiled before the timing (the same draw as reset()).
    task_ids = [wrapped.suite.draw(np.random.default_rng(args.seed + e)) for e in range(8)]
    paths = {t: str(wrapped.suite.path(t)) for t in task_ids}
    raw: dict[str, Any] = {"env": None, "path": None, "state": None}
    picks = rng.random(args.burn_in + args.calls)

    def raw_reset(episode: int) -> None:
        path = paths[task_ids[episode % len(task_ids)]]
        if raw["path"] != path:
            if raw["env"] is not None:
                raw["env"].close()
            raw["env"], raw["path"] = textworld.start(path, request_infos=infos), path
        raw["state"] = raw["env"].reset()

    def pick(commands: list[str], i: int) -> str:
        # Never "take"/"put"/"drop"/"eat": they could end the game (a win, or treasure hunter's loss).
        safe = [c for c in commands if not c.startswith(("take", "put", "drop", "eat", "insert"))] or ["look"]
        return safe[int(picks[i] * len(safe))]

    commands: dict[int, str] = {}  # step i's command, chosen from the library env's admissible commands

    def series(reset: Callable[[int], None], step: Callable[[int], bool], leader: bool = False) -> Timed:
        state = {"done": True, "episode": 0, "n": 0}

        def setup(i: int) -> None:
            if state["done"] or state["n"] >= 40:  # a fresh game every 40 steps, as the library's
                reset(state["episode"])
                state["episode"] += 1
                state["done"], state["n"] = False, 0
            if leader:
                commands[i] = pick(list(raw["state"]["admissible_commands"] or []), i)

        def run(i: int) -> None:
            state["done"] = step(i)
            state["n"] += 1

        return Timed(run, setup)

    def raw_step(i: int) -> bool:
        raw["state"], _, done = raw["env"].step(commands[i])
        return bool(done)

    def game_step(i: int) -> bool:
        _, _, te, tr, _ = game.step(commands[i])
        return te or tr

    def wrapped_step(i: int) -> bool:
        _, _, te, tr, _ = wrapped.step(f"<think>I act.</think><answer>{commands[i]}</answer>")
        return te or tr

    def task_reset(target: Any, episode: int) -> None:
        target.next_task = task_ids[episode % len(task_ids)]
        target.reset(seed=0)

    def wrapped_reset(episode: int) -> None:
        wrapped.reset(options={"task_id": task_ids[episode % len(task_ids)]})

    try:
        with blas_threads(1):
            seconds = interleaved(
                {
                    "library step": series(raw_reset, raw_step, leader=True),
                    "text game step": series(lambda e: task_reset(game, e), game_step),
                    "AgeMem step": series(wrapped_reset, wrapped_step),
                },
                calls=args.calls,
                burn_in=args.burn_in,
                alternate=False,  # the library series picks each step's command, so it runs first
            )
    finally:
        for closable in (game, wrapped, raw["env"]):
            if closable is not None:
                closable.close()
    out: dict[str, Any] = {name: stats(s) for name, s in seconds.items()}
    base = out["library step"]["median_us"]
    for name in out:
        out[name]["ratio_to_library"] = ratio(out[name]["median_us"], base)
    return out


def render(table: dict[str, dict[str, float]], cost: dict[str, Any], args: Args) -> str:
    """The two tables as markdown."""
    name = {
        "babyai": args.level,
        "scienceworld": f"AgeMem-ScienceWorld-v0 ({args.sw_split} split, all 30 tasks)",
        "pddl": "AgeMem-PDDL-v0 (generated blocksworld 3-6 blocks and gripper 2-5 balls, step limit 30)",
        "textworld": f"AgeMem-TextWorld-v0 ({args.tw_challenge}, level {args.tw_level}, train games)",
    }[args.suite]
    lines = [f"{name}: {args.episodes} episodes per policy, seeds {args.seed}..{args.seed + args.episodes - 1}"]
    lines += ["", "| policy | " + " | ".join(c[0] for c in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, s in table.items():
        lines.append(f"| {name} | " + " | ".join(format(s.get(key, 0.0), fmt) for _, key, fmt in COLUMNS) + " |")
    lines += ["", f"Step cost ({args.calls} steps each, interleaved, random actions):", ""]
    base, key = {
        "babyai": ("minigrid", "ratio_to_minigrid"),
        "scienceworld": ("library step", "ratio_to_library"),
        "pddl": ("engine step", "ratio_to_engine"),
        "textworld": ("library step", "ratio_to_library"),
    }[args.suite]
    lines += [f"| series | median µs | p99 µs | × {base} |", "|---|---:|---:|---:|"]
    for series_name, s in cost.items():
        lines.append(f"| {series_name} | {s['median_us']:.1f} | {s['p99_us']:.1f} | {s[key]:.2f} |")
    return "\n".join(lines)


def main(args: Args) -> dict[str, Any]:
    """Run both parts, print the tables, write the JSON; returns the results."""
    sw, tw = args.suite == "scienceworld", args.suite == "textworld"
    args.calls = args.calls if args.calls is not None else (300 if sw else 1000 if tw else 3000)
    args.burn_in = args.burn_in if args.burn_in is not None else (20 if sw else 50 if tw else 200)
    if args.suite != "babyai" and args.json_out == _DEFAULT_JSON:
        args.json_out = _DEFAULT_JSON.with_name(f"text_suites_{args.suite}.json")
    if args.quick:
        args.episodes, args.calls, args.burn_in = min(args.episodes, 3), min(args.calls, 30), min(args.burn_in, 5)
    if sw:
        table, cost = sw_policy_table(args), sw_step_cost(args)
    elif args.suite == "pddl":
        table, cost = pddl_policy_table(args), pddl_step_cost(args)
    elif tw:
        table, cost = tw_policy_table(args), tw_step_cost(args)
    else:
        table, cost = policy_table(args), step_cost(args)
    results = {"machine": machine_info(), "args": vars(args), "table": table, "step_cost": cost}
    print(render(results["table"], results["step_cost"], args))
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(jsonable(results), indent=1))
        print(f"wrote {args.json_out}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
