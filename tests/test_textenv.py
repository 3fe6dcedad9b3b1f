"""TextGameEnv, the memory tools around any text game, on a fake game (no minigrid needed)."""

from __future__ import annotations

import copy
import json
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from agemem_gym.errors import ConfigError
from agemem_gym.textenv import (
    GAME_ACTION_ERROR,
    TextGameEnv,
    evaluate_text_game,
    normalize_command,
)

ACTIONS = ("left", "right", "wait")


class CorridorGame:
    """A seeded corridor: walk to the hidden exit; the seed places it, and the game keeps an RNG of its own."""

    instructions = "Walk along a corridor to the exit. Actions: left, right, wait."

    def __init__(self, length: int = 6, max_steps: int = 20) -> None:
        self.length, self.max_steps = length, max_steps
        self.rng = np.random.default_rng(0)
        self.pos = self.exit = self.t = 0

    def _obs(self) -> str:
        noise = int(self.rng.integers(100))  # game-side randomness, so snapshots must carry the RNG
        return f"You are at {self.pos} of {self.length}. The wind reads {noise}."

    def reset(self, *, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        self.rng = np.random.default_rng(seed)
        self.exit = int(self.rng.integers(1, self.length))
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self.t += 1
        self.pos = min(self.length, max(0, self.pos + {"left": -1, "right": 1, "wait": 0}[action]))
        won = self.pos == self.exit
        return self._obs(), 1.0 if won else 0.0, won, self.t >= self.max_steps, {"progress": self.pos / self.length}

    def valid_actions(self) -> tuple[str, ...]:
        return ACTIONS

    def get_state(self) -> Any:
        return copy.deepcopy((self.rng, self.pos, self.exit, self.t))

    def set_state(self, state: Any) -> None:
        self.rng, self.pos, self.exit, self.t = copy.deepcopy(state)


class FreeTextGame:
    """A game with no fixed action set and no snapshots."""

    instructions = "Say anything."

    def reset(self, *, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        return "Hello.", {}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        return f"You said {action}.", 0.0, action == "bye", False, {"success": action == "bye"}

    def valid_actions(self) -> None:
        return None


def act(action: str) -> str:
    return f"<think>go</think><answer>{action}</answer>"


def calls(*items: tuple[str, dict[str, Any]]) -> str:
    body = json.dumps([{"name": n, "arguments": a} for n, a in items])
    return f"<think>tools</think><tool_call>{body}</tool_call>"


def rollout(env: TextGameEnv, seed: int, actions: list[str]) -> list[tuple[str, float, bool, bool]]:
    obs, _ = env.reset(seed=seed)
    out: list[tuple[str, float, bool, bool]] = [(obs, 0.0, False, False)]
    for a in actions:
        obs, r, te, tr, _ = env.step(a)
        out.append((obs, r, te, tr))
        if te or tr:
            break
    return out


HOSTILE = [
    "",
    "no tags at all",
    "<answer></answer>",
    "<tool_call>[{</tool_call>",
    "<tool_call>[]</tool_call>",
    '<tool_call>{"name": "Nope"}</tool_call>',
    "<answer>a</answer><answer>b</answer>",
    "<tool_call>" + "[" * 5000 + "</tool_call>",
    "bad \ud800 surrogate <answer>right</answer>",
    "<answer>" + "x" * 20_000 + "</answer>",
    '<tool_call>[{"name": "Delete_memory", "arguments": {"memory_id": "m_9999", "confirmation": true}}]</tool_call>',
    '<tool_call>[{"name": "Retrieve_memory", "arguments": {"query": "x", "top_k": NaN}}]</tool_call>',
    "<answer>fly to the moon</answer>",
    "<answer>\x00\u202e</answer>",
]


def test_check_env_passes() -> None:
    """Gymnasium's env checker accepts the wrapper around a fake game."""
    check_env(TextGameEnv(CorridorGame()), skip_render_check=True)


def test_answer_steps_the_game_and_tools_do_not() -> None:
    """A tool turn leaves the game where it was; an answer steps it once and appends its observation."""
    env = TextGameEnv(CorridorGame())
    _, info = env.reset(seed=3)
    _, r, te, tr, info = env.step(calls(("Add_memory", {"content": "The exit is somewhere to the right."})))
    assert (r, te, tr, info["game_step"], info["action_error"]) == (0.0, False, False, 0, None)
    assert info["messages"][-1]["role"] == "tool" and "added m_0001" in info["messages"][-1]["content"]
    _, _, _, _, info = env.step(act("Right."))
    assert info["game_step"] == 1 and info["messages"][-1]["content"].startswith("You are at 1 of 6")
    assert info["tools"][0]["function"]["name"] == "Add_memory"


def test_invalid_game_action_gets_feedback_and_no_step() -> None:
    """An answer outside the game's actions costs the format penalty, lists the actions, and does not step."""
    env = TextGameEnv(CorridorGame())
    env.reset(seed=0)
    _, r, _, _, info = env.step(act("jump"))
    assert info["action_error"] == GAME_ACTION_ERROR and info["game_step"] == 0
    assert r == pytest.approx(-0.1)
    assert "Valid actions: left, right, wait" in info["messages"][-1]["content"]


@pytest.mark.parametrize("text", HOSTILE)
def test_malformed_and_hostile_text_never_raises(text: str) -> None:
    """Hostile agent text becomes an error code, a feedback message and a penalty, never an exception."""
    env = TextGameEnv(CorridorGame())
    env.reset(seed=1)
    obs, r, _, _, info = env.step(text)
    assert isinstance(obs, str) and r <= 0.0
    json.dumps(info["messages"])  # the context stays encodable
    assert info["action_error"] is not None


def test_seeded_rollouts_are_identical() -> None:
    """Two rollouts of the same actions from the same seed give identical observations and rewards."""
    actions = [act("right"), calls(("Retrieve_memory", {"query": "exit"})), act("right"), "junk", act("right")] * 3
    a = rollout(TextGameEnv(CorridorGame()), 7, actions)
    b = rollout(TextGameEnv(CorridorGame()), 7, actions)
    assert a == b
    c = rollout(TextGameEnv(CorridorGame()), 8, actions)
    assert a[0][0] != c[0][0]


def test_unseeded_resets_follow_the_env_seed() -> None:
    """Resets without a seed draw the game seed from np_random, so the sequence is reproducible."""
    seeds = []
    for _ in range(2):
        env = TextGameEnv(CorridorGame())
        env.reset(seed=5)
        seeds.append([env.reset()[1]["game_seed"] for _ in range(3)])
    assert seeds[0] == seeds[1]


def test_get_state_set_state_replays_exactly() -> None:
    """Restoring a snapshot replays every later step exactly (game RNG, store and context included)."""
    env = TextGameEnv(CorridorGame())
    env.reset(seed=2)
    env.step(calls(("Add_memory", {"content": "I started at 0."})))
    env.step(act("right"))
    state = env.get_state()
    tail = [calls(("Add_memory", {"content": "Then I went right."})), act("wait"), act("right"), act("left")]
    first = [env.step(a)[:4] for a in tail]
    env.set_state(state)
    again = [env.step(a)[:4] for a in tail]
    assert first == again
    env.set_state(state)
    assert [env.step(a)[:4] for a in tail] == first


def test_get_state_needs_a_game_that_snapshots() -> None:
    """get_state on a game without get_state/set_state raises NotImplementedError saying what to add."""
    env = TextGameEnv(FreeTextGame())
    env.reset(seed=0)
    with pytest.raises(NotImplementedError, match="get_state\\(\\) and set_state\\(state\\)"):
        env.get_state()


def test_free_text_game_takes_any_answer_and_reports_success() -> None:
    """Without a fixed action set every answer reaches the game; its info['success'] is the episode's success."""
    env = TextGameEnv(FreeTextGame())
    env.reset(seed=0)
    _, _, _, _, info = env.step(act("Hello there"))
    assert info["messages"][-1]["content"] == "You said hello there." and info["valid_actions"] is None
    _, _, te, _, info = env.step(act("bye"))
    assert te and info["episode"]["success"] is True and info["episode"]["progress"] == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_step_rewards_sum_to_episode_R(seed: int) -> None:
    """The step rewards of an episode sum to info['episode']['R'] (penalties and game reward together)."""
    env = TextGameEnv(CorridorGame(), episode={"context_budget": 600})
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    pool = [act("right"), act("left"), act("wait"), act("nope"), "junk", calls(("Retrieve_memory", {"query": "x"}))]
    total, done, info = 0.0, False, {}
    while not done:
        _, r, te, tr, info = env.step(pool[int(rng.integers(len(pool)))])
        total += r
        done = te or tr
    ep = info["episode"]
    assert total == pytest.approx(ep["R"], abs=1e-9)
    assert ep["R"] == pytest.approx(ep["score"] + ep["penalty"], abs=1e-9)
    assert set(ep) >= {"success", "score", "progress", "tool_counts", "steps", "game_steps"}


def test_tool_round_limit_truncates_with_P_rounds() -> None:
    """More tool turns than max_tool_rounds between game steps truncate with P_rounds."""
    env = TextGameEnv(CorridorGame(), episode={"max_tool_rounds": 2})
    env.reset(seed=0)
    probe = calls(("Retrieve_memory", {"query": "exit"}))
    assert not env.step(probe)[3] and not env.step(probe)[3]
    _, r, te, tr, info = env.step(probe)
    assert (te, tr, info["truncation_reason"]) == (False, True, "tool_round_limit")
    assert r == pytest.approx(-1.0)


def test_game_truncation_passes_through_without_P_rounds() -> None:
    """The game's own time limit truncates the episode as 'game_truncated' with no P_rounds."""
    env = TextGameEnv(CorridorGame(max_steps=2))
    env.reset(seed=0)
    env.step(act("left"))
    _, r, _, tr, info = env.step(act("left"))
    assert tr and info["truncation_reason"] == "game_truncated" and r == 0.0


def test_max_turns_truncates() -> None:
    """Reaching max_turns ends the episode with P_rounds, and stepping after the end needs a reset."""
    env = TextGameEnv(CorridorGame(), episode={"max_turns": 1})
    env.reset(seed=0)
    _, r, _, tr, info = env.step(act("wait"))
    assert tr and info["truncation_reason"] == "max_turns" and r == pytest.approx(-1.0)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(act("wait"))


@pytest.mark.parametrize("lifelong", [True, False])
def test_lifelong_mode_keeps_memories_across_resets(lifelong: bool) -> None:
    """With lifelong=True what one game stored is retrievable in the next; without it the store starts empty."""
    env = TextGameEnv(CorridorGame(), lifelong=lifelong)
    env.reset(seed=0)
    env.step(calls(("Add_memory", {"content": "The exit of corridor games is usually near the middle."})))
    _, info = env.reset(seed=1)
    assert info["memory_size"] == (1 if lifelong else 0) and info["episode_index"] == 1
    _, _, _, _, info = env.step(calls(("Retrieve_memory", {"query": "where is the exit"})))
    hits = info["tool_results"][0]["data"]["hits"]
    assert [h["id"] for h in hits] == (["m_0001"] if lifelong else [])
    _, _, _, _, info = env.step(calls(("Add_memory", {"content": "Second game notes."})))
    assert info["tool_results"][0]["data"]["id"] == ("m_0002" if lifelong else "m_0001")


def test_evaluate_text_game_rows() -> None:
    """evaluate_text_game runs seeded episodes and reports success, R, steps and tool counts per episode."""

    class Walker:
        name = "walker"

        def reset(self, info: Any) -> None:
            pass

        def act(self, observation: str, info: Any) -> str:
            return act("right")

    res = evaluate_text_game(TextGameEnv(CorridorGame()), Walker(), episodes=4, seed=0)
    assert len(res.rows) == 4 and res.summary["success"] == 1.0
    assert res.summary["tool/Add_memory"] == 0.0 and res.policy == "walker"


def test_constructor_errors_name_the_rule() -> None:
    """Bad constructor arguments raise ConfigError naming what is wrong."""
    with pytest.raises(ConfigError, match="TextGame protocol"):
        TextGameEnv(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'max_turns' must be an int >= 1"):
        TextGameEnv(CorridorGame(), episode={"max_turns": 0})
    with pytest.raises(ConfigError, match="unknown field"):
        TextGameEnv(CorridorGame(), episode={"max_step": 3})
    env = TextGameEnv(CorridorGame())
    with pytest.raises(ConfigError, match="game_seed"):
        env.reset(options={"game_seed": "x"})


def test_normalize_command() -> None:
    """Commands compare in lower case with single spaces and no final full stop."""
    assert normalize_command("  Go   Forward. ") == "go forward"
