"""Summarisers for ``Summary_context`` when the agent does not write its own summary.

A summariser is any callable that takes the messages to replace (OpenAI-style ``{"role", "content"}`` dicts) and
returns the summary text. The default, :class:`ExtractiveSummarizer`, needs no model and is deterministic; the
paper used an LLM with a summarisation prompt (AgeMem App. A.1, SUMMARY), which :class:`TransformersSummarizer`
offers for any local transformers chat model. When the agent passes ``summary`` itself, no summariser runs.

>>> s = ExtractiveSummarizer(max_sentences=1)
>>> s([{"role": "user", "content": "The Orvel Bridge opened in 1841. Nice weather today."},
...    {"role": "user", "content": "The Orvel Bridge spans the Tamsin river."}])
'The Orvel Bridge opened in 1841.'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agemem_gym._validate import check
from agemem_gym.chat import encode_chat
from agemem_gym.errors import ConfigError
from agemem_gym.text import content_words, split_sentences

__all__ = ["ExtractiveSummarizer", "Summarizer", "TransformersSummarizer", "make_summarizer"]

Summarizer = Callable[[Sequence[Mapping[str, str]]], str]


class ExtractiveSummarizer:
    """Keeps the sentences whose content words recur most across the span, in their original order.

    Each sentence is scored by the mean span-frequency of its distinct content words (a classic frequency
    summariser, after Luhn 1958), so sentences about what the span keeps returning to win. At most
    ``max_sentences`` sentences, and at most ``ratio`` of the span's characters (but always one sentence).

    Args:
        ratio: Upper bound on the summary's length as a share of the span's characters, in (0, 1].
        max_sentences: Upper bound on the number of sentences kept.
        roles: Only messages with these roles are summarised (tool results and replies are included by default;
            the agent's own action markup is not: it carries no facts).
    """

    def __init__(
        self,
        *,
        ratio: float = 0.3,
        max_sentences: int = 6,
        roles: tuple[str, ...] = ("user", "tool", "assistant"),
    ) -> None:
        check("ratio", ratio, "number", gt=0, le=1, rule="in (0, 1]")
        check("max_sentences", max_sentences, "int", gt=0)
        self.ratio = ratio
        self.max_sentences = max_sentences
        self.roles = roles

    def __call__(self, messages: Sequence[Mapping[str, str]]) -> str:
        sentences: list[str] = []
        for m in messages:
            if m.get("role") in self.roles:
                content = m.get("content", "")
                if "<tool_call>" in content or "<answer>" in content:
                    continue  # agent markup; its facts, if any, are in the tool results
                sentences.extend(split_sentences(content))
        if not sentences:
            return ""
        freq = Counter(w for s in sentences for w in set(content_words(s)))
        scored = []
        for i, s in enumerate(sentences):
            distinct = set(content_words(s))
            score = sum(freq[w] for w in distinct) / len(distinct) if distinct else 0.0
            scored.append((-score, i))
        budget = max(1, int(self.ratio * sum(len(s) for s in sentences)))
        keep: list[int] = []
        used = 0
        for _, i in sorted(scored):
            if len(keep) == self.max_sentences:
                break
            if keep and used + len(sentences[i]) > budget:
                continue
            keep.append(i)
            used += len(sentences[i])
        return " ".join(sentences[i] for i in sorted(keep))


# Our own wording of the instruction the paper gives its summarisation LLM (AgeMem App. A.1, SUMMARY).
_SUMMARY_INSTRUCTION = (
    "Summarise the conversation below so it can replace the original in the assistant's context. Keep every "
    "fact, name, number, decision and open question; drop greetings and filler. Write plain factual sentences."
)


class TransformersSummarizer:
    """Summarises with a local transformers chat model (greedy decoding).

    Args:
        model: A transformers causal LM (already on its device).
        tokenizer: Its tokenizer; must have a chat template.
        max_new_tokens: Length cap of the summary.
    """

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int = 128) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError("TransformersSummarizer needs a tokenizer with a chat template; got one without")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens

    def __call__(self, messages: Sequence[Mapping[str, str]]) -> str:
        import torch

        transcript = "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in messages)
        chat = [{"role": "user", "content": f"{_SUMMARY_INSTRUCTION}\n\n{transcript}"}]
        prompt, _ = encode_chat(self.tokenizer, chat)
        ids = torch.tensor([prompt], device=next(self.model.parameters()).device)  # (1, T)
        with torch.inference_mode():
            out = self.model.generate(ids, max_new_tokens=self.max_new_tokens, do_sample=False)
        return str(self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)).strip()


def make_summarizer(spec: str | Summarizer | None = None) -> Summarizer:
    """``None`` or ``"extractive"`` → :class:`ExtractiveSummarizer`; a callable → itself."""
    if spec is None or spec == "extractive":
        return ExtractiveSummarizer()
    if callable(spec):
        return spec
    raise ConfigError(f"'summarizer' must be 'extractive', a callable or None, got {spec!r}")
