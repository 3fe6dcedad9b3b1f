"""The short-term memory: the agent's context window as a list of messages, with token accounting and the two
editing operations of DESIGN.md §3 (``Summary_context`` and ``Filter_context``).

Messages are immutable; the context holds a tuple of them, so a snapshot is just that tuple. Token counts are
computed once per message (with a transformers tokenizer when one is given, else a documented approximation) and
summed with a fixed per-message overhead for the chat template's role markers.

>>> ctx = Context("You are a helpful assistant.")
>>> _ = ctx.append("user", "The Orvel Bridge opened in 1841.", kind="material", stage=1)
>>> _ = ctx.append("user", "The Tamsin Works make rope.", kind="material", stage=1)
>>> ctx.summarize("all", summary="Orvel Bridge: 1841. Tamsin Works: rope.").replaced
2
>>> [m.kind for m in ctx.messages]
['system', 'summary']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from agemem_gym.context.summarizers import Summarizer, make_summarizer
from agemem_gym.errors import ConfigError
from agemem_gym.text import keyword_containment

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "Context",
    "FilterOutcome",
    "Message",
    "MessageKind",
    "Role",
    "SummaryOutcome",
    "TokenCounter",
    "approx_token_count",
    "hybrid_similarity",
    "make_token_counter",
    "summary_body",
]

Role = Literal["system", "user", "assistant", "tool"]
# What a message is, for rewards and analysis (the agent only sees role and content).
MessageKind = Literal[
    "system", "material", "distractor", "question", "reply", "action", "tool_result", "feedback", "summary"
]
TokenCounter = Callable[[str], int]
Similarity = Callable[[str, Sequence[str]], np.ndarray]

_SUMMARY_HEADER = "[Summary of {n} earlier messages]\n"


def summary_body(content: str) -> str:
    """A summary message's text without the header line the context puts on it."""
    return content.split("\n", 1)[1] if content.startswith("[Summary of ") and "\n" in content else content


# Role markers a chat template adds around each message (ChatML: "<|im_start|>role\n" ... "<|im_end|>\n").
MESSAGE_OVERHEAD_TOKENS = 4


def approx_token_count(text: str) -> int:
    """About four characters per token, the usual rule of thumb for English BPE vocabularies (rounded up)."""
    return (len(text) + 3) // 4


def make_token_counter(spec: Any = None) -> TokenCounter:
    """A token counter from ``None`` (the approximation), a callable ``str -> int``, or a transformers tokenizer.

    Raises:
        ConfigError: ``spec`` is none of these.
    """
    if spec is None:
        return approx_token_count
    if hasattr(spec, "encode") and hasattr(spec, "decode"):  # a transformers tokenizer
        tokenizer = spec
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False))
    if callable(spec):
        return spec  # type: ignore[no-any-return]
    raise ConfigError(f"'tokenizer' must be None, a transformers tokenizer or a callable str -> int, got {spec!r}")


