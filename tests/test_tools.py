"""Tests of the six tools: schemas, argument validation (messages pinned), dispatch, and arbitrary arguments."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agemem_gym.context import Context
from agemem_gym.errors import ConfigError
from agemem_gym.memory import MemoryStore
from agemem_gym.protocol import ErrorCode, ToolCall
from agemem_gym.tools import (
    TOOL_NAMES,
    ToolRuntime,
    ToolSettings,
    canonical_tool_name,
    execute,
    render_results,
    tool_schemas,
)


def runtime() -> ToolRuntime:
    ctx = Context("system")
    ctx.append("user", "The Orvel Bridge opened in 1841.", kind="material", stage=1)
    ctx.append("user", "Woodson is a place in Arkansas.", kind="distractor", stage=2)
    return ToolRuntime(MemoryStore(), ctx)


def run(rt: ToolRuntime, name: str, **args: Any) -> Any:
    return execute(ToolCall(name, args), rt)


def test_schemas_name_the_six_tools_in_openai_form() -> None:
    """info['tools'] lists the paper's six tools with required fields, as fresh copies."""
    schemas = tool_schemas()
    assert [s["function"]["name"] for s in schemas] == list(TOOL_NAMES)
    required = {s["function"]["name"]: s["function"]["parameters"]["required"] for s in schemas}
    assert required["Delete_memory"] == ["memory_id", "confirmation"] and required["Summary_context"] == ["span"]
    schemas[0]["function"]["name"] = "changed"
    assert tool_schemas()[0]["function"]["name"] == "Add_memory"


def test_alias_and_exact_matching() -> None:
    """Clear_context is Filter_context; names match exactly (no case folding)."""
    assert canonical_tool_name("Clear_context") == "Filter_context"
    assert canonical_tool_name("add_memory") is None


def test_add_update_delete_round_trip() -> None:
    """Add returns a visible id; Update keeps it; Delete needs confirmation=true; false cancels."""
    rt = runtime()
    r = run(rt, "Add_memory", content=" The Orvel Bridge opened in 1841. ", metadata={"topic": "bridge"})
    assert r.ok and r.text == "added m_0001" and r.data["content"] == "The Orvel Bridge opened in 1841."
    r = run(rt, "Update_memory", memory_id="m_0001", content="The Orvel Bridge opened in 1842.")
    assert r.ok and r.data["old_content"].endswith("1841.") and rt.store.get("m_0001").content.endswith("1842.")
    r = run(rt, "Delete_memory", memory_id="m_0001", confirmation=False)
    assert r.ok and not r.data["deleted"] and "cancelled" in r.text and "m_0001" in rt.store
    r = run(rt, "Delete_memory", memory_id="m_0001", confirmation=True)
    assert r.ok and r.data["deleted"] and len(rt.store) == 0


def test_retrieve_shows_ids_and_respects_top_k_and_filter() -> None:
    """Retrieve returns at most top_k memories, each with its id, optionally filtered by metadata."""
    rt = runtime()
    run(rt, "Add_memory", content="The Orvel Bridge opened in 1841.", metadata={"topic": "bridge"})
    run(rt, "Add_memory", content="Tamsin Works makes rope.", metadata={"topic": "company"})
    r = run(rt, "Retrieve_memory", query="Orvel Bridge", top_k=1)
    assert r.ok and [h["id"] for h in r.data["hits"]] == ["m_0001"] and "- m_0001: The Orvel" in r.text
    r = run(rt, "Retrieve_memory", query="Orvel Bridge", metadata_filter={"topic": "company"})
    assert [h["id"] for h in r.data["hits"]] == ["m_0002"]
    assert "long-term memory is empty" in run(runtime(), "Retrieve_memory", query="x").text


def test_summary_and_filter_edit_the_context() -> None:
    """Summary replaces the last N messages (span may be a string or an int); Filter removes matches."""
    rt = runtime()
    r = run(rt, "Summary_context", span="1", summary="A place in Arkansas.")
    assert r.ok and r.data["replaced"] == 1 and r.data["agent_summary"] and len(rt.context) == 3
    r = run(rt, "Filter_context", criteria="Orvel Bridge")
    assert r.ok and r.data["removed"] == 1 and len(rt.context) == 2
    r = run(rt, "Clear_context", criteria="nothing matches this")
    assert r.ok and r.name == "Filter_context" and r.data["removed"] == 0


