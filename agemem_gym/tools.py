"""The six memory tools (DESIGN.md §3): schemas, argument validation, dispatch and rendering.

Long-term memory tools act on a :class:`~agemem_gym.memory.MemoryStore`; short-term memory tools act on the
:class:`~agemem_gym.context.Context`. :func:`execute` validates one parsed call against its tool's schema and runs
it; it never raises on agent input. Each call yields a :class:`ToolResult` holding the text the agent reads and
structured ``data`` that the rewards and logs use. Names match the paper's released code exactly;
``Clear_context`` is an alias of ``Filter_context``.

>>> from agemem_gym.context import Context
>>> from agemem_gym.memory import MemoryStore
>>> rt = ToolRuntime(store=MemoryStore(), context=Context("sys"))
>>> r = execute(ToolCall("Add_memory", {"content": "The Orvel Bridge opened in 1841."}), rt)
>>> r.ok, r.data["id"]
(True, 'm_0001')
>>> execute(ToolCall("Retrieve_memory", {"query": "Orvel Bridge", "top_k": 1}), rt).data["hits"][0]["id"]
'm_0001'
>>> execute(ToolCall("Delete_memory", {"memory_id": "m_0099", "confirmation": True}), rt).error.code.value
'unknown_memory_id'
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agemem_gym._validate import check_field, is_int
from agemem_gym.context import Context
from agemem_gym.errors import ConfigError
from agemem_gym.memory import MemoryStore
from agemem_gym.protocol import ActionError, ErrorCode, ToolCall

__all__ = [
    "TOOL_ALIASES",
    "TOOL_NAMES",
    "TOOL_SPECS",
    "ToolResult",
    "ToolRuntime",
    "ToolSettings",
    "ToolSpec",
    "canonical_tool_name",
    "execute",
    "render_results",
    "result_material",
    "tool_schemas",
]


@dataclass(frozen=True)
class ToolSpec:
    """A tool's name, what it targets, and its JSON-schema parameters (as shown to the agent)."""

    name: str
    target: Literal["LTM", "STM"]
    description: str
    parameters: Mapping[str, Any]

    def schema(self) -> dict[str, Any]:
        """OpenAI-style function schema (``{"type": "function", "function": {...}}``), a fresh copy."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": copy.deepcopy(dict(self.parameters)),
            },
        }


def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "Add_memory",
        "LTM",
        "Store a new piece of information in long-term memory for later turns. Returns the new memory's id.",
        _obj(
            {
                "content": {
                    "type": "string",
                    "description": "The information to store, as a self-contained statement.",
                },
                "metadata": {
                    "type": "object",
                    "description": "Optional tags to categorise and filter by, e.g. {'topic': 'bridges'}.",
                },
                "memory_type": {
                    "type": "string",
                    "description": "Optional kind of memory, e.g. 'fact' (the default) or 'user_info'.",
                },
            },
            ["content"],
        ),
    ),
    ToolSpec(
        "Update_memory",
        "LTM",
        "Replace the content of an existing memory (its id stays the same); metadata given here is merged in.",
        _obj(
            {
                "memory_id": {
                    "type": "string",
                    "description": "The id of the memory, as shown by Add_memory or Retrieve_memory (e.g. 'm_0001').",
                },
                "content": {"type": "string", "description": "The new content that replaces the old."},
                "metadata": {"type": "object", "description": "Optional metadata to merge into the memory's metadata."},
            },
            ["memory_id", "content"],
        ),
    ),
    ToolSpec(
        "Delete_memory",
        "LTM",
        "Permanently remove a memory from long-term memory. Requires confirmation=true.",
        _obj(
            {
                "memory_id": {"type": "string", "description": "The id of the memory to delete."},
                "confirmation": {"type": "boolean", "description": "Must be true to delete; false cancels."},
            },
            ["memory_id", "confirmation"],
        ),
    ),
    ToolSpec(
        "Retrieve_memory",
        "STM",
        "Search long-term memory and bring the most relevant memories (with their ids) into the current context.",
        _obj(
            {
                "query": {"type": "string", "description": "What you need to know, in words."},
                "top_k": {"type": "integer", "description": "How many memories to return (default 3)."},
                "metadata_filter": {
                    "type": "object",
                    "description": "Optional metadata that returned memories must match, e.g. {'topic': 'bridges'}.",
                },
            },
            ["query"],
        ),
    ),
    ToolSpec(
        "Summary_context",
        "STM",
        "Replace earlier conversation messages with one short summary to free context space.",
        _obj(
            {
                "span": {
                    "type": "string",
                    "description": "'all' for every message after the system prompt, or a number N (e.g. '4') for the last N messages.",
                },
                "summary": {
                    "type": "string",
                    "description": "Optional: your own summary text, used verbatim. If omitted, an automatic summary is written.",
                },
            },
            ["span"],
        ),
    ),
    ToolSpec(
        "Filter_context",
        "STM",
        "Remove messages from the current context that match the criteria (keywords, phrases or a description of what to drop).",
        _obj(
            {
                "criteria": {
                    "type": "string",
                    "description": "What to remove, e.g. 'the history of Woodson, Arkansas'.",
                },
            },
            ["criteria"],
        ),
    ),
)
TOOL_NAMES: tuple[str, ...] = tuple(s.name for s in TOOL_SPECS)
TOOL_ALIASES: Mapping[str, str] = {"Clear_context": "Filter_context"}
_SPECS: dict[str, ToolSpec] = {s.name: s for s in TOOL_SPECS}


def canonical_tool_name(name: str) -> str | None:
    """The tool's canonical name (resolving aliases; matching is exact), or None if there is no such tool."""
    name = TOOL_ALIASES.get(name, name)
    return name if name in _SPECS else None