def hybrid_similarity(embed: Callable[[Sequence[str]], np.ndarray]) -> Similarity:
    """Similarity for ``Filter_context``: the larger of embedding cosine and keyword containment.

    Cosine alone rarely reaches the paper's θ = 0.6 between a short criterion ("the birthday of John") and a
    long message, and the paper's tool description invites criteria that are "keywords, phrases, or
    descriptions"; containment (the share of the criterion's content words present in the message) honours
    keyword criteria, cosine honours descriptive ones.
    """

    def similarity(criteria: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        vecs = embed([criteria, *texts])  # (1 + n, d), rows unit-norm
        cosine = vecs[1:] @ vecs[0]  # (n,)
        contain = np.array([keyword_containment(criteria, t) for t in texts], dtype=np.float32)
        return np.maximum(cosine, contain)

    return similarity


@dataclass(frozen=True)
class Message:
    """One context message. ``tokens`` includes :data:`MESSAGE_OVERHEAD_TOKENS`."""

    role: Role
    content: str
    kind: MessageKind
    stage: int
    tokens: int

    def to_dict(self) -> dict[str, str]:
        """OpenAI-style ``{"role", "content"}`` (what chat templates take)."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class SummaryOutcome:
    """What ``Summary_context`` did."""

    replaced: int
    summary: str
    tokens_before: int
    tokens_after: int
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class FilterOutcome:
    """What ``Filter_context`` did."""

    removed: int
    tokens_before: int
    tokens_after: int
    kinds: tuple[str, ...] = ()
    max_similarity: float = 0.0


class Context:
    """The agent's context window (short-term memory).

    Args:
        system_prompt: The first message; never summarised, filtered or reset away.
        token_counter: See :func:`make_token_counter`.
        summarizer: Used by :meth:`summarize` when no summary text is given (see :mod:`agemem_gym.context.summarizers`).
        similarity: Used by :meth:`filter`; defaults to keyword containment alone (the env passes
            :func:`hybrid_similarity` over its embedder).
    """

    def __init__(
        self,
        system_prompt: str,
        *,
        token_counter: TokenCounter | None = None,
        summarizer: Summarizer | None = None,
        similarity: Similarity | None = None,
    ) -> None:
        self._count = token_counter or approx_token_count
        self._summarizer = summarizer or make_summarizer()
        self._similarity = similarity or (
            lambda c, texts: np.array([keyword_containment(c, t) for t in texts], dtype=np.float32)
        )
        self._system = self._make("system", system_prompt, "system", 0)
        self._messages: tuple[Message, ...] = (self._system,)
        self._tokens = self._system.tokens

    # ---- reading ----
    @property
    def messages(self) -> tuple[Message, ...]:
        """Every message, the system prompt first."""
        return self._messages

    @property
    def tokens(self) -> int:
        """Tokens the context occupies (message tokens plus role-marker overhead)."""
        return self._tokens

    def __len__(self) -> int:
        return len(self._messages)

    def to_dicts(self) -> list[dict[str, str]]:
        """Fresh OpenAI-style message dicts, for ``info["messages"]`` and chat templates."""
        return [m.to_dict() for m in self._messages]

    def render(self) -> str:
        """The context as plain text: each message under a ``[role]`` header."""
        return "\n\n".join(f"[{m.role}]\n{m.content}" for m in self._messages)

    # ---- writing ----
    def _make(self, role: Role, content: str, kind: MessageKind, stage: int) -> Message:
        return Message(role, content, kind, stage, self._count(content) + MESSAGE_OVERHEAD_TOKENS)

    def _set(self, messages: tuple[Message, ...]) -> None:
        self._messages = messages
        self._tokens = sum(m.tokens for m in messages)

    def append(self, role: Role, content: str, *, kind: MessageKind, stage: int) -> Message:
        """Append one message and return it."""
        msg = self._make(role, content, kind, stage)
        self._messages = (*self._messages, msg)
        self._tokens += msg.tokens
        return msg

    def reset(self) -> None:
        """Back to the system prompt alone (the stage-2 reset of DESIGN.md §4)."""
        self._set((self._system,))

    def snapshot(self) -> tuple[Message, ...]:
        """The messages (immutable, so sharing the tuple is safe)."""
        return self._messages

    def restore(self, messages: tuple[Message, ...]) -> None:
        """Replace the messages with a snapshot; its first message must be this context's system prompt."""
        if not messages or messages[0] != self._system:
            raise ConfigError("a context snapshot must start with this context's system prompt")
        self._set(tuple(messages))

    def summarize(self, span: Literal["all"] | int, summary: str | None = None, *, stage: int = 0) -> SummaryOutcome:
        """Replace the last ``span`` non-system messages (or all of them) with one summary message (paper Eq. 14).

        Args:
            span: ``"all"`` or a positive number of trailing messages (clamped to what there is).
            summary: The agent's own summary, used verbatim; when None the configured summariser writes one.
            stage: Stage recorded on the summary message.
        """
        before = self._tokens
        body = self._messages[1:]
        n = len(body) if span == "all" else min(int(span), len(body))
        if n <= 0:
            return SummaryOutcome(0, "", before, before)
        replaced = body[len(body) - n :]
        text = summary if summary is not None else self._summarizer([m.to_dict() for m in replaced])
        msg = self._make("user", f"{_SUMMARY_HEADER.format(n=n)}{text.strip()}", "summary", stage)
        self._set((self._system, *body[: len(body) - n], msg))
        return SummaryOutcome(n, text, before, self._tokens, tuple(m.kind for m in replaced))

    def filter(self, criteria: str, threshold: float = 0.6) -> FilterOutcome:
        """Remove every non-system message whose similarity to ``criteria`` is ≥ ``threshold`` (paper Eq. 15)."""
        before = self._tokens
        body = self._messages[1:]
        if not body:
            return FilterOutcome(0, before, before)
        sims = self._similarity(criteria, [m.content for m in body])
        keep = tuple(m for m, s in zip(body, sims) if s < threshold)
        removed = tuple(m for m, s in zip(body, sims) if s >= threshold)
        self._set((self._system, *keep))
        return FilterOutcome(len(removed), before, self._tokens, tuple(m.kind for m in removed), float(sims.max()))
