"""AgeMem-ALFWorld-v0: the loader over ALFWorld's file layout and the checksummed downloader.

ALFWorld's files are a download the tests do not make: the loader is exercised on a tiny fake layout built from
TextWorld-generated games (the session's compiled games, copied into ALFWorld's directory tree with a
traj_data.json each). A test on the real files runs only where ``AGEMEM_ALFWORLD_PATH`` points at them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.envs import download as dl
from agemem_gym.envs.alfworld import ALFWORLD_PATH_ENV, ALFWorldGames, alfworld_root
from agemem_gym.errors import ConfigError, DataError

TRIALS = {
    "pick_and_place_simple-Lampshade-None-Floor-1/trial_T20190001_000001": "tw-treasure_hunter:5:0",
    "look_at_obj_in_light-Key-None-DeskLamp-2/trial_T20190002_000002": "tw-treasure_hunter:5:1",
}


def make_layout(root: Path, cache: Path | None) -> Path:
    """ALFWorld's tree under root/json_2.1.1/valid_unseen: two trials with a game and traj_data.json (when a compiled
    game cache is given), one trial with no game file (skipped by the loader) and one Glulx trial."""
    split = root / "json_2.1.1" / "valid_unseen"
    for trial, task_id in TRIALS.items():
        d = split / trial
        d.mkdir(parents=True)
        (d / "traj_data.json").write_text(json.dumps({"task_type": trial.split("-")[0], "task_id": d.name}))
        if cache is not None:
            from agemem_gym.envs.textworld import TextWorldSpec, compiled_game

            game = compiled_game(TextWorldSpec.parse(task_id), cache)
            shutil.copy(game, d / "game.z8")
            shutil.copy(game.with_suffix(".json"), d / "game.json")
        else:
            (d / "game.z8").write_bytes(b"not a game")
    empty = split / "pick_two_obj_and_place-Pen-None-Desk-3" / "trial_T20190003_000003"
    empty.mkdir(parents=True)
    (empty / "traj_data.json").write_text(json.dumps({"task_type": "pick_two_obj_and_place"}))
    glulx = split / "pick_cool_then_place_in_recep-Apple-None-Fridge-4" / "trial_T20190004_000004"
    glulx.mkdir(parents=True)
    (glulx / "traj_data.json").write_text(json.dumps({"task_type": "pick_cool_then_place_in_recep"}))
    (glulx / "game.ulx").write_bytes(b"glulx")
    return root


def test_loader_finds_the_trials_of_a_split_and_filters_task_types(tmp_path: Path) -> None:
    """Trials with a game file are the task ids (sorted; one without a game is skipped); task_types filters them;
    a Glulx game is refused with a message naming why."""
    root = make_layout(tmp_path, None)
    games = ALFWorldGames(root, "valid_unseen")
    assert len(games.task_ids) == 3 and games.task_ids == tuple(sorted(games.task_ids))
    assert set(TRIALS) <= set(games.task_ids)
    only = ALFWorldGames(root / "json_2.1.1", "valid_unseen", ("look_at_obj_in_light",))  # the json_2.1.1 dir works
    assert only.task_ids == ("look_at_obj_in_light-Key-None-DeskLamp-2/trial_T20190002_000002",)
    assert only.traj_data(only.task_ids[0])["task_type"] == "look_at_obj_in_light"
    glulx = next(t for t in games.task_ids if t.startswith("pick_cool"))
    with pytest.raises(ConfigError, match=r"Glulx game, which TextWorld 1\.7 no longer plays"):
        games.path(glulx)
    with pytest.raises(ConfigError, match="is not one of this env's 3 ALFWorld valid_unseen trials"):
        games.check("nope/trial")
    with pytest.raises(ConfigError, match="task types"):
        ALFWorldGames(root, "valid_unseen", ("cook",))


def test_missing_files_name_the_path_and_the_downloader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the files, making the env says where it looked and how to get them; the path resolution order is
    data_path, AGEMEM_ALFWORLD_PATH, ALFWORLD_DATA, the cache."""
    monkeypatch.setenv(ALFWORLD_PATH_ENV, str(tmp_path / "a"))
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path / "b"))
    assert alfworld_root() == tmp_path / "a" and alfworld_root(tmp_path / "c") == tmp_path / "c"
    monkeypatch.delenv(ALFWORLD_PATH_ENV)
    assert alfworld_root() == tmp_path / "b"
    with pytest.raises(DataError, match=r"no ALFWorld 'valid_unseen' split .*agemem-download alfworld"):
        gym.make("AgeMem-ALFWorld-v0")
    (tmp_path / "b" / "json_2.1.1" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no playable ALFWorld trial"):
        gym.make("AgeMem-ALFWorld-v0", split="train")


def _zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_needs_a_sha256_verifies_it_and_unpacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """agemem-download alfworld refuses to run without a sha256 (ALFWorld publishes none), rejects a wrong one, and
    unpacks a verified archive where the env looks; an archive with a member outside its root is refused."""
    archive = tmp_path / "json_2.1.1_json.zip"
    member = "json_2.1.1/valid_unseen/pick_and_place_simple-A-None-B-1/trial_1/traj_data.json"
    sha = _zip(archive, {member: b'{"task_type": "pick_and_place_simple"}'})
    url = archive.as_uri()
    dest = tmp_path / "alfworld"
    with pytest.raises(ConfigError, match="ALFWorld publishes no checksums"):
        dl.download_alfworld(url, None, dest, progress=False)
    assert dl.main(["alfworld", "--url", url, "--dest", str(dest), "--no-progress"]) == 1
    assert "publishes no checksums" in capsys.readouterr().err
    with pytest.raises(DataError, match="sha256 mismatch"):
        dl.download_alfworld(url, "0" * 64, dest, progress=False)
    code = dl.main(["alfworld", "--url", url, "--sha256", sha, "--dest", str(dest), "--no-progress"])
    assert code == 0 and (dest / member).is_file()
    assert "sha256 verified" in capsys.readouterr().out
    evil = tmp_path / "evil.zip"
    evil_sha = _zip(evil, {"../escape.txt": b"x"})
    with pytest.raises(DataError, match="outside its root"):
        dl.download_alfworld(evil.as_uri(), evil_sha, dest, progress=False)
    assert not (tmp_path / "escape.txt").exists()


pytest.importorskip("textworld", reason="textworld is not installed: pip install 'agemem-gym[textworld]'")


def test_env_plays_the_fake_layout(tmp_path: Path, textworld_cache: Path) -> None:
    """AgeMem-ALFWorld-v0 over the fake layout: check_env passes, a task id plays its trial, the walkthrough wins it
    and the step rewards sum to R; the instructions are ALFWorld's."""
    from gymnasium.utils.env_checker import check_env

    from agemem_gym.textenv import evaluate_text_game

    root = make_layout(tmp_path / "data", textworld_cache / "textworld")
    env = gym.make("AgeMem-ALFWorld-v0", data_path=str(root), task_types=["pick_and_place_simple"]).unwrapped
    check_env(env, skip_render_check=True)
    (trial,) = env.suite.task_ids  # type: ignore[attr-defined]
    _, info = env.reset(options={"task_id": trial})
    assert "ALFWorld household" in info["messages"][0]["content"] and env.textworld.task_id == trial  # type: ignore[attr-defined]
    result = evaluate_text_game(env, env.scripted_policy("walkthrough"), episodes=2, seed=0)  # type: ignore[attr-defined]
    assert result.summary["success"] == 1.0 and result.summary["R"] == pytest.approx(1.0)
    env.close()


@pytest.mark.skipif(not os.environ.get(ALFWORLD_PATH_ENV), reason=f"the real ALFWorld files: set {ALFWORLD_PATH_ENV}")
def test_real_alfworld_files_load() -> None:
    """On the real files (where AGEMEM_ALFWORLD_PATH points at them), valid_unseen has ALFWorld's 134 trials and one
    resets (for game.tw-pddl files this needs textworld[pddl])."""
    games = ALFWorldGames(alfworld_root(), "valid_unseen")
    assert len(games.task_ids) == 134
    env = gym.make("AgeMem-ALFWorld-v0")
    env.reset(seed=0)
    env.close()
