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


# ---- issue 15: string-encoded arguments, depth, surrogates, verbatim blocks ----

_BIG_INT = "1" * 4301  # one digit past Python's int-from-string limit (sys.get_int_max_str_digits)


def _string_args(arguments_text: str) -> str:
    """A call whose OpenAI-style "arguments" is the JSON string ``arguments_text``."""
    return "<tool_call>" + json.dumps({"name": "Add_memory", "arguments": arguments_text}) + "</tool_call>"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (_string_args('{"content": "x", "n": ' + _BIG_INT + "}"), ErrorCode.BAD_CALL),
        (_string_args("[" * 3000), ErrorCode.BAD_CALL),
        (_string_args('{"content": "x", "metadata": ' + "[" * 40 + "]" * 40 + "}"), ErrorCode.BAD_JSON),
        ("<tool_call>" + "[" * 40 + "]" * 40 + "</tool_call>", ErrorCode.BAD_JSON),
        ("<tool_call>" + "[" * 3000 + "</tool_call>", ErrorCode.BAD_JSON),
        ('<tool_call>[{"name": "Add_memory", "arguments": {"n": ' + _BIG_INT + "}}]</tool_call>", ErrorCode.BAD_JSON),
    ],
)
def test_numbers_and_nesting_too_large_are_rejected_in_any_encoding(text: str, code: ErrorCode) -> None:
    """A 4,301-digit integer or 3,000 brackets, in the body or in string "arguments" (under 8,000 characters),
    are an error code, not a ValueError or RecursionError."""
    assert len(text) < 8000
    a = parse_action(text)
    assert a.error is not None and a.error.code is code and a.error.message


def test_nesting_up_to_the_limit_is_accepted_and_the_limit_is_a_setting() -> None:
    """Metadata nested within max_json_depth parses; one level more is bad_json; the limit is configurable."""
    meta = "[" * 29 + "]" * 29  # list of calls (1), call (2), arguments (3), then 29 more levels: 32
    text = '<tool_call>[{"name": "Add_memory", "arguments": {"metadata": ' + meta + "}}]</tool_call>"
    assert parse_action(text).kind == "tool_call"
    assert parse_action(text, ProtocolConfig(max_json_depth=31)).error.code is ErrorCode.BAD_JSON  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"'max_json_depth' must be a positive int, got 0"):
        ProtocolConfig(max_json_depth=0)


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "Add_memory", "arguments": {"content": "bad \\ud800 text"}}</tool_call>',
        '<tool_call>{"name": "Add_memory", "arguments": {"content": "x", "metadata": {"\\udfff": 1}}}</tool_call>',
        _string_args('{"content": "bad \\ud800 text"}'),
        "<answer>bad \ud800 answer</answer>",
        "<think>\udc80</think><answer>1841</answer>",
    ],
)
def test_lone_surrogates_are_rejected_wherever_they_come_from(text: str) -> None:
    """A lone surrogate in the text, in a JSON escape, in a key or in string arguments is invalid_unicode."""
    a = parse_action(text)
    assert a.error is not None and a.error.code is ErrorCode.INVALID_UNICODE


def test_a_valid_surrogate_pair_escape_is_the_character_it_encodes() -> None:
    """JSON's escaped surrogate pair decodes to one astral character and is accepted verbatim."""
    a = parse_action('<tool_call>{"name": "Add_memory", "arguments": {"content": "smile \\ud83d\\ude00"}}</tool_call>')
    assert a.kind == "tool_call" and a.tool_calls[0].arguments["content"] == "smile \U0001f600"


def test_think_tags_inside_a_json_string_stay_verbatim() -> None:
    """<think> written inside a tool argument is content, kept as is; a think block outside is still reasoning."""
    content = "the tag <think>x</think> is part of the fact"
    a = parse_action("<think>plan</think><tool_call>" + call("Add_memory", content=content) + "</tool_call>")
    assert a.kind == "tool_call" and a.tool_calls[0].arguments["content"] == content and a.think == "plan"
    b = parse_action("<answer>use <think> literally</answer>")
    assert b.answer == "use <think> literally"


_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_texts = st.text(alphabet=st.one_of(st.characters(), _surrogates), max_size=12)
_deep = st.integers(0, 4000).map(lambda n: "[" * n + "]" * n)
_big = st.integers(4200, 4400).map(lambda n: "9" * n)
_argument_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_texts, children, max_size=3),
    max_leaves=12,
)
_argument_texts = st.one_of(
    _argument_values.map(lambda v: json.dumps({"content": v})),
    _argument_values.map(json.dumps),
    _deep,
    _big.map(lambda d: '{"content": "x", "top_k": ' + d + "}"),
    st.text(max_size=30),
)


def _walk_ok(value: object, depth: int, limit: int) -> None:
    """Every string is encodable and nothing nests past the limit."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, (list, dict)):
        assert depth + 1 <= limit
        items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
        for k, v in items:
            if k is not None:
                _walk_ok(k, depth + 1, limit)
            _walk_ok(v, depth + 1, limit)


@settings(max_examples=300, deadline=None)
@given(_argument_texts, st.booleans(), st.booleans())
def test_string_encoded_arguments_never_raise(arguments: str, as_list: bool, string_form: bool) -> None:
    """Arbitrary, deep, huge-number and surrogate-laden arguments, as JSON strings or objects, parse to a
    well-formed Action; an accepted call holds only encodable strings within the depth limit."""
    try:
        decoded: object = json.loads(arguments)
    except (ValueError, RecursionError):
        decoded, string_form = None, True
    one = {"name": "Add_memory", "arguments": arguments if string_form else decoded}
    body = json.dumps([one] if as_list else one)
    if len(body) > 7900:
        body = body[:7900]
    a = parse_action("<tool_call>" + body + "</tool_call>")
    _check(a)
    if a.kind == "tool_call":
        for c in a.tool_calls:
            _walk_ok(dict(c.arguments), 2, ProtocolConfig().max_json_depth)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_fragments, _texts, _deep.map(lambda s: s[: len(s) // 2])), max_size=20).map("".join))
def test_near_miss_markup_with_surrogates_and_depth_never_raises(text: str) -> None:
    """Markup fragments mixed with lone surrogates and deep brackets parse to a well-formed Action."""
    a = parse_action(text)
    _check(a)
    if a.kind != "invalid":
        assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)
