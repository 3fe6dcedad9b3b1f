"""What the user side says: the system prompt and the casual turns that carry each stage's material.

The system prompt follows the structure of the paper's (AgeMem App. A.1: tools, think-then-act workflow,
mutual exclusivity of tool calls and answers, strict format) in our own words. ``"compact"`` is a short variant
for small models whose context is precious.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from agemem_gym.task import Paragraph

__all__ = ["PromptStyle", "question_turn", "stage_turn", "system_prompt"]

PromptStyle = Literal["paper", "compact"]

_PAPER = """You are a helpful assistant that manages its own memory with tools.

You have two memories:
- Long-term memory: a store that lasts for the whole session, even after the conversation is cleared. Write it with Add_memory, Update_memory and Delete_memory; read it with Retrieve_memory, which brings the matching entries (with their ids) into the conversation.
- Short-term memory: this conversation, limited to {budget} tokens. Shorten it with Summary_context (replace earlier messages with a summary) or Filter_context (remove messages that match a criterion).

The conversation may be cleared at any time; only long-term memory survives. Store what may matter later, keep the conversation free of clutter, and retrieve before you answer a question that depends on earlier information.

## Tools
{tools}

## Format (strict)
Every turn starts with your reasoning in <think>...</think>, followed by exactly one of:
1. <tool_call>[{{"name": "<tool name>", "arguments": {{...}}}}, ...]</tool_call> to call one or more tools (a JSON array of calls). Their results come back in the next message.
2. <answer>...</answer> to reply to the user. When the user asks a question, answer with a short phrase (a name, a date, a number, yes or no).
Never write both <tool_call> and <answer> in the same turn, and write nothing outside these tags.

Example turn:
<think>The user shared a fact I may need later, so I store it.</think><tool_call>[{{"name": "Add_memory", "arguments": {{"content": "The Orvel Bridge opened in 1841."}}}}]</tool_call>"""

_COMPACT = """You manage your memory with tools. Long-term memory survives when the conversation is cleared; the conversation (limit {budget} tokens) does not.
Tools: Add_memory(content), Update_memory(memory_id, content), Delete_memory(memory_id, confirmation=true), Retrieve_memory(query, top_k=3), Summary_context(span="all" or "N", summary), Filter_context(criteria).
Each turn: <think>...</think> then either <tool_call>[{{"name": "...", "arguments": {{...}}}}]</tool_call> or <answer>short reply</answer>, never both."""


def system_prompt(style: PromptStyle, tools: Sequence[dict[str, Any]], budget: int) -> str:
    """The system message: the protocol and, in the ``"paper"`` style, every tool's JSON schema."""
    if style == "compact":
        return _COMPACT.format(budget=budget)
    listing = "\n".join(json.dumps(t["function"], ensure_ascii=False) for t in tools)
    return _PAPER.format(budget=budget, tools=listing)


_OPENERS = (
    "Hi! I was reading about {title} today.",
    "Something I came across about {title}:",
    "Quick one, I just learned this about {title}.",
    "By the way, here is what I read on {title}.",
    "Sharing a note about {title}.",
    "You might like this, it's about {title}.",
)
_CLOSERS = (
    "Interesting, right?",
    "What do you make of it?",
    "Just thought I'd share.",
    "Anyway, how is your day going?",
    "Fun fact, isn't it?",
)


def stage_turn(paragraphs: Sequence[Paragraph], rng: np.random.Generator) -> str:
    """One casual user turn that shares ``paragraphs`` (stages 1 and 2 use the same voice, so the wording gives
    nothing away about which material matters)."""
    parts = [f"{_OPENERS[int(rng.integers(len(_OPENERS)))].format(title=p.title)}\n{p.text}" for p in paragraphs]
    return "\n\n".join(parts) + "\n\n" + _CLOSERS[int(rng.integers(len(_CLOSERS)))]


def question_turn(question: str) -> str:
    """The stage-3 user turn."""
    return f"Now a question for you: {question}\nAnswer with a short phrase."
