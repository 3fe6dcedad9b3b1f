"""AgeMem-TextWorld-v0: TextWorld's generated games as a text game with memory tools (the [textworld] extra).

The games compile once per test session into a session cache (``textworld_cache``); the tests use two
treasure-hunter games, the quickest challenge to generate.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.envs.textworld import GeneratedGames, TextWorldSpec, strip_banner
from agemem_gym.errors import ConfigError
from agemem_gym.textenv import GAME_ACTION_ERROR, evaluate_text_game

KW = {"challenge": "tw-treasure_hunter", "level": 5, "n_games": 2}


def act(command: str) -> str:
    return f"<think>go</think><answer>{command}</answer>"


def test_import_does_not_import_textworld() -> None:
    """Importing agemem_gym (which registers AgeMem-TextWorld-v0) and the suite module never imports textworld."""
    code = "import sys, agemem_gym; import agemem_gym.envs.textworld; print('textworld' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_textworld_raises_config_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without textworld, gym.make('AgeMem-TextWorld-v0') raises ConfigError naming the extra."""
    monkeypatch.setitem(sys.modules, "textworld", None)  # makes `import textworld` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'agemem-gym\[textworld\]'"):
        gym.make("AgeMem-TextWorld-v0")


def test_specs_task_ids_and_splits() -> None:
    """Task ids are '<challenge>:<level>:<seed>'; levels are checked per challenge; train and test seeds are disjoint."""
    assert TextWorldSpec.parse("tw-coin_collector:300:7") == TextWorldSpec("tw-coin_collector", 300, 7)
    for bad in ("tw-simple:1", "tw-simple:x:1", "nope:1:1", "tw-simple:4:0", "tw-treasure_hunter:31:0"):
        with pytest.raises(ConfigError, match=r"task id is|must be"):
            TextWorldSpec.parse(bad)
    train, test = GeneratedGames("tw-simple", 2, 5), GeneratedGames("tw-simple", 2, 5, "test")
    assert not set(train.task_ids) & set(test.task_ids) and len(train.task_ids) == 5
    assert TextWorldSpec.parse(test.task_ids[0]).settings() == {"rewards": "balanced", "goal": "brief", "test": True}
    with pytest.raises(ConfigError, match="not one of this env's games"):
        train.check(test.task_ids[0])
    with pytest.raises(ConfigError, match="'split' must be"):
        GeneratedGames(split="valid")  # type: ignore[arg-type]


def test_strip_banner_keeps_the_story() -> None:
    """The banner's drawing lines and the interpreter's status line go; the text between stays."""
    assert strip_banner("\n   ___\n  | $$ \\$$\n\nHello.\n\n\n\nThere is a door.\n>  -= Hall =-0/1\n") == (
        "Hello.\n\nThere is a door."
    )


pytest.importorskip("textworld", reason="textworld is not installed: pip install 'agemem-gym[textworld]'")

from agemem_gym.envs.textworld import (  # noqa: E402  (after the skip)
    TextWorldEnv,
    TextWorldRandomPolicy,
    TextWorldWalkthroughMemoryPolicy,
    TextWorldWalkthroughPolicy,
    compiled_game,
)


@pytest.fixture(scope="module")
def env(textworld_cache: Path) -> Iterator[TextWorldEnv]:
    """One env over the session's two cached games, shared by the module's tests; each test resets it."""
    e = TextWorldEnv(**KW, cache_dir=textworld_cache / "textworld")  # type: ignore[arg-type]
    yield e
    e.close()


def test_check_env_passes(env: TextWorldEnv) -> None:
    """Gymnasium's env checker accepts AgeMem-TextWorld-v0."""
    from gymnasium.utils.env_checker import check_env

    check_env(env, skip_render_check=True)


