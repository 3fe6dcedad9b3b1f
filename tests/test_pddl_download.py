"""`agemem-download pddl`: AgentBoard's PDDL games from a checksummed archive, unpacked safely, installed atomically,
and read by ``AgeMem-PDDL-v0`` by name (fake archives from local file:// URLs; nothing is downloaded)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.envs import download as dl
from agemem_gym.envs.pddl import BLOCKSWORLD_PDDL, PDDL_PATH_ENV, PDDLPlannerPolicy, generate_problem, pddl_root
from agemem_gym.errors import ConfigError, DataError

# Where AgentBoard's code archive keeps the games (GitHub's archives put everything under one top directory).
TREE = "AgentBoard-0000000/agentboard/environment/pddl_env/pddlgym/pddl"


def _tar(path: Path, members: dict[str, bytes]) -> str:
    """Write a .tar.gz of ``members`` and return its sha256."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _agentboard_like(path: Path) -> str:
    """A small archive in AgentBoard's layout: the blocks game with two problems, plus unrelated repository files."""
    return _tar(
        path,
        {
            "AgentBoard-0000000/README.md": b"# not a game\n",
            "AgentBoard-0000000/agentboard/prompts/pddl.json": b"{}",
            f"{TREE}/blocks.pddl": BLOCKSWORLD_PDDL.encode(),
            f"{TREE}/blocks/p01.pddl": generate_problem("blocksworld", 3, 1).encode(),
            f"{TREE}/blocks/p02.pddl": generate_problem("blocksworld", 4, 2).encode(),
        },
    )


def test_download_refuses_to_run_without_a_sha256(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """AgentBoard publishes no checksums, so both the function and the CLI refuse to run without one and say how to
    get one."""
    archive = tmp_path / "agentboard.tar.gz"
    _agentboard_like(archive)
    with pytest.raises(ConfigError, match="AgentBoard publishes no checksums"):
        dl.download_pddl(None, archive.as_uri(), tmp_path / "games", progress=False)
    assert dl.main(["pddl", "--url", archive.as_uri(), "--dest", str(tmp_path / "games"), "--no-progress"]) == 1
    assert "--sha256 HEX" in capsys.readouterr().err
    assert not (tmp_path / "games").exists()


def test_checksum_mismatch_is_refused_and_installs_nothing(tmp_path: Path) -> None:
    """A wrong sha256 raises with both digests; the archive is deleted and no tree is installed."""
    archive = tmp_path / "agentboard.tar.gz"
    actual = _agentboard_like(archive)
    dest = tmp_path / "cache" / "games"
    with pytest.raises(DataError, match=f"expected {'0' * 64}, actual {actual}"):
        dl.download_pddl("0" * 64, archive.as_uri(), dest, progress=False)
    assert not dest.exists() and not list((tmp_path / "cache" / ".archives").iterdir())


@pytest.mark.parametrize("evil", ["../escape.pddl", "/tmp/agemem-escape.pddl", f"{TREE}/../../../../../escape.pddl"])
def test_members_outside_the_archive_root_are_refused(tmp_path: Path, evil: str) -> None:
    """An archive with a member that would land outside its root (``..``, an absolute path) is refused before
    anything is unpacked, and nothing is installed."""
    archive = tmp_path / "evil.tar.gz"
    sha = _tar(archive, {f"{TREE}/blocks.pddl": BLOCKSWORLD_PDDL.encode(), evil: b"x"})
    dest = tmp_path / "cache" / "games"
    with pytest.raises(DataError, match="outside its root"):
        dl.download_pddl(sha, archive.as_uri(), dest, progress=False)
    assert not dest.exists() and not (tmp_path / "escape.pddl").exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name != ".archives"]  # no staging left behind


def test_a_link_member_is_refused(tmp_path: Path) -> None:
    """A symlink in the archive could point anywhere, so it is refused."""
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        link = tarfile.TarInfo(f"{TREE}/blocks.pddl")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="links or special files"):
        dl.download_pddl(sha, archive.as_uri(), tmp_path / "games", progress=False)


def test_an_archive_without_a_pddl_tree_is_refused(tmp_path: Path) -> None:
    """The hub's data.tar.gz has only data/pddl/test.jsonl: that is not the games, and the message says where they
    are."""
    archive = tmp_path / "data.tar.gz"
    sha = _tar(archive, {"data/pddl/test.jsonl": b'{"id": 0}\n', "data/pddl/notes.pddl": b"; no problems dir"})
    with pytest.raises(DataError, match=r"no PDDL tree in AgentBoard's layout.*code archive"):
        dl.download_pddl(sha, archive.as_uri(), tmp_path / "games", progress=False)
    assert not (tmp_path / "games").exists()


