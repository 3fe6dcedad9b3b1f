"""Tests of episode recordings: what any agent text does to them, replay, SFT export, cuts and concurrent writers."""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import gymnasium as gym

import agemem_gym  # noqa: F401
from agemem_gym import jsonl, protocol, recorder, text
from agemem_gym.agents import tool_call
from agemem_gym.recorder import RecordEpisodes, export_sft, load_episodes, replay

SMALL = {"stage1_distractors": 0, "stage2_paragraphs": 1, "max_tool_rounds": 3}
SURROGATE_ACTIONS = [
    '<tool_call>{"name": "Add_memory", "arguments": {"content": "bad \\ud800 text"}}</tool_call>',
    "<answer>raw \ud800 surrogate</answer>",
    tool_call(("Add_memory", {"content": "café ☕ and a fact"})),
]


def record(path: Path, actions: list[str], **kwargs: Any) -> gym.Env[str, str]:
    env = RecordEpisodes(gym.make("AgeMem-Synthetic-v0", episode=SMALL), path, **kwargs)
    env.reset(seed=0)
    for a in actions:
        env.step(a)
    return env


def test_docstring_examples_run() -> None:
    """The runnable examples in the recorder, JSON Lines, protocol and text docstrings pass."""
    for module in (recorder, jsonl, protocol, text):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_surrogate_actions_are_recorded_verbatim_and_replay(tmp_path: Path) -> None:
    """Actions with lone surrogates (raw or escaped) are recorded byte for byte, valid UTF-8, and replay exactly."""
    path = tmp_path / "eps.jsonl"
    env = record(path, SURROGATE_ACTIONS)
    env.close()
    path.read_bytes().decode("utf-8")  # strict: every line is valid UTF-8
    (ep,) = load_episodes(path)
    assert ep.actions == SURROGATE_ACTIONS and [s["action_error"] for s in ep.steps][:2] == ["invalid_unicode"] * 2
    assert "café ☕" in path.read_text(encoding="utf-8")  # readable where it can be
    assert replay(ep).matches
    out = tmp_path / "sft.jsonl"
    assert export_sft([ep], out, include_invalid=True) == 3
    out.read_bytes().decode("utf-8")
