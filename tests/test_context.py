"""Tests of the short-term context: token accounting, Summary_context, Filter_context, summarisers, text utils."""

from __future__ import annotations

import numpy as np
import pytest

from agemem_gym.context import (
    MESSAGE_OVERHEAD_TOKENS,
    Context,
    approx_token_count,
    hybrid_similarity,
    make_token_counter,
)
from agemem_gym.context.summarizers import ExtractiveSummarizer, make_summarizer
from agemem_gym.errors import ConfigError
from agemem_gym.text import content_words, keyword_containment, split_sentences


def build() -> Context:
    ctx = Context("system prompt")
    ctx.append("user", "The Orvel Bridge opened in 1841. It spans the Tamsin.", kind="material", stage=1)
    ctx.append("assistant", "Nice.", kind="reply", stage=1)
    ctx.append("user", "Woodson is a census-designated place in Pulaski County, Arkansas.", kind="distractor", stage=2)
    return ctx


def test_tokens_are_counted_once_per_message_with_overhead() -> None:
    """The context's tokens are the sum of per-message counts plus the role-marker overhead."""
    ctx = build()
    expected = sum(approx_token_count(m.content) + MESSAGE_OVERHEAD_TOKENS for m in ctx.messages)
    assert ctx.tokens == expected
    assert ctx.messages[0].kind == "system" and len(ctx) == 4


def test_token_counter_from_tokenizer_like_and_callable() -> None:
    """A tokenizer-like object counts with encode(); a callable is used as is; other values raise."""

    class Tok:
        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return [0] * len(text.split())

        def decode(self, ids: list[int]) -> str:
            return ""

    assert make_token_counter(Tok())("a b c") == 3
    assert make_token_counter(len)("abc") == 3
    assert make_token_counter(None) is approx_token_count
    with pytest.raises(ConfigError, match="'tokenizer' must be"):
        make_token_counter(42)


def test_summary_of_last_n_messages_with_agent_text() -> None:
    """span=N replaces the last N non-system messages with one summary message holding the agent's text."""
    ctx = build()
    out = ctx.summarize(2, "Reply and Woodson note.", stage=2)
    assert out.replaced == 2 and out.kinds == ("reply", "distractor")
    assert [m.kind for m in ctx.messages] == ["system", "material", "summary"]
    assert "Reply and Woodson note." in ctx.messages[-1].content
    assert out.tokens_after == ctx.tokens < out.tokens_before


def test_summary_all_uses_the_summariser_and_clamps_span() -> None:
    """span='all' (or a span larger than the context) replaces every non-system message via the summariser."""
    ctx = build()
    out = ctx.summarize(99)
    assert out.replaced == 3 and len(ctx) == 2
    assert "Orvel Bridge" in out.summary or "Woodson" in out.summary
    empty = Context("s")
    assert empty.summarize("all").replaced == 0 and len(empty) == 1


def test_filter_removes_messages_at_or_above_threshold() -> None:
    """Filter drops every non-system message whose similarity to the criteria reaches θ; the system stays."""
    ctx = build()
    out = ctx.filter("Woodson Arkansas", 0.6)
    assert out.removed == 1 and out.kinds == ("distractor",)
    assert all("Woodson" not in m.content for m in ctx.messages)
    assert ctx.filter("system prompt", 0.01).removed <= 2 and ctx.messages[0].content == "system prompt"


def test_reset_and_restore() -> None:
    """reset() keeps only the system prompt; restore() brings a snapshot back and rejects foreign ones."""
    ctx = build()
    snap = ctx.snapshot()
    ctx.reset()
    assert len(ctx) == 1 and ctx.tokens == ctx.messages[0].tokens
    ctx.restore(snap)
    assert ctx.messages == snap
    with pytest.raises(ConfigError, match="must start with this context's system prompt"):
        ctx.restore(Context("other").snapshot())


def test_hybrid_similarity_takes_the_larger_of_cosine_and_containment() -> None:
    """Keyword criteria reach θ through containment even when cosine is low."""

    def embed(texts: list[str]) -> np.ndarray:
        v = np.zeros((len(texts), 4), dtype=np.float32)
        v[:, 0] = 1.0
        v[0] = [0, 1, 0, 0]  # the criteria: orthogonal to every message
        return v

    sims = hybrid_similarity(embed)("Woodson Arkansas", ["Woodson is in Arkansas.", "The Orvel Bridge."])
    assert sims.tolist() == [1.0, 0.0]


def test_extractive_summariser_is_deterministic_and_bounded() -> None:
    """The default summariser keeps recurring-topic sentences in order, within its bounds, skipping markup."""
    msgs = [
        {"role": "user", "content": "The Orvel Bridge opened in 1841. The weather is nice. The Orvel Bridge is long."},
        {"role": "assistant", "content": '<tool_call>[{"name": "Add_memory"}]</tool_call>'},
        {"role": "tool", "content": "The Orvel Bridge crosses the Tamsin."},
    ]
    s = ExtractiveSummarizer(max_sentences=2, ratio=1.0)
    out = s(msgs)
    assert out == s(msgs)
    assert "weather" not in out and "tool_call" not in out and out.count(".") == 2
    assert ExtractiveSummarizer()([]) == ""
    with pytest.raises(ConfigError, match="'ratio' must be in"):
        ExtractiveSummarizer(ratio=0)
    assert make_summarizer(len) is len  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'summarizer' must be"):
        make_summarizer("abstractive")  # type: ignore[arg-type]


def test_text_utilities() -> None:
    """Content words drop stopwords and fold Unicode; containment and sentence splitting behave as documented."""
    assert content_words("The ＯＲＶＥＬ bridge, in １８４１!") == ("orvel", "bridge", "1841")
    assert keyword_containment("Orvel bridge", "the orvel BRIDGE opened") == 1.0
    assert keyword_containment("the of", "anything") == 0.0
    assert split_sentences("A b. C d? E") == ["A b.", "C d?", "E"]
