"""The action protocol: agent text in, a structured :class:`Action` out (DESIGN.md §3).

An agent turn is ``<think>…</think>`` followed by exactly one of ``<tool_call>[…]</tool_call>`` (a JSON array of
``{"name": …, "arguments": {…}}`` objects; a single object is accepted as a one-element list) or
``<answer>…</answer>``. Agent text is untrusted: :func:`parse_action` never raises. Every failure becomes an
:class:`ActionError` with a typed :class:`ErrorCode` and a message written for the agent, which the env shows it
as a tool message and penalises. What a block holds is kept verbatim (a ``<think>`` written inside a JSON string
stays in it), or the whole turn is rejected: nothing the agent wrote is silently changed. Text that could break
something downstream is rejected here, before it reaches the store or the context: JSON nested deeper than
``ProtocolConfig.max_json_depth``, numbers Python will not read, and lone UTF-16 surrogates (``"\\ud800"``),
which no tokenizer or UTF-8 file can take.

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

from agemem_gym._validate import check_field
from agemem_gym.text import has_lone_surrogates, replace_lone_surrogates

__all__ = [
    "Action",
    "ActionError",
    "ErrorCode",
    "ProtocolConfig",
    "ToolCall",
    "display_text",
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
    INVALID_UNICODE = "invalid_unicode"  # lone UTF-16 surrogates (U+D800..U+DFFF), in the text or a JSON escape

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
        max_json_depth: Deepest nesting of lists and objects accepted in a ``<tool_call>`` body (the call list and
            the call object count; so do string-encoded ``"arguments"``). Deeper is ``bad_json``: it bounds what
            every later step (copies, JSON logs, snapshots) has to recurse through.
    """

    max_action_chars: int = 8000
    max_calls_per_turn: int = 8
    require_think: bool = False
    max_json_depth: int = 32

    def __post_init__(self) -> None:
        for name in ("max_action_chars", "max_calls_per_turn", "max_json_depth"):
            check_field(self, name, "int", gt=0)
        check_field(self, "require_think", "bool")


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


_OPEN_TAG = re.compile(r"<(think|tool_call|answer)>")


def _invalid(code: ErrorCode, message: str, think: str | None = None) -> Action:
    return Action(kind="invalid", think=think, error=ActionError(code, message))


def display_text(action: object) -> str:
    """What the env shows in the context for an agent turn: the text itself, made safe to encode.

    A string is returned as is unless it holds lone surrogates (such a turn is rejected as ``invalid_unicode``);
    those become U+FFFD so that the context, ``info["messages"]`` and recordings stay valid UTF-8. Anything that
    is not a string is shown as its ``repr``.

    >>> display_text("<answer>x</answer>"), display_text("bad \\ud800") == "bad \\ufffd", display_text(None)
    ('<answer>x</answer>', True, 'None')
    """
    return replace_lone_surrogates(action) if isinstance(action, str) else repr(action)


def _blocks(text: str) -> tuple[list[tuple[str, str]], str | None]:
    """Split ``text`` into its top-level ``(tag, body)`` blocks, left to right, and the first unclosed tag.

    A block runs from its opening tag to the first matching closing tag, and its body is kept verbatim: tags
    inside a body (a ``<think>`` inside a JSON string, an ``<answer>`` inside reasoning) are part of it, not
    blocks of their own. Text between blocks is ignored.
    """
    blocks: list[tuple[str, str]] = []
    pos = 0
    while (m := _OPEN_TAG.search(text, pos)) is not None:
        tag = m.group(1)
        close = text.find(f"</{tag}>", m.end())
        if close < 0:
            return blocks, tag
        blocks.append((tag, text[m.end() : close]))
        pos = close + len(tag) + 3
    return blocks, None


def _json_error_message(body: str, err: json.JSONDecodeError) -> str:
    start = max(0, err.pos - 20)
    snippet = body[start : err.pos + 20].replace("\n", " ")
    return (
        f"the <tool_call> body is not valid JSON ({err.msg} at character {err.pos}, near {snippet!r}). "
        'Write a JSON array such as [{"name": "Retrieve_memory", "arguments": {"query": "..."}}].'
    )


