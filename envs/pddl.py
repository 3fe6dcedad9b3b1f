"""``AgeMem-PDDL-v0``: classical planning tasks (blocksworld, gripper, or your own PDDL files) as a text game with
memory tools, scored as AgentBoard scores them.

The paper evaluates AgeMem on AgentBoard's PDDL games (Ma et al., 2024, arXiv 2401.13178: blocksworld, gripper,
barman, tyreworld), whose metric is the **progress rate**: the share of the goal's conditions that hold, the best
reached over the episode (AgentBoard's ``constraint_satisfaction_metric``, kept as a running maximum in its PDDL
env), beside success (every goal condition holds). This suite plays such tasks on :mod:`agemem_gym.envs.strips`,
a small STRIPS engine of our own, fully offline and deterministic:

- **Generated problems** (the default): blocksworld (``size`` blocks) and gripper (``size`` balls, two rooms, a
  robot with two grippers), from embedded domain definitions; a problem is a function of ``(domain, size, seed)``,
  named by a task id ``"blocksworld:4:17"``. No goal condition holds in a generated problem's initial state.
- **Your files** (the loader path): ``PDDLEnv(domain_file=..., problem_files=...)`` reads a domain and its problems,
  e.g. AgentBoard's layout ``pddl/barman.pddl`` and the directory ``pddl/barman/``; task ids are
  ``"<domain>:<problem file stem>"``. A malformed file raises :class:`~agemem_gym.envs.strips.PDDLError` naming the
  file, the line and what was expected.
- **AgentBoard's games by name**: ``PDDLEnv(game="barman")`` reads ``<root>/barman.pddl`` and ``<root>/barman/``
  from the tree ``agemem-download pddl`` installs (:func:`pddl_root`: ``data_path=``, ``$AGEMEM_PDDL_PATH``, or
  ``<cache dir>/pddl/agentboard``).

Text: the first observation states the goal ("The goal is to satisfy the following conditions: b1 is on b2, ...")
and the state; later observations give only the state after each action, so the goal is in the context once (what
memory is for). Actions are text as in AgentBoard ("pick up b1", "stack b1 on b2", "move from rooma to roomb"; the
PDDL forms "stack b1 b2" and "(stack b1 b2)" work too), plus AgentBoard's "check valid actions" (lists the actions
possible now) and "look around" (the state again). An unknown or inapplicable action leaves the state unchanged and
says why (an inapplicable one names its unmet preconditions); it still uses a step.

Reward: ``info["progress"]`` is AgentBoard's progress rate, the best share of goal conditions over the states the
episode's actions reached (0 before the first action; AgentBoard updates it only on actions that apply), and each
game step's reward is its increase, so an episode's game rewards sum to its progress rate (undoing a condition
costs no reward, only the steps to redo it). ``info["share"]`` is the share now, ``info["success"]`` whether the
goal holds; reaching it terminates, ``step_limit`` game steps truncate (``"game_truncated"``). Snapshots are exact:
the state is the fact set.

The module is ~800 lines because a suite is one unit here, as envs/scienceworld.py is: the embedded domains with
their generators and English phrasings, the text game over the engine, the env and its four scripted policies.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agemem_gym._validate import check, check_field
from agemem_gym.envs._paths import dataset_cache_dir
from agemem_gym.errors import ConfigError, DataError
from agemem_gym.textenv import TextGameEnv, normalize_command

from .strips import (
    Atom,
    Domain,
    GroundAction,
    State,
    Task,
    astar,
    load_domain,
    load_problem,
    parse_domain,
    parse_problem,
)

__all__ = [
    "BLOCKSWORLD_PDDL",
    "DEFAULT_LEVELS",
    "GENERATORS",
    "GRIPPER_PDDL",
    "PDDL_PATH_ENV",
    "PHRASES",
    "GeneratedProblems",
    "PDDLEnv",
    "PDDLGame",
    "PDDLGreedyPolicy",
    "PDDLPlannerMemoryPolicy",
    "PDDLPlannerPolicy",
    "PDDLRandomPolicy",
    "Phrasebook",
    "ProblemFiles",
    "agentboard_files",
    "generate_problem",
    "pddl_root",
]

# ---- embedded domains ----

BLOCKSWORLD_PDDL = """
; Blocksworld with four operators: one arm, blocks on a table.
(define (domain blocksworld)
  (:requirements :strips :typing)
  (:types block)
  (:predicates (on ?x - block ?y - block) (on-table ?x - block) (clear ?x - block)
               (holding ?x - block) (arm-empty))
  (:action pickup
    :parameters (?x - block)
    :precondition (and (clear ?x) (on-table ?x) (arm-empty))
    :effect (and (holding ?x) (not (clear ?x)) (not (on-table ?x)) (not (arm-empty))))
  (:action putdown
    :parameters (?x - block)
    :precondition (holding ?x)
    :effect (and (on-table ?x) (clear ?x) (arm-empty) (not (holding ?x))))
  (:action stack
    :parameters (?x - block ?y - block)
    :precondition (and (holding ?x) (clear ?y))
    :effect (and (on ?x ?y) (clear ?x) (arm-empty) (not (holding ?x)) (not (clear ?y))))
  (:action unstack
    :parameters (?x - block ?y - block)
    :precondition (and (on ?x ?y) (clear ?x) (arm-empty))
    :effect (and (holding ?x) (clear ?y) (not (on ?x ?y)) (not (clear ?x)) (not (arm-empty)))))
