"""AgeMem-BabyAI-v0: BabyAI levels as a text game with memory tools (needs the [babyai] extra)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.errors import ConfigError
from agemem_gym.textenv import GAME_ACTION_ERROR, evaluate_text_game


def test_import_does_not_import_minigrid() -> None:
    """Importing agemem_gym (which registers AgeMem-BabyAI-v0) never imports minigrid."""
    code = "import sys, agemem_gym; import agemem_gym.envs.babyai; print('minigrid' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_minigrid_raises_config_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without minigrid, gym.make('AgeMem-BabyAI-v0') raises ConfigError naming the babyai extra."""
    monkeypatch.setitem(sys.modules, "minigrid", None)  # makes `import minigrid` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'agemem-gym\[babyai\]'"):
        gym.make("AgeMem-BabyAI-v0")


minigrid = pytest.importorskip("minigrid", reason="minigrid is not installed: pip install 'agemem-gym[babyai]'")

from agemem_gym.envs.babyai import (  # noqa: E402  (after the skip)
    ACTIONS,
    BabyAIBotMemoryPolicy,
    BabyAIBotPolicy,
    BabyAIEnv,
    BabyAIRandomPolicy,
)


def act(action: str) -> str:
    return f"<think>go</think><answer>{action}</answer>"


def test_check_env_passes() -> None:
    """Gymnasium's env checker accepts AgeMem-BabyAI-v0."""
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make("AgeMem-BabyAI-v0").unwrapped, skip_render_check=True)


def test_observation_is_text_of_the_view() -> None:
    """The first observation states the mission and the visible objects with directions."""
    env = gym.make("AgeMem-BabyAI-v0")
    _, info = env.reset(seed=0)
    text = info["messages"][-1]["content"]
    assert text.startswith("Mission: go to the red ball.")
    assert "a red ball " in text and "Walls:" in text and "You carry nothing." in text
    assert info["valid_actions"] == list(ACTIONS)


def test_level_kwarg_and_bad_level() -> None:
    """level= picks the BabyAI level; an unknown one raises ConfigError listing registered ids."""
    env = gym.make("AgeMem-BabyAI-v0", level="BabyAI-PickupLoc-v0")
    _, info = env.reset(seed=1)
    assert "Mission: pick up" in info["messages"][-1]["content"]
    with pytest.raises(ConfigError, match="registered BabyAI id"):
        BabyAIEnv(level="BabyAI-Nope-v0")


def test_seeded_rollouts_are_identical() -> None:
    """Two seeded rollouts of the same actions give identical observations and rewards."""
    actions = [act(ACTIONS[i % 3]) for i in range(30)]

    def run() -> list[tuple[str, float]]:
        env = gym.make("AgeMem-BabyAI-v0")
        obs, _ = env.reset(seed=11)
        out = [(obs, 0.0)]
        for a in actions:
            obs, r, te, tr, _ = env.step(a)
            out.append((obs, float(r)))
            if te or tr:
                break
        return out

    assert run() == run()


def test_get_state_set_state_replays_exactly() -> None:
    """Restoring a snapshot (a deepcopy of the minigrid env) replays later steps exactly."""
    env = BabyAIEnv()
    env.reset(seed=4)
    env.step(act("turn left"))
    state = env.get_state()
    tail = [act(a) for a in ("go forward", "turn right", "go forward", "go forward", "pick up")]
    first = [env.step(a)[:4] for a in tail]
    env.set_state(state)
    assert [env.step(a)[:4] for a in tail] == first


@pytest.mark.parametrize(
    "text", ["", "<answer>fly</answer>", "<tool_call>[{</tool_call>", "\ud800<answer>done</answer>", "x" * 9000]
)
def test_malformed_and_hostile_text_never_raises(text: str) -> None:
    """Hostile text and unknown actions get feedback and a penalty; the game does not step."""
    env = BabyAIEnv()
    env.reset(seed=0)
    _, r, _, _, info = env.step(text)
    assert info["action_error"] is not None and r < 0 and info["game_step"] == 0
    json.dumps(info["messages"])


def test_unknown_action_lists_the_actions() -> None:
    """An unknown action word is answered with the valid actions, no step."""
    env = BabyAIEnv()
    env.reset(seed=0)
    _, _, _, _, info = env.step(act("jump"))
    assert info["action_error"] == GAME_ACTION_ERROR and '"turn left"' not in info["messages"][-1]["content"]
    assert "Valid actions: turn left, turn right, go forward" in info["messages"][-1]["content"]
    _, _, _, _, info = env.step(act("  Turn LEFT. "))
    assert info["action_error"] is None and info["game_step"] == 1


def test_bot_succeeds_and_random_is_far_below() -> None:
    """The BabyAI bot succeeds on >= 90% of 50 seeded episodes of the default level; random far below."""
    env = BabyAIEnv()
    bot = evaluate_text_game(env, BabyAIBotPolicy(env), episodes=50, seed=0).summary
    rnd = evaluate_text_game(env, BabyAIRandomPolicy(seed=0), episodes=50, seed=0).summary
    assert bot["success"] >= 0.9
    assert rnd["success"] <= bot["success"] - 0.4


