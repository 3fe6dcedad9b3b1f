"""The config-field check (agemem_gym._validate) and the config types that go through it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from agemem_gym._validate import check, check_choice, check_field, is_int, rule_text
from agemem_gym.errors import ConfigError
from agemem_gym.rewards.grounding import GroundingConfig
from agemem_gym.tools import ToolSettings


@dataclass(frozen=True)
class Limits:
    rounds: int = 5
    share: float = 0.5
    mode: str = "f1"
    note: int | None = None

    def __post_init__(self) -> None:
        check_field(self, "rounds", "int", ge=0)
        check_field(self, "share", "number", gt=0, le=1)
        check_field(self, "mode", choices=("f1", "em"))
        check_field(self, "note", "int", gt=0, optional=True)


# ---- the helper ----


@pytest.mark.parametrize(
    ("kind", "bounds", "rule"),
    [
        ("int", {"gt": 0}, "a positive int"),
        ("int", {"ge": 1}, "an int >= 1"),
        ("int", {"ge": 1, "le": 256}, "an int in 1..256"),
        ("int", {"le": 10}, "an int <= 10"),
        ("int", {}, "an int"),
        ("number", {"gt": 0, "le": 1}, "a number in (0, 1]"),
        ("number", {"ge": -1.0, "le": 1.0}, "a number in [-1, 1]"),
        ("number", {"gt": 1}, "a number > 1"),
        ("number", {"ge": 0, "lt": 1}, "a number in [0, 1)"),
        ("number", {"ge": 0, "finite": True}, "a finite number >= 0"),
        ("number", {"gt": 0, "unit": "seconds"}, "a positive number of seconds"),
        ("bool", {}, "a bool"),
    ],
)
def test_rule_text_spells_the_bounds(kind: Any, bounds: dict[str, Any], rule: str) -> None:
    """The rule in the message is spelled from the kind and the bounds."""
    assert rule_text(kind, **bounds) == rule


@pytest.mark.parametrize("value", [True, False, 2.0, "3", None, np.int64(3)])
def test_int_refuses_bools_floats_strings_none_and_numpy_by_default(value: Any) -> None:
    """An int field takes a Python int only: never a bool, a float, a string, None or (by default) a NumPy int."""
    with pytest.raises(ConfigError, match=r"^'n' must be an int, got "):
        check("n", value, "int")


def test_int_takes_numpy_integers_when_asked() -> None:
    """numpy=True also accepts NumPy integers (the store's settings come back from arrays), never NumPy bools."""
    check("n", np.int64(3), "int", numpy=True)
    with pytest.raises(ConfigError):
        check("n", np.bool_(True), "int", numpy=True)


@pytest.mark.parametrize("value", [True, "0.5", None, math.nan])
def test_number_refuses_bools_strings_none_and_nan(value: Any) -> None:
    """A number is an int or a float, never a bool, a string, None or NaN (NaN passes no comparison silently)."""
    with pytest.raises(ConfigError, match=r"'x' must be a number, got"):
        check("x", value, "number")


def test_finite_refuses_infinities() -> None:
    """finite=True refuses ±inf, which the bounds alone let through."""
    check("w", math.inf, "number", ge=0)
    with pytest.raises(ConfigError, match=r"'w' must be a finite number >= 0, got inf"):
        check("w", math.inf, "number", ge=0, finite=True)


@pytest.mark.parametrize("value", [0, 1, "yes", None])
def test_bool_is_exactly_true_or_false(value: Any) -> None:
    """A bool field takes True or False, not 0/1 or a string."""
    check("flag", True, "bool")
    with pytest.raises(ConfigError, match=rf"'flag' must be a bool, got {value!r}"):
        check("flag", value, "bool")


def test_bounds_are_inclusive_or_exclusive_as_named() -> None:
    """ge/le include the bound, gt/lt exclude it."""
    check("x", 0, "number", ge=0, le=1)
    check("x", 1, "number", ge=0, le=1)
    for bad in (0, 1):
        with pytest.raises(ConfigError, match=r"\(0, 1\)"):
            check("x", bad, "number", gt=0, lt=1)


def test_message_has_label_rule_value_and_fix() -> None:
    """The message reads '<label> 'name' must be <rule>, got <value>; <fix>'."""
    with pytest.raises(ConfigError) as err:
        check("rounds", 1, "number", le=0, finite=True, label="penalty", fix="e.g. rounds=-1.0")
    assert str(err.value) == "penalty 'rounds' must be a finite number <= 0, got 1; e.g. rounds=-1.0"


def test_an_expression_name_is_shown_as_written() -> None:
    """A name that is not an identifier (an options path) is not quoted again."""
    with pytest.raises(ConfigError, match=r"^options\['seed'\] must be an int, got 'x'$"):
        check("options['seed']", "x", "int")


def test_optional_accepts_none_and_says_so() -> None:
    """optional=True accepts None, and the rule then says 'or None'."""
    check("limit", None, "int", gt=0, optional=True)
    with pytest.raises(ConfigError, match=r"^'limit' must be a positive int or None, got 0$"):
        check("limit", 0, "int", gt=0, optional=True)


def test_a_class_kind_checks_the_instance_and_shows_the_type() -> None:
    """A class as the kind is an isinstance check; the message shows the value's type, not its repr."""
    check("grounding", GroundingConfig(), GroundingConfig)
    with pytest.raises(ConfigError, match=r"^'grounding' must be a GroundingConfig, got dict$"):
        check("grounding", {"min_recall": 0.5}, GroundingConfig)


def test_a_rule_in_words_replaces_the_spelled_one() -> None:
    """rule= words a range that depends on another field."""
    with pytest.raises(ConfigError, match=r"^'k' must be in \[1, top_k_max=2\], got 3$"):
        check("k", 3, "int", ge=1, le=2, rule="in [1, top_k_max=2]")


def test_fix_function_runs_only_on_failure() -> None:
    """A callable fix is called only to build a failure's message."""
    calls: list[int] = []

    def fix() -> str:
        calls.append(1)
        return "try 3"

    check("n", 3, "int", fix=fix)
    assert calls == []
    with pytest.raises(ConfigError, match=r"; try 3$"):
        check("n", -1, "int", ge=0, fix=fix)
    assert calls == [1]


def test_check_field_suggests_the_declared_default() -> None:
    """On a dataclass, the fix is the field's declared default; a field whose default is None gets none."""
    assert Limits() == Limits(5, 0.5, "f1", None)
    with pytest.raises(ConfigError, match=r"^'rounds' must be an int >= 0, got True; e\.g\. Limits\(rounds=5\)$"):
        Limits(rounds=True)
    with pytest.raises(
        ConfigError, match=r"^'share' must be a number in \(0, 1\], got 0; e\.g\. Limits\(share=0\.5\)$"
    ):
        Limits(share=0)
    with pytest.raises(
        ConfigError, match=r"^'mode' must be one of \('f1', 'em'\), got 'F1'; e\.g\. Limits\(mode='f1'\)$"
    ):
        Limits(mode="F1")
    with pytest.raises(ConfigError, match=r"^'note' must be a positive int or None, got 0$"):
        Limits(note=0)


def test_check_field_needs_a_kind_or_choices() -> None:
    """Calling it with neither is the caller's bug, a TypeError."""
    with pytest.raises(TypeError):
        check_field(Limits(), "rounds")


def test_check_choice() -> None:
    """A choice is one of the listed values; bools never pass for ints, unhashables never crash, None with optional."""
    check_choice("policy", "merge", ("off", "merge"))
    check_choice("policy", None, ("off", "merge"), optional=True)
    with pytest.raises(ConfigError, match=r"^'level' must be one of \(0, 1\), got True$"):
        check_choice("level", True, (0, 1))
    with pytest.raises(ConfigError, match=r"^'policy' must be one of \('off',\), got \['off'\]$"):
        check_choice("policy", ["off"], frozenset({"off"}))  # an unhashable value against a set


def test_is_int() -> None:
    """is_int is the predicate behind the int kind, for composite rules."""
    assert is_int(3) and not is_int(True) and not is_int(3.0) and not is_int(np.int64(3))
    assert is_int(np.int64(3), numpy=True) and not is_int(np.bool_(True), numpy=True)


# ---- ToolSettings and GroundingConfig (the two configs that checked types nowhere or only in part) ----


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"top_k_max": 0}, r"^'top_k_max' must be a positive int, got 0; e\.g\. ToolSettings\(top_k_max=10\)$"),
        ({"top_k_max": True}, r"^'top_k_max' must be a positive int, got True"),
        ({"top_k_default": "3"}, r"^'top_k_default' must be an int, got '3'"),
        ({"top_k_default": True}, r"^'top_k_default' must be an int, got True"),
        (
            {"top_k_default": 0},
            r"^'top_k_default' must be in \[1, top_k_max=10\], got 0; lower it, or raise top_k_max$",
        ),
        ({"filter_threshold": "0.6"}, r"^'filter_threshold' must be a number, got '0\.6'"),
        ({"filter_threshold": False}, r"^'filter_threshold' must be a number, got False"),
        ({"filter_threshold": math.nan}, r"^'filter_threshold' must be a number, got nan"),
        ({"filter_threshold": 1.5}, r"^'filter_threshold' must be in \(0, 1\], got 1\.5; e\.g\. ToolSettings\("),
        ({"max_content_chars": 1.5}, r"^'max_content_chars' must be a positive int, got 1\.5"),
        ({"max_metadata_chars": None}, r"^'max_metadata_chars' must be a positive int, got None"),
    ],
)
def test_tool_settings_reject_bad_types_and_ranges(changes: dict[str, Any], match: str) -> None:
    """ToolSettings refuses wrong types (bools, strings, floats, NaN, None) as well as out-of-range values."""
    with pytest.raises(ConfigError, match=match):
        ToolSettings(**changes)


