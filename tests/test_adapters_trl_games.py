"""The TRL adapter on the text-game ids: the six memory tools and ``act`` (the game action), one env step each, and
get_reward = the episode's R (each id's test skips where its game library is not installed)."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Any

import pytest

from agemem_gym.adapters.trl import AgeMemTRLGameEnv, environment_factory

GAMES = [
    ("AgeMem-BabyAI-v0", "minigrid", {}, "BabyAI-GoToRedBall-v0:3", "turn left"),
    (
        "AgeMem-TextWorld-v0",
        "textworld",
        {"challenge": "tw-treasure_hunter", "level": 5, "n_games": 2},
        "tw-treasure_hunter:5:0",
        "look",
    ),
    ("AgeMem-ScienceWorld-v0", "scienceworld", {"tasks": ["boil"]}, "boil:0", "look around"),
]


@pytest.mark.parametrize(("env_id", "library", "kwargs", "task_id", "command"), GAMES, ids=[g[0] for g in GAMES])
def test_text_game_through_the_trl_tools(
    env_id: str,
    library: str,
    kwargs: dict[str, Any],
    task_id: str,
    command: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A text-game id gets the game env (tools: the six memory tools and act, no answer); reset starts the row's
    game; act steps it and returns the game's reply; an unfinished rollout's get_reward ends it with P_rounds and
    equals the sum of its step rewards."""
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    if library == "scienceworld":
        import shutil

        if shutil.which("java") is None:
            pytest.skip("ScienceWorld needs a Java runtime (no `java` on PATH)")
    if library == "textworld":
        cache: Path = request.getfixturevalue("textworld_cache")
        monkeypatch.setenv("AGEMEM_CACHE_DIR", str(cache))
    env = environment_factory(env_id, **kwargs)()
    assert isinstance(env, AgeMemTRLGameEnv)
    tools = {n for n, _ in inspect.getmembers(type(env), inspect.isfunction) if not n.startswith("_")}
    assert tools == {
        "Add_memory",
        "Update_memory",
        "Delete_memory",
        "Retrieve_memory",
        "Summary_context",
        "Filter_context",
        "act",
        "reset",
        "get_reward",
    }
    first = env.reset(task_id=task_id)
    assert first and env._info["messages"][-1]["content"] == first
    assert env.Add_memory(content=f"{task_id}: started").startswith("[Add_memory] added m_")
    reply = env.act(command=command)
    assert reply.startswith("The game says:\n") and env._info["game_step"] == 1
    rewards_so_far = env._reward_sum
    R = env.get_reward()
    episode = env.episode
    assert episode is not None and episode["truncation_reason"] == "rollout_stopped"
    assert pytest.approx(episode["R"]) == R and pytest.approx(env._reward_sum) == R
    assert env._reward_sum - rewards_so_far == pytest.approx(-1.0)  # P_rounds closes the stopped rollout
    assert env.get_reward() == R  # asking again changes nothing
    env._env.close()
