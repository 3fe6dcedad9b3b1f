"""``AgeMem-ALFWorld-v0``: ALFWorld's household games, for users who have its game files, with memory tools.

ALFWorld (Shridhar et al., 2021) ships its text games as a download, not a package: a tree
``json_2.1.1/<split>/<task_type>-<object>-<movable receptacle>-<receptacle>-<scene>/<trial_id>/`` in which each
trial directory holds ``traj_data.json`` (the task's metadata: ``task_type``, ``pddl_params``, the annotators'
``turk_annotations``) and the game: ``game.tw-pddl`` in ALFWorld's current releases, or a TextWorld ``game.z8``
(with TextWorld's ``game.json`` beside it) where the games were compiled with TextWorld's Inform 7 backend. This
module finds the trials of one split (``train``, ``valid_seen``, ``valid_unseen``: ALFWorld's 3,553 / 140 / 134
games), optionally of some task types, and plays them with :class:`~agemem_gym.envs.textworld.TextWorldGame`
(the same reward: the score's change / max score; success = won; progress = score / max score).

Where the files are: ``data_path=`` (the directory that holds ``json_2.1.1``, or the split directory itself),
else ``$AGEMEM_ALFWORLD_PATH``, else ALFWorld's own ``$ALFWORLD_DATA``, else ``<cache dir>/alfworld``
(``agemem-download alfworld --url ... --sha256 ...`` unpacks an archive there).

What plays: ``.z8`` games through TextWorld's Inform 7 interpreter (the ``[textworld]`` extra). ``.tw-pddl`` games
need TextWorld's PDDL backend, which needs ``fast_downward`` (``pip install 'textworld[pddl]'``, a C++ build); the
env raises a ConfigError naming it when it is missing. Glulx ``.ulx`` games are refused: TextWorld 1.7 dropped
Glulx support.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agemem_gym.envs._paths import dataset_cache_dir
from agemem_gym.envs.textworld import _SCRIPTED, Admissible, TextWorldGame, _TextWorldBase
from agemem_gym.errors import ConfigError, DataError

__all__ = [
    "ALFWORLD_PATH_ENV",
    "ALFWORLD_SPLITS",
    "TASK_TYPES",
    "ALFWorldEnv",
    "ALFWorldGames",
    "alfworld_root",
]

ALFWORLD_PATH_ENV = "AGEMEM_ALFWORLD_PATH"
"""Environment variable naming the ALFWorld data directory (ALFWorld's own ``ALFWORLD_DATA`` is read after it)."""
ALFWORLD_SPLITS = ("train", "valid_seen", "valid_unseen")
# ALFWorld's six task types (traj_data.json's "task_type"; ALFWorld's config numbers them 1-6 in this order).
TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
_GAME_FILES = ("game.z8", "game.tw-pddl", "game.ulx")

_INSTRUCTIONS = """You are in an ALFWorld household: rooms with furniture and receptacles (countertops, cabinets, drawers, a fridge, a microwave, a sink basin, ...) and objects on and in them. The first observation describes the room and states your task (for example "put a clean apple in the fridge"). Commands are short phrases such as "go to countertop 1", "open fridge 1", "take apple 1 from countertop 1", "clean apple 1 with sinkbasin 1", "heat egg 1 with microwave 1", "cool apple 1 with fridge 1", "put apple 1 in/on fridge 1", "use desklamp 1", "examine drawer 2", "look", "inventory".{admissible}"""


def alfworld_root(data_path: str | os.PathLike[str] | None = None) -> Path:
    """The ALFWorld data directory: ``data_path``, ``$AGEMEM_ALFWORLD_PATH``, ``$ALFWORLD_DATA`` or the cache's."""
    for candidate in (data_path, os.environ.get(ALFWORLD_PATH_ENV), os.environ.get("ALFWORLD_DATA")):
        if candidate:
            return Path(candidate).expanduser()
    return dataset_cache_dir("alfworld")


def _split_dir(root: Path, split: str) -> Path:
    for candidate in (root / "json_2.1.1" / split, root / split, root):
        if candidate.is_dir() and candidate.name == split:
            return candidate
    raise DataError(
        f"no ALFWorld '{split}' split under {root}: expected {root / 'json_2.1.1' / split} (ALFWorld's layout). "
        f"Pass data_path= (or set {ALFWORLD_PATH_ENV} or ALFWORLD_DATA) to the directory that holds json_2.1.1, or "
        "fetch the files with `agemem-download alfworld --url URL --sha256 HEX`"
    )


@dataclass(frozen=True)
class ALFWorldGames:
    """The trials of one ALFWorld split that have a game file: task ids are their paths under the split directory
    (``"<task dir>/<trial id>"``), in sorted order.

    Args:
        root: The ALFWorld data directory (see :func:`alfworld_root`).
        split: ``"train"``, ``"valid_seen"`` or ``"valid_unseen"``.
        task_types: Only trials of these task types (traj_data.json's ``task_type``; default all).

    Raises:
        DataError: The split is not there, or holds no playable trial.
        ConfigError: An unknown split or task type.
    """

    root: Path
    split: str = "valid_unseen"
    task_types: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.split not in ALFWORLD_SPLITS:
            raise ConfigError(f"'split' must be one of {ALFWORLD_SPLITS}, got {self.split!r}")
        unknown = [t for t in self.task_types or () if t not in TASK_TYPES]
        if unknown:
            raise ConfigError(f"'task_types' must be ALFWorld task types {TASK_TYPES}, got unknown {unknown}")
        base = _split_dir(Path(self.root), self.split)
        found: dict[str, Path] = {}
        for traj in sorted(base.glob("*/*/traj_data.json")):
            game = next((traj.parent / n for n in _GAME_FILES if (traj.parent / n).is_file()), None)
            if game is None:
                continue
            try:
                task_type = json.loads(traj.read_text()).get("task_type")
            except (OSError, ValueError) as err:
                raise DataError(f"{traj} is not valid JSON ({err}); re-download or remove that trial") from err
            if self.task_types is None or task_type in self.task_types:
                found[traj.parent.relative_to(base).as_posix()] = game
        if not found:
            raise DataError(
                f"no playable ALFWorld trial under {base}: each trial directory needs traj_data.json and one of "
                f"{_GAME_FILES}" + (f" (task types {list(self.task_types)})" if self.task_types else "")
            )
        object.__setattr__(self, "_games", found)

    @property
    def task_ids(self) -> tuple[str, ...]:
        """Every trial's id, sorted."""
        return tuple(self._games)  # type: ignore[attr-defined]

    def draw(self, rng: np.random.Generator) -> str:
        """A trial, uniformly."""
        ids = self.task_ids
        return ids[int(rng.integers(len(ids)))]

    def check(self, task_id: str) -> None:
        """Raise ConfigError unless ``task_id`` is one of these trials."""
        if task_id not in self._games:  # type: ignore[attr-defined]
            raise ConfigError(
                f"task id {task_id!r:.120} is not one of this env's {len(self.task_ids)} ALFWorld {self.split} trials "
                "('<task dir>/<trial id>'); pick one of env.unwrapped.suite.task_ids"
            )

    def path(self, task_id: str) -> Path:
        """The trial's game file; raises ConfigError for a format this install cannot play."""
        self.check(task_id)
        game: Path = self._games[task_id]  # type: ignore[attr-defined]
        if game.suffix == ".ulx":
            raise ConfigError(
                f"{game} is a Glulx game, which TextWorld 1.7 no longer plays; use ALFWorld's game.tw-pddl files "
                "(or a TextWorld < 1.7 of your own)"
            )
        if game.suffix == ".tw-pddl" and importlib.util.find_spec("fast_downward") is None:
            raise ConfigError(
                f"{game} is a TextWorld PDDL game, which needs fast_downward: pip install 'textworld[pddl]'"
            )
        return game

    def traj_data(self, task_id: str) -> dict[str, Any]:
        """The trial's ``traj_data.json`` (task type, PDDL parameters, annotations)."""
        self.check(task_id)
        data: dict[str, Any] = json.loads((self._games[task_id].parent / "traj_data.json").read_text())  # type: ignore[attr-defined]
        return data


class ALFWorldEnv(_TextWorldBase):
    """``AgeMem-ALFWorld-v0``: ALFWorld's games (from its files) under AgeMem's protocol with memory tools.

    See :class:`~agemem_gym.textenv.TextGameEnv` for the protocol, spaces, rewards and episode end, and the module
    docstring for where the files come from. ``reset(seed=s)`` draws a trial of the split from ``s``;
    ``reset(options={"task_id": "<task dir>/<trial id>"})`` plays that one. The scripted policies are
    TextWorld's (``walkthrough`` needs games that carry one).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``data_path`` | ``None`` | the ALFWorld data directory (see :func:`alfworld_root`) |
    | ``split`` | ``"valid_unseen"`` | ``"train"``, ``"valid_seen"`` or ``"valid_unseen"`` |
    | ``task_types`` | all | ALFWorld task types to keep (:data:`TASK_TYPES`) |
    | ``step_limit`` | ``50`` | game moves per episode (ALFWorld's evaluations use 50) |
    | ``admissible`` | ``"hint"`` | ``"hint"``, ``"enforce"`` or ``"off"`` |

    Every other keyword goes to :class:`~agemem_gym.textenv.TextGameEnv`.

    ## Version History
    * v0: initial release.
    """

    def __init__(
        self,
        *,
        data_path: str | os.PathLike[str] | None = None,
        split: Literal["train", "valid_seen", "valid_unseen"] = "valid_unseen",
        task_types: Sequence[str] | None = None,
        step_limit: int = 50,
        admissible: Admissible = "hint",
        **kwargs: Any,
    ) -> None:
        self.suite = ALFWorldGames(alfworld_root(data_path), split, tuple(task_types) if task_types else None)
        game = TextWorldGame(
            self.suite,
            step_limit=step_limit,
            admissible=admissible,
            instructions=_INSTRUCTIONS,
            what="AgeMem-ALFWorld-v0",
        )
        try:
            super().__init__(game, **kwargs)
        except BaseException:
            game.close()
            raise


ALFWorldEnv.SCRIPTED = _SCRIPTED