def tool_schemas() -> list[dict[str, Any]]:
    """Fresh OpenAI-style schemas of the six tools, in the paper's order (for ``info["tools"]``)."""
    return [s.schema() for s in TOOL_SPECS]


@dataclass(frozen=True)
class ToolSettings:
    """Bounds on tool arguments and behaviour.

    Attributes:
        top_k_default: ``Retrieve_memory``'s ``top_k`` when omitted (paper: 3).
        top_k_max: Largest ``top_k`` accepted; larger is a ``bad_arguments`` error.
        filter_threshold: θ of ``Filter_context`` (paper: 0.6).
        max_content_chars: Longest memory content accepted by Add/Update.
        max_metadata_chars: Longest metadata (as JSON) accepted.
    """

    top_k_default: int = 3
    top_k_max: int = 10
    filter_threshold: float = 0.6
    max_content_chars: int = 2000
    max_metadata_chars: int = 1000

    def __post_init__(self) -> None:
        check_field(self, "top_k_max", "int", gt=0)
        check_field(self, "top_k_default", "int")  # the type first: the range below is worded against top_k_max
        check_field(
            self,
            "top_k_default",
            "int",
            ge=1,
            le=self.top_k_max,
            rule=f"in [1, top_k_max={self.top_k_max}]",
            fix="lower it, or raise top_k_max",
        )
        check_field(self, "filter_threshold", "number")
        check_field(self, "filter_threshold", "number", gt=0, le=1, rule="in (0, 1]")
        for name in ("max_content_chars", "max_metadata_chars"):
            check_field(self, name, "int", gt=0)


@dataclass
class ToolRuntime:
    """What the tools act on: the long-term store, the context, and the current step and stage."""

    store: MemoryStore
    context: Context
    settings: ToolSettings = field(default_factory=ToolSettings)
    step: int = 0
    stage: int = 1


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one call: ``text`` is what the agent reads; ``data`` is structured, for rewards and logs."""

    name: str  # canonical tool name, or the unknown name as written
    call: ToolCall
    ok: bool
    text: str
    error: ActionError | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (for ``info`` and the episode recorder)."""
        return {
            "name": self.name,
            "arguments": dict(self.call.arguments),
            "ok": self.ok,
            "error": self.error.code.value if self.error else None,
            "data": dict(self.data),
        }


# ---- argument validation ----


