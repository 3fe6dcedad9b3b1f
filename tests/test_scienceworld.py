"""AgeMem-ScienceWorld-v0: ScienceWorld's tasks as a text game with memory tools (the [scienceworld] extra + Java)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.envs.scienceworld import SPLITS, ScienceWorldTasks, java_available, parse_task_id
from agemem_gym.errors import ConfigError
from agemem_gym.textenv import evaluate_text_game


def test_import_does_not_import_scienceworld() -> None:
    """Importing agemem_gym (which registers AgeMem-ScienceWorld-v0) never imports scienceworld."""
    code = "import sys, agemem_gym; import agemem_gym.envs.scienceworld; print('scienceworld' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_scienceworld_raises_config_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without scienceworld, gym.make('AgeMem-ScienceWorld-v0') raises ConfigError naming the extra."""
    monkeypatch.setitem(sys.modules, "scienceworld", None)  # makes `import scienceworld` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'agemem-gym\[scienceworld\]'"):
        gym.make("AgeMem-ScienceWorld-v0")


def test_task_ids_and_splits_are_disjoint() -> None:
    """Task ids are '<task>:<variation>'; the train, dev and test variations of every task are disjoint and cover it."""
    assert parse_task_id("boil:3") == ("boil", 3)
    for bad in ("boil", "nope:1", "boil:x", 3):
        with pytest.raises(ConfigError, match="'<task>:<variation>'"):
            parse_task_id(bad)  # type: ignore[arg-type]
    for task, counts in SPLITS.items():
        spans = [ScienceWorldTasks((task,), s).variations(task) for s in ("train", "dev", "test")]  # type: ignore[arg-type]
        assert [len(r) for r in spans] == list(counts)
        assert sorted(v for r in spans for v in r) == list(range(sum(counts)))
    suite = ScienceWorldTasks(("boil", "melt"), "dev")
    assert suite.task_ids[:2] == ("boil:14", "boil:15") and len(suite.task_ids) == 14
    rng = np.random.default_rng(0)
    assert all(v in suite.variations(t) for t, v in (suite.draw(rng) for _ in range(50)))
    with pytest.raises(ConfigError, match="'split' must be"):
        ScienceWorldTasks(("boil",), "valid")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown"):
        ScienceWorldTasks(("boiling",), "train")


pytest.importorskip("scienceworld", reason="scienceworld is not installed: pip install 'agemem-gym[scienceworld]'")
if not java_available():
    pytest.skip("ScienceWorld needs a Java runtime (no `java` on PATH)", allow_module_level=True)

from agemem_gym.envs.scienceworld import (  # noqa: E402  (after the skip)
    ScienceWorldEnv,
    ScienceWorldGoldMemoryPolicy,
    ScienceWorldGoldPolicy,
    ScienceWorldRandomPolicy,
)

TASKS = ["boil", "find-animal", "use-thermometer"]


@pytest.fixture(scope="module")
def env() -> Iterator[ScienceWorldEnv]:
    """One simulator (a JVM start takes a second or two) shared by the module's tests; each test resets it."""
    e = ScienceWorldEnv(tasks=TASKS)
    yield e
    e.close()


def act(command: str) -> str:
    return f"<think>go</think><answer>{command}</answer>"


def test_missing_java_raises_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `java` on PATH, making the env raises ConfigError naming the Java runtime."""
    import agemem_gym.envs.scienceworld as sw

    monkeypatch.setattr(sw.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="needs a Java runtime"):
        sw.ScienceWorldEnv(tasks=["boil"])


def test_check_env_passes() -> None:
    """Gymnasium's env checker accepts AgeMem-ScienceWorld-v0."""
    from gymnasium.utils.env_checker import check_env

    env = gym.make("AgeMem-ScienceWorld-v0", tasks=["boil"])
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_splits_match_the_library(env: ScienceWorldEnv) -> None:
    """SPLITS holds ScienceWorld's own train/dev/test variations (contiguous ranges) for all 30 tasks."""
    sim = env.scienceworld.sim
    assert sorted(sim.get_task_names()) == sorted(SPLITS)
    for task in SPLITS:
        sim.load(task, 0, "")
        for split in ("train", "dev", "test"):
            expected = list(ScienceWorldTasks((task,), split).variations(task))  # type: ignore[arg-type]
            assert list(getattr(sim, f"get_variations_{split}")()) == expected, (task, split)


def test_first_observation_states_the_task(env: ScienceWorldEnv) -> None:
    """The first observation is the task description and what the agent sees; the instructions list the templates."""
    _, info = env.reset(options={"task_id": "boil:0"})
    text = info["messages"][-1]["content"]
    assert text.startswith("Your task is to boil water.") and "This room is called" in text
    assert '"focus on OBJ"' in info["messages"][0]["content"]
    assert info["valid_actions"] is None and env.scienceworld.task_id == "boil:0"


def test_seed_draws_task_and_variation_in_the_split(env: ScienceWorldEnv) -> None:
    """reset(seed) draws a task of `tasks` and a train variation; the same seed gives the same game and replies, up to
    the order of the lines: the simulator lists a room's objects in an order that can change between two resets of
    one seed (seen: two wood cups swapping places), so each reply is compared as its sorted lines."""
    ids = set()
    for seed in range(6):
        env.reset(seed=seed)
        task, var = parse_task_id(env.scienceworld.task_id)
        assert task in TASKS and var in env.suite.variations(task)
        ids.add(env.scienceworld.task_id)
    assert len(ids) > 1

    def run() -> list[tuple[list[str], float]]:
        obs, _ = env.reset(seed=11)
        out = [(sorted(obs.splitlines()), 0.0)]
        for command in ("open door to kitchen", "go to kitchen", "look around", "pick up thermometer", "inventory"):
            obs, r, _, _, _ = env.step(act(command))
            out.append((sorted(obs.splitlines()), float(r)))
        return out

    assert run() == run()


