"""One check for the fields of config types: the type, the range, and a :class:`ConfigError` that says why.

Every config dataclass validates itself once, in ``__post_init__``, through :func:`check_field`; constructor and
function arguments outside a dataclass go through :func:`check`. The message has the house form (rule, value,
fix), e.g. ``"'top_k_max' must be a positive int, got 0; e.g. ToolSettings(top_k_max=10)"``:

- ``"int"`` is a Python ``int`` and never a ``bool`` (``True`` is an ``int`` to ``isinstance``, and a flag passed
  where a count belongs is a bug); ``numpy=True`` also takes NumPy integers.
- ``"number"`` is an ``int`` or a ``float`` (not a ``bool``, never NaN; ``finite=True`` also refuses ±inf).
- ``"bool"`` is exactly ``True`` or ``False`` (not 0 or 1).
- A class is an instance of it (the message then shows the value's type, not its repr).
- The range is given as ``gt``/``ge``/``lt``/``le`` bounds and spelled out in the rule: ``gt=0`` is "a positive
  int", ``ge=1`` "an int >= 1", ``ge=1, le=256`` "an int in 1..256", ``gt=0, le=1`` "a number in (0, 1]".

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Limits:
...     rounds: int = 5
...     share: float = 0.5
...     def __post_init__(self) -> None:
...         check_field(self, "rounds", "int", ge=0)
...         check_field(self, "share", "number", gt=0, le=1)
>>> Limits(rounds=True)
Traceback (most recent call last):
    ...
agemem_gym.errors.ConfigError: 'rounds' must be an int >= 0, got True; e.g. Limits(rounds=5)
>>> Limits(share=0)
Traceback (most recent call last):
    ...
agemem_gym.errors.ConfigError: 'share' must be a number in (0, 1], got 0; e.g. Limits(share=0.5)
>>> check("top_k", 3, "int", gt=0)  # plain arguments: no dataclass, so no default to suggest
>>> check("top_k", -3, "int", gt=0)
Traceback (most recent call last):
    ...
agemem_gym.errors.ConfigError: 'top_k' must be a positive int, got -3
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection
from typing import Any, Literal

import numpy as np

from agemem_gym.errors import ConfigError

__all__ = ["Kind", "check", "check_choice", "check_field", "is_int", "rule_text"]

Kind = Literal["int", "number", "bool"]


def _is_kind(value: Any, kind: Kind | type, numpy: bool) -> bool:
    if isinstance(kind, type):
        return isinstance(value, kind)
    if isinstance(value, bool) or (numpy and isinstance(value, np.bool_)):
        return kind == "bool"
    if kind == "int":
        return isinstance(value, int) or (numpy and isinstance(value, np.integer))
    if kind == "number":
        ok = isinstance(value, (int, float)) or (numpy and isinstance(value, (np.integer, np.floating)))
        return ok and not math.isnan(value)
    return False


def is_int(value: Any, *, numpy: bool = False) -> bool:
    """Whether ``value`` is an int and not a bool (with ``numpy``, a NumPy integer also counts), for rules that
    :func:`check` cannot spell, such as a pair of ints.

    >>> is_int(3), is_int(True), is_int(3.0), is_int(np.int64(3)), is_int(np.int64(3), numpy=True)
    (True, False, False, False, True)
    """
    return _is_kind(value, "int", numpy)


def _in_range(value: Any, gt: float | None, ge: float | None, lt: float | None, le: float | None) -> bool:
    return (
        (gt is None or value > gt)
        and (ge is None or value >= ge)
        and (lt is None or value < lt)
        and (le is None or value <= le)
    )


def _fmt(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def rule_text(
    kind: Kind,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    finite: bool = False,
    unit: str = "",
) -> str:
    """The rule a value must meet, in words: ``rule_text("int", gt=0) == "a positive int"``.

    >>> rule_text("number", gt=0, le=1), rule_text("int", ge=1, le=256), rule_text("number", gt=0, unit="seconds")
    ('a number in (0, 1]', 'an int in 1..256', 'a positive number of seconds')
    """
    noun = ("finite " if finite else "") + kind + (f" of {unit}" if unit else "")
    low, low_open = (gt, True) if gt is not None else (ge, False)
    high, high_open = (lt, True) if lt is not None else (le, False)
    if kind == "bool" or (low is None and high is None):
        text = noun
    elif low is not None and high is not None:
        if kind == "int" and not low_open and not high_open:
            text = f"{noun} in {_fmt(low)}..{_fmt(high)}"
        else:
            text = f"{noun} in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
    elif low == 0 and low_open:
        text = f"positive {noun}"
    elif low is not None:
        text = f"{noun} {'>' if low_open else '>='} {_fmt(low)}"
    else:
        assert high is not None
        text = f"{noun} {'<' if high_open else '<='} {_fmt(high)}"
    return ("an " if text[0] in "aeiou" else "a ") + text


def check(
    name: str,
    value: Any,
    kind: Kind | type,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    finite: bool = False,
    optional: bool = False,
    numpy: bool = False,
    unit: str = "",
    rule: str | None = None,
    label: str = "",
    fix: str | Callable[[], str] = "",
) -> None:
    """Raise :class:`ConfigError` unless ``value`` is of ``kind`` and within the bounds.

    Args:
        name: The field or argument (quoted in the message), or an expression such as ``"options['seed']"``
            (shown as it is).
        value: What was passed.
        kind: ``"int"``, ``"number"``, ``"bool"`` or a class (see the module docstring for what each accepts).
        gt, ge, lt, le: Bounds (greater than, greater or equal, less than, less or equal).
        finite: Also refuse ±inf (numbers only).
        optional: Also accept None (the rule then says "or None").
        numpy: Also accept NumPy scalars of the kind.
        unit: What the number counts, e.g. ``"seconds"`` ("a positive number of seconds").
        rule: The rule in words, in place of the one spelled from the bounds.
        label: Words before the quoted name, e.g. ``"penalty"`` (``"penalty 'rounds' must be ..."``).
        fix: What to do instead, appended after ``"; "`` (e.g. ``"e.g. top_k=3"``), or a function that returns it
            (called only on failure).

    Raises:
        ConfigError: ``"{label} {name!r} must be {rule}, got {value!r}; {fix}"``.
    """
    if value is None:
        if optional:
            return
    elif _is_kind(value, kind, numpy) and (
        kind == "bool"
        or isinstance(kind, type)
        or (_in_range(value, gt, ge, lt, le) and (not finite or math.isfinite(value)))
    ):
        return
    if rule is None:
        if isinstance(kind, type):
            rule = ("an " if kind.__name__[0] in "AEIOUaeiou" else "a ") + kind.__name__
        else:
            rule = rule_text(kind, gt=gt, ge=ge, lt=lt, le=le, finite=finite, unit=unit)
        rule += " or None" if optional else ""
    got = type(value).__name__ if isinstance(kind, type) else repr(value)
    hint = fix() if callable(fix) else fix
    prefix = f"{label} " if label else ""
    raise ConfigError(f"{prefix}{_shown(name)} must be {rule}, got {got}" + (f"; {hint}" if hint else ""))


def _shown(name: str) -> str:
    """A field's name quoted (``'top_k'``); an expression such as ``options['seed']`` as it is written."""
    return repr(name) if name.isidentifier() else name