class _Bad(Exception):
    """Internal: an argument is invalid; carries the agent-facing message and the error code."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_ARGUMENTS) -> None:
        super().__init__(message)
        self.code = code


def _string(args: Mapping[str, Any], key: str, *, required: bool, limit: int | None = None) -> str | None:
    value = args.get(key)
    if value is None:
        if required:
            raise _Bad(f"'{key}' is required (a non-empty string).")
        return None
    if not isinstance(value, str):
        raise _Bad(f"'{key}' must be a string, got {type(value).__name__}.")
    if required and not value.strip():
        raise _Bad(f"'{key}' must not be empty.")
    if limit is not None and len(value) > limit:
        raise _Bad(f"'{key}' has {len(value)} characters; the limit is {limit}.")
    return value


def _metadata(args: Mapping[str, Any], key: str, limit: int) -> dict[str, Any] | None:
    value = args.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Bad(f"'{key}' must be a JSON object, got {type(value).__name__}.")
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except ValueError:
        raise _Bad(f"'{key}' must hold only finite JSON values.") from None
    if size > limit:
        raise _Bad(f"'{key}' is {size} characters as JSON; the limit is {limit}.")
    return value


def _top_k(args: Mapping[str, Any], settings: ToolSettings) -> int:
    value = args.get("top_k")
    if value is None:
        return settings.top_k_default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not is_int(value):
        raise _Bad(f"'top_k' must be an integer, got {type(value).__name__}.")
    if not 1 <= value <= settings.top_k_max:
        raise _Bad(f"'top_k' must be between 1 and {settings.top_k_max}, got {value}.")
    return value


def _span(args: Mapping[str, Any]) -> Literal["all"] | int:
    value = args.get("span")
    if value is None:
        raise _Bad("'span' is required: 'all' or a number of trailing messages such as '4'.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v == "all":
            return "all"
        if v.isdecimal() and len(v) <= 6:
            value = int(v)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise _Bad(f"'span' must be 'all' or a positive number of messages, got {value!r:.40}.")


def _memory_id(args: Mapping[str, Any], store: MemoryStore) -> str:
    mid = _string(args, "memory_id", required=True, limit=64)
    assert mid is not None
    if mid not in store:
        raise _Bad(
            f"no memory with id {mid!r}. Ids come from Add_memory or Retrieve_memory results (e.g. 'm_0001').",
            ErrorCode.UNKNOWN_MEMORY_ID,
        )
    return mid


# ---- the tools ----


def _add(args: Mapping[str, Any], rt: ToolRuntime) -> tuple[str, dict[str, Any]]:
    content = _string(args, "content", required=True, limit=rt.settings.max_content_chars)
    metadata = _metadata(args, "metadata", rt.settings.max_metadata_chars)
    memory_type = _string(args, "memory_type", required=False, limit=64) or "fact"
    assert content is not None
    res = rt.store.add(content.strip(), metadata=metadata, memory_type=memory_type, step=rt.step)
    data = {"id": res.item.id, "action": res.action, "duplicate_of": res.duplicate_of, "content": res.item.content}
    if res.action == "rejected":
        raise _Bad(f"not added: it duplicates {res.duplicate_of} ({res.reason}).", ErrorCode.DUPLICATE_MEMORY)
    if res.action == "merged":
        return f"not added again: it duplicates {res.item.id}; metadata merged into {res.item.id}.", data
    return f"added {res.item.id}", data


def _update(args: Mapping[str, Any], rt: ToolRuntime) -> tuple[str, dict[str, Any]]:
    mid = _memory_id(args, rt.store)
    content = _string(args, "content", required=True, limit=rt.settings.max_content_chars)
    metadata = _metadata(args, "metadata", rt.settings.max_metadata_chars)
    assert content is not None
    old = rt.store.get(mid)
    item = rt.store.update(mid, content.strip(), metadata=metadata, step=rt.step)
    old_content = old.content if old is not None else ""
    return f"updated {mid}: true", {"id": mid, "old_content": old_content, "content": item.content}


def _delete(args: Mapping[str, Any], rt: ToolRuntime) -> tuple[str, dict[str, Any]]:
    mid = _memory_id(args, rt.store)
    confirmation = args.get("confirmation")
    if not isinstance(confirmation, bool):
        raise _Bad(f"'confirmation' must be the JSON boolean true (or false to cancel), got {confirmation!r:.20}.")
    if not confirmation:
        return f"delete of {mid} cancelled (confirmation was false)", {"id": mid, "deleted": False}
    item = rt.store.delete(mid)
    return f"deleted {mid}", {"id": mid, "deleted": True, "content": item.content}


def _retrieve(args: Mapping[str, Any], rt: ToolRuntime) -> tuple[str, dict[str, Any]]:
    query = _string(args, "query", required=True, limit=rt.settings.max_content_chars)
    top_k = _top_k(args, rt.settings)
    flt = _metadata(args, "metadata_filter", rt.settings.max_metadata_chars)
    assert query is not None
    hits = rt.store.search(query, top_k, metadata_filter=flt)
    rows, lines = [], [f"{len(hits)} memor{'y' if len(hits) == 1 else 'ies'}:"]
    for h in hits:  # the data rows and the message lines in one pass
        item = h.item
        rows.append({"id": item.id, "score": round(float(h.score), 6), "content": item.content})
        lines.append(f"- {item.id}: {item.content}")
    data = {"query": query, "top_k": top_k, "hits": rows}
    if not hits:
        return "no memories found" + (" (long-term memory is empty)" if len(rt.store) == 0 else ""), data
    return "\n".join(lines), data


def _summary(args: Mapping[str, Any], rt: ToolRuntime) -> tuple[str, dict[str, Any]]:
    span = _span(args)
    summary = _string(args, "summary", required=False, limit=rt.settings.max_content_chars)
    out = rt.context.summarize(span, summary, stage=rt.stage)
    data = {
        "span": span,
        "replaced": out.replaced,
        "agent_summary": summary is not None,
        "tokens_before": out.tokens_before,
        "tokens_after": out.tokens_after,
        "kinds": list(out.kinds),
    }
    if out.replaced == 0:
        return "nothing to summarise: the context holds only the system prompt", data
    return f"summarised {out.replaced} messages ({out.tokens_before} -> {out.tokens_after} tokens)", data


def _filter(args: Mapping[str, Any], rt: ToolRuntime) -> tuple[str, dict[str, Any]]:
    criteria = _string(args, "criteria", required=True, limit=rt.settings.max_content_chars)
    assert criteria is not None
    out = rt.context.filter(criteria, rt.settings.filter_threshold)
    data = {
        "criteria": criteria,
        "removed": out.removed,
        "tokens_before": out.tokens_before,
        "tokens_after": out.tokens_after,
        "kinds": list(out.kinds),
    }
    return f"removed {out.removed} messages ({out.tokens_before} -> {out.tokens_after} tokens)", data


_HANDLERS: dict[str, Callable[[Mapping[str, Any], ToolRuntime], tuple[str, dict[str, Any]]]] = {
    "Add_memory": _add,
    "Update_memory": _update,
    "Delete_memory": _delete,
    "Retrieve_memory": _retrieve,
    "Summary_context": _summary,
    "Filter_context": _filter,
}


def execute(call: ToolCall, runtime: ToolRuntime) -> ToolResult:
    """Validate and run one call. Agent mistakes become a failed :class:`ToolResult`; nothing is raised for them."""
    name = canonical_tool_name(call.name)
    if name is None:
        error = ActionError(
            ErrorCode.UNKNOWN_TOOL, f"there is no tool {call.name!r:.60}. The tools are: {', '.join(TOOL_NAMES)}."
        )
        return ToolResult(call.name, call, False, f"error {error.code.value}: {error.message}", error)
    try:
        text, data = _HANDLERS[name](call.arguments, runtime)
    except _Bad as bad:
        error = ActionError(bad.code, str(bad))
        return ToolResult(name, call, False, f"error {error.code.value}: {error.message}", error)
    except ConfigError as err:  # the store's own validation (e.g. metadata it cannot keep) is still agent input
        error = ActionError(ErrorCode.BAD_ARGUMENTS, str(err))
        return ToolResult(name, call, False, f"error {error.code.value}: {error.message}", error)
    return ToolResult(name, call, True, text, None, data)


def render_results(results: Sequence[ToolResult]) -> str:
    """The tool message for one turn: one block per call, headed by the tool's name."""
    return "\n".join(f"[{r.name}] {r.text}" for r in results)


_RESULT_HEADER = re.compile(r"^\[[^\]\n]{1,64}\] [^\n]*\n?", re.MULTILINE)
_HIT_PREFIX = re.compile(r"^- m_[A-Za-z0-9]+: ", re.MULTILINE)


def result_material(message: str) -> str:
    """What a tool message brought into the context, without its chrome: the memories a retrieval returned (the
    ``- m_0001:`` prefixes and every ``[Tool] ...`` status line of :func:`render_results` removed).

    >>> result_material("[Add_memory] added m_0001\\n[Retrieve_memory] 1 memory:\\n- m_0001: It opened in 1841.")
    'It opened in 1841.'
    """
    return _HIT_PREFIX.sub("", _RESULT_HEADER.sub("", message)).strip()