def test_bot_with_memory_uses_the_tools_and_keeps_memories_lifelong() -> None:
    """The memory bot writes one memory per episode; in lifelong mode later episodes retrieve earlier ones."""
    env = BabyAIEnv(lifelong=True)
    policy = BabyAIBotMemoryPolicy(env)
    res = evaluate_text_game(env, policy, episodes=5, seed=0)
    assert res.summary["success"] >= 0.8 and res.summary["tool/Add_memory"] == 1.0
    assert len(env.store) == 5
    _, info = env.reset(seed=99)
    policy.reset(info)
    _, _, _, _, info = env.step(policy.act("", info))
    assert len(info["tool_results"][0]["data"]["hits"]) == 3


def test_step_rewards_sum_to_episode_R() -> None:
    """The step rewards of BabyAI episodes (bot and random) sum to info['episode']['R'] to 1e-9."""
    env = BabyAIEnv()
    for policy in (BabyAIBotPolicy(env), BabyAIRandomPolicy(seed=3)):
        for seed in range(3):
            obs, info = env.reset(seed=seed)
            policy.reset(info)
            total, done = 0.0, False
            while not done:
                obs, r, te, tr, info = env.step(policy.act(obs, info))
                total += r
                done = te or tr
            assert total == pytest.approx(info["episode"]["R"], abs=1e-9)
            assert info["episode"]["success"] == (info["episode"]["score"] > 0)


def test_text_suites_benchmark_smoke(tmp_path: pytest.TempPathFactory) -> None:
    """The text-suites benchmark runs at tiny sizes and writes its table and step costs (no timing judged)."""
    from benchmarks import text_suites

    out = tmp_path / "ts.json"  # type: ignore[operator]
    results = text_suites.main(text_suites.Args(quick=True, json_out=out))
    assert set(results["table"]) == {"bot", "random", "bot_memory", "bot_memory (lifelong)"}
    assert json.loads(out.read_text())["step_cost"]["AgeMem step"]["n"] == 30


def test_task_ids_name_layout_seeds_for_trainers_that_draw_them() -> None:
    """GRPO draws from env.unwrapped.suite.task_ids and resets with options={"task_id": ...}: a task id plays the
    layout of its seed, as game_seed does; a foreign or out-of-range id is a ConfigError."""
    env = gym.make("AgeMem-BabyAI-v0", n_tasks=5)
    ids = env.unwrapped.suite.task_ids  # type: ignore[attr-defined]
    assert len(ids) == 5 and ids[3].endswith(":3")
    by_id, _ = env.reset(seed=0, options={"task_id": ids[3]})
    by_seed, _ = env.reset(seed=0, options={"game_seed": 3})
    assert by_id == by_seed
    with pytest.raises(ConfigError, match="task_id must be"):
        env.reset(options={"task_id": "BabyAI-Other-v0:1"})
    with pytest.raises(ConfigError, match="task_id must be"):
        env.reset(options={"task_id": ids[0][:-1] + "9"})
    env.close()


@pytest.mark.slow
def test_grpo_runs_two_updates_on_babyai(tmp_path: Path) -> None:
    """The GRPO trainer's tiny preset runs two updates on AgeMem-BabyAI-v0, drawing its task ids (~25 s)."""
    from agemem_gym.trainers import grpo

    args = grpo.parse_args(
        ["--preset", "tiny", "--env-id", "AgeMem-BabyAI-v0", "--num-updates", "2", "--output-dir", str(tmp_path)]
    )
    args.progress = args.plot = False
    grpo.main(args)
    rows = [json.loads(line) for line in next(tmp_path.glob("*/metrics.jsonl")).read_text().splitlines()]
    assert [r["update"] for r in rows] == [1, 2]
    assert all(r["rollout/episodes"] == 8 and r["reward/mean"] <= 1.0 for r in rows)


def test_agemem_eval_runs_the_suites_scripted_policies(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """agemem-eval on a text-game id plays the suite's own scripted policies (TextGameEnv.SCRIPTED) on the same game
    seeds and prints success, progress, R and tool calls per episode; an unknown policy names those it has."""
    from agemem_gym.evaluation.cli import eval_main

    out = tmp_path / "eval.json"
    eval_main(["--env-id", "AgeMem-BabyAI-v0", "--episodes", "3", "--json-out", str(out)])
    text = capsys.readouterr().out
    assert "| policy | success | progress | R |" in text
    payload = json.loads(out.read_text())
    assert set(payload["summary"]) == {"bot", "bot_memory", "random"}
    assert payload["summary"]["bot"]["success"] == 1.0 and payload["summary"]["bot_memory"]["tool/Add_memory"] == 1.0
    env = gym.make("AgeMem-BabyAI-v0")
    direct = evaluate_text_game(env, BabyAIBotPolicy(env.unwrapped), episodes=3, seed=0)  # type: ignore[arg-type]
    assert [r["R"] for r in payload["rows"]["bot"]] == [r["R"] for r in direct.rows]  # same games, same play
    with pytest.raises(ConfigError, match="has no scripted policy 'oracle'; it has: bot, bot_memory, random"):
        gym.make("AgeMem-BabyAI-v0").unwrapped.scripted_policy("oracle")  # type: ignore[attr-defined]
