"""A small STRIPS engine: PDDL domain and problem files parsed, grounded, stepped and searched.

It covers the PDDL subset of classical planning benchmarks such as AgentBoard's (blocksworld, gripper, barman,
tyreworld): ``:strips``, ``:typing`` (a type hierarchy), ``:negative-preconditions`` and ``:equality`` in
preconditions and goals, constants, and conjunctive goals. A state is a frozenset of ground atoms (tuples
``(predicate, arg, ...)``); applying a ground action removes its delete list, then adds its add list (PDDL's
semantics: an atom both deleted and added holds after the action). Anything else (``forall``, ``when``, ``or``,
numeric fluents, derived predicates) is refused with a :class:`PDDLError` that names the file, the line and what
the parser expected.

>>> domain = parse_domain('''(define (domain switch) (:predicates (on) (off))
...   (:action flip :parameters () :precondition (off) :effect (and (on) (not (off)))))''')
>>> problem = parse_problem('(define (problem p) (:domain switch) (:init (off)) (:goal (on)))', domain)
>>> task = Task.from_pddl(domain, problem)
>>> [a.key for a in task.applicable(task.init)]
['(flip)']
>>> task.is_goal(task.apply(task.init, task.applicable(task.init)[0]))
True
>>> [a.key for a in astar(task)]
['(flip)']
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agemem_gym.errors import DataError

__all__ = [
    "SUPPORTED_REQUIREMENTS",
    "ActionSchema",
    "Atom",
    "Domain",
    "GroundAction",
    "PDDLError",
    "Problem",
    "State",
    "Task",
    "astar",
    "load_domain",
    "load_problem",
    "parse_domain",
    "parse_problem",
    "validate_plan",
]

Atom = tuple[str, ...]
"""A ground atom: ``(predicate, object, ...)``, e.g. ``("on", "b1", "b2")``."""
State = frozenset[Atom]

SUPPORTED_REQUIREMENTS = frozenset({":strips", ":typing", ":negative-preconditions", ":equality"})


class PDDLError(DataError):
    """A PDDL file is malformed or uses a feature this engine does not support (the message names the file, the
    line and what was expected)."""


# ---- s-expressions ----


class _Sym(str):
    """A token with the line it came from."""

    line: int

    def __new__(cls, text: str, line: int) -> _Sym:
        obj = super().__new__(cls, text.lower())  # PDDL names are case-insensitive
        obj.line = line
        return obj


class _List(list):  # type: ignore[type-arg]
    """A parenthesised list with the line of its opening parenthesis."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line


_Expr = _Sym | _List
# "?" always starts a variable, so "level?l1" (seen in published barman files) is two tokens.
_TOKEN = re.compile(r"\(|\)|\?[^\s()?;]*|[^\s()?;]+")