def test_task_id_option_and_a_bad_one(env: ScienceWorldEnv) -> None:
    """options={'task_id'} picks the game; an id outside the env's tasks or split raises ConfigError."""
    env.reset(seed=5, options={"task_id": "use-thermometer:7"})
    assert env.scienceworld.task_id == "use-thermometer:7"
    with pytest.raises(ConfigError, match="not in this env's train split"):
        env.reset(options={"task_id": "boil:20"})  # boil's 20 is a test variation
    with pytest.raises(ConfigError, match="not in this env's train split"):
        env.reset(options={"task_id": "melt:1"})  # melt is not one of this env's tasks


def test_get_state_set_state_replays_exactly(env: ScienceWorldEnv) -> None:
    """A snapshot (task, variation and commands, replayed on restore) gives the same later steps, twice."""
    env.reset(options={"task_id": "boil:2"})
    env.step(act("open door to kitchen"))
    state = env.get_state()
    tail = [act(c) for c in ("go to kitchen", "pick up thermometer", "fly", "look around", "focus on water")]
    first = [env.step(a)[:4] for a in tail]
    for _ in range(2):
        env.set_state(state)
        assert [env.step(a)[:4] for a in tail] == first


@pytest.mark.parametrize("text", ["", "<tool_call>[{</tool_call>", "\ud800<answer>look around</answer>", "x" * 9000])
def test_malformed_and_hostile_text_never_raises(env: ScienceWorldEnv, text: str) -> None:
    """Hostile text gets feedback and a penalty; the simulator does not step."""
    env.reset(seed=0)
    _, r, _, _, info = env.step(text)
    assert info["action_error"] is not None and r < 0 and info["game_step"] == 0
    json.dumps(info["messages"])


def test_unknown_command_is_a_game_step_with_the_templates(env: ScienceWorldEnv) -> None:
    """A command ScienceWorld does not understand steps the game (no penalty) and the reply names the templates."""
    env.reset(seed=0)
    obs, r, _, _, info = env.step(act("fly to the moon"))
    assert info["action_error"] is None and info["game_step"] == 1 and r == 0.0
    assert "No known action matches that input. Commands follow these templates:" in info["messages"][-1]["content"]


def test_gold_succeeds_random_fails_and_rewards_sum_to_R(env: ScienceWorldEnv) -> None:
    """The gold sequence completes 3 seeded tasks (progress 1, R the score gained / 100); random stays below; step
    rewards sum to R."""
    for policy in (ScienceWorldGoldPolicy(env), ScienceWorldRandomPolicy(env, seed=0)):
        for seed in range(3):
            obs, info = env.reset(seed=seed)
            start = env.scienceworld.score  # a few variations score points for the first look around
            policy.reset(info)
            total, done = 0.0, False
            while not done:
                obs, r, te, tr, info = env.step(policy.act(obs, info))
                total += r
                done = te or tr
            ep = info["episode"]
            assert total == pytest.approx(ep["R"], abs=1e-9)
            assert ep["progress"] == max(0, info["game_info"]["sw_score"]) / 100
            if policy.name == "gold":
                assert ep["success"] and ep["progress"] == 1.0 and ep["R"] == pytest.approx((100 - start) / 100)
            else:
                assert ep["progress"] < 1.0 and not ep["success"]


def test_gold_with_memory_keeps_memories_lifelong() -> None:
    """The gold-memory policy writes one memory per episode; in lifelong mode later episodes retrieve them."""
    env = ScienceWorldEnv(tasks=["find-animal"], lifelong=True)
    try:
        policy = ScienceWorldGoldMemoryPolicy(env)
        res = evaluate_text_game(env, policy, episodes=3, seed=0)
        assert res.summary["success"] == 1.0 and res.summary["tool/Add_memory"] == 1.0
        assert len(env.store) == 3
        _, info = env.reset(seed=99)
        policy.reset(info)
        _, _, _, _, info = env.step(policy.act("", info))
        assert len(info["tool_results"][0]["data"]["hits"]) == 3
    finally:
        env.close()


@pytest.mark.slow
def test_text_suites_benchmark_smoke_scienceworld(tmp_path: pytest.TempPathFactory) -> None:
    """The ScienceWorld part of the text-suites benchmark runs at tiny sizes and writes its table and step costs."""
    from benchmarks import text_suites

    out = tmp_path / "sw.json"  # type: ignore[operator]
    results = text_suites.main(text_suites.Args(suite="scienceworld", quick=True, json_out=out))
    assert set(results["table"]) == {"gold", "random", "gold_memory", "gold_memory (lifelong)"}
    assert json.loads(out.read_text())["step_cost"]["AgeMem step"]["n"] == 30


@pytest.mark.slow
def test_grpo_runs_two_updates_on_scienceworld(tmp_path: pytest.TempPathFactory) -> None:
    """The GRPO trainer's tiny preset runs two updates on AgeMem-ScienceWorld-v0 (the preset's episode knobs,
    which are the three-stage suites', are left out for it)."""
    from agemem_gym.trainers import grpo

    args = grpo.parse_args(
        ["--preset", "tiny", "--env-id", "AgeMem-ScienceWorld-v0", "--num-updates", "2", "--output-dir", str(tmp_path)]
    )
    assert args.env_kwargs == "{}"
    args.progress = args.plot = False
    grpo.main(args)
    rows = [json.loads(line) for line in next(iter(tmp_path.glob("*/metrics.jsonl"))).read_text().splitlines()]  # type: ignore[attr-defined]
    assert len(rows) == 2 and all(np.isfinite(r["reward/mean"]) for r in rows)
