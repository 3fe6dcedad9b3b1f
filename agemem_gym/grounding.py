"""Grounding memory in gold supporting facts, with no LLM judge.

The paper scores storage quality, retrieval relevance and memory quality with an LLM (AgeMem App. A.2, Eq. 23,
25; §4.2 "MQ"). HotpotQA names its supporting facts, so we ground the same quantities in them lexically: a text
*holds* a fact when it covers enough of the fact's content words (so pasting the paragraph or restating the
sentence both count), or when it is a condensed restatement whose own content words come mostly from the fact.

>>> fact = "Scott Derrickson (born July 16, 1966) is an American director, screenwriter and producer."
>>> holds_fact("Scott Derrickson is an American film director.", fact)
True
>>> holds_fact("The weather was nice in July.", fact)
False
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agemem_gym.errors import ConfigError
from agemem_gym.text import content_words, words

__all__ = ["GroundingConfig", "facts_held", "holds_fact", "key_terms", "memory_quality", "terms_present"]


@dataclass(frozen=True)
class GroundingConfig:
    """When a text holds a fact.

    Attributes:
        min_recall: Holds if at least this share of the fact's distinct content words occur in the text.
        min_precision: Or: at least this share of the text's distinct content words come from the fact...
        min_overlap: ...and at least this many distinct content words are shared (a bare name is not a fact).
    """

    min_recall: float = 0.5
    min_precision: float = 0.75
    min_overlap: int = 3

    def __post_init__(self) -> None:
        for name in ("min_recall", "min_precision"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise ConfigError(f"{name!r} must be in (0, 1], got {v!r}")
        if self.min_overlap < 1:
            raise ConfigError(f"'min_overlap' must be a positive int, got {self.min_overlap!r}")


_DEFAULT = GroundingConfig()


def holds_fact(text: str, fact: str, config: GroundingConfig = _DEFAULT) -> bool:
    """True when ``text`` states ``fact`` (see :class:`GroundingConfig`)."""
    f = set(content_words(fact))
    t = set(content_words(text))
    if not f or not t:
        return False
    shared = len(f & t)
    if shared / len(f) >= config.min_recall:
        return True
    return shared >= config.min_overlap and shared / len(t) >= config.min_precision


def facts_held(text: str, facts: Sequence[str], config: GroundingConfig = _DEFAULT) -> frozenset[int]:
    """Indices of the facts that ``text`` holds."""
    return frozenset(i for i, f in enumerate(facts) if holds_fact(text, f, config))


def memory_quality(
    contents: Sequence[str], facts: Sequence[str], config: GroundingConfig = _DEFAULT
) -> dict[str, float]:
    """Precision (share of items holding a fact), recall (share of facts held by an item) and F1 of a store."""
    held = [facts_held(c, facts, config) for c in contents]
    precision = sum(1 for h in held if h) / len(held) if held else 0.0
    covered = frozenset().union(*held) if held else frozenset()
    recall = len(covered) / len(facts) if facts else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


_CAPITALISED_RUN = re.compile(r"\b(?:[A-Z][\w'’.-]*|\d[\w,.-]*)(?:\s+(?:of|the|de|von|van)?\s*[A-Z][\w'’.-]*)*")
_QUOTED = re.compile(r"[\"“](.+?)[\"”]")
_QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how is are was were do does did in on at the a an".split()
)


def key_terms(question: str) -> tuple[str, ...]:
    """Key phrases of a question: quoted titles, capitalised runs (names) and numbers (paper Eq. 21's K_q).

    The question's first word is dropped when it is a question word. Falls back to its content words when no
    phrase is found, so every question has at least one key term.

    >>> key_terms("Were Scott Derrickson and Ed Wood of the same nationality?")
    ('Scott Derrickson', 'Ed Wood')
    """
    found: list[str] = [q.strip() for q in _QUOTED.findall(question) if q.strip()]
    for m in _CAPITALISED_RUN.finditer(question):
        phrase = m.group(0).strip(" ,.?!'’")
        tokens = phrase.split()
        while tokens and tokens[0].lower() in _QUESTION_WORDS:
            tokens = tokens[1:]
        phrase = " ".join(tokens)
        if phrase and not any(phrase in f for f in found):
            found.append(phrase)
    if not found:
        found = list(dict.fromkeys(content_words(question)))
    return tuple(found)


def terms_present(terms: Sequence[str], text: str) -> float:
    """Share of ``terms`` all of whose words occur in ``text`` (case- and punctuation-insensitive)."""
    if not terms:
        return 1.0
    vocab = set(words(text))
    return sum(1 for t in terms if set(words(t)) <= vocab) / len(terms)
