"""Tests of episode recordings: what any agent text does to them, replay, SFT export, cuts and concurrent writers."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.errors import DataError, RecordingLockedError
from agemem_gym.evaluation import recorder
from agemem_gym.evaluation.agents import answer, tool_call
from agemem_gym.evaluation.recorder import RecordEpisodes, export_sft, load_episodes, replay

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


# ---- cuts, appends and concurrent writers ----

CUT_ACTIONS = [
    tool_call(("Add_memory", {"content": "café ☕: the Orvel Bridge opened in 1841"})),
    "<answer>naïve — reply</answer>",
    "not an action at all ✗",
]


def _two_episodes(path: Path) -> bytes:
    env = RecordEpisodes(gym.make("AgeMem-Synthetic-v0", episode={**SMALL, "max_steps": 3}), path)
    for seed in (0, 1):
        env.reset(seed=seed)
        for a in CUT_ACTIONS:
            *_, term, trunc, _ = env.step(a)
            if term or trunc:
                break
    env.close()
    return path.read_bytes()


def _flat(episodes: list[recorder.RecordedEpisode]) -> list[dict[str, Any]]:
    return [r for ep in episodes for r in [ep.header, *ep.steps, *([ep.end] if ep.end else [])]]


def test_a_cut_at_any_byte_loses_at_most_the_cut_line(tmp_path: Path) -> None:
    """Cut at every byte offset (inside multi-byte characters too), a recording loads every complete line and
    nothing else; only the line being written is lost."""
    data = _two_episodes(tmp_path / "eps.jsonl")
    assert data.count(b"\n") == 10 and len(data) > 5000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(len(data) + 1):
            head, _, tail = data[:k].rpartition(b"\n")
            complete = [json.loads(line) for line in head.split(b"\n") if line]
            with contextlib.suppress(ValueError):  # cut right before a newline: that line is whole
                complete.append(json.loads(tail.decode("utf-8")))
            assert _flat(recorder.parse_episodes(io.BytesIO(data[:k]), "cut")) == complete, k


def test_appending_after_a_cut_starts_a_fresh_line(tmp_path: Path) -> None:
    """A recorder appending to a cut file starts on a new line; loading skips only the cut line, with a warning.
    Files from recorders that glued the new header onto the cut line load the same way."""
    path = tmp_path / "eps.jsonl"
    data = _two_episodes(path)
    cut = data.rfind(b"\n", 0, len(data) - 1) + 40  # 40 bytes into the last line (an end record)
    path.write_bytes(data[:cut])
    record(path, [answer("x")]).close()
    with pytest.warns(UserWarning, match=r"eps\.jsonl:10: skipped a line cut short"):
        episodes = load_episodes(path)
    assert len(episodes) == 3 and episodes[1].end is None and len(episodes[2].steps) == 1
    fresh = path.read_bytes()[cut + 1 :]
    path.write_bytes(data[:cut] + fresh)  # the old behaviour: no newline before the new header
    with pytest.warns(UserWarning, match="skipped a line cut short"):
        assert _flat(load_episodes(path)) == _flat(episodes)


def test_a_damaged_line_in_the_middle_is_still_an_error(tmp_path: Path) -> None:
    """Only a last line, or one a new episode was appended after, may be cut: other damage names the line."""
    path = tmp_path / "eps.jsonl"
    lines = _two_episodes(path).split(b"\n")
    lines[2] = lines[2][:30]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"eps\.jsonl:3: not JSON .*only the last line of a recording"):
        load_episodes(path)


def test_a_second_recorder_on_one_file_fails_before_its_env_moves(tmp_path: Path) -> None:
    """Two RecordEpisodes on one path do not interleave: the second fails at reset (its env untouched) until the
    first is closed; another process is refused the same way."""
    import multiprocessing

    path = tmp_path / "eps.jsonl"
    first = record(path, [answer("x")])
    second = RecordEpisodes(gym.make("AgeMem-Synthetic-v0", episode=SMALL), path)
    with pytest.raises(RecordingLockedError, match="is being written by another RecordEpisodes"):
        second.reset(seed=0)
    assert second.unwrapped._ep is None  # type: ignore[attr-defined]
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_reset_must_be_refused, args=(str(path),))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    first.close()
    second.reset(seed=0)
    second.step(answer("y"))
    second.close()
    episodes = load_episodes(path)
    assert [len(ep.steps) for ep in episodes] == [1, 1]


def _reset_must_be_refused(path: str) -> None:
    env = RecordEpisodes(gym.make("AgeMem-Synthetic-v0", episode=SMALL), path)
    try:
        env.reset(seed=0)
    except RecordingLockedError:
        raise SystemExit(0) from None
    raise SystemExit(1)
