"""The action protocol: agent text in, a structured :class:`Action` out (DESIGN.md §3).

An agent turn is ``<think>…</think>`` followed by exactly one of ``<tool_call>[…]</tool_call>`` (a JSON array of
``{"name": …, "arguments": {…}}`` objects; a single object is accepted as a one-element list) or
``<answer>…</answer>``. Agent text is untrusted: :func:`parse_action` never raises. Every failure becomes an
:class:`ActionError` with a typed :class:`ErrorCode` and a message written for the agent, which the env shows it
as a tool message and penalises.

>>> a = parse_action('<think>store it</think><tool_call>{"name": "Add_memory", '
...                  '"arguments": {"content": "The bridge opened in 1841."}}</tool_call>')
>>> a.kind, a.tool_calls[0].name, a.tool_calls[0].arguments["content"]
('tool_call', 'Add_memory', 'The bridge opened in 1841.')
>>> parse_action("<answer>1841</answer>").answer
'1841'
>>> parse_action("I think it is 1841").error.code
<ErrorCode.NO_ACTION: 'no_action'>
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

__all__ = [
    "Action",
    "ActionError",
    "ErrorCode",
    "ProtocolConfig",
    "ToolCall",
    "parse_action",
]


class ErrorCode(str, Enum):
    """Why an action (or one call in it) could not be carried out. The value is what ``info`` reports."""

    NO_ACTION = "no_action"  # neither <tool_call> nor <answer>
    BOTH_TOOL_AND_ANSWER = "both_tool_and_answer"  # the mutual-exclusivity rule is broken
    UNCLOSED_TAG = "unclosed_tag"  # <tool_call>, <answer> or <think> opened and never closed
    MULTIPLE_ANSWERS = "multiple_answers"  # more than one <answer> block
    EMPTY_ANSWER = "empty_answer"  # <answer></answer> with nothing but whitespace
    ACTION_TOO_LONG = "action_too_long"  # longer than ProtocolConfig.max_action_chars
    BAD_JSON = "bad_json"  # the <tool_call> body is not valid JSON
    BAD_CALL = "bad_call"  # valid JSON, but not an object / list of {"name", "arguments"} objects
    EMPTY_TOOL_CALL = "empty_tool_call"  # <tool_call>[]</tool_call>
    TOO_MANY_CALLS = "too_many_calls"  # more calls in one turn than ProtocolConfig.max_calls_per_turn
    UNKNOWN_TOOL = "unknown_tool"  # a name that is not one of the six tools
    BAD_ARGUMENTS = "bad_arguments"  # missing, mistyped or out-of-range arguments
    UNKNOWN_MEMORY_ID = "unknown_memory_id"  # Update/Delete of an id that is not in the store
    DUPLICATE_MEMORY = "duplicate_memory"  # Add rejected by the near-duplicate policy

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ActionError:
    """A typed failure with the feedback the agent will read."""

    code: ErrorCode
    message: str

    def to_dict(self) -> dict[str, str]:
        """``{"code": ..., "message": ...}`` for ``info`` and logs."""
        return {"code": self.code.value, "message": self.message}


@dataclass(frozen=True)
class ToolCall:
    """One parsed tool call: a name and its JSON arguments (not yet validated against the tool's schema)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The call as the agent would write it."""
        return {"name": self.name, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class ProtocolConfig:
    """Limits on one agent turn.

    Attributes:
        max_action_chars: Longer actions are rejected unparsed (``action_too_long``); bounds parsing cost.
        max_calls_per_turn: More calls in one ``<tool_call>`` turn are rejected (``too_many_calls``).
        require_think: When True, a turn without a ``<think>`` block is rejected as ``no_action``. The paper's
            prompt asks for one; by default its absence is tolerated because it changes nothing the env does.
    """

    max_action_chars: int = 8000
    max_calls_per_turn: int = 8
    require_think: bool = False

    def __post_init__(self) -> None:
        from agemem_gym.errors import ConfigError

        for name in ("max_action_chars", "max_calls_per_turn"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name!r} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class Action:
    """A parsed agent turn.

    Exactly one of these holds: ``kind == "tool_call"`` with ``tool_calls`` non-empty; ``kind == "answer"`` with
    ``answer`` set; ``kind == "invalid"`` with ``error`` set.
    """

    kind: Literal["tool_call", "answer", "invalid"]
    think: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    answer: str | None = None
    error: ActionError | None = None

    @property
    def ok(self) -> bool:
        """True unless the turn as a whole was rejected."""
        return self.kind != "invalid"


_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_TOOL_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_TAGS = ("think", "tool_call", "answer")


def _invalid(code: ErrorCode, message: str, think: str | None = None) -> Action:
    return Action(kind="invalid", think=think, error=ActionError(code, message))


def _json_error_message(body: str, err: json.JSONDecodeError) -> str:
    start = max(0, err.pos - 20)
    snippet = body[start : err.pos + 20].replace("\n", " ")
    return (
        f"the <tool_call> body is not valid JSON ({err.msg} at character {err.pos}, near {snippet!r}). "
        'Write a JSON array such as [{"name": "Retrieve_memory", "arguments": {"query": "..."}}].'
    )


def _calls_from_json(value: Any) -> tuple[list[ToolCall], ActionError | None]:
    """Turn the decoded JSON of one <tool_call> block into calls, or say what shape was wrong."""
    items = value if isinstance(value, list) else [value]
    calls: list[ToolCall] = []
    for i, item in enumerate(items):
        where = f"call {i + 1}" if isinstance(value, list) else "the call"
        if not isinstance(item, dict):
            return [], ActionError(
                ErrorCode.BAD_CALL,
                f'{where} is a JSON {type(item).__name__}, expected an object {{"name": ..., "arguments": {{...}}}}.',
            )
        name = item.get("name")
        if not isinstance(name, str) or not name:
            return [], ActionError(ErrorCode.BAD_CALL, f'{where} has no "name" string; every call needs one.')
        args: Any = item.get("arguments", {})
        if isinstance(args, str):  # OpenAI-style function calls carry arguments as a JSON string
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                return [], ActionError(
                    ErrorCode.BAD_CALL, f'{where} ({name}): "arguments" is a string that is not a JSON object.'
                )
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return [], ActionError(
                ErrorCode.BAD_CALL,
                f'{where} ({name}): "arguments" must be a JSON object, got a {type(args).__name__}.',
            )
        calls.append(ToolCall(name=name, arguments=args))
    return calls, None


def _unclosed(text: str) -> str | None:
    for tag in _TAGS:
        if text.count(f"<{tag}>") > text.count(f"</{tag}>"):
            return tag
    return None


def parse_action(text: object, config: ProtocolConfig | None = None) -> Action:
    """Parse one agent turn. Never raises: every failure is an ``Action`` of kind ``"invalid"``.

    Args:
        text: The agent's output for this turn (anything; non-strings are rejected as ``no_action``).
        config: Limits; the defaults of :class:`ProtocolConfig` when None.

    Returns:
        The parsed action. ``<think>`` blocks are removed before looking for ``<tool_call>`` and ``<answer>``,
        so reasoning that mentions the tags cannot trigger them. Text outside the tags is ignored.
    """
    cfg = config or ProtocolConfig()
    if not isinstance(text, str):
        return _invalid(ErrorCode.NO_ACTION, f"expected the turn as text, got a {type(text).__name__}.")
    if len(text) > cfg.max_action_chars:
        return _invalid(
            ErrorCode.ACTION_TOO_LONG,
            f"the turn has {len(text)} characters; the limit is {cfg.max_action_chars}. Be more concise.",
        )
    thinks = _THINK_BLOCK.findall(text)
    think = "\n".join(t.strip() for t in thinks) if thinks else None
    rest = _THINK_BLOCK.sub(" ", text)
    tag = _unclosed(rest)
    if tag is not None:
        return _invalid(ErrorCode.UNCLOSED_TAG, f"<{tag}> is opened but never closed with </{tag}>.", think)
    tool_bodies = _TOOL_BLOCK.findall(rest)
    answers = _ANSWER_BLOCK.findall(rest)
    if tool_bodies and answers:
        return _invalid(
            ErrorCode.BOTH_TOOL_AND_ANSWER,
            "a turn holds either <tool_call> or <answer>, never both. Call the tools first; answer in a later turn.",
            think,
        )
    if cfg.require_think and think is None and (tool_bodies or answers):
        return _invalid(ErrorCode.NO_ACTION, "start every turn with a <think>...</think> block.", think)
    if answers:
        if len(answers) > 1:
            return _invalid(
                ErrorCode.MULTIPLE_ANSWERS, f"found {len(answers)} <answer> blocks; give exactly one.", think
            )
        answer = answers[0].strip()
        if not answer:
            return _invalid(ErrorCode.EMPTY_ANSWER, "the <answer> block is empty.", think)
        return Action(kind="answer", think=think, answer=answer)
    if not tool_bodies:
        return _invalid(
            ErrorCode.NO_ACTION,
            "no <tool_call> or <answer> block found. After <think>...</think>, write exactly one of "
            "<tool_call>[...]</tool_call> or <answer>...</answer>.",
            think,
        )
    calls: list[ToolCall] = []
    for body in tool_bodies:
        try:
            value = json.loads(body)
        except json.JSONDecodeError as err:
            return _invalid(ErrorCode.BAD_JSON, _json_error_message(body, err), think)
        except (ValueError, RecursionError):  # integers past Python's digit limit; absurdly deep nesting
            return _invalid(
                ErrorCode.BAD_JSON, "the <tool_call> body holds a number or nesting too large to read.", think
            )
        block_calls, error = _calls_from_json(value)
        if error is not None:
            return Action(kind="invalid", think=think, error=error)
        calls.extend(block_calls)
    if not calls:
        return _invalid(ErrorCode.EMPTY_TOOL_CALL, "the <tool_call> list is empty; name at least one tool.", think)
    if len(calls) > cfg.max_calls_per_turn:
        return _invalid(
            ErrorCode.TOO_MANY_CALLS,
            f"{len(calls)} calls in one turn; the limit is {cfg.max_calls_per_turn}. Split them across turns.",
            think,
        )
    return Action(kind="tool_call", think=think, tool_calls=tuple(calls))