def test_cache_is_reused_and_a_corrupt_entry_is_rebuilt(
    env: TextWorldEnv, textworld_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A compiled game is found again without recompiling; a game file that no longer matches its manifest is
    rebuilt (with a warning) into a whole entry."""
    spec = TextWorldSpec.parse(env.suite.task_ids[0])
    path = compiled_game(spec, textworld_cache / "textworld")
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["task_id"] == spec.task_id and manifest["walkthrough"]
    mtime = path.stat().st_mtime_ns
    assert compiled_game(spec, textworld_cache / "textworld") == path and path.stat().st_mtime_ns == mtime
    path.write_bytes(path.read_bytes()[:100])  # a truncated copy
    with caplog.at_level(logging.WARNING, logger="agemem_gym.envs.textworld"):
        rebuilt = compiled_game(spec, textworld_cache / "textworld")
    assert "rebuilding" in caplog.text and rebuilt == path
    assert json.loads((path.parent / "manifest.json").read_text())["walkthrough"] == manifest["walkthrough"]
    assert not [p for p in path.parent.parent.iterdir() if p.name.startswith(".")]  # no build or stale dirs left


def test_first_observation_is_the_game_text_with_admissible_commands(env: TextWorldEnv) -> None:
    """The first observation is the game's intro (objective, room) without the banner, then the admissible commands."""
    _, info = env.reset(options={"task_id": env.suite.task_ids[0]})
    text = info["messages"][-1]["content"]
    assert "$$" not in text and "-= " in text and "\nAdmissible commands: " in text
    assert info["valid_actions"] is None and "TextWorld game" in info["messages"][0]["content"]
    _, _, _, _, info = env.step(act("look"))
    assert info["game_info"]["max_score"] >= 1 and info["game_info"]["tw_score"] == 0
    assert info["game_info"]["admissible_commands"] == env.textworld.admissible_commands()


def test_seeded_rollouts_are_identical_and_task_ids_pick_the_game(env: TextWorldEnv) -> None:
    """The same seed gives the same game, observations and rewards; options={'task_id'} plays the game of that id."""
    seen = set()
    for seed in range(4):
        env.reset(seed=seed)
        seen.add(env.textworld.task_id)
    assert seen == set(env.suite.task_ids)

    def run(seed: int) -> list[tuple[str, float]]:
        obs, _ = env.reset(seed=seed)
        out = [(obs, 0.0)]
        for command in ("look", "go north", "go east", "inventory", "go south"):
            obs, r, _, _, _ = env.step(act(command))
            out.append((obs, float(r)))
        return out

    assert run(3) == run(3)
    env.reset(seed=3)
    drawn = env.textworld.task_id
    by_id, _ = env.reset(seed=99, options={"task_id": drawn})
    assert by_id == run(3)[0][0]
    with pytest.raises(ConfigError, match="not one of this env's games"):
        env.reset(options={"task_id": "tw-treasure_hunter:5:9"})


def test_get_state_set_state_replays_exactly(env: TextWorldEnv) -> None:
    """A snapshot (game and commands, replayed on restore) gives the same later steps, twice; a snapshot the replay
    does not reproduce raises."""
    obs, info = env.reset(options={"task_id": env.suite.task_ids[1]})
    env.step(act(env.textworld.admissible_commands()[0]))
    state = env.get_state()
    tail = [act(c) for c in ("look", "fly", "go south", "go east", "inventory")]
    first = [env.step(a)[:4] for a in tail]
    for _ in range(2):
        env.set_state(state)
        assert [env.step(a)[:4] for a in tail] == first
    bad = {**state, "game": {**state["game"], "moves": state["game"]["moves"] + 3}}
    with pytest.raises(RuntimeError, match="did not replay deterministically"):
        env.set_state(bad)


@pytest.mark.parametrize("text", ["", "<tool_call>[{</tool_call>", "\ud800<answer>look</answer>", "x" * 9000])
def test_malformed_and_hostile_text_never_raises(env: TextWorldEnv, text: str) -> None:
    """Hostile text gets feedback and a penalty; the game does not step."""
    env.reset(seed=0)
    _, r, _, _, info = env.step(text)
    assert info["action_error"] is not None and r < 0 and info["game_step"] == 0
    json.dumps(info["messages"])


def test_unknown_command_is_a_game_step_and_enforce_mode_rejects_it(textworld_cache: Path) -> None:
    """Free text steps the game (TextWorld's parser answers); with admissible='enforce' it is an invalid game
    action instead: feedback with the admissible commands, a penalty, no step."""
    free = TextWorldEnv(**KW, cache_dir=textworld_cache / "textworld")  # type: ignore[arg-type]
    free.reset(seed=0)
    _, r, _, _, info = free.step(act("dance wildly"))
    assert info["action_error"] is None and info["game_step"] == 1 and r == 0.0
    strict = TextWorldEnv(**KW, admissible="enforce", cache_dir=textworld_cache / "textworld")  # type: ignore[arg-type]
    _, info = strict.reset(seed=0)
    assert info["valid_actions"] == strict.textworld.admissible_commands()
    _, r, _, _, info = strict.step(act("dance wildly"))
    assert info["action_error"] == GAME_ACTION_ERROR and info["game_step"] == 0 and r < 0
    assert "Valid actions: " in info["messages"][-1]["content"]
    free.close()
    strict.close()


def test_walkthrough_wins_random_does_not_and_rewards_sum_to_R(env: TextWorldEnv) -> None:
    """The walkthrough wins every game (progress 1, R = 1: the score's changes / max_score); every policy's step
    rewards sum to R, and progress is score / max_score."""
    for name in ("walkthrough", "no_memory", "random"):
        policy = env.scripted_policy(name, 0)
        for seed in range(3):
            obs, info = env.reset(seed=seed)
            policy.reset(info)
            total, done = 0.0, False
            while not done:
                obs, r, te, tr, info = env.step(policy.act(obs, info))
                total += r
                done = te or tr
            ep, game = info["episode"], info["game_info"]
            assert total == pytest.approx(ep["R"], abs=1e-9)
            assert ep["progress"] == max(0, game["tw_score"]) / game["max_score"] and ep["success"] == game["won"]
            if name == "walkthrough":
                assert ep["success"] and ep["R"] == pytest.approx(1.0) and ep["steps"] == len(policy._plan)
    random_res = evaluate_text_game(env, TextWorldRandomPolicy(env, seed=0), episodes=6, seed=0)
    assert random_res.summary["success"] < 1.0


def test_walkthrough_memory_keeps_memories_lifelong(textworld_cache: Path) -> None:
    """The walkthrough-memory policy writes one memory per episode; in lifelong mode later episodes retrieve them."""
    env = TextWorldEnv(**KW, lifelong=True, cache_dir=textworld_cache / "textworld")  # type: ignore[arg-type]
    policy = TextWorldWalkthroughMemoryPolicy(env)
    res = evaluate_text_game(env, policy, episodes=3, seed=0)
    assert res.summary["success"] == 1.0 and res.summary["tool/Add_memory"] == 1.0
    assert res.summary["tool/Retrieve_memory"] == 1.0 and len(env.store) == 3
    _, info = env.reset(seed=5)
    policy.reset(info)
    _, _, _, _, info = env.step(policy.act("", info))
    assert len(info["tool_results"][0]["data"]["hits"]) == 3
    fresh = TextWorldEnv(**KW, cache_dir=textworld_cache / "textworld")  # type: ignore[arg-type]
    evaluate_text_game(fresh, TextWorldWalkthroughMemoryPolicy(fresh), episodes=2, seed=0)
    assert len(fresh.store) == 1  # not lifelong: each episode starts with an empty store
    env.close()
    fresh.close()


def test_agemem_eval_runs_the_suites_scripted_policies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, textworld_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """agemem-eval on AgeMem-TextWorld-v0 plays walkthrough, walkthrough_memory, no_memory and random on the same
    games and prints success, progress, R and tool calls; the walkthrough's rows are those of a direct run."""
    from agemem_gym.evaluation.cli import eval_main

    monkeypatch.setenv("AGEMEM_CACHE_DIR", str(textworld_cache))
    out = tmp_path / "eval.json"
    eval_main(["--env-id", "AgeMem-TextWorld-v0", "--episodes", "2", "--env-kwargs", json.dumps(KW)])
    eval_main(
        ["--env-id", "AgeMem-TextWorld-v0", "--episodes", "2", "--env-kwargs", json.dumps(KW), "--json-out", str(out)]
    )
    assert "| policy | success | progress | R |" in capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert set(payload["summary"]) == {"walkthrough", "walkthrough_memory", "no_memory", "random"}
    assert payload["summary"]["walkthrough"]["success"] == 1.0
    assert payload["summary"]["walkthrough_memory"]["tool/Add_memory"] == 1.0
    env = gym.make("AgeMem-TextWorld-v0", **KW)
    direct = evaluate_text_game(env, TextWorldWalkthroughPolicy(env.unwrapped), episodes=2, seed=0)
    assert [r["R"] for r in payload["rows"]["walkthrough"]] == [r["R"] for r in direct.rows]
    env.close()


@pytest.mark.slow
def test_text_suites_benchmark_smoke_textworld(tmp_path: Path, textworld_cache: Path) -> None:
    """The TextWorld part of the text-suites benchmark runs at tiny sizes and writes its table and step costs."""
    from benchmarks import text_suites

    out = tmp_path / "tw.json"
    args = text_suites.Args(
        suite="textworld",
        quick=True,
        json_out=out,
        tw_challenge="tw-treasure_hunter",
        tw_level=5,
        tw_cache_dir=textworld_cache / "textworld",
    )
    results = text_suites.main(args)
    assert set(results["table"]) == {
        "walkthrough",
        "no_memory",
        "random",
        "walkthrough_memory",
        "walkthrough_memory (lifelong)",
    }
    assert json.loads(out.read_text())["step_cost"]["AgeMem step"]["n"] == 30


@pytest.mark.slow
def test_grpo_runs_two_updates_on_textworld(
    tmp_path: Path, textworld_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GRPO trainer's tiny preset runs two updates on AgeMem-TextWorld-v0, drawing its task ids."""
    import numpy as np

    from agemem_gym.trainers import grpo

    monkeypatch.setenv("AGEMEM_CACHE_DIR", str(textworld_cache))
    args = grpo.parse_args(
        [
            "--preset",
            "tiny",
            "--env-id",
            "AgeMem-TextWorld-v0",
            "--num-updates",
            "2",
            "--output-dir",
            str(tmp_path),
            "--env-kwargs",
            json.dumps(KW),
        ]
    )
    args.progress = args.plot = False
    grpo.main(args)
    rows = [json.loads(line) for line in next(tmp_path.glob("*/metrics.jsonl")).read_text().splitlines()]
    assert [r["update"] for r in rows] == [1, 2]
    assert all(r["rollout/episodes"] == 8 and np.isfinite(r["reward/mean"]) for r in rows)