class _Reader:
    """Turns PDDL text into nested lists and reports errors against its source name."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.text = text

    def error(self, line: int, message: str) -> PDDLError:
        return PDDLError(f"{self.source}, line {line}: {message}")

    def read(self) -> _List:
        stack: list[_List] = []
        top: _List | None = None
        for lineno, raw in enumerate(self.text.splitlines(), start=1):
            for tok in _TOKEN.findall(raw.split(";", 1)[0]):
                if tok == "(":
                    stack.append(_List(lineno))
                elif tok == ")":
                    if not stack:
                        raise self.error(lineno, "expected '(' or the end of the file, got an unmatched ')'")
                    done = stack.pop()
                    if stack:
                        stack[-1].append(done)
                    elif top is None:
                        top = done
                    else:
                        raise self.error(lineno, "expected one (define ...) form, got a second top-level form")
                elif not stack:
                    raise self.error(lineno, f"expected '(define', got {tok!r} outside any parentheses")
                else:
                    stack[-1].append(_Sym(tok, lineno))
        if stack:
            raise self.error(stack[-1].line, "expected ')' to close this '(', got the end of the file")
        if top is None:
            raise self.error(1, "expected a (define (domain NAME) ...) or (define (problem NAME) ...) form, got none")
        return top

    # helpers that check shapes and raise with the line
    def sym(self, expr: _Expr, what: str, line: int) -> _Sym:
        if not isinstance(expr, _Sym):
            raise self.error(getattr(expr, "line", line), f"expected {what}, got a parenthesised list")
        return expr

    def lst(self, expr: _Expr, what: str, line: int) -> _List:
        if not isinstance(expr, _List):
            raise self.error(getattr(expr, "line", line), f"expected {what}, got {str(expr)!r}")
        return expr

    def header(self, top: _List, kind: str) -> tuple[str, list[_Expr]]:
        if not top or top[0] != "define":
            raise self.error(top.line, f"expected (define ({kind} NAME) ...), got ({' '.join(map(str, top[:2]))} ...)")
        if len(top) < 2:
            raise self.error(top.line, f"expected ({kind} NAME) after 'define', got nothing")
        head = self.lst(top[1], f"({kind} NAME)", top.line)
        if len(head) != 2 or head[0] != kind or not isinstance(head[1], _Sym):
            found = "domain" if head and head[0] == "domain" else "problem" if head and head[0] == "problem" else None
            hint = f" (this is a {found} file)" if found and found != kind else ""
            raise self.error(head.line, f"expected ({kind} NAME){hint}, got ({' '.join(map(str, head))})")
        return str(head[1]), list(top[2:])

    def typed_list(self, items: Sequence[_Expr], what: str, line: int) -> list[tuple[_Sym, str]]:
        """``a b - t c`` as ``[(a, t), (b, t), (c, "object")]``."""
        out: list[tuple[_Sym, str]] = []
        pending: list[_Sym] = []
        i = 0
        while i < len(items):
            tok = self.sym(items[i], what, line)
            if tok == "-":
                if i + 1 >= len(items) or not isinstance(items[i + 1], _Sym):
                    raise self.error(tok.line, f"expected a type name after '-' in the {what}")
                if not pending:
                    raise self.error(tok.line, f"expected names before '- {items[i + 1]}' in the {what}")
                out += [(p, str(items[i + 1])) for p in pending]
                pending = []
                i += 2
                continue
            pending.append(tok)
            i += 1
        return out + [(p, "object") for p in pending]


# ---- domains and problems ----


@dataclass(frozen=True)
class ActionSchema:
    """A lifted action: typed parameters, precondition literals and effects over parameters and constants.

    Each literal is ``(predicate, term, ...)``; terms starting with ``?`` are parameters. ``equal`` / ``unequal``
    hold ``(a, b)`` term pairs from ``(= a b)`` / ``(not (= a b))`` preconditions.
    """

    name: str
    parameters: tuple[tuple[str, str], ...]
    pre: tuple[Atom, ...]
    neg_pre: tuple[Atom, ...]
    add: tuple[Atom, ...]
    delete: tuple[Atom, ...]
    equal: tuple[tuple[str, str], ...] = ()
    unequal: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Domain:
    """A parsed PDDL domain."""

    name: str
    requirements: frozenset[str]
    types: Mapping[str, str | None]  # type -> parent ("object" -> None)
    constants: Mapping[str, str]  # name -> type
    predicates: Mapping[str, tuple[tuple[str, str], ...]]  # name -> typed parameters
    actions: tuple[ActionSchema, ...]

    def is_subtype(self, sub: str, sup: str) -> bool:
        """Whether type ``sub`` is ``sup`` or below it in the hierarchy."""
        seen: set[str] = set()
        t: str | None = sub
        while t is not None and t not in seen:
            if t == sup:
                return True
            seen.add(t)
            t = self.types.get(t, "object" if t != "object" else None)
        return sup == "object"


@dataclass(frozen=True)
class Problem:
    """A parsed PDDL problem (its objects exclude the domain's constants)."""

    name: str
    domain: str
    objects: Mapping[str, str]  # name -> type
    init: frozenset[Atom]
    goal: tuple[Atom, ...]
    goal_neg: tuple[Atom, ...] = ()


def _literal(
    r: _Reader, expr: _Expr, line: int, where: str, terms_ok: Mapping[str, str], predicates: Mapping[str, int]
) -> Atom:
    e = r.lst(expr, f"an atom (PREDICATE ARG ...) in the {where}", line)
    if not e or not isinstance(e[0], _Sym):
        raise r.error(e.line, f"expected an atom (PREDICATE ARG ...) in the {where}, got an empty or nested list")
    name = str(e[0])
    if name in ("forall", "exists", "or", "imply", "when", "increase", "decrease", "assign"):
        raise r.error(e.line, f"expected an atom, (not ATOM) or (and ...) in the {where}; '{name}' is not supported")
    if name not in predicates:
        known = ", ".join(sorted(predicates)) or "none"
        raise r.error(e.line, f"expected a declared predicate in the {where}, got {name!r} (declared: {known})")
    args = [str(r.sym(a, "a name or ?variable", e.line)) for a in e[1:]]
    if len(args) != predicates[name]:
        raise r.error(e.line, f"expected {predicates[name]} argument(s) for {name!r} in the {where}, got {len(args)}")
    for a in args:
        if a not in terms_ok:
            kind = "parameter" if a.startswith("?") else "object or constant"
            raise r.error(e.line, f"expected a declared {kind} in the {where}, got {a!r}")
    return (name, *args)


def _conjunction(r: _Reader, expr: _Expr, line: int, where: str) -> list[tuple[bool, _List]]:
    """Flatten ``(and ...)`` / ``(not X)`` into ``(positive, atom-list)`` pairs."""
    e = r.lst(expr, f"a formula in the {where}", line)
    if not e:
        return []
    if e[0] == "and":
        return [lit for sub in e[1:] for lit in _conjunction(r, sub, e.line, where)]
    if e[0] == "not":
        if len(e) != 2:
            raise r.error(e.line, f"expected (not ATOM) in the {where}, got (not) with {len(e) - 1} parts")
        inner = r.lst(e[1], f"an atom inside (not ...) in the {where}", e.line)
        if inner and inner[0] in ("and", "not", "or"):
            raise r.error(inner.line, f"expected an atom inside (not ...) in the {where}, got ({inner[0]} ...)")
        return [(False, inner)]
    return [(True, e)]


def parse_domain(text: str, source: str = "<domain>") -> Domain:
    """Parse a PDDL domain. ``source`` names the text in error messages (a file path).

    Raises:
        PDDLError: The text is not a domain in the supported subset; the message names ``source``, the line and
            what was expected.
    """
    r = _Reader(text, source)
    top = r.read()
    name, sections = r.header(top, "domain")
    requirements: set[str] = set()
    types: dict[str, str | None] = {"object": None}
    constants: dict[str, str] = {}
    predicates: dict[str, tuple[tuple[str, str], ...]] = {}
    action_forms: list[_List] = []
    for sec in sections:
        s = r.lst(sec, "a section such as (:predicates ...) or (:action ...)", top.line)
        key = str(s[0]) if s and isinstance(s[0], _Sym) else ""
        if key == ":requirements":
            for req in s[1:]:
                req_s = str(r.sym(req, "a requirement flag", s.line))
                if req_s not in SUPPORTED_REQUIREMENTS:
                    raise r.error(
                        getattr(req, "line", s.line),
                        f"expected a supported requirement ({', '.join(sorted(SUPPORTED_REQUIREMENTS))}), "
                        f"got {req_s!r}",
                    )
                requirements.add(req_s)
        elif key == ":types":
            for t, parent in r.typed_list(s[1:], "types", s.line):
                types[str(t)] = parent
                types.setdefault(parent, "object" if parent != "object" else None)
        elif key == ":constants":
            constants.update({str(c): t for c, t in r.typed_list(s[1:], "constants", s.line)})
        elif key == ":predicates":
            for p in s[1:]:
                pl = r.lst(p, "a predicate declaration (NAME ?x - type ...)", s.line)
                if not pl or not isinstance(pl[0], _Sym):
                    raise r.error(pl.line, "expected a predicate declaration (NAME ?x - type ...), got an empty list")
                params = r.typed_list(pl[1:], f"parameters of predicate {pl[0]!r}", pl.line)
                predicates[str(pl[0])] = tuple((str(v), t) for v, t in params)
        elif key == ":action":
            action_forms.append(s)
        else:
            raise r.error(
                s.line,
                f"expected a section :requirements, :types, :constants, :predicates or :action, got {key or s[:1]!r}"
                " (durative actions, functions and derived predicates are not supported)",
            )
    for type_name, parent_name in list(types.items()):
        if parent_name is not None and parent_name not in types:
            raise r.error(
                top.line, f"expected type {parent_name!r} (the parent of {type_name!r}) to be declared in :types"
            )
    arity = {p: len(v) for p, v in predicates.items()}
    actions = tuple(_action(r, a, arity, constants, types, requirements) for a in action_forms)
    return Domain(name, frozenset(requirements), types, constants, predicates, actions)


def _action(
    r: _Reader,
    s: _List,
    arity: Mapping[str, int],
    constants: Mapping[str, str],
    types: Mapping[str, str | None],
    requirements: set[str],
) -> ActionSchema:
    if len(s) < 2 or not isinstance(s[1], _Sym):
        raise r.error(s.line, "expected (:action NAME :parameters (...) :precondition ... :effect ...)")
    name = str(s[1])
    parts: dict[str, _Expr] = {}
    rest = list(s[2:])
    for i in range(0, len(rest), 2):
        key = r.sym(rest[i], "a keyword :parameters, :precondition or :effect", s.line)
        if key not in (":parameters", ":precondition", ":effect") or i + 1 >= len(rest):
            raise r.error(key.line, f"expected :parameters, :precondition or :effect with a value, got {str(key)!r}")
        parts[str(key)] = rest[i + 1]
    params_expr = r.lst(parts.get(":parameters", _List(s.line)), "a parameter list (?x - type ...)", s.line)
    params = [(str(v), t) for v, t in r.typed_list(params_expr, f"parameters of action {name!r}", s.line)]
    for v, t in params:
        if not v.startswith("?"):
            raise r.error(params_expr.line, f"expected parameters of {name!r} to start with '?', got {v!r}")
        if t not in types:
            raise r.error(params_expr.line, f"expected a declared type for {v} in {name!r}, got {t!r}")
    terms = {**{v: t for v, t in params}, **constants}
    pre: list[Atom] = []
    neg: list[Atom] = []
    equal: list[tuple[str, str]] = []
    unequal: list[tuple[str, str]] = []
    where = f"precondition of {name!r}"
    for positive, lit in _conjunction(r, parts.get(":precondition", _List(s.line)), s.line, where):
        if lit and lit[0] == "=":
            if len(lit) != 3:
                raise r.error(lit.line, f"expected (= A B) in the {where}, got {len(lit) - 1} arguments")
            a, b = (str(r.sym(x, "a name or ?variable", lit.line)) for x in lit[1:])
            for x in (a, b):
                if x not in terms:
                    raise r.error(lit.line, f"expected a parameter or constant in (= ...) in the {where}, got {x!r}")
            (equal if positive else unequal).append((a, b))
            continue
        atom = _literal(r, lit, s.line, where, terms, arity)
        if not positive and ":negative-preconditions" not in requirements:
            raise r.error(lit.line, f"expected :negative-preconditions in :requirements for (not ...) in the {where}")
        (pre if positive else neg).append(atom)
    add: list[Atom] = []
    delete: list[Atom] = []
    where = f"effect of {name!r}"
    for positive, lit in _conjunction(r, parts.get(":effect", _List(s.line)), s.line, where):
        (add if positive else delete).append(_literal(r, lit, s.line, where, terms, arity))
    return ActionSchema(
        name, tuple(params), tuple(pre), tuple(neg), tuple(add), tuple(delete), tuple(equal), tuple(unequal)
    )


def parse_problem(text: str, domain: Domain, source: str = "<problem>") -> Problem:
    """Parse a PDDL problem of ``domain`` (its name, types, predicates and constants are checked).

    Raises:
        PDDLError: The text is not a problem in the supported subset, or does not fit ``domain``.
    """
    r = _Reader(text, source)
    top = r.read()
    name, sections = r.header(top, "problem")
    dom_name = ""
    objects: dict[str, str] = {}
    init_forms: list[_Expr] = []
    goal_form: _Expr | None = None
    init_line = goal_line = objects_line = top.line
    for sec in sections:
        s = r.lst(sec, "a section such as (:objects ...), (:init ...) or (:goal ...)", top.line)
        key = str(s[0]) if s and isinstance(s[0], _Sym) else ""
        if key == ":domain":
            dom_name = str(r.sym(s[1], "the domain name", s.line)) if len(s) == 2 else ""
            if not dom_name:
                raise r.error(s.line, "expected (:domain NAME)")
            if dom_name != domain.name:
                raise r.error(s.line, f"expected (:domain {domain.name}) to match the domain file, got {dom_name!r}")
        elif key == ":objects":
            objects.update({str(o): t for o, t in r.typed_list(s[1:], "objects", s.line)})
            objects_line = s.line
        elif key == ":init":
            init_forms, init_line = list(s[1:]), s.line
        elif key == ":goal":
            if len(s) != 2:
                raise r.error(s.line, f"expected (:goal FORMULA) with one formula, got {len(s) - 1}")
            goal_form, goal_line = s[1], s.line
        elif key == ":requirements":
            continue
        else:
            raise r.error(s.line, f"expected a section :domain, :objects, :init or :goal, got {key or s[:1]!r}")
    if goal_form is None:
        raise r.error(top.line, "expected a (:goal ...) section, got none")
    for o, t in objects.items():
        if t not in domain.types:
            raise r.error(objects_line, f"expected a type declared in the domain for object {o!r}, got {t!r}")
    terms = {**domain.constants, **objects}
    arity = {p: len(v) for p, v in domain.predicates.items()}
    init = frozenset(_literal(r, a, init_line, "init", terms, arity) for a in init_forms)
    goal: list[Atom] = []
    goal_neg: list[Atom] = []
    for positive, lit in _conjunction(r, goal_form, goal_line, "goal"):
        (goal if positive else goal_neg).append(_literal(r, lit, goal_line, "goal", terms, arity))
    return Problem(name, dom_name, objects, init, tuple(goal), tuple(goal_neg))


def _read(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PDDLError(f"PDDL file {str(p)!r} does not exist; pass the path of a .pddl file") from None
    except UnicodeDecodeError as err:
        raise PDDLError(f"PDDL file {str(p)!r} is not UTF-8 text ({err})") from None


def load_domain(path: str | Path) -> Domain:
    """Parse the domain file at ``path`` (errors name the file and line)."""
    return parse_domain(_read(path), str(path))


def load_problem(path: str | Path, domain: Domain) -> Problem:
    """Parse the problem file at ``path`` against ``domain`` (errors name the file and line)."""
    return parse_problem(_read(path), domain, str(path))


# ---- grounding and stepping ----


@dataclass(frozen=True)
class GroundAction:
    """An action with its parameters bound to objects."""

    name: str
    args: tuple[str, ...]
    pre: frozenset[Atom]
    neg_pre: frozenset[Atom]
    add: frozenset[Atom]
    delete: frozenset[Atom]

    @property
    def key(self) -> str:
        """PDDL's plan notation, e.g. ``(stack b1 b2)``."""
        return "(" + " ".join((self.name, *self.args)) + ")"


@dataclass
class Task:
    """A grounded planning task: initial state, goal and every ground action that can ever apply.

    Ground actions whose static preconditions (atoms no action adds or deletes) fail in the initial state are
    dropped while grounding, so a barman or tyreworld problem grounds to hundreds of actions, not millions.
    """

    domain: Domain
    problem: Problem
    init: State
    goal: frozenset[Atom]
    goal_neg: frozenset[Atom]
    actions: tuple[GroundAction, ...]
    _by_key: dict[str, GroundAction] = field(default_factory=dict, repr=False)

    @classmethod
    def from_pddl(cls, domain: Domain, problem: Problem) -> Task:
        """Ground ``problem`` over ``domain``."""
        objects = {**domain.constants, **problem.objects}
        actions = tuple(_ground(domain, objects, problem.init))
        task = cls(domain, problem, problem.init, frozenset(problem.goal), frozenset(problem.goal_neg), actions)
        task._by_key = {a.key: a for a in actions}
        return task

    def action(self, key: str) -> GroundAction | None:
        """The ground action with that ``(name arg ...)`` key, or None."""
        return self._by_key.get(key)

    @staticmethod
    def holds(state: State, action: GroundAction) -> bool:
        """Whether ``action``'s preconditions hold in ``state``."""
        return action.pre <= state and not (action.neg_pre & state)

    def applicable(self, state: State) -> list[GroundAction]:
        """The ground actions whose preconditions hold in ``state``, in grounding order."""
        return [a for a in self.actions if a.pre <= state and not (a.neg_pre & state)]

    @staticmethod
    def apply(state: State, action: GroundAction) -> State:
        """The successor state (delete, then add); the caller checks applicability."""
        return (state - action.delete) | action.add

    def satisfied(self, state: State) -> int:
        """How many goal conditions hold in ``state``."""
        return len(self.goal & state) + len(self.goal_neg - state)

    @property
    def goal_size(self) -> int:
        """The number of goal conditions."""
        return len(self.goal) + len(self.goal_neg)

    def progress(self, state: State) -> float:
        """The share of goal conditions satisfied in ``state`` (1.0 for an empty goal)."""
        return self.satisfied(state) / self.goal_size if self.goal_size else 1.0

    def is_goal(self, state: State) -> bool:
        """Whether every goal condition holds."""
        return self.goal <= state and not (self.goal_neg & state)


def _ground(domain: Domain, objects: Mapping[str, str], init: State) -> Iterator[GroundAction]:
    fluent = {lit[0] for a in domain.actions for lit in (*a.add, *a.delete)}
    for schema in domain.actions:
        candidates = [[o for o, t in objects.items() if domain.is_subtype(t, ptype)] for _, ptype in schema.parameters]
        names = [v for v, _ in schema.parameters]
        static_pre = [lit for lit in schema.pre if lit[0] not in fluent]
        static_neg = [lit for lit in schema.neg_pre if lit[0] not in fluent]
        for combo in itertools.product(*candidates):
            bind = dict(zip(names, combo, strict=True))

            def g(lit: Atom, bind: dict[str, str] = bind) -> Atom:
                return (lit[0], *(bind.get(t, t) for t in lit[1:]))

            if any(bind.get(a, a) != bind.get(b, b) for a, b in schema.equal):
                continue
            if any(bind.get(a, a) == bind.get(b, b) for a, b in schema.unequal):
                continue
            if any(g(lit) not in init for lit in static_pre) or any(g(lit) in init for lit in static_neg):
                continue
            yield GroundAction(
                schema.name,
                tuple(combo),
                frozenset(g(lit) for lit in schema.pre if lit[0] in fluent),
                frozenset(g(lit) for lit in schema.neg_pre if lit[0] in fluent),
                frozenset(g(lit) for lit in schema.add),
                frozenset(g(lit) for lit in schema.delete),
            )


# ---- search ----


def astar(
    task: Task,
    start: State | None = None,
    *,
    weight: float = 1.0,
    max_expansions: int = 100_000,
) -> list[GroundAction] | None:
    """A plan from ``start`` (default: the initial state) to the goal, or None if none is found within
    ``max_expansions`` state expansions (or none exists).

    Best-first search on ``g + weight * h`` with h = the number of unsatisfied goal conditions, ties broken by
    insertion order (so the result is deterministic). With ``weight=1`` this is A*, and the plan is optimal
    (fewest actions) whenever no action makes more than one goal condition true (then h is consistent): true of the
    generated blocksworld and gripper problems, whose goals are ``on``/``at`` atoms. A larger weight finds longer
    plans faster (weighted A*, satisficing).
    """
    s0 = task.init if start is None else frozenset(start)
    if task.is_goal(s0):
        return []
    n = task.goal_size
    counter = itertools.count()
    frontier: list[tuple[float, int, int, State]] = [(weight * (n - task.satisfied(s0)), next(counter), 0, s0)]
    parent: dict[State, tuple[State, GroundAction] | None] = {s0: None}
    best_g: dict[State, int] = {s0: 0}
    expansions = 0
    while frontier:
        _, _, g, state = heapq.heappop(frontier)
        if g > best_g[state]:
            continue
        if task.is_goal(state):
            return _path(parent, state)
        expansions += 1
        if expansions > max_expansions:
            return None
        for action in task.applicable(state):
            nxt = task.apply(state, action)
            if nxt in best_g and best_g[nxt] <= g + 1:
                continue
            best_g[nxt] = g + 1
            parent[nxt] = (state, action)
            heapq.heappush(frontier, (g + 1 + weight * (n - task.satisfied(nxt)), next(counter), g + 1, nxt))
    return None


def _path(parent: Mapping[State, tuple[State, GroundAction] | None], state: State) -> list[GroundAction]:
    out: list[GroundAction] = []
    link = parent[state]
    while link is not None:
        state, action = link
        out.append(action)
        link = parent[state]
    return out[::-1]


def validate_plan(task: Task, plan: Iterable[GroundAction], start: State | None = None) -> tuple[bool, State]:
    """Play ``plan`` from ``start``; ``(every step applicable and the goal reached, the final state)``."""
    state = task.init if start is None else start
    for action in plan:
        if not task.holds(state, action):
            return False, state
        state = task.apply(state, action)
    return task.is_goal(state), state