def _json_problem(value: Any, max_depth: int, base: int = 0) -> tuple[ErrorCode, str] | None:
    """Why decoded JSON cannot be used (too deep, or a string with lone surrogates), or None. Iterative, so depth
    itself cannot overflow the stack; ``base`` is the depth ``value`` sits at."""
    stack: list[tuple[Any, int]] = [(value, base)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if has_lone_surrogates(item):
                return ErrorCode.INVALID_UNICODE, (
                    "a JSON string holds a lone UTF-16 surrogate (an escape such as \\ud800 without its pair), "
                    "which cannot be stored or shown. Write the character itself, or a valid surrogate pair."
                )
        elif isinstance(item, (list, dict)):
            if depth + 1 > max_depth:
                return ErrorCode.BAD_JSON, (
                    f"the <tool_call> JSON nests more than {max_depth} levels deep; keep arguments flat "
                    "(metadata is a small object of strings and numbers)."
                )
            if isinstance(item, dict):
                stack.extend((k, depth + 1) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return None


def _surely_fine(body: str, max_depth: int) -> bool:
    """Whether :func:`_json_problem` must find nothing in the decoded ``body``, judged from the text alone.

    The turn holds no lone surrogate (checked first), so a decoded string can only get one from a ``\\u`` escape,
    and JSON nests no deeper than the number of ``[`` and ``{`` in the text: without a backslash and with at most
    ``max_depth`` brackets (a typical call has three), the walk over the decoded value can be skipped.
    """
    return "\\" not in body and body.count("[") + body.count("{") <= max_depth


def _decode(text: str) -> Any:
    """``json.loads`` that also turns Python's own limits into ``ValueError`` (for the callers' one except)."""
    try:
        return json.loads(text)
    except RecursionError:  # nesting deeper than the interpreter's recursion limit
        raise ValueError("nesting too deep to read") from None
    # ValueError (a JSONDecodeError, or an integer past Python's int-from-string digit limit) propagates.


def _string_arguments(args: str, where: str, name: str, max_depth: int) -> tuple[Any, ActionError | None]:
    """Decode OpenAI-style string ``"arguments"`` (a JSON object inside a JSON string), under the same rules."""
    try:
        value = _decode(args) if args.strip() else {}
    except ValueError:
        return None, ActionError(
            ErrorCode.BAD_CALL,
            f'{where} ({name}): "arguments" is a string that is not a JSON object (or holds a number or nesting '
            "too large to read).",
        )
    problem = _json_problem(value, max_depth, base=2)  # it stands in for the object at depth 3
    if problem is not None:
        return None, ActionError(*problem)
    return value, None


def _calls_from_json(value: Any, max_depth: int) -> tuple[list[ToolCall], ActionError | None]:
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
            args, error = _string_arguments(args, where, name, max_depth)
            if error is not None:
                return [], error
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return [], ActionError(
                ErrorCode.BAD_CALL,
                f'{where} ({name}): "arguments" must be a JSON object, got a {type(args).__name__}.',
            )
        calls.append(ToolCall(name=name, arguments=args))
    return calls, None


def _parse_tool_bodies(bodies: list[str], cfg: ProtocolConfig, think: str | None) -> Action:
    calls: list[ToolCall] = []
    for body in bodies:
        try:
            value = _decode(body)
        except json.JSONDecodeError as err:
            return _invalid(ErrorCode.BAD_JSON, _json_error_message(body, err), think)
        except ValueError:  # integers past Python's digit limit; absurdly deep nesting
            return _invalid(
                ErrorCode.BAD_JSON, "the <tool_call> body holds a number or nesting too large to read.", think
            )
        problem = None if _surely_fine(body, cfg.max_json_depth) else _json_problem(value, cfg.max_json_depth)
        if problem is not None:
            return _invalid(*problem, think)
        block_calls, error = _calls_from_json(value, cfg.max_json_depth)
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


# The limits used when none are given: built once (ProtocolConfig is frozen), not validated again on every turn.
_DEFAULT_CONFIG = ProtocolConfig()


def parse_action(text: object, config: ProtocolConfig | None = None) -> Action:
    """Parse one agent turn. Never raises: every failure is an ``Action`` of kind ``"invalid"``.

    Args:
        text: The agent's output for this turn (anything; non-strings are rejected as ``no_action``).
        config: Limits; the defaults of :class:`ProtocolConfig` when None.

    Returns:
        The parsed action. Blocks are read left to right, each up to its closing tag, and their bodies are kept
        verbatim: reasoning that mentions the tags cannot trigger them, and a ``<think>`` inside a tool call's
        JSON stays in it. Text outside the blocks is ignored.
    """
    cfg = config or _DEFAULT_CONFIG
    if not isinstance(text, str):
        return _invalid(ErrorCode.NO_ACTION, f"expected the turn as text, got a {type(text).__name__}.")
    if len(text) > cfg.max_action_chars:
        return _invalid(
            ErrorCode.ACTION_TOO_LONG,
            f"the turn has {len(text)} characters; the limit is {cfg.max_action_chars}. Be more concise.",
        )
    if has_lone_surrogates(text):
        return _invalid(
            ErrorCode.INVALID_UNICODE,
            "the turn holds lone UTF-16 surrogate code points (U+D800..U+DFFF), which cannot be encoded. "
            "Write plain Unicode text.",
        )
    blocks, unclosed = _blocks(text)
    thinks = [body for tag, body in blocks if tag == "think"]
    think = "\n".join(t.strip() for t in thinks) if thinks else None
    if unclosed is not None:
        return _invalid(ErrorCode.UNCLOSED_TAG, f"<{unclosed}> is opened but never closed with </{unclosed}>.", think)
    tool_bodies = [body for tag, body in blocks if tag == "tool_call"]
    answers = [body for tag, body in blocks if tag == "answer"]
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
    return _parse_tool_bodies(tool_bodies, cfg, think)
