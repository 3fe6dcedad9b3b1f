"""Tests of episode recordings: what any agent text does to them, replay, SFT export, cuts and concurrent writers."""

from __future__ import annotations

import doctest
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym import jsonl, protocol, recorder, text, trust
from agemem_gym.agents import tool_call
from agemem_gym.errors import DataError
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
    """The runnable examples in the recorder, JSON Lines, protocol, text and trust docstrings pass."""
    for module in (recorder, jsonl, protocol, text, trust):
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


def _planted_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """A module on sys.path that leaves a marker file when imported (that is, when a file made us run it)."""
    marker = tmp_path / f"{name}.imported"
    (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return marker


def test_a_recording_cannot_make_replay_import_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A header env_id of "module:id" is refused by replay() and export_sft() unless trust_remote_module=True."""
    marker = _planted_module(tmp_path, monkeypatch, "planted_by_recording")
    path = tmp_path / "eps.jsonl"
    record(path, [tool_call(("Add_memory", {"content": "a fact"}))]).close()
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    header["env_id"] = "planted_by_recording:AgeMem-Synthetic-v0"
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    (ep,) = load_episodes(path)
    with pytest.raises(DataError, match=r"module 'planted_by_recording' is not imported; making it would import"):
        replay(ep)
    with pytest.raises(DataError, match=r"trust_remote_module=True"):
        export_sft([ep], tmp_path / "sft.jsonl")
    assert not marker.exists()
    assert replay(ep, trust_remote_module=True).matches and marker.exists()


@pytest.mark.parametrize("env_id", ["Not-Registered-v0", 42, None])
def test_a_recording_must_name_a_registered_env_id(tmp_path: Path, env_id: object) -> None:
    """An unregistered or malformed env id is a DataError that says to pass env=."""
    path = tmp_path / "eps.jsonl"
    record(path, []).close()
    (ep,) = load_episodes(path)
    ep.header["env_id"] = env_id
    with pytest.raises(DataError, match=r"[Pp]ass env="):
        replay(ep)