@pytest.mark.parametrize(
    ("name", "args", "code", "message"),
    [
        ("Add_memory", {}, ErrorCode.BAD_ARGUMENTS, "'content' is required (a non-empty string)."),
        ("Add_memory", {"content": "  "}, ErrorCode.BAD_ARGUMENTS, "'content' must not be empty."),
        ("Add_memory", {"content": 5}, ErrorCode.BAD_ARGUMENTS, "'content' must be a string, got int."),
        (
            "Add_memory",
            {"content": "x" * 2001},
            ErrorCode.BAD_ARGUMENTS,
            "'content' has 2001 characters; the limit is 2000.",
        ),
        (
            "Add_memory",
            {"content": "x", "metadata": [1]},
            ErrorCode.BAD_ARGUMENTS,
            "'metadata' must be a JSON object, got list.",
        ),
        (
            "Update_memory",
            {"memory_id": "m_0009", "content": "x"},
            ErrorCode.UNKNOWN_MEMORY_ID,
            "no memory with id 'm_0009'",
        ),
        (
            "Delete_memory",
            {"memory_id": "m_0001"},
            ErrorCode.BAD_ARGUMENTS,
            "'confirmation' must be the JSON boolean true",
        ),
        (
            "Delete_memory",
            {"memory_id": "m_0001", "confirmation": "true"},
            ErrorCode.BAD_ARGUMENTS,
            "'confirmation' must be the JSON boolean true",
        ),
        (
            "Retrieve_memory",
            {"query": "x", "top_k": 0},
            ErrorCode.BAD_ARGUMENTS,
            "'top_k' must be between 1 and 10, got 0.",
        ),
        (
            "Retrieve_memory",
            {"query": "x", "top_k": True},
            ErrorCode.BAD_ARGUMENTS,
            "'top_k' must be an integer, got bool.",
        ),
        (
            "Retrieve_memory",
            {"query": "x", "top_k": "3"},
            ErrorCode.BAD_ARGUMENTS,
            "'top_k' must be an integer, got str.",
        ),
        ("Summary_context", {}, ErrorCode.BAD_ARGUMENTS, "'span' is required"),
        ("Summary_context", {"span": "-2"}, ErrorCode.BAD_ARGUMENTS, "'span' must be 'all' or a positive number"),
        ("Filter_context", {"criteria": ""}, ErrorCode.BAD_ARGUMENTS, "'criteria' must not be empty."),
        ("Forget_everything", {}, ErrorCode.UNKNOWN_TOOL, "there is no tool 'Forget_everything'"),
    ],
)
def test_invalid_arguments_are_typed_errors(name: str, args: dict[str, Any], code: ErrorCode, message: str) -> None:
    """Each invalid call yields its error code and a pinned message the agent can act on; nothing changes."""
    rt = runtime()
    run(rt, "Add_memory", content="seed memory")
    before = (list(rt.store.ids()), rt.context.messages)
    r = execute(ToolCall(name, args), rt)
    assert not r.ok and r.error is not None and r.error.code is code
    assert message in r.error.message and r.text.startswith(f"error {code.value}:")
    assert (list(rt.store.ids()), rt.context.messages) == before


def test_integral_float_top_k_and_int_span_are_accepted() -> None:
    """3.0 is a valid top_k and 2 (an int) a valid span, since models emit both."""
    rt = runtime()
    assert run(rt, "Retrieve_memory", query="x", top_k=3.0).ok
    assert run(rt, "Summary_context", span=2).data["replaced"] == 2


def test_render_results_heads_each_block_with_the_tool() -> None:
    """The tool message has one line block per call."""
    rt = runtime()
    results = [run(rt, "Add_memory", content="a b c"), run(rt, "Nope")]
    text = render_results(results)
    assert text.splitlines()[0] == "[Add_memory] added m_0001" and text.splitlines()[1].startswith("[Nope] error")


def test_tool_settings_validate() -> None:
    """Settings break no rule silently."""
    with pytest.raises(ConfigError, match=r"'top_k_default' must be in \[1, top_k_max=2\], got 3"):
        ToolSettings(top_k_default=3, top_k_max=2)
    with pytest.raises(ConfigError, match="'filter_threshold' must be in"):
        ToolSettings(filter_threshold=0)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 20),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.text(max_size=6), st.integers()), max_size=3),
    st.sampled_from(["m_0001", "m_0002", "all", "3", "0"]),
)
_keys = st.sampled_from(
    [
        "content",
        "metadata",
        "memory_type",
        "memory_id",
        "confirmation",
        "query",
        "top_k",
        "metadata_filter",
        "span",
        "summary",
        "criteria",
        "extra",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([*TOOL_NAMES, "Clear_context", "X"]), st.dictionaries(_keys, _values, max_size=5)),
        max_size=12,
    )
)
def test_arbitrary_calls_never_raise_and_keep_store_consistent(calls: list[tuple[str, dict[str, Any]]]) -> None:
    """Any sequence of calls with arbitrary argument values: no exception, typed errors, store/context consistent."""
    rt = runtime()
    live: set[str] = set()
    for name, args in calls:
        r = execute(ToolCall(name, args), rt)
        assert r.ok or (r.error is not None and isinstance(r.error.code, ErrorCode))
        if r.ok and r.name == "Add_memory" and r.data["action"] == "added":
            live.add(r.data["id"])
        if r.ok and r.name == "Delete_memory" and r.data["deleted"]:
            live.discard(r.data["id"])
        assert set(rt.store.ids()) == live and len(rt.store) == len(live)
        assert rt.context.messages[0].kind == "system"
        assert rt.context.tokens == sum(m.tokens for m in rt.context.messages)
