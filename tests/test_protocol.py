"""Tests of the action parser: the paper's format, every error code, and arbitrary untrusted text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agemem_gym.errors import ConfigError
from agemem_gym.protocol import Action, ErrorCode, ProtocolConfig, ToolCall, parse_action


def call(name: str, **arguments: object) -> str:
    return json.dumps({"name": name, "arguments": arguments})


def test_tool_call_list_parses_every_call_in_order() -> None:
    """A JSON array of calls yields one ToolCall per element, in order, with the think text kept."""
    text = f"<think>plan</think><tool_call>[{call('Add_memory', content='a')}, {call('Retrieve_memory', query='q')}]</tool_call>"
    a = parse_action(text)
    assert a.kind == "tool_call" and a.think == "plan"
    assert a.tool_calls == (ToolCall("Add_memory", {"content": "a"}), ToolCall("Retrieve_memory", {"query": "q"}))


def test_single_object_is_a_one_element_list() -> None:
    """A bare JSON object inside <tool_call> is accepted as one call."""
    a = parse_action(f"<tool_call>{call('Filter_context', criteria='x')}</tool_call>")
    assert a.kind == "tool_call" and len(a.tool_calls) == 1


def test_several_tool_call_blocks_are_concatenated() -> None:
    """Qwen-style output with one <tool_call> block per call is read as one turn of several calls."""
    a = parse_action(f"<tool_call>{call('A')}</tool_call>\n<tool_call>{call('B')}</tool_call>")
    assert [c.name for c in a.tool_calls] == ["A", "B"]


def test_arguments_given_as_json_string_are_decoded() -> None:
    """OpenAI-style string arguments are decoded into an object."""
    a = parse_action('<tool_call>{"name": "Add_memory", "arguments": "{\\"content\\": \\"x\\"}"}</tool_call>')
    assert a.tool_calls[0].arguments == {"content": "x"}


def test_missing_arguments_default_to_empty_object() -> None:
    """A call without "arguments" parses with {} (the tool then reports the missing required fields)."""
    assert parse_action('<tool_call>{"name": "Add_memory"}</tool_call>').tool_calls[0].arguments == {}


def test_answer_is_stripped() -> None:
    """The answer text is returned without surrounding whitespace."""
    a = parse_action("<think>t</think><answer>  1841 \n</answer>")
    assert a == Action(kind="answer", think="t", answer="1841")


def test_tags_inside_think_are_ignored() -> None:
    """Reasoning that mentions <answer> does not count as an answer."""
    a = parse_action('<think>I should not write <answer>x</answer> yet</think><tool_call>[{"name": "A"}]</tool_call>')
    assert a.kind == "tool_call"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("just prose", ErrorCode.NO_ACTION),
        ("<think>only thinking</think>", ErrorCode.NO_ACTION),
        ('<tool_call>[{"name": "A"}]</tool_call><answer>x</answer>', ErrorCode.BOTH_TOOL_AND_ANSWER),
        ('<tool_call>[{"name": "A"}]', ErrorCode.UNCLOSED_TAG),
        ("<answer>x", ErrorCode.UNCLOSED_TAG),
        ("<think>x<answer>y</answer>", ErrorCode.UNCLOSED_TAG),
        ("<answer>a</answer><answer>b</answer>", ErrorCode.MULTIPLE_ANSWERS),
        ("<answer>   </answer>", ErrorCode.EMPTY_ANSWER),
        ('<tool_call>[{"name": "A",}]</tool_call>', ErrorCode.BAD_JSON),
        ("<tool_call>not json</tool_call>", ErrorCode.BAD_JSON),
        ("<tool_call>[" + "9" * 5000 + "]</tool_call>", ErrorCode.BAD_JSON),
        ('<tool_call>[[{"name": "A"}]]</tool_call>', ErrorCode.BAD_CALL),
        ('<tool_call>{"arguments": {}}</tool_call>', ErrorCode.BAD_CALL),
        ('<tool_call>{"name": "A", "arguments": [1]}</tool_call>', ErrorCode.BAD_CALL),
        ('<tool_call>{"name": "A", "arguments": "not json"}</tool_call>', ErrorCode.BAD_CALL),
        ("<tool_call>[]</tool_call>", ErrorCode.EMPTY_TOOL_CALL),
        ("<tool_call>" + json.dumps([{"name": "A"}] * 9) + "</tool_call>", ErrorCode.TOO_MANY_CALLS),
        ("<answer>" + "x" * 9000 + "</answer>", ErrorCode.ACTION_TOO_LONG),
    ],
)
def test_malformed_turns_get_their_error_code(text: str, code: ErrorCode) -> None:
    """Each kind of malformed turn is reported with its own code and a non-empty message for the agent."""
    a = parse_action(text)
    assert a.kind == "invalid" and not a.ok
    assert a.error is not None and a.error.code is code and a.error.message


def test_non_string_action_is_no_action() -> None:
    """Anything that is not text is rejected, not raised on."""
    assert parse_action(None).error.code is ErrorCode.NO_ACTION  # type: ignore[union-attr]
    assert parse_action(b"<answer>x</answer>").error.code is ErrorCode.NO_ACTION  # type: ignore[union-attr]


def test_require_think_rejects_turn_without_reasoning() -> None:
    """With require_think, an answer without <think> is rejected."""
    cfg = ProtocolConfig(require_think=True)
    assert parse_action("<answer>x</answer>", cfg).error.code is ErrorCode.NO_ACTION  # type: ignore[union-attr]
    assert parse_action("<think>t</think><answer>x</answer>", cfg).kind == "answer"


def test_bad_json_message_points_at_the_problem() -> None:
    """The bad-JSON feedback names the position and shows the expected form."""
    msg = parse_action('<tool_call>[{"name": "A",}]</tool_call>').error.message  # type: ignore[union-attr]
    assert "character 14" in msg and "Retrieve_memory" in msg


@pytest.mark.parametrize("field", ["max_action_chars", "max_calls_per_turn"])
def test_protocol_config_rejects_non_positive_limits(field: str) -> None:
    """Limits must be positive ints; the message names the field and the value."""
    with pytest.raises(ConfigError, match=rf"'{field}' must be a positive int, got 0"):
        ProtocolConfig(**{field: 0})


# ---- property-based: arbitrary and near-miss text never raises ----

_fragments = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<answer>",
        "</answer>",
        "[",
        "]",
        "{",
        "}",
        ",",
        '"name"',
        '"arguments"',
        ":",
        '"Add_memory"',
        '"content"',
        "null",
        "true",
        "1e999",
        "-0",
        "\\u0000",
        "\n",
    ]
)
_near_miss = st.lists(st.one_of(_fragments, st.text(max_size=20)), max_size=40).map("".join)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _check(a: Action) -> None:
    assert a.kind in ("tool_call", "answer", "invalid")
    if a.kind == "invalid":
        assert a.error is not None and isinstance(a.error.code, ErrorCode) and a.error.message
    elif a.kind == "tool_call":
        assert a.tool_calls and all(isinstance(c.name, str) and isinstance(c.arguments, dict) for c in a.tool_calls)
    else:
        assert a.answer and a.answer == a.answer.strip()


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_unicode_never_raises(text: str) -> None:
    """Any Unicode string parses to a well-formed Action."""
    _check(parse_action(text))


@settings(max_examples=400, deadline=None)
@given(_near_miss)
def test_near_miss_markup_never_raises(text: str) -> None:
    """Unclosed tags, stray brackets and broken JSON fragments parse to a well-formed Action."""
    _check(parse_action(text))


@settings(max_examples=300, deadline=None)
@given(_json_values, st.booleans())
def test_arbitrary_json_in_tool_call_never_raises(value: object, wrap_answer: bool) -> None:
    """Any JSON value inside <tool_call> (and optionally an answer too) parses to a well-formed Action."""
    text = f"<tool_call>{json.dumps(value)}</tool_call>" + ("<answer>x</answer>" if wrap_answer else "")
    a = parse_action(text)
    _check(a)
    if wrap_answer:
        assert a.error is not None and a.error.code is ErrorCode.BOTH_TOOL_AND_ANSWER


def test_huge_input_is_rejected_cheaply() -> None:
    """A multi-megabyte turn is rejected as too long without being parsed."""
    a = parse_action("<tool_call>" + "[" * 2_000_000)
    assert a.error is not None and a.error.code is ErrorCode.ACTION_TOO_LONG
