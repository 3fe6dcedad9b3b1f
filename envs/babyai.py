"""``AgeMem-BabyAI-v0``: BabyAI's language-grounded grid levels (minigrid) as a text game with memory tools.

The grid becomes text: the mission, then what the agent's egocentric 7x7 view holds, object by object with its
direction and distance ("a red ball 2 steps ahead and 1 to the left"), the nearest wall straight ahead, to the
left and to the right, what is in the cell in front, and what the agent carries. Actions are words
(:data:`ACTIONS`: "turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done") mapped to
minigrid's action ids; anything else is answered with feedback and the game does not step (see
:class:`~agemem_gym.textenv.TextGameEnv`). Success is BabyAI's own: a reward > 0.

minigrid is an optional dependency (``pip install 'agemem-gym[babyai]'``); this module imports it only when a
game is made, so registering the id and importing :mod:`agemem_gym` never import it.

Reference policies (privileged: they read the inner minigrid env): :class:`BabyAIBotPolicy` wraps minigrid's
scripted ``BabyAIBot``, :class:`BabyAIBotMemoryPolicy` is the same bot that also retrieves and writes one memory
per episode (to exercise the tools), and :class:`BabyAIRandomPolicy` acts uniformly at random.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agemem_gym._validate import check_field
from agemem_gym.errors import ConfigError
from agemem_gym.textenv import TextGameEnv

__all__ = [
    "ACTIONS",
    "DEFAULT_LEVEL",
    "BabyAIBotMemoryPolicy",
    "BabyAIBotPolicy",
    "BabyAIEnv",
    "BabyAIGame",
    "BabyAIRandomPolicy",
    "LevelSeeds",
    "describe_view",
    "minigrid_available",
]

logger = logging.getLogger(__name__)

DEFAULT_LEVEL = "BabyAI-GoToRedBall-v0"
# The action words, in minigrid's action-id order (minigrid.core.actions.Actions: left=0 ... done=6).
ACTIONS: tuple[str, ...] = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done")
_ACTION_ID = {a: i for i, a in enumerate(ACTIONS)}
_INSTALL_HINT = "pip install 'agemem-gym[babyai]'"

_INSTRUCTIONS = """You are an agent in a BabyAI grid world (a room of cells, seen from your own point of view: you see 7 cells ahead and 3 to each side, not through walls or closed doors). Each observation states your mission and what you see, with directions relative to where you face.
The actions are: {actions}. "go forward" moves one cell ahead (not into walls or objects), "turn left"/"turn right" turn in place, "pick up" takes the object in the cell in front of you, "drop" puts what you carry there, "toggle" opens or closes the door in front of you, "done" says you have finished. To "go to" an object, stand facing it, in the cell next to it."""


def minigrid_available() -> bool:
    """True when minigrid can be imported (the ``babyai`` extra is installed)."""
    return importlib.util.find_spec("minigrid") is not None


def _import_minigrid() -> tuple[Any, Any]:
    """``(gymnasium, BabyAIBot)`` after importing minigrid (which registers the BabyAI ids), or a clear error."""
    try:
        import gymnasium as gym
        import minigrid  # noqa: F401  (registers the BabyAI-* ids)
        from minigrid.utils.baby_ai_bot import BabyAIBot
    except ImportError as err:
        raise ConfigError(f"AgeMem-BabyAI-v0 needs minigrid, which is not installed ({err}): {_INSTALL_HINT}") from None
    return gym, BabyAIBot


def _steps(n: int) -> str:
    return f"{n} step{'' if n == 1 else 's'}"


def _where(ahead: int, right: int) -> str:
    """'2 steps ahead and 1 to the left' for a cell ``ahead`` rows in front and ``right`` columns to the right."""
    parts = [f"{_steps(ahead)} ahead"] if ahead > 0 else []
    if right:
        parts.append(f"{abs(right)} to the {'right' if right > 0 else 'left'}")
    return " and ".join(parts) if parts else "here"


def _name(obj: Any) -> str:
    if obj.type == "wall":
        return "a wall"
    if obj.type == "door":
        state = "locked" if obj.is_locked else ("open" if obj.is_open else "closed")
        return f"{'an' if state == 'open' else 'a'} {state} {obj.color} door"
    if obj.type == "goal":
        return "the green goal square"
    if obj.type == "lava":
        return "lava"
    return f"a {obj.color} {obj.type}"


def describe_view(env: Any) -> str:
    """The text observation of an (unwrapped) minigrid env: mission, visible objects, walls, front cell, carrying.

    minigrid's egocentric grid has the agent at column ``view // 2`` of the last row, facing up (row 0 is the
    farthest), so a cell (i, j) is ``view - 1 - j`` steps ahead and ``i - view // 2`` to the right.
    """
    grid, visible = env.gen_obs_grid()
    view = env.agent_view_size
    me_i, me_j = view // 2, view - 1
    seen: list[tuple[int, int, str]] = []
    for j in range(view):
        for i in range(view):
            cell = grid.get(i, j)
            if not visible[i, j] or cell is None or cell.type in ("wall", "floor") or (i, j) == (me_i, me_j):
                continue
            ahead, right = me_j - j, i - me_i
            seen.append((ahead + abs(right), ahead, f"{_name(cell)} {_where(ahead, right)}"))
    seen.sort()

    def wall(di: int, dj: int) -> str | None:
        i, j, n = me_i + di, me_j + dj, 1
        while 0 <= i < view and 0 <= j < view and visible[i, j]:
            cell = grid.get(i, j)
            if cell is not None and cell.type == "wall":
                return _steps(n)
            i, j, n = i + di, j + dj, n + 1
        return None

    walls = [(wall(0, -1), "ahead"), (wall(-1, 0), "to the left"), (wall(1, 0), "to the right")]
    front = grid.get(me_i, me_j - 1)
    carrying = env.carrying
    lines = [
        f"Mission: {env.mission}.",
        "You see: " + ("; ".join(s for _, _, s in seen) if seen else "no objects") + ".",
        "Walls: " + ", ".join(f"{d} {where}" if d else f"none in view {where}" for d, where in walls) + ".",
        "In front of you: " + ("nothing (an empty cell)" if front is None else _name(front)) + ".",
        f"You carry {_name(carrying)}." if carrying is not None else "You carry nothing.",
    ]
    return "\n".join(lines)


class BabyAIGame:
    """A BabyAI level as a :class:`~agemem_gym.textenv.TextGame`.

    Args:
        level: A registered BabyAI id (``BabyAI-GoToRedBall-v0``, ``BabyAI-GoToLocal-v0``,
            ``BabyAI-PickupLoc-v0``, ...); its own ``max_steps`` bounds the game.
        level_kwargs: Keyword arguments for ``gymnasium.make(level, ...)``.

    Raises:
        ConfigError: minigrid is not installed, or ``level`` is not a BabyAI id.
    """

    def __init__(self, level: str = DEFAULT_LEVEL, level_kwargs: Mapping[str, Any] | None = None) -> None:
        gym, _ = _import_minigrid()
        if not isinstance(level, str) or not level.startswith("BabyAI-") or level not in gym.registry:
            known = sorted(k for k in gym.registry if k.startswith("BabyAI-"))
            raise ConfigError(
                f"'level' must be a registered BabyAI id such as {DEFAULT_LEVEL!r}, got {level!r}; "
                f"{len(known)} are registered, e.g. {', '.join(known[:6])}"
            )
        self.level = level
        self.env: Any = gym.make(level, disable_env_checker=True, **dict(level_kwargs or {})).unwrapped
        self.instructions = _INSTRUCTIONS.format(actions=", ".join(f'"{a}"' for a in ACTIONS))

    def reset(self, *, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        """A new level layout from ``seed``; the first observation."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):  # minigrid prints "Sampling rejected: ..." while it lays out levels
            _, info = self.env.reset(seed=seed)
        if out.getvalue():
            logger.debug("minigrid: %s", out.getvalue().strip())
        return describe_view(self.env), dict(info)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Play one action word (one of :data:`ACTIONS`)."""
        if action not in _ACTION_ID:
            raise ConfigError(f"BabyAIGame.step expects one of {ACTIONS}, got {action!r:.60}")
        _, reward, terminated, truncated, info = self.env.step(_ACTION_ID[action])
        reward = float(reward)
        return describe_view(self.env), reward, bool(terminated), bool(truncated), {**info, "success": reward > 0}

    def valid_actions(self) -> Sequence[str]:
        """Always :data:`ACTIONS`."""
        return ACTIONS

    def get_state(self) -> Any:
        """A deep copy of the minigrid env (grid, agent, mission, step count, RNG)."""
        return copy.deepcopy(self.env)

    def set_state(self, state: Any) -> None:
        """Restore a copy taken by :meth:`get_state` (copied again, so a state can be restored twice)."""
        self.env = copy.deepcopy(state)


@dataclass(frozen=True)
class LevelSeeds:
    """The task ids of a procedural level: ``"<level>:<seed>"`` for layout seeds ``0 .. n_tasks - 1``, what a trainer
    that draws task ids (the GRPO trainer reads ``env.unwrapped.suite.task_ids``) plays.

    >>> LevelSeeds("BabyAI-GoToRedBall-v0", 3).task_ids
    ('BabyAI-GoToRedBall-v0:0', 'BabyAI-GoToRedBall-v0:1', 'BabyAI-GoToRedBall-v0:2')
    >>> LevelSeeds("BabyAI-GoToRedBall-v0", 3).seed_of("BabyAI-GoToRedBall-v0:2")
    2
    """

    level: str
    n_tasks: int = 1000

    def __post_init__(self) -> None:
        check_field(self, "n_tasks", "int", gt=0)

    @property
    def task_ids(self) -> tuple[str, ...]:
        """Every task id, by seed."""
        return tuple(f"{self.level}:{i}" for i in range(self.n_tasks))

    def seed_of(self, task_id: str) -> int:
        """The layout seed of a task id of this level.

        Raises:
            ConfigError: The id is not ``"<this level>:<seed>"`` with a seed in ``0 .. n_tasks - 1``.
        """
        level, _, seed = str(task_id).rpartition(":")
        if level != self.level or not seed.isdigit() or int(seed) >= self.n_tasks:
            raise ConfigError(
                f"task_id must be '{self.level}:<seed>' with a seed in 0..{self.n_tasks - 1}, got {task_id!r:.80}"
            )
        return int(seed)


class BabyAIEnv(TextGameEnv):
    """``AgeMem-BabyAI-v0``: a BabyAI level under AgeMem's protocol with memory tools.

    See :class:`~agemem_gym.textenv.TextGameEnv` for the protocol, spaces, rewards and episode end. The game step
    is BabyAI's: its reward is ``1 - 0.9 * step_count / max_steps`` on success and 0 otherwise, and success is a
    reward > 0 (``info["episode"]["success"]``); the level's own ``max_steps`` truncates as ``"game_truncated"``.
    An ``<answer>`` that is not one of :data:`ACTIONS` (compared in lower case, extra spaces and a final full stop
    ignored) gets feedback with the valid actions and a format penalty, and the game does **not** step.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``level`` | ``"BabyAI-GoToRedBall-v0"`` | a registered BabyAI id |
    | ``level_kwargs`` | ``None`` | keyword arguments for the level |
    | ``n_tasks`` | 1000 | task ids ``"<level>:<seed>"`` for seeds ``0 .. n_tasks - 1`` (:class:`LevelSeeds`) |

    ``reset(options={"task_id": "<level>:<seed>"})`` plays the layout of that seed (as ``game_seed`` does).
    Every other keyword goes to :class:`~agemem_gym.textenv.TextGameEnv` (``lifelong``, ``embedder``, ...).

    ## Version History
    * v0: initial release.
    """

    def __init__(
        self,
        *,
        level: str = DEFAULT_LEVEL,
        level_kwargs: Mapping[str, Any] | None = None,
        n_tasks: int = 1000,
        **kwargs: Any,
    ):
        self.level = level
        self.suite = LevelSeeds(level, n_tasks)
        super().__init__(BabyAIGame(level, level_kwargs), **kwargs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """As :meth:`TextGameEnv.reset`, plus ``options={"task_id": "<level>:<seed>"}`` to pick the layout."""
        opts = dict(options or {})
        task_id = opts.pop("task_id", None)
        if task_id is not None:
            opts["game_seed"] = self.suite.seed_of(task_id)
        return super().reset(seed=seed, options=opts)

    @property
    def minigrid(self) -> Any:
        """The inner (unwrapped) minigrid env (privileged: for scripted bots and analysis, not for the agent)."""
        game: BabyAIGame = self.game  # type: ignore[assignment]
        return game.env


# ---- reference policies ----


def _answer(action: str, think: str) -> str:
    return f"<think>{think}</think><answer>{action}</answer>"


class BabyAIBotPolicy:
    """minigrid's scripted ``BabyAIBot`` (privileged: it plans on the inner env), answering with action words.

    Args:
        env: The unwrapped :class:`BabyAIEnv`.

    The bot plans on the minigrid env it was made with in :meth:`reset`; after ``env.set_state(...)`` (which
    replaces that env with a restored copy) call :meth:`reset` again.
    """

    name = "bot"

    def __init__(self, env: BabyAIEnv) -> None:
        if not isinstance(env, BabyAIEnv):
            raise ConfigError(f"the BabyAI bot plays a BabyAIEnv (pass env.unwrapped), got {type(env).__name__}")
        self.env = env
        self._bot: Any = None
        self._last: Any = None

    def reset(self, info: Mapping[str, Any]) -> None:
        _, bot_cls = _import_minigrid()
        self._bot, self._last = bot_cls(self.env.minigrid), None

    def _bot_answer(self) -> str:
        # One replan per game step, told the action it suggested last (the wrapper steps the game once per answer).
        self._last = self._bot.replan(self._last)
        return _answer(ACTIONS[int(self._last)], "I follow my plan.")

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        return self._bot_answer()


class BabyAIBotMemoryPolicy(BabyAIBotPolicy):
    """The bot, plus one memory turn per episode: it retrieves memories of its mission, then writes one.

    In lifelong mode the retrieval finds the memories of earlier episodes. The turn costs nothing but a turn (the
    game does not move), so its success rate is the bot's.
    """

    name = "bot_memory"

    def reset(self, info: Mapping[str, Any]) -> None:
        super().reset(info)
        self._wrote = False
        self._episode = int(info.get("episode_index", 0))

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        if self._wrote:
            return self._bot_answer()
        self._wrote = True
        mission = str(self.env.minigrid.mission)
        first = next((m["content"] for m in info.get("messages", []) if m.get("role") == "user"), "")
        calls = [
            {"name": "Retrieve_memory", "arguments": {"query": mission, "top_k": 3}},
            {
                "name": "Add_memory",
                "arguments": {
                    "content": f"Episode {self._episode} ({self.env.level}): mission '{mission}'. "
                    f"Start: {first.splitlines()[1] if first.count(chr(10)) else first}"[:500],
                    "metadata": {"level": self.env.level},
                },
            },
        ]
        return (
            f"<think>I check what I remember, then note this mission.</think><tool_call>{json.dumps(calls)}</tool_call>"
        )


class BabyAIRandomPolicy:
    """Uniformly random action words (seeded): the floor."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, info: Mapping[str, Any]) -> None:
        pass

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        return _answer(ACTIONS[int(self.rng.integers(len(ACTIONS)))], "I try something.")


BabyAIEnv.SCRIPTED = {
    "bot": lambda env, seed: BabyAIBotPolicy(env),
    "bot_memory": lambda env, seed: BabyAIBotMemoryPolicy(env),
    "random": lambda env, seed: BabyAIRandomPolicy(seed),
}