"""

GRIPPER_PDDL = """
; Gripper: a robot with two grippers carries balls between rooms.
(define (domain gripper)
  (:requirements :strips :typing :equality)
  (:types room ball gripper)
  (:predicates (at-robby ?r - room) (at ?b - ball ?r - room) (free ?g - gripper) (carry ?b - ball ?g - gripper))
  (:action move
    :parameters (?from - room ?to - room)
    :precondition (and (at-robby ?from) (not (= ?from ?to)))
    :effect (and (at-robby ?to) (not (at-robby ?from))))
  (:action pick
    :parameters (?b - ball ?r - room ?g - gripper)
    :precondition (and (at ?b ?r) (at-robby ?r) (free ?g))
    :effect (and (carry ?b ?g) (not (at ?b ?r)) (not (free ?g))))
  (:action drop
    :parameters (?b - ball ?r - room ?g - gripper)
    :precondition (and (carry ?b ?g) (at-robby ?r))
    :effect (and (at ?b ?r) (free ?g) (not (carry ?b ?g)))))
"""


@dataclass(frozen=True)
class Phrasebook:
    """English for a domain's atoms and actions: format strings over the arguments (``"{0} is on {1}"``).

    Atoms and actions without a phrase are written in PDDL's words (``on b1 b2``). ``rules`` is a sentence or two
    on the domain, for the instructions.
    """

    atoms: Mapping[str, str] = field(default_factory=dict)
    actions: Mapping[str, str] = field(default_factory=dict)
    rules: str = ""

    def atom(self, atom: Atom) -> str:
        """The atom as a clause (no final full stop)."""
        fmt = self.atoms.get(atom[0])
        return fmt.format(*atom[1:]) if fmt else " ".join(atom)

    def action(self, action: GroundAction) -> str:
        """The action as the agent writes it."""
        fmt = self.actions.get(action.name)
        return fmt.format(*action.args) if fmt else " ".join((action.name, *action.args))


PHRASES: dict[str, Phrasebook] = {
    "blocksworld": Phrasebook(
        atoms={
            "on": "{0} is on {1}",
            "on-table": "{0} is on the table",
            "clear": "{0} is clear",
            "holding": "you are holding {0}",
            "arm-empty": "your arm is empty",
        },
        actions={
            "pickup": "pick up {0}",
            "putdown": "put down {0}",
            "stack": "stack {0} on {1}",
            "unstack": "unstack {0} from {1}",
        },
        rules="Blocksworld: blocks stand on the table or on each other; your one arm holds at most one block. "
        '"pick up X" takes a clear block X from the table (your arm must be empty); "unstack X from Y" takes a clear '
        'block X from the top of Y; "put down X" puts the block you hold on the table; "stack X on Y" puts it on a '
        "clear block Y. A block is clear when nothing is on it and you are not holding it.",
    ),
    "gripper": Phrasebook(
        atoms={
            "at-robby": "the robot is in {0}",
            "at": "{0} is in {1}",
            "free": "the {0} gripper is free",
            "carry": "the {1} gripper carries {0}",
        },
        actions={
            "move": "move from {0} to {1}",
            "pick": "pick up {0} in {1} with the {2} gripper",
            "drop": "drop {0} in {1} with the {2} gripper",
        },
        rules="Gripper: a robot with a left and a right gripper carries balls between rooms. "
        '"move from A to B" moves the robot; "pick up X in R with the G gripper" takes ball X in the robot\'s room R '
        'with the free gripper G; "drop X in R with the G gripper" puts it down in the robot\'s room R.',
    ),
}


# ---- generated problems ----


def _towers(blocks: list[str], rng: np.random.Generator) -> list[list[str]]:
    """A random arrangement of ``blocks`` into towers (bottom first)."""
    order = [blocks[int(i)] for i in rng.permutation(len(blocks))]
    towers: list[list[str]] = [[order[0]]]
    for b in order[1:]:
        if rng.random() < 0.5:
            towers[-1].append(b)
        else:
            towers.append([b])
    return towers


def _blocksworld(size: int, rng: np.random.Generator, name: str) -> str:
    blocks = [f"b{i + 1}" for i in range(size)]
    while True:
        start, goal = _towers(blocks, rng), _towers(blocks, rng)
        start_on = {(t[i + 1], t[i]) for t in start for i in range(len(t) - 1)}
        goal_on = [(t[i + 1], t[i]) for t in goal for i in range(len(t) - 1)]
        # At least one goal condition, none true at the start (so progress measures what the agent did).
        if goal_on and not start_on & set(goal_on):
            break
    init = ["(arm-empty)"] + [f"(on-table {t[0]})" for t in start] + [f"(clear {t[-1]})" for t in start]
    init += [f"(on {x} {y})" for t in start for x, y in zip(t[1:], t[:-1], strict=True)]
    return (
        f"(define (problem {name}) (:domain blocksworld)\n  (:objects {' '.join(blocks)} - block)\n"
        f"  (:init {' '.join(init)})\n  (:goal (and {' '.join(f'(on {x} {y})' for x, y in sorted(goal_on))})))\n"
    )


def _gripper(size: int, rng: np.random.Generator, name: str) -> str:
    rooms = ("rooma", "roomb")
    balls = [f"ball{i + 1}" for i in range(size)]
    start = [int(rng.integers(2)) for _ in balls]
    init = [f"(at-robby {rooms[int(rng.integers(2))]})", "(free left)", "(free right)"]
    init += [f"(at {b} {rooms[s]})" for b, s in zip(balls, start, strict=True)]
    # Every ball ends in the other room (so no goal condition holds at the start).
    goal = [f"(at {b} {rooms[1 - s]})" for b, s in zip(balls, start, strict=True)]
    return (
        f"(define (problem {name}) (:domain gripper)\n"
        f"  (:objects {' '.join(rooms)} - room {' '.join(balls)} - ball left right - gripper)\n"
        f"  (:init {' '.join(init)})\n  (:goal (and {' '.join(goal)})))\n"
    )


GENERATORS: dict[str, tuple[str, Any, tuple[int, int]]] = {
    "blocksworld": (BLOCKSWORLD_PDDL, _blocksworld, (2, 10)),
    "gripper": (GRIPPER_PDDL, _gripper, (1, 12)),
}
"""domain -> (domain PDDL, problem generator ``(size, rng, name) -> PDDL``, the sizes allowed (inclusive))."""

DEFAULT_LEVELS: dict[str, tuple[int, ...]] = {"blocksworld": (3, 4, 5, 6), "gripper": (2, 3, 4, 5)}
"""The sizes (blocks, balls) that ``reset(seed=...)`` draws from by default."""


def generate_problem(domain: str, size: int, seed: int) -> str:
    """The PDDL text of generated problem ``(domain, size, seed)`` (deterministic).

    >>> print(generate_problem("blocksworld", 2, 0).splitlines()[-1])
      (:goal (and (on b1 b2))))
    """
    if domain not in GENERATORS:
        raise ConfigError(f"'domain' must be one of {sorted(GENERATORS)}, got {domain!r}")
    _, make, (low, high) = GENERATORS[domain]
    if not isinstance(size, int) or isinstance(size, bool) or not low <= size <= high:
        raise ConfigError(f"'size' of a {domain} problem must be an int in {low}..{high}, got {size!r}")
    check("seed", seed, "int", ge=0)
    return str(make(size, np.random.default_rng([seed, size]), f"{domain}-{size}-{seed}"))


@functools.lru_cache(maxsize=8)
def _embedded_domain(name: str) -> Domain:
    return parse_domain(GENERATORS[name][0], f"<embedded {name} domain>")


@functools.lru_cache(maxsize=256)
def _generated_task(domain: str, size: int, seed: int) -> Task:
    dom = _embedded_domain(domain)
    return Task.from_pddl(dom, parse_problem(generate_problem(domain, size, seed), dom, f"<{domain}:{size}:{seed}>"))


@dataclass(frozen=True)
class GeneratedProblems:
    """The generated tasks: ``"<domain>:<size>:<seed>"`` for each domain, each of its sizes, seeds ``0 .. n_tasks - 1``.

    ``draw(seed)`` (what ``reset(seed=s)`` plays) picks a domain and a size uniformly from ``seed`` and uses
    ``seed`` as the problem seed.

    >>> GeneratedProblems(("blocksworld",), {"blocksworld": (3,)}, n_tasks=2).task_ids
    ('blocksworld:3:0', 'blocksworld:3:1')
    """

    domains: tuple[str, ...] = ("blocksworld", "gripper")
    levels: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_LEVELS))
    n_tasks: int = 1000

    def __post_init__(self) -> None:
        check_field(self, "n_tasks", "int", gt=0)
        if not self.domains or any(d not in GENERATORS for d in self.domains):
            raise ConfigError(f"'domains' must be a non-empty subset of {sorted(GENERATORS)}, got {self.domains!r}")
        for d in self.domains:
            sizes = self.levels.get(d)
            low, high = GENERATORS[d][2]
            if not sizes or any(not isinstance(s, int) or isinstance(s, bool) or not low <= s <= high for s in sizes):
                raise ConfigError(
                    f"'levels[{d!r}]' must be a non-empty tuple of sizes in {low}..{high}, got {sizes!r}; "
                    f"e.g. levels={{{d!r}: {DEFAULT_LEVELS[d]}}}"
                )

    @property
    def task_ids(self) -> tuple[str, ...]:
        """Every task id, by domain, size, seed."""
        return tuple(f"{d}:{s}:{i}" for d in self.domains for s in self.levels[d] for i in range(self.n_tasks))

    def draw(self, seed: int) -> str:
        """The task that ``reset(seed=seed)`` plays."""
        rng = np.random.default_rng(seed)
        domain = self.domains[int(rng.integers(len(self.domains)))]
        sizes = self.levels[domain]
        return f"{domain}:{sizes[int(rng.integers(len(sizes)))]}:{seed}"

    def task(self, task_id: str) -> tuple[Task, Phrasebook]:
        """The grounded task of an id and its phrasebook.

        Raises:
            ConfigError: The id is not ``"<domain>:<size>:<seed>"`` of these domains and sizes.
        """
        parts = str(task_id).split(":")
        ok = len(parts) == 3 and parts[0] in self.domains and parts[1].isdigit() and parts[2].isdigit()
        if not ok or int(parts[1]) not in self.levels[parts[0]]:
            levels = ", ".join(f"{d} sizes {list(self.levels[d])}" for d in self.domains)
            raise ConfigError(f"task_id must be '<domain>:<size>:<seed>' with {levels}, got {task_id!r:.80}")
        return _generated_task(parts[0], int(parts[1]), int(parts[2])), PHRASES[parts[0]]


class ProblemFiles:
    """Tasks read from PDDL files: one domain file and its problem files (AgentBoard's layout: ``pddl/<game>.pddl``
    and the directory ``pddl/<game>/``). Every file is parsed and grounded when this is made, so a malformed one
    fails at once.

    Args:
        domain_file: The domain's ``.pddl`` file.
        problem_files: Problem files, or one directory (its ``*.pddl`` files, sorted by name).
        phrases: A :class:`Phrasebook` for the domain (default: the built-in one if the domain's name is
            ``blocksworld`` or ``gripper``, else PDDL's own words).

    Raises:
        PDDLError: A file is missing or malformed (the message names the file and the line).
        ConfigError: No problem files were given or found.
    """

    def __init__(
        self,
        domain_file: str | Path,
        problem_files: str | Path | Sequence[str | Path],
        phrases: Phrasebook | None = None,
    ) -> None:
        self.domain = load_domain(domain_file)
        if isinstance(problem_files, (str, Path)) and Path(problem_files).is_dir():
            paths = sorted(Path(problem_files).glob("*.pddl"))
        elif isinstance(problem_files, (str, Path)):
            paths = [Path(problem_files)]
        else:
            paths = [Path(p) for p in problem_files]
        if not paths:
            raise ConfigError(f"'problem_files' must name at least one .pddl problem file, got {problem_files!r}")
        self.phrases = phrases or PHRASES.get(self.domain.name, Phrasebook())
        self._tasks: dict[str, Task] = {}
        for p in paths:
            task_id = f"{self.domain.name}:{p.stem}"
            if task_id in self._tasks:
                raise ConfigError(f"two problem files have the stem {p.stem!r}; task ids must be unique ({task_id})")
            self._tasks[task_id] = Task.from_pddl(self.domain, load_problem(p, self.domain))

    @property
    def task_ids(self) -> tuple[str, ...]:
        """``"<domain>:<file stem>"`` for each problem file."""
        return tuple(self._tasks)

    def draw(self, seed: int) -> str:
        """The task that ``reset(seed=seed)`` plays: one of the files, uniformly from ``seed``."""
        ids = self.task_ids
        return ids[int(np.random.default_rng(seed).integers(len(ids)))]

    def task(self, task_id: str) -> tuple[Task, Phrasebook]:
        """The grounded task of an id and the phrasebook."""
        if task_id not in self._tasks:
            raise ConfigError(f"task_id must be one of {list(self._tasks)[:8]}..., got {task_id!r:.80}")
        return self._tasks[task_id], self.phrases


TaskSource = GeneratedProblems | ProblemFiles


# ---- AgentBoard's files on disk ----

PDDL_PATH_ENV = "AGEMEM_PDDL_PATH"
"""Environment variable naming a directory in AgentBoard's layout (``<game>.pddl`` beside ``<game>/``)."""


def pddl_root(data_path: str | os.PathLike[str] | None = None) -> Path:
    """The directory of AgentBoard's PDDL files: ``data_path``, ``$AGEMEM_PDDL_PATH``, or where
    ``agemem-download pddl`` installs them (``<cache dir>/pddl/agentboard``)."""
    for candidate in (data_path, os.environ.get(PDDL_PATH_ENV)):
        if candidate:
            return Path(candidate).expanduser()
    return dataset_cache_dir("pddl") / "agentboard"


def agentboard_files(game: str, data_path: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """The domain file and the problem directory of one of AgentBoard's games (``"barman"``, ``"blocks"``,
    ``"gripper"``, ``"tyreworld"``, ...): ``<root>/<game>.pddl`` and ``<root>/<game>/``, under :func:`pddl_root`.

    Raises:
        ConfigError: ``game`` is not a plain name.
        DataError: The files are not there (the message says where it looked, which games are there, and how to
            download them).
    """
    if not isinstance(game, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", game) or game.startswith("."):
        raise ConfigError(f"'game' must be the name of an AgentBoard PDDL game, e.g. 'barman', got {game!r:.80}")
    root = pddl_root(data_path)
    domain, problems = root / f"{game}.pddl", root / game
    if not domain.is_file() or not problems.is_dir():
        there = sorted(p.stem for p in root.glob("*.pddl") if (root / p.stem).is_dir()) if root.is_dir() else []
        found = f"games there: {there}" if there else "no games there"
        raise DataError(
            f"no PDDL game {game!r} under {root}: expected {domain} and the directory {problems} ({found}). "
            f"Download AgentBoard's files with `agemem-download pddl --sha256 HEX`, or point data_path= or "
            f"${PDDL_PATH_ENV} at a directory in that layout"
        )
    return domain, problems


# ---- the game ----

CHECK = "check valid actions"
LOOK = "look around"

_INSTRUCTIONS = """You solve a planning task in a world of objects and facts. The first observation states the goal (the conditions to make true) and the facts that hold; after each action you see the facts that hold then. The goal is stated only once.
{rules}
Write one action per <answer>, e.g. {examples}. "{check}" lists the actions possible now; "{look}" shows the facts again. An impossible action changes nothing. You have {limit} game steps."""


def _sentence(clauses: Sequence[str]) -> str:
    return " ".join(c[:1].upper() + c[1:] + "." for c in clauses)


class PDDLGame:
    """A STRIPS task as a :class:`~agemem_gym.textenv.TextGame` (see the module docstring for text and reward).

    Args:
        source: Where tasks come from (:class:`GeneratedProblems` or :class:`ProblemFiles`).
        step_limit: Game steps per episode before ``truncated``.
    """

    def __init__(self, source: TaskSource, *, step_limit: int = 30) -> None:
        check("step_limit", step_limit, "int", gt=0)
        self.source = source
        self.step_limit = step_limit
        self.next_task: str | None = None  # set by PDDLEnv.reset(options={"task_id": ...}) for one reset
        self.task_id = source.task_ids[0]
        self._load(self.task_id)
        self.state: State = self.task.init
        self.steps, self.best, self.share = 0, 0.0, 0.0

    def _load(self, task_id: str) -> None:
        self.task, self.phrases = self.source.task(task_id)
        self.task_id = task_id
        self.instructions = self._instructions()  # the current domain's rules (TextGame.instructions)
        self._texts: dict[str, GroundAction] = {}
        for a in self.task.actions:
            for text in (self.phrases.action(a), " ".join((a.name, *a.args)), a.key):
                self._texts.setdefault(normalize_command(text), a)

    def _instructions(self) -> str:
        """The rules of the current task's domain and how to act (in the system prompt)."""
        examples = []
        for schema in self.task.domain.actions:
            a = next((g for g in self.task.actions if g.name == schema.name), None)
            if a is not None:
                examples.append(f"<answer>{self.phrases.action(a)}</answer>")
        rules = self.phrases.rules or "Domain {}: actions {}.".format(
            self.task.domain.name,
            "; ".join(f"{s.name} {' '.join(v for v, _ in s.parameters)}".strip() for s in self.task.domain.actions),
        )
        return _INSTRUCTIONS.format(
            rules=rules, examples=", ".join(examples[:4]), check=CHECK, look=LOOK, limit=self.step_limit
        )

    # -- text --
    def goal_text(self) -> str:
        """'The goal is to satisfy the following conditions: ...' (sorted, as AgentBoard writes it)."""
        clauses = sorted(self.phrases.atom(g) for g in self.task.goal)
        clauses += sorted(f"not ({self.phrases.atom(g)})" for g in self.task.goal_neg)
        return "The goal is to satisfy the following conditions: " + ", ".join(clauses) + "."

    def state_text(self, state: State | None = None) -> str:
        """The facts that hold, one sentence each, sorted."""
        return _sentence(sorted(self.phrases.atom(a) for a in (self.state if state is None else state)))

    def action_text(self, action: GroundAction) -> str:
        """How the agent writes ``action``."""
        return self.phrases.action(action)

    def parse(self, command: str) -> GroundAction | None:
        """The ground action a command names (any accepted form), or None."""
        return self._texts.get(normalize_command(command))

    def applicable_texts(self) -> list[str]:
        """The actions possible now, as the agent writes them."""
        return [self.phrases.action(a) for a in self.task.applicable(self.state)]

    # -- TextGame --
    def reset(self, *, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        """Start the task ``next_task`` names, else the one ``seed`` draws."""
        task_id = self.next_task if self.next_task is not None else self.source.draw(int(seed or 0))
        self._load(task_id)
        self.state = self.task.init
        self.steps, self.best = 0, 0.0
        self.share = self.task.progress(self.state)
        text = f"Task {task_id}. {self.goal_text()}\nObservation: {self.state_text()}"
        return text, self._info(valid=True)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """One command: an action, "check valid actions" or "look around". Never raises on the text."""
        self.steps += 1
        command = normalize_command(action)
        valid = True
        if command == CHECK:
            text = "Valid actions are: " + ", ".join(self.applicable_texts()) + "."
        elif command == LOOK:
            text = "Observation: " + self.state_text()
        else:
            ground = self.parse(command)
            if ground is None:
                valid = False
                examples = ", ".join(self.applicable_texts()[:3])
                text = (
                    f"Nothing happens: {command!r:.80} is not an action here. Actions look like: {examples}. "
                    f'Say "{CHECK}" to list the actions possible now.'
                )
            elif not self.task.holds(self.state, ground):
                valid = False
                unmet = sorted(self.phrases.atom(p) for p in ground.pre - self.state)
                unmet += sorted(f"not ({self.phrases.atom(p)})" for p in ground.neg_pre & self.state)
                text = f"Nothing happens: you cannot {self.action_text(ground)} now; it needs: {', '.join(unmet)}."
            else:
                self.state = self.task.apply(self.state, ground)
                text = f"You {self.action_text(ground)}.\nObservation: {self.state_text()}"
        self.share = self.task.progress(self.state)
        # AgentBoard's progress rate: the best share over the states the episode's actions reached (the initial
        # state counts once an action returns to it); the reward is its increase, so rewards sum to the progress.
        reward = 0.0
        if valid and command not in (CHECK, LOOK) and self.share > self.best:
            reward, self.best = self.share - self.best, self.share
        won = self.task.is_goal(self.state)
        if won:
            text += " The goal is satisfied."
        truncated = not won and self.steps >= self.step_limit
        return text, reward, won, truncated, self._info(valid=valid)

    def _info(self, *, valid: bool) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "success": self.task.is_goal(self.state),
            "progress": self.best,
            "share": self.task.progress(self.state),
            "action_valid": valid,
            "moves": self.steps,
        }

    def valid_actions(self) -> Sequence[str] | None:
        """None: commands are free-form (the game itself answers an unknown or impossible one)."""
        return None

    def get_state(self) -> dict[str, Any]:
        """The task id, the fact set and the counters (exact: nothing else changes)."""
        return {
            "task_id": self.task_id,
            "state": self.state,
            "steps": self.steps,
            "best": self.best,
            "share": self.share,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_state`'s snapshot."""
        self._load(str(state["task_id"]))
        self.state = frozenset(state["state"])
        self.steps, self.best, self.share = int(state["steps"]), float(state["best"]), float(state["share"])

    def plan(self, *, max_expansions: int = 50_000) -> list[GroundAction] | None:
        """A plan from the current state: A* (optimal for the generated domains), else weighted A* (w = 5) when
        A* exceeds ``max_expansions``; None when neither finds one in that bound."""
        found = astar(self.task, self.state, max_expansions=max_expansions)
        if found is None:
            found = astar(self.task, self.state, weight=5.0, max_expansions=max_expansions)
        return found


class PDDLEnv(TextGameEnv):
    """``AgeMem-PDDL-v0``: STRIPS planning tasks under AgeMem's protocol with memory tools.

    See :class:`~agemem_gym.textenv.TextGameEnv` for the protocol, spaces, rewards and episode end, and the module
    docstring for the game. ``reset(seed=s)`` plays the task ``s`` draws (generated problems: a domain and size drawn
    from ``s``, problem seed ``s``); ``reset(options={"task_id": "blocksworld:4:17"})`` plays that one (the GRPO
    trainer samples from ``env.unwrapped.suite.task_ids``). ``info["episode"]["progress"]`` is AgentBoard's
    progress rate (the best share of goal conditions reached), ``success`` whether the goal was reached, and the
    game rewards sum to the progress rate.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``domains`` | ``("blocksworld", "gripper")`` | generated domains to draw from |
    | ``levels`` | :data:`DEFAULT_LEVELS` | sizes per domain (blocks, balls) |
    | ``n_tasks`` | 1000 | seeds per (domain, size) in ``suite.task_ids`` |
    | ``domain_file``, ``problem_files`` | ``None`` | play these PDDL files instead (:class:`ProblemFiles`) |
    | ``game`` | ``None`` | play one of AgentBoard's games by name (:func:`agentboard_files`), e.g. ``"barman"`` |
    | ``data_path`` | ``None`` | where ``game`` is looked up (:func:`pddl_root`) |
    | ``phrases`` | ``None`` | a :class:`Phrasebook` for the files' domain |
    | ``step_limit`` | 30 | game steps per episode (then ``"game_truncated"``) |

    Every other keyword goes to :class:`~agemem_gym.textenv.TextGameEnv` (``lifelong``, ``embedder``, ...).

    ## Version History
    * v0: initial release.
    """

    def __init__(
        self,
        *,
        domains: Sequence[str] = ("blocksworld", "gripper"),
        levels: Mapping[str, Sequence[int]] | None = None,
        n_tasks: int = 1000,
        domain_file: str | Path | None = None,
        problem_files: str | Path | Sequence[str | Path] | None = None,
        phrases: Phrasebook | None = None,
        game: str | None = None,
        data_path: str | Path | None = None,
        step_limit: int = 30,
        **kwargs: Any,
    ) -> None:
        source: TaskSource
        if game is not None:
            if domain_file is not None or problem_files is not None:
                raise ConfigError("pass either 'game' (AgentBoard's files by name) or 'domain_file'/'problem_files'")
            domain_file, problem_files = agentboard_files(game, data_path)
        elif data_path is not None:
            raise ConfigError("'data_path' says where to find 'game'; pass game=... too, e.g. game='barman'")
        if domain_file is not None or problem_files is not None:
            if domain_file is None or problem_files is None:
                raise ConfigError("'domain_file' and 'problem_files' go together: pass both to play PDDL files")
            source = ProblemFiles(domain_file, problem_files, phrases)
        else:
            merged = {**DEFAULT_LEVELS, **{k: tuple(v) for k, v in (levels or {}).items()}}
            source = GeneratedProblems(tuple(domains), merged, n_tasks)
        self.suite = source
        super().__init__(PDDLGame(source, step_limit=step_limit), **kwargs)

    @property
    def pddl(self) -> PDDLGame:
        """The game (privileged: the task, the state and the planner, for scripted policies and analysis)."""
        game: PDDLGame = self.game  # type: ignore[assignment]
        return game

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """As :meth:`TextGameEnv.reset`, plus ``options={"task_id": ...}`` to pick the task."""
        opts = dict(options or {})
        task_id = opts.pop("task_id", None)
        if task_id is not None:
            self.suite.task(task_id)  # raises ConfigError for an unknown id, before anything changes
            self.pddl.next_task = str(task_id)
        try:
            return super().reset(seed=seed, options=opts)
        finally:
            self.pddl.next_task = None


# ---- reference policies (privileged: they read the game) ----


def _answer(action: str, think: str) -> str:
    return f"<think>{think}</think><answer>{action}</answer>"


def _require_env(env: Any, who: str) -> PDDLEnv:
    if not isinstance(env, PDDLEnv):
        raise ConfigError(f"the {who} policy plays a PDDLEnv (pass env.unwrapped), got {type(env).__name__}")
    return env


class PDDLPlannerPolicy:
    """Plans with the engine's A* from the current state and plays the plan; uses no memory (the reference).

    It replans whenever the state is not the one its plan expected (after ``set_state``, for instance). When no plan
    is found within the bound it plays :class:`PDDLGreedyPolicy`'s choice.
    """

    name = "planner"

    def __init__(self, env: Any, seed: int = 0) -> None:
        self.env = _require_env(env, "planner")
        self._greedy = PDDLGreedyPolicy(env, seed)
        self._plan: list[GroundAction] = []
        self._expect: State | None = None

    def reset(self, info: Mapping[str, Any]) -> None:
        self._plan, self._expect = [], None

    def next_action(self) -> str:
        game = self.env.pddl
        if self._expect != game.state or not self._plan:
            self._plan = game.plan() or []
        if not self._plan:
            return self._greedy.choose()
        action = self._plan.pop(0)
        self._expect = game.task.apply(game.state, action)
        return game.action_text(action)

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        return _answer(self.next_action(), "I follow my plan.")


_PLAN_STEP = re.compile(r"(\d+)\. ([^;]+?)(?=;|\. Done:|$)")
_DONE = re.compile(r"Done: (\d+) of (\d+)")


class PDDLPlannerMemoryPolicy:
    """The planner that keeps its goal and plan in long-term memory and acts from what it retrieves.

    Turn 1 stores the goal and the whole plan (``Add_memory``); then, every ``every`` game steps (and at the
    start), one turn updates that memory with the progress (``Update_memory``: "Done: k of n") and retrieves it
    (``Retrieve_memory``, filtered on this episode's metadata); the next actions are read from the retrieved text,
    not from the policy's own state. If the retrieved text cannot be read it replans (counted in ``rereads``).
    """

    name = "planner_memory"

    def __init__(self, env: Any, seed: int = 0, *, every: int = 5) -> None:
        self.env = _require_env(env, "planner_memory")
        check("every", every, "int", gt=0)
        self.every = every
        self._planner = PDDLPlannerPolicy(env, seed)
        self.rereads = 0

    def reset(self, info: Mapping[str, Any]) -> None:
        self._episode = str(info.get("episode_index", 0))
        self._memory_id: str | None = None
        self._queue: list[str] = []
        self._done = 0
        self._since = 0
        self._pending = "add"

    def _content(self, plan: Sequence[str], done: int) -> str:
        game = self.env.pddl
        steps = "; ".join(f"{i + 1}. {a}" for i, a in enumerate(plan))
        return (
            f"Task {game.task_id}. {game.goal_text()} Plan ({len(plan)} actions): {steps}. Done: {done} of {len(plan)}."
        )

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        game = self.env.pddl
        meta = {"task": game.task_id, "episode": self._episode}
        if self._pending == "add":
            self._plan = [game.action_text(a) for a in (game.plan() or [])]
            self._pending = "sync"
            call = {"name": "Add_memory", "arguments": {"content": self._content(self._plan, 0), "metadata": meta}}
            return f"<think>I note the goal and my plan.</think><tool_call>{json.dumps([call])}</tool_call>"
        if self._pending == "sync":
            if self._memory_id is None:
                results = info.get("tool_results") or [{}]
                self._memory_id = results[0].get("data", {}).get("id")
            self._pending = "read"
            calls: list[dict[str, Any]] = []
            if self._memory_id is not None and self._done:
                content = self._content(self._plan, self._done)
                calls.append({"name": "Update_memory", "arguments": {"memory_id": self._memory_id, "content": content}})
            query = f"plan for task {game.task_id}"
            calls.append(
                {"name": "Retrieve_memory", "arguments": {"query": query, "top_k": 1, "metadata_filter": meta}}
            )
            return f"<think>I check my plan.</think><tool_call>{json.dumps(calls)}</tool_call>"
        if self._pending == "read":
            self._pending = ""
            self._queue = self._read(info)
        if not self._queue:
            self.rereads += 1
            return _answer(self._planner.next_action(), "My notes do not say; I plan again.")
        action = self._queue.pop(0)
        self._done += 1
        self._since += 1
        if self._since >= self.every and self._queue:
            self._since, self._pending = 0, "sync"
        return _answer(action, "I follow the plan in my notes.")

    def _read(self, info: Mapping[str, Any]) -> list[str]:
        """The actions still to do, read from the retrieved memory."""
        hits = next(
            (r.get("data", {}).get("hits") for r in info.get("tool_results", []) if r.get("name") == "Retrieve_memory"),
            None,
        )
        if not hits:
            return []
        text = str(hits[0].get("content", ""))
        done = _DONE.search(text)
        steps = [m.group(2).strip() for m in _PLAN_STEP.finditer(text.split("actions):", 1)[-1])]
        if done is None or not steps:
            return []
        return steps[int(done.group(1)) :]


class PDDLGreedyPolicy:
    """``no_memory``: a reflex agent with the goal but no plan and no memory of what it did.

    Each turn it plays an applicable action that most increases the share of goal conditions satisfied one step
    ahead (ties broken at random, seeded); it never looks further, so it undoes and repeats moves.
    """

    name = "no_memory"

    def __init__(self, env: Any, seed: int = 0) -> None:
        self.env = _require_env(env, "no_memory")
        self.rng = np.random.default_rng(seed)

    def reset(self, info: Mapping[str, Any]) -> None:
        pass

    def choose(self) -> str:
        game = self.env.pddl
        options = game.task.applicable(game.state)
        if not options:
            return LOOK
        gains = [game.task.satisfied(game.task.apply(game.state, a)) for a in options]
        best = [a for a, g in zip(options, gains, strict=True) if g == max(gains)]
        return game.action_text(best[int(self.rng.integers(len(best)))])

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        return _answer(self.choose(), "I take the move that looks best now.")


class PDDLRandomPolicy:
    """A uniformly random applicable action (seeded): the floor."""

    name = "random"

    def __init__(self, env: Any, seed: int = 0) -> None:
        self.env = _require_env(env, "random")
        self.rng = np.random.default_rng(seed)

    def reset(self, info: Mapping[str, Any]) -> None:
        pass

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        options = self.env.pddl.applicable_texts()
        action = options[int(self.rng.integers(len(options)))] if options else LOOK
        return _answer(action, "I try something.")


PDDLEnv.SCRIPTED = {
    "planner": lambda env, seed: PDDLPlannerPolicy(env, seed),
    "planner_memory": lambda env, seed: PDDLPlannerMemoryPolicy(env, seed),
    "no_memory": lambda env, seed: PDDLGreedyPolicy(env, seed),
    "random": lambda env, seed: PDDLRandomPolicy(env, seed),
}