def test_tool_settings_keep_their_valid_values() -> None:
    """Valid settings construct as before, ints where floats are allowed included."""
    s = ToolSettings(top_k_default=1, top_k_max=1, filter_threshold=1, max_content_chars=1, max_metadata_chars=1)
    assert (s.top_k_default, s.top_k_max, s.filter_threshold) == (1, 1, 1)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"min_recall": 0},
            r"^'min_recall' must be a number in \(0, 1\], got 0; e\.g\. GroundingConfig\(min_recall=0\.6\)$",
        ),
        ({"min_precision": True}, r"^'min_precision' must be a number in \(0, 1\], got True"),
        ({"min_purity": "0.6"}, r"^'min_purity' must be a number in \(0, 1\], got '0\.6'"),
        ({"min_purity": math.nan}, r"^'min_purity' must be a number in \(0, 1\], got nan"),
        (
            {"min_overlap": 2.0},
            r"^'min_overlap' must be a positive int, got 2\.0; e\.g\. GroundingConfig\(min_overlap=3\)$",
        ),
        ({"min_overlap": True}, r"^'min_overlap' must be a positive int, got True"),
        ({"preservation": "F1"}, r"^'preservation' must be one of \('f1', 'recall', 'key_terms'\), got 'F1'"),
        ({"preservation": None}, r"^'preservation' must be one of"),
    ],
)
def test_grounding_config_rejects_bad_types_and_ranges(changes: dict[str, Any], match: str) -> None:
    """GroundingConfig refuses wrong types and out-of-range values with the rule, the value and the fix."""
    with pytest.raises(ConfigError, match=match):
        GroundingConfig(**changes)
