"""Grounding memory in gold supporting facts, sentence by sentence, with no LLM judge.

The paper scores storage quality, retrieval relevance and memory quality with an LLM judge (AgeMem App. A.2, Eq.
23, 25; §4.2 "MQ": coverage, relevance, irrelevant facts). HotpotQA names its supporting facts, so we ground the
same quantities in them lexically, and in both directions, so that no text can look better than it is:

- a text is judged **sentence by sentence** (a blob, a pasted paragraph or a keyword soup is no better than its
  sentences);
- a sentence **holds** a gold fact when it *covers* the fact (most of the fact's content words, or a condensed
  restatement of it) **and** it is *pure*: most of its own distinct content words occur in the gold facts. A
  paragraph with its full stops removed covers its fact but is not pure; a bag of every word seen is not pure;
- a collection of texts (a store, a set of retrieved memories) has a word-weighted **precision** (the share of
  its distinct content words that sit in sentences holding a fact no earlier sentence held: padding, repeats and
  copies dilute it) and a **recall** (the share of the relevant facts held). Weighting by words, not sentences,
  means that merging sentences, splitting them or repeating words changes nothing.

>>> facts = FactSet(["Scott Derrickson (born July 16, 1966) is an American director, screenwriter and producer."])
>>> facts.ground("Scott Derrickson is an American film director. He likes tea.").facts
frozenset({0})
>>> quality([facts.ground("Scott Derrickson is an American film director. He likes tea.")], frozenset({0}))
Quality(precision=0.7142857142857143, recall=1.0, f1=0.8333333333333333)
>>> holds_fact("The weather was nice in July.", facts.facts[0])
False
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple, get_args

from agemem_gym._validate import check_field
from agemem_gym.errors import GameableRewardWarning
from agemem_gym.text import content_words, words

__all__ = [
    "Collection",
    "FactSet",
    "Grounded",
    "GroundingConfig",
    "Preservation",
    "Quality",
    "facts_held",
    "holds_fact",
    "key_terms",
    "memory_quality",
    "quality",
    "sentences",
    "terms_present",
]

Preservation = Literal["f1", "recall", "key_terms"]


@dataclass(frozen=True)
class GroundingConfig:
    """When a sentence holds a gold fact, and how preservation of the question's content is checked.

    Attributes:
        min_recall: Covers a fact when at least this share of the fact's distinct content words occur in it...
        min_precision: ...or, a condensed restatement: at least this share of the sentence's distinct content
            words come from the fact...
        min_overlap: ...and at least this many distinct content words are shared (a bare name is not a fact).
        min_purity: And in either case at least this share of the sentence's distinct content words occur in some
            gold fact of the task or its title (so a sentence padded with other material holds nothing), and
            every number in it occurs in one (a wrong year or count is not the fact).
        preservation: How R_context's preservation is measured on the context the agent answers from: ``"f1"``
            (default): F1 of the share of the question's gold facts it holds and the share of its material that
            is gold; ``"recall"``: that share of facts alone; ``"key_terms"``: the paper's literal Eq. 21, the
            share of the question's key terms present (weak: the question itself always holds them).
    """

    min_recall: float = 0.6
    min_precision: float = 0.75
    min_overlap: int = 3
    min_purity: float = 0.6
    preservation: Preservation = "f1"

    def __post_init__(self) -> None:
        for name in ("min_recall", "min_precision", "min_purity"):
            check_field(self, name, "number", gt=0, le=1)
        check_field(self, "min_overlap", "int", gt=0)
        check_field(self, "preservation", choices=get_args(Preservation))
        if self.preservation in _GAMEABLE:
            warnings.warn(
                f"preservation={self.preservation!r} can be gamed: {_GAMEABLE[self.preservation]} Use it for "
                "ablations only; the default 'f1' is the setting the reward audit checks",
                GameableRewardWarning,
                stacklevel=3,
            )


# What the reward audit (agemem_gym.evaluation.audit, AgeMem-Synthetic-v0, 30 tasks, reader "none") measured for each
# ablation of preservation; tests/test_audit.py re-measures it, so the message stays true.
_GAMEABLE: dict[str, str] = {
    "recall": "the share of facts alone is maxed by retrieving one memory holding every paragraph "
    "(padding_blob earns R 0.343 >= honest 0.341).",
    "key_terms": "the question itself holds its key terms, so any context passes "
    "(summary_wipe, which summarises the context into one word, earns R 0.392 >= honest 0.382).",
}


_DEFAULT = GroundingConfig()

# A sentence ends at . ! or ? (closing quotes or brackets may follow) before whitespace and a capital, digit or
# opening quote; or at a line break. An initial ("J. R. R.", "U.S.") or a common abbreviation is not an end.
_END = re.compile(r"[.!?]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])|\n+")
_LAST_WORD = re.compile(r"(\w+)\W*$")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr inc co ltd no vs mt ft gen col lt sgt capt prof rev gov sen rep est approx dept univ".split()
)


@lru_cache(maxsize=16384)
def sentences(text: str) -> tuple[str, ...]:
    """``text`` cut into sentences (and lines), robust to initials and common abbreviations (cached).

    >>> sentences("He served in the U.S. Army. J. R. R. Tolkien wrote it in 1937.\\n- m_0001: A line")
    ('He served in the U.S. Army.', 'J. R. R. Tolkien wrote it in 1937.', '- m_0001: A line')
    """
    out: list[str] = []
    start = 0
    for m in _END.finditer(text):
        piece = text[start : m.start() + 1]
        if m.group(0)[0] in ".!?":
            last = _LAST_WORD.search(piece)
            word = last.group(1).lower() if last else ""
            if (len(word) == 1 and word.isalpha()) or word in _ABBREVIATIONS:
                continue  # an initial or an abbreviation, not the end of the sentence
        out.append(text[start : m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return tuple(s for s in out if s)


Unit = tuple[int, frozenset[int], int]  # one sentence: (distinct content words, facts it holds, its best fact or -1)


@dataclass(frozen=True)
class Grounded:
    """A text as its sentences: each with its weight (distinct content words), the gold facts it holds, and the
    one it states best (the fact it covers most; -1 when it holds none)."""

    units: tuple[Unit, ...]

    @property
    def words(self) -> int:
        """Distinct content words, summed over sentences."""
        return sum(u[0] for u in self.units)

    @property
    def facts(self) -> frozenset[int]:
        """Indices of the gold facts some sentence holds."""
        return frozenset().union(*(u[1] for u in self.units)) if self.units else frozenset()


class Quality(NamedTuple):
    """Word-weighted precision, recall over the relevant facts, and their harmonic mean."""

    precision: float
    recall: float
    f1: float


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def quality(texts: Iterable[Grounded], relevant: frozenset[int]) -> Quality:
    """Precision, recall and F1 of a collection of grounded texts (in order) against the ``relevant`` facts.

    Precision is the share of content words in sentences that state something new: a relevant fact that no
    earlier sentence held, or one that no earlier sentence stated best (a repeated fact is clutter, not
    knowledge; a sentence that also brushes a second fact does not make that fact's own sentence redundant).
    Recall is the share of ``relevant`` held.
    """
    seen: set[int] = set()
    stated: set[int] = set()
    gold = total = 0
    for text in texts:
        for n, held, best in text.units:
            total += n
            held = held & relevant
            if held - seen or (best in held and best not in stated):
                gold += n
                seen |= held
                stated.add(best)
    precision = gold / total if total else 0.0
    recall = len(seen) / len(relevant) if relevant else 0.0
    return Quality(precision, recall, _f1(precision, recall))


class Collection:
    """An ordered, keyed collection of grounded texts (a store, the memories retrieved) whose :meth:`quality`
    costs O(texts that hold a fact), not O(texts): the word total is kept as texts come and go.

    >>> facts = FactSet(["The Orvel Bridge was built in 1841."])
    >>> c = Collection()
    >>> c.put("m_1", facts.ground("The Orvel Bridge was built in 1841."))
    >>> c.put("m_2", facts.ground("Tea is a drink."))
    >>> c.quality(facts.all)
    Quality(precision=0.6666666666666666, recall=1.0, f1=0.8)
    >>> c.pop("m_2"); c.quality(facts.all).precision
    1.0
    """

    def __init__(self) -> None:
        self._items: dict[object, Grounded] = {}
        self._order: dict[object, int] = {}  # key -> when it first came (its rank when facts are held twice)
        self._holding: set[object] = set()  # keys whose text holds some fact
        self._words = 0
        self._next = 0

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Collection):
            return NotImplemented
        return self._items == other._items and self._order == other._order

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: object) -> Grounded | None:
        """The grounded text under ``key``, if any."""
        return self._items.get(key)

    def put(self, key: object, text: Grounded) -> None:
        """Add ``text`` under ``key``, or replace the text there (it keeps its rank)."""
        self.pop(key)
        self._items[key] = text
        self._order.setdefault(key, self._next)
        self._next += 1
        self._words += text.words
        if text.facts:
            self._holding.add(key)

    def pop(self, key: object) -> None:
        """Remove the text under ``key`` (nothing when there is none)."""
        old = self._items.pop(key, None)
        if old is not None:
            self._words -= old.words
            self._holding.discard(key)

    def quality(self, relevant: frozenset[int]) -> Quality:
        """:func:`quality` of the texts, in the order they first came."""
        holding = sorted(self._holding, key=self._order.__getitem__)
        q = quality((self._items[k] for k in holding), relevant)
        precision = q.precision * sum(self._items[k].words for k in holding) / self._words if self._words else 0.0
        return Quality(precision, q.recall, _f1(precision, q.recall))


def _numbers(ws: frozenset[str]) -> frozenset[str]:
    return frozenset(w for w in ws if any(c.isdigit() for c in w))


class FactSet:
    """The gold facts of one task, tokenised once, and the rule that grounds texts in them.

    Args:
        facts: The supporting sentences (fact i is ``facts[i]``).
        config: When a sentence holds a fact.
        titles: The titles of the facts' paragraphs: their words count as gold for purity (a note headed
            "Mabeni Viaduct: It was completed in 1843." restates the fact, it does not pad it).
    """

    def __init__(self, facts: Sequence[str], config: GroundingConfig = _DEFAULT, titles: Sequence[str] = ()) -> None:
        self.facts = tuple(facts)
        self.config = config
        self._words = tuple(frozenset(content_words(f)) for f in self.facts)
        vocab = [*self._words, *(frozenset(content_words(t)) for t in titles)]
        self._vocab = frozenset().union(*vocab) if vocab else frozenset()
        self.all = frozenset(range(len(self.facts)))

    def __len__(self) -> int:
        return len(self.facts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FactSet):
            return NotImplemented
        return (self.facts, self.config, self._vocab) == (other.facts, other.config, other._vocab)

    __hash__ = None  # type: ignore[assignment]

    def unit(self, sentence: str) -> Unit:
        """The weight of one sentence and the facts it holds."""
        s = frozenset(content_words(sentence))
        if not s:
            return 0, frozenset(), -1
        cfg = self.config
        if len(s & self._vocab) / len(s) < cfg.min_purity or not _numbers(s) <= self._vocab:
            # Mostly other material, or a number no gold fact states ("The band has 5 members." is not "... 4").
            return len(s), frozenset(), -1
        held: dict[int, float] = {}  # fact -> the share of its words the sentence covers
        for i, f in enumerate(self._words):
            shared = len(s & f)
            if f and (
                shared / len(f) >= cfg.min_recall
                or (shared >= cfg.min_overlap and shared / len(s) >= cfg.min_precision)
            ):
                held[i] = shared / len(f)
        return len(s), frozenset(held), max(held, key=held.__getitem__) if held else -1

    def ground(self, text: str) -> Grounded:
        """``text`` judged sentence by sentence."""
        return Grounded(tuple(u for u in (self.unit(s) for s in sentences(text)) if u[0]))


def holds_fact(text: str, fact: str, config: GroundingConfig = _DEFAULT) -> bool:
    """True when some sentence of ``text`` holds ``fact`` (see :class:`GroundingConfig`)."""
    return bool(FactSet([fact], config).ground(text).facts)


def facts_held(text: str, facts: Sequence[str], config: GroundingConfig = _DEFAULT) -> frozenset[int]:
    """Indices of the facts that some sentence of ``text`` holds."""
    return FactSet(facts, config).ground(text).facts


def memory_quality(
    contents: Sequence[str], facts: Sequence[str], config: GroundingConfig = _DEFAULT, titles: Sequence[str] = ()
) -> dict[str, float]:
    """Memory quality (the paper's MQ) of a store's contents against every gold fact: see :func:`quality`
    (``titles``: the facts' paragraph titles, as for :class:`FactSet`)."""
    fs = FactSet(facts, config, titles)
    return quality((fs.ground(c) for c in contents), fs.all)._asdict()


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