def test_cli_installs_the_tree_into_the_cache_and_the_env_plays_it_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`agemem-download pddl --url ... --sha256 ...` installs only the games' tree where the env looks, and
    ``gym.make("AgeMem-PDDL-v0", game="blocks")`` plays its problems (the planner solves one)."""
    monkeypatch.setenv("AGEMEM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(PDDL_PATH_ENV, raising=False)
    archive = tmp_path / "agentboard.tar.gz"
    sha = _agentboard_like(archive)
    assert dl.main(["pddl", "--url", archive.as_uri(), "--sha256", sha, "--no-progress"]) == 0
    out = capsys.readouterr().out
    root = pddl_root()
    assert root == tmp_path / "cache" / "pddl" / "agentboard" and f"installed into {root}" in out and "blocks" in out
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "blocks",
        "blocks.pddl",
        "blocks/p01.pddl",
        "blocks/p02.pddl",
    ]
    env = gym.make("AgeMem-PDDL-v0", game="blocks").unwrapped
    assert env.suite.task_ids == ("blocksworld:p01", "blocksworld:p02")  # type: ignore[attr-defined]
    _, info = env.reset(options={"task_id": "blocksworld:p02"})
    policy = PDDLPlannerPolicy(env)
    policy.reset(info)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(policy.act("", info))
        done = terminated or truncated
    assert info["episode"]["success"] is True and info["episode"]["progress"] == 1.0


def test_a_second_install_replaces_the_first_whole(tmp_path: Path) -> None:
    """Installing again swaps the new tree in: files only the old tree had are gone, and a game is never half
    there."""
    dest = tmp_path / "games"
    first = tmp_path / "first.tar.gz"
    sha1 = _tar(
        first,
        {
            f"{TREE}/blocks.pddl": BLOCKSWORLD_PDDL.encode(),
            f"{TREE}/blocks/old.pddl": generate_problem("blocksworld", 3, 0).encode(),
        },
    )
    dl.download_pddl(sha1, first.as_uri(), dest, progress=False)
    second = tmp_path / "second.tar.gz"
    sha2 = _agentboard_like(second)
    assert dl.download_pddl(sha2, second.as_uri(), dest, progress=False) == dest
    assert sorted(p.name for p in (dest / "blocks").iterdir()) == ["p01.pddl", "p02.pddl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".archives", "first.tar.gz", "games", "second.tar.gz"]


def test_env_finds_games_by_data_path_or_env_var_and_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``data_path=`` and ``$AGEMEM_PDDL_PATH`` point the env at a tree; a missing game names where it looked and
    which games are there; ``game`` with ``domain_file`` (or ``data_path`` alone) is a ConfigError."""
    archive = tmp_path / "agentboard.tar.gz"
    tree = dl.download_pddl(_agentboard_like(archive), archive.as_uri(), tmp_path / "games", progress=False)
    assert len(gym.make("AgeMem-PDDL-v0", game="blocks", data_path=str(tree)).unwrapped.suite.task_ids) == 2
    monkeypatch.setenv(PDDL_PATH_ENV, str(tree))
    assert gym.make("AgeMem-PDDL-v0", game="blocks").unwrapped.suite.task_ids[0] == "blocksworld:p01"
    with pytest.raises(DataError, match=r"no PDDL game 'barman'.*games there: \['blocks'\].*agemem-download pddl"):
        gym.make("AgeMem-PDDL-v0", game="barman")
    with pytest.raises(ConfigError, match="'game' must be the name"):
        gym.make("AgeMem-PDDL-v0", game="../blocks")
    with pytest.raises(ConfigError, match="either 'game'"):
        gym.make("AgeMem-PDDL-v0", game="blocks", domain_file=str(tree / "blocks.pddl"))
    with pytest.raises(ConfigError, match="pass game="):
        gym.make("AgeMem-PDDL-v0", data_path=str(tree))


def test_find_pddl_tree_picks_the_shallowest_game_directory(tmp_path: Path) -> None:
    """The tree is the shallowest directory with a ``<game>.pddl`` beside a ``<game>/`` of problems; a domain file
    without problems does not count."""
    (tmp_path / "a" / "lonely.pddl").parent.mkdir(parents=True)
    (tmp_path / "a" / "lonely.pddl").write_text(BLOCKSWORLD_PDDL)
    assert dl.find_pddl_tree(tmp_path) is None
    for base in (tmp_path / "x" / "y" / "pddl", tmp_path / "x" / "games"):
        (base / "g").mkdir(parents=True)
        (base / "g.pddl").write_text(BLOCKSWORLD_PDDL)
        (base / "g" / "p.pddl").write_text("")
    assert dl.find_pddl_tree(tmp_path) == tmp_path / "x" / "games"