def check_field(
    obj: Any,
    name: str,
    kind: Kind | type | None = None,
    *,
    choices: Collection[Any] = (),
    fix: str | None = None,
    **bounds: Any,
) -> None:
    """:func:`check` (or, with ``choices``, :func:`check_choice`) on the field ``name`` of the dataclass ``obj``.

    The fix defaults to the field's declared default, e.g. ``"e.g. StoreConfig(M=16)"`` (none for a field without
    one); other keywords are :func:`check`'s.
    """
    if kind is None and not choices:
        raise TypeError("check_field needs a kind or choices")
    value = getattr(obj, name)
    hint: str | Callable[[], str] = fix if fix is not None else lambda: _example(type(obj), name)
    if kind is None:
        check_choice(name, value, choices, fix=hint, optional=bounds.get("optional", False))
    else:
        check(name, value, kind, fix=hint, **bounds)


def check_choice(
    name: str,
    value: Any,
    choices: Collection[Any],
    *,
    label: str = "",
    fix: str | Callable[[], str] = "",
    optional: bool = False,
) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices`` (or None, when ``optional``).

    >>> check_choice("policy", "merge", ("off", "merge", "reject"))
    >>> check_choice("policy", "mrege", ("off", "merge", "reject"), fix="e.g. DedupConfig(policy='merge')")
    Traceback (most recent call last):
        ...
    agemem_gym.errors.ConfigError: 'policy' must be one of ('off', 'merge', 'reject'), got 'mrege'; e.g. DedupConfig(policy='merge')
    """
    if value is None and optional:
        return
    try:
        if value in choices and not isinstance(value, bool):
            return
    except TypeError:  # an unhashable value against a set of choices
        pass
    hint = fix() if callable(fix) else fix
    prefix = f"{label} " if label else ""
    shown = tuple(choices) + ((None,) if optional else ())
    raise ConfigError(f"{prefix}{_shown(name)} must be one of {shown}, got {value!r}" + (f"; {hint}" if hint else ""))


def _example(cls: type, name: str) -> str:
    """``"e.g. Cls(name=default)"`` from the dataclass field's declared default, or ``""`` when it has none."""
    for f in dataclasses.fields(cls):
        if f.name == name and f.default is not dataclasses.MISSING and f.default is not None:
            return f"e.g. {cls.__name__}({name}={f.default!r})"
    return ""
