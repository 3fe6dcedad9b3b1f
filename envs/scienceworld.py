"""``AgeMem-ScienceWorld-v0``: ScienceWorld's 30 science tasks (the simulator of the ``scienceworld`` package) with
memory tools.

Each episode is one (task, variation) pair of ScienceWorld, drawn from the reset seed among the variations of one
split (``"train"``, ``"dev"`` or ``"test"``, as ScienceWorld defines them: disjoint, contiguous ranges of each
task's variation indices), or named by ``reset(options={"task_id": "boil:3"})``. The first observation is the
task description and the result of ``look around``; every ``<answer>`` is a free-form ScienceWorld command
(``open door to kitchen``, ``focus on water``, ...) and the simulator's reply is the next observation. The
instructions list ScienceWorld's action templates; when ScienceWorld does not understand a command, the reply
also names them (the library's hint), and ``valid_action_hint=N`` appends up to N of the library's valid
action-object combinations to every observation.

Reward: ScienceWorld's own, the change of its score per step, scaled from 0-100 to 0-1 (so an episode's game
rewards sum to the score gained / 100: the final score less the points some variations give for the first
``look around``, as ScienceWorld counts its rewards; a failed task, score -100, ends near -1). Progress (the paper's metric for
ScienceWorld) is the final score / 100, clipped at 0; success is ScienceWorld's "task completed" (score 100).

ScienceWorld is an optional dependency (``pip install 'agemem-gym[scienceworld]'``) and needs a Java runtime
(Java 8 or newer on ``PATH``: Debian/Ubuntu ``apt-get install default-jre-headless``); this module imports it only
when a game is made, so registering the id and importing :mod:`agemem_gym` never import it. Each game runs its
own simulator JVM (about 1 s to start and 200 MB of memory).

Snapshots: ScienceWorld cannot save or restore its simulator state. :meth:`ScienceWorldGame.get_state` records
(task, variation, simplifications, the commands played), and :meth:`~ScienceWorldGame.set_state` reloads the task
and replays the commands (a few ms each). The simulator is deterministic given the commands, so the replayed state
is the same (tested; only the order in which a room's objects are listed can change between two runs); a restore costs a reload plus the replay, not a copy.

Reference policies (privileged: they read the simulator): :class:`ScienceWorldGoldPolicy` plays ScienceWorld's
gold action sequence (the no-memory reference), :class:`ScienceWorldGoldMemoryPolicy` is the same with one turn
that retrieves memories of the task and writes one, and :class:`ScienceWorldRandomPolicy` plays a uniformly random
valid action. ScienceWorld's gold-path generator is not deterministic: two generations of the same variation can
differ (extra ``open`` commands, another order); both complete the task.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from agemem_gym.errors import ConfigError
from agemem_gym.textenv import TextGameEnv

__all__ = [
    "ACTION_TEMPLATES",
    "SPLITS",
    "ScienceWorldEnv",
    "ScienceWorldGame",
    "ScienceWorldGoldMemoryPolicy",
    "ScienceWorldGoldPolicy",
    "ScienceWorldRandomPolicy",
    "ScienceWorldTasks",
    "java_available",
    "parse_task_id",
    "scienceworld_available",
]

logger = logging.getLogger(__name__)

Split = Literal["train", "dev", "test"]
_INSTALL_HINT = "pip install 'agemem-gym[scienceworld]'"
_JAVA_HINT = (
    "install a Java runtime (Java 8 or newer) and put `java` on PATH, e.g. `apt-get install default-jre-headless`"
)

# ScienceWorld 1.2's train / dev / test variation counts per task (ScienceWorldEnv.get_variations_train() and
# friends after load(task)): the splits are contiguous ranges, train first, then dev, then test. Kept here so that
# the task ids are known without starting a JVM; tests/test_scienceworld.py checks them against the library.
SPLITS: dict[str, tuple[int, int, int]] = {
    "boil": (14, 7, 9),
    "change-the-state-of-matter-of": (14, 7, 9),
    "chemistry-mix": (16, 8, 8),
    "chemistry-mix-paint-secondary-color": (18, 9, 9),
    "chemistry-mix-paint-tertiary-color": (18, 9, 9),
    "find-animal": (150, 75, 75),
    "find-living-thing": (150, 75, 75),
    "find-non-living-thing": (150, 75, 75),
    "find-plant": (150, 75, 75),
    "freeze": (14, 7, 9),
    "grow-fruit": (62, 31, 33),
    "grow-plant": (62, 31, 33),
    "identify-life-stages-1": (6, 3, 5),
    "identify-life-stages-2": (4, 2, 4),
    "inclined-plane-determine-angle": (84, 42, 42),
    "inclined-plane-friction-named-surfaces": (692, 346, 348),
    "inclined-plane-friction-unnamed-surfaces": (80, 40, 42),
    "lifespan-longest-lived": (62, 31, 32),
    "lifespan-longest-lived-then-shortest-lived": (62, 31, 32),
    "lifespan-shortest-lived": (62, 31, 32),
    "measure-melting-point-known-substance": (218, 109, 109),
    "measure-melting-point-unknown-substance": (150, 75, 75),
    "melt": (14, 7, 9),
    "mendelian-genetics-known-plant": (60, 30, 30),
    "mendelian-genetics-unknown-plant": (240, 120, 120),
    "power-component": (10, 5, 5),
    "power-component-renewable-vs-nonrenewable-energy": (10, 5, 5),
    "test-conductivity": (450, 225, 225),
    "test-conductivity-of-unknown-substances": (300, 150, 150),
    "use-thermometer": (270, 135, 135),
}
_SPLIT_INDEX = {"train": 0, "dev": 1, "test": 2}

# ScienceWorldEnv.get_possible_actions(): the command templates (OBJ is an object name), the same for every task.
ACTION_TEMPLATES: tuple[str, ...] = (
    "activate OBJ",
    "close OBJ",
    "connect OBJ to OBJ",
    "deactivate OBJ",
    "disconnect OBJ",
    "dunk OBJ in OBJ",
    "eat OBJ",
    "flush OBJ",
    "focus on OBJ",
    "go OBJ",
    "inventory",
    "look around",
    "look at OBJ",
    "look in OBJ",
    "mix OBJ",
    "move OBJ to OBJ",
    "open OBJ",
    "pick up OBJ",
    "pour OBJ in OBJ",
    "put down OBJ",
    "read OBJ",
    "reset task",
    "task",
    "use OBJ on OBJ",
    "wait",
    "wait1",
)
_NO_MATCH = "No known action matches that input."

_INSTRUCTIONS = """You are an agent in ScienceWorld, a text simulation of a house with rooms (kitchen, workshop, greenhouse, ...), objects, substances, living things and electricity. Each episode gives you a science task (the first observation states it); you act with text commands and the simulator replies with what happens. A task is scored from 0 to 100 as you make progress; focusing on the wrong object fails the task.
Commands follow these templates (OBJ is the name of an object you can see): {templates}. For example: "open door to kitchen", "go to kitchen", "pick up thermometer", "move metal pot to stove", "focus on water". When a command is ambiguous the simulator lists numbered choices: answer with the number."""


def scienceworld_available() -> bool:
    """True when the ``scienceworld`` package can be imported (the ``scienceworld`` extra is installed)."""
    return importlib.util.find_spec("scienceworld") is not None


def java_available() -> bool:
    """True when a ``java`` executable is on ``PATH`` (ScienceWorld's simulator runs on the JVM)."""
    return shutil.which("java") is not None


def _import_scienceworld() -> Any:
    """ScienceWorld's ``ScienceWorldEnv`` class, or a ConfigError naming the extra or the Java runtime."""
    try:
        from scienceworld import ScienceWorldEnv as _Sim
    except ImportError as err:
        raise ConfigError(
            f"AgeMem-ScienceWorld-v0 needs scienceworld, which is not installed ({err}): {_INSTALL_HINT}"
        ) from None
    if not java_available():
        raise ConfigError(f"AgeMem-ScienceWorld-v0 needs a Java runtime, and no `java` is on PATH: {_JAVA_HINT}")
    return _Sim


def parse_task_id(task_id: str) -> tuple[str, int]:
    """``"boil:3"`` -> ``("boil", 3)``; raises ConfigError unless the task is a ScienceWorld task.

    >>> parse_task_id("use-thermometer:12")
    ('use-thermometer', 12)
    """
    task, sep, var = str(task_id).rpartition(":")
    if not sep or task not in SPLITS or not var.isdigit():
        raise ConfigError(
            f"a ScienceWorld task id is '<task>:<variation>' with a task of {sorted(SPLITS)[:3]}... "
            f"(30 in all, see SPLITS), e.g. 'boil:3'; got {task_id!r}"
        )
    return task, int(var)


@dataclass(frozen=True)
class ScienceWorldTasks:
    """The (task, variation) pairs one env draws from: ``tasks`` restricted to the variations of ``split``.

    Attributes:
        tasks: ScienceWorld task names (keys of :data:`SPLITS`).
        split: ``"train"``, ``"dev"`` or ``"test"``.
    """

    tasks: tuple[str, ...]
    split: Split

    def __post_init__(self) -> None:
        if self.split not in _SPLIT_INDEX:
            raise ConfigError(f"'split' must be 'train', 'dev' or 'test', got {self.split!r}")
        if not self.tasks:
            raise ConfigError("'tasks' must name at least one ScienceWorld task, got an empty list")
        unknown = [t for t in self.tasks if t not in SPLITS]
        if unknown:
            raise ConfigError(
                f"'tasks' must be ScienceWorld task names (see SPLITS), got unknown {unknown}; known: {sorted(SPLITS)}"
            )

    def variations(self, task: str) -> range:
        """The variation indices of ``task`` in this split."""
        counts = SPLITS[task]
        i = _SPLIT_INDEX[self.split]
        start = sum(counts[:i])
        return range(start, start + counts[i])

    @property
    def task_ids(self) -> tuple[str, ...]:
        """Every ``"<task>:<variation>"`` of the split, task by task (what the GRPO trainer samples from)."""
        return tuple(f"{t}:{v}" for t in self.tasks for v in self.variations(t))

    def draw(self, rng: np.random.Generator) -> tuple[str, int]:
        """A task uniformly among ``tasks``, then a variation uniformly among its split's."""
        task = self.tasks[int(rng.integers(len(self.tasks)))]
        span = self.variations(task)
        return task, span[int(rng.integers(len(span)))]

    def check(self, task: str, variation: int) -> None:
        """Raise ConfigError unless (task, variation) belongs to these tasks and this split."""
        if task not in self.tasks or variation not in self.variations(task):
            span = self.variations(task) if task in SPLITS else range(0)
            raise ConfigError(
                f"task id '{task}:{variation}' is not in this env's {self.split} split (tasks {list(self.tasks)[:4]}"
                f"{'...' if len(self.tasks) > 4 else ''}; {task}'s {self.split} variations are "
                f"{span.start}..{span.stop - 1}); pick one of env.unwrapped.suite.task_ids or change 'split'/'tasks'"
            )


class ScienceWorldGame:
    """ScienceWorld as a :class:`~agemem_gym.textenv.TextGame`: one simulator JVM, one (task, variation) per reset.

    Args:
        tasks: The task names to draw from (default: all 30).
        split: Which variations: ``"train"`` (default), ``"dev"`` or ``"test"``.
        simplifications: ScienceWorld's simplification string (``""``, ``"easy"``, or comma-separated names such as
            ``"teleportAction,openDoors"``).
        step_limit: ScienceWorld moves per episode; past it the game truncates (ScienceWorld's ``envStepLimit``).
        valid_action_hint: Append up to this many of the library's valid action-object combinations to every
            observation (0: none; each listing costs the simulator about 70 ms).

    Raises:
        ConfigError: scienceworld or Java is missing, or an argument is invalid.
    """

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        split: Split = "train",
        *,
        simplifications: str = "",
        step_limit: int = 100,
        valid_action_hint: int = 0,
    ) -> None:
        self.suite = ScienceWorldTasks(tuple(tasks) if tasks is not None else tuple(SPLITS), split)
        for name, v in (("step_limit", step_limit), ("valid_action_hint", valid_action_hint)):
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "step_limit" else 0):
                raise ConfigError(f"{name!r} must be an int >= {1 if name == 'step_limit' else 0}, got {v!r}")
        if not isinstance(simplifications, str):
            raise ConfigError(f"'simplifications' must be a str such as '' or 'easy', got {simplifications!r}")
        sim_cls = _import_scienceworld()
        self.simplifications = simplifications
        self.step_limit = step_limit
        self.valid_action_hint = valid_action_hint
        self.sim: Any = sim_cls("", envStepLimit=step_limit)
        self.instructions = _INSTRUCTIONS.format(templates=", ".join(f'"{t}"' for t in ACTION_TEMPLATES))
        self.task: str | None = None
        self.variation: int | None = None
        self.next_task: tuple[str, int] | None = None  # set by ScienceWorldEnv.reset(options={"task_id": ...})
        self.history: list[str] = []
        self.score = 0
        self._gold: list[str] | None = None

    # ---- the TextGame protocol ----
    def reset(self, *, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        """Load the (task, variation) drawn from ``seed`` (or the one set in ``next_task``); the first observation."""
        if self.next_task is not None:
            task, variation = self.next_task
            self.next_task = None
        else:
            task, variation = self.suite.draw(np.random.default_rng(seed))
        return self._with_hint(self._start(task, variation, gold=False)), self._game_info()

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """One ScienceWorld command; reward = the change of the score / 100."""
        self._require()
        self.history.append(action)
        # The server's step, not ScienceWorldEnv.step: that one also lists every valid action (70-90 ms) and looks
        # around on every call; the score and completion are what its step reads too.
        observation = str(self.sim.server.step(action))
        score = round(100 * float(self.sim.server.getScore()))
        reward, self.score = (score - self.score) / 100.0, score
        completed = bool(self.sim.server.getCompleted())
        failed = score < 0  # ScienceWorld's failure state (e.g. focusing on the wrong object): -100, final
        terminated = completed or failed
        truncated = not terminated and self.sim.get_num_moves() >= self.step_limit
        if observation.strip() == _NO_MATCH:
            observation += " Commands follow these templates: " + ", ".join(ACTION_TEMPLATES) + "."
        return self._with_hint(observation), reward, terminated, truncated, self._game_info(completed)

    def valid_actions(self) -> Sequence[str] | None:
        """None: ScienceWorld parses free-form commands (its reply says when it understood none)."""
        return None

    # ---- snapshots (ScienceWorld cannot save its state: reload and replay) ----
    def get_state(self) -> dict[str, Any]:
        """(task, variation, simplifications, score, the commands played): enough to rebuild the state by replay."""
        self._require()
        return {
            "task": self.task,
            "variation": self.variation,
            "simplifications": self.simplifications,
            "history": list(self.history),
            "score": self.score,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Reload the task and replay the recorded commands (the simulator is deterministic given them)."""
        if state.get("simplifications") != self.simplifications:
            raise ConfigError(
                f"this snapshot was taken with simplifications {state.get('simplifications')!r}, this game uses "
                f"{self.simplifications!r}; restore it on a game made with the same simplifications"
            )
        self._start(str(state["task"]), int(state["variation"]), gold=False)
        self._replay(state["history"])
        if self.score != state["score"]:
            raise RuntimeError(
                f"replaying {len(self.history)} commands of {self.task}:{self.variation} gave score {self.score}, "
                f"the snapshot says {state['score']}: the simulator did not replay deterministically"
            )

    # ---- privileged views (reference policies, analysis) ----
    def gold_actions(self) -> list[str]:
        """ScienceWorld's gold action sequence for the current variation, from its start.

        The gold path is generated on demand: the task is reloaded with ``generateGoldPath=True`` and the commands
        played so far are replayed, so the game state is unchanged.
        """
        self._require()
        if self._gold is None:
            history = list(self.history)
            self._start(str(self.task), int(self.variation or 0), gold=True)
            self._replay(history)
        assert self._gold is not None
        return list(self._gold)

    def valid_action_combinations(self) -> list[str]:
        """The library's valid action-object combinations now (about 70 ms in the simulator)."""
        self._require()
        return [str(a) for a in self.sim.server.getValidActionObjectCombinations()]

    def task_description(self) -> str:
        """The current task's description."""
        self._require()
        return str(self.sim.get_task_description())

    @property
    def task_id(self) -> str:
        """``"<task>:<variation>"`` of the current game."""
        self._require()
        return f"{self.task}:{self.variation}"

    def close(self) -> None:
        """Stop the simulator JVM."""
        sim, self.sim = getattr(self, "sim", None), None
        if sim is not None:
            try:
                sim.close()
            except Exception as err:  # a JVM that already died is closed enough
                logger.debug("scienceworld close: %s", err)

    # ---- helpers ----
    def _require(self) -> None:
        if self.task is None:
            raise RuntimeError("call reset() before stepping the ScienceWorld game")
        if self.sim is None:
            raise RuntimeError("this ScienceWorld game was closed")

    def _start(self, task: str, variation: int, *, gold: bool) -> str:
        """Load (task, variation) and play the first move; returns the first observation (without the hint)."""
        if self.sim is None:
            raise RuntimeError("this ScienceWorld game was closed")
        self.sim.load(task, variation, self.simplifications, generateGoldPath=gold)
        self.sim.server.reset()
        self.task, self.variation, self.history = task, variation, []
        self._gold = [str(a) for a in self.sim.get_gold_action_sequence()] if gold else None
        # ScienceWorldEnv.reset() plays "look around" as the first move; so do we (through the server: no listing).
        look = str(self.sim.server.step("look around"))
        self.score = round(100 * float(self.sim.server.getScore()))
        return f"{self.sim.get_task_description()}\n\n{look}"

    def _replay(self, history: Sequence[str]) -> None:
        for action in history:
            self.step(str(action))

    def _with_hint(self, observation: str) -> str:
        if self.valid_action_hint <= 0:
            return observation
        valid = self.valid_action_combinations()
        shown = valid[: self.valid_action_hint]
        more = f" (and {len(valid) - len(shown)} more)" if len(valid) > len(shown) else ""
        return f"{observation}\nSome valid actions{more}: " + ", ".join(shown)

    def _game_info(self, completed: bool = False) -> dict[str, Any]:
        return {
            "task_id": f"{self.task}:{self.variation}",
            "sw_score": self.score,
            "moves": int(self.sim.get_num_moves()),
            "success": completed and self.score >= 100,
            "progress": max(0, self.score) / 100.0,
        }

    def __del__(self) -> None:
        self.close()


class ScienceWorldEnv(TextGameEnv):
    """``AgeMem-ScienceWorld-v0``: ScienceWorld's science tasks under AgeMem's protocol with memory tools.

    See :class:`~agemem_gym.textenv.TextGameEnv` for the protocol, spaces, rewards and episode end, and the module
    docstring for the game. ``reset(seed=s)`` draws a task and one of its split's variations from ``s``;
    ``reset(options={"task_id": "boil:3"})`` plays that one (it must be in the env's tasks and split; the GRPO
    trainer samples from ``env.unwrapped.suite.task_ids``). Every ``<answer>`` steps the simulator (free-form
    commands: ScienceWorld itself says when it understood none). ``info["episode"]`` adds ScienceWorld's numbers:
    ``progress`` is the final score / 100 (clipped at 0, the paper's progress rate) and ``success`` is ScienceWorld's
    completion; ``game_info`` on every step has ``task_id``, ``sw_score`` (-100..100) and ``moves``.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``tasks`` | all 30 | ScienceWorld task names to draw from (keys of :data:`SPLITS`) |
    | ``split`` | ``"train"`` | ``"train"``, ``"dev"`` or ``"test"`` variations (ScienceWorld's own split) |
    | ``simplifications`` | ``""`` | ScienceWorld's simplification string (``"easy"``, ``"teleportAction,openDoors"``) |
    | ``step_limit`` | ``100`` | ScienceWorld moves per episode (then ``"game_truncated"``) |
    | ``valid_action_hint`` | ``0`` | append up to N of the library's valid actions to every observation |

    Every other keyword goes to :class:`~agemem_gym.textenv.TextGameEnv` (``lifelong``, ``embedder``, ...).

    ## Version History
    * v0: initial release.
    """

    def __init__(
        self,
        *,
        tasks: Sequence[str] | None = None,
        split: Split = "train",
        simplifications: str = "",
        step_limit: int = 100,
        valid_action_hint: int = 0,
        **kwargs: Any,
    ) -> None:
        game = ScienceWorldGame(
            tasks, split, simplifications=simplifications, step_limit=step_limit, valid_action_hint=valid_action_hint
        )
        self.suite = game.suite
        try:
            super().__init__(game, **kwargs)
        except BaseException:
            game.close()
            raise

    @property
    def scienceworld(self) -> ScienceWorldGame:
        """The game (privileged: gold paths and valid actions, for scripted policies and analysis)."""
        game: ScienceWorldGame = self.game  # type: ignore[assignment]
        return game

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """As :meth:`TextGameEnv.reset`, plus ``options={"task_id": "<task>:<variation>"}`` to pick the game."""
        opts = dict(options or {})
        task_id = opts.pop("task_id", None)
        if task_id is not None:
            task, variation = parse_task_id(task_id)
            self.suite.check(task, variation)
            self.scienceworld.next_task = (task, variation)
        try:
            return super().reset(seed=seed, options=opts)
        finally:
            self.scienceworld.next_task = None

    def close(self) -> None:
        """Stop the simulator JVM."""
        self.scienceworld.close()
        super().close()


# ---- reference policies ----


def _answer(action: str, think: str) -> str:
    return f"<think>{think}</think><answer>{action}</answer>"


class ScienceWorldGoldPolicy:
    """ScienceWorld's gold action sequence, one command per turn (privileged; the no-memory reference).

    Args:
        env: The unwrapped :class:`ScienceWorldEnv`.
    """

    name = "gold"

    def __init__(self, env: ScienceWorldEnv) -> None:
        if not isinstance(env, ScienceWorldEnv):
            raise ConfigError(f"the gold policy plays a ScienceWorldEnv (pass env.unwrapped), got {type(env).__name__}")
        self.env = env
        self._plan: list[str] = []

    def reset(self, info: Mapping[str, Any]) -> None:
        self._plan = self.env.scienceworld.gold_actions()
        self._next = 0

    def _gold_answer(self) -> str:
        if self._next >= len(self._plan):  # the plan is spent and the task still runs: wait for it to finish
            return _answer("wait1", "My plan is done; I wait.")
        action = self._plan[self._next]
        self._next += 1
        return _answer(action, "I follow the plan.")

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        return self._gold_answer()


class ScienceWorldGoldMemoryPolicy(ScienceWorldGoldPolicy):
    """The gold sequence, plus one memory turn per episode: it retrieves memories of the task, then writes one.

    In lifelong mode the retrieval finds the memories of earlier episodes. The turn costs a turn, no game step, so
    its success rate and progress are the gold policy's.
    """

    name = "gold_memory"

    def reset(self, info: Mapping[str, Any]) -> None:
        super().reset(info)
        self._wrote = False

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        if self._wrote:
            return self._gold_answer()
        self._wrote = True
        game = self.env.scienceworld
        description = game.task_description()
        calls = [
            {"name": "Retrieve_memory", "arguments": {"query": description, "top_k": 3}},
            {
                "name": "Add_memory",
                "arguments": {
                    "content": f"{game.task_id}: {description} Plan: {'; '.join(self._plan[:12])}"[:500],
                    "metadata": {"task": str(game.task)},
                },
            },
        ]
        return f"<think>I check what I remember, then note this task.</think><tool_call>{json.dumps(calls)}</tool_call>"


class ScienceWorldRandomPolicy:
    """A uniformly random valid action each turn (the library's valid action-object combinations; seeded)."""

    name = "random"

    def __init__(self, env: ScienceWorldEnv, seed: int = 0) -> None:
        if not isinstance(env, ScienceWorldEnv):
            raise ConfigError(
                f"the random policy reads a ScienceWorldEnv's valid actions (pass env.unwrapped), got "
                f"{type(env).__name__}"
            )
        self.env = env
        self.rng = np.random.default_rng(seed)

    def reset(self, info: Mapping[str, Any]) -> None:
        pass

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        valid = [a for a in self.env.scienceworld.valid_action_combinations() if a != "reset task"]
        return _answer(valid[int(self.rng.integers(len(valid)))] if valid else "look around", "I try something.")


ScienceWorldEnv.SCRIPTED = {
    "gold": lambda env, seed: ScienceWorldGoldPolicy(env),
    "gold_memory": lambda env, seed: ScienceWorldGoldMemoryPolicy(env),
    "random": lambda env, seed: ScienceWorldRandomPolicy(env, seed),
}
