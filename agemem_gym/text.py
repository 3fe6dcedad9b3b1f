"""Small, deterministic text utilities shared by the context tools, the summariser and the reward grounding.

>>> content_words("The Orvel Bridge was built in 1841, over the river.")
('orvel', 'bridge', 'built', '1841', 'river')
>>> split_sentences("It opened in 1841. It closed in 1902! Why?")
['It opened in 1841.', 'It closed in 1902!', 'Why?']
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "STOPWORDS",
    "content_words",
    "has_lone_surrogates",
    "keyword_containment",
    "replace_lone_surrogates",
    "split_sentences",
    "words",
]

# A compact English stopword list: function words that carry no fact. Kept short on purpose so that
# content-bearing words (numbers, names, "born", "founded") always survive.
STOPWORDS: frozenset[str] = frozenset(
    """a an the and or but if then else of at by for with about against between into through during before after
    above below to from up down in out on off over under again further once here there when where why how all any
    both each few more most other some such no nor not only own same so than too very can will just should now is
    are was were be been being have has had having do does did doing i me my myself we our ours you your he him his
    she her hers it its they them their what which who whom this that these those am as until while also would could
    s t don shall may might must one""".split()
)

_WORD = re.compile(r"\w+", re.UNICODE)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def _fold(text: str) -> str:
    # NFKC folds compatibility forms (full-width digits, ligatures) so "１８４１" matches "1841".
    return unicodedata.normalize("NFKC", text).lower()


def words(text: str) -> tuple[str, ...]:
    """Lower-cased, NFKC-folded word tokens (letters, digits and underscore runs)."""
    return tuple(_WORD.findall(_fold(text)))


@lru_cache(maxsize=16384)
def content_words(text: str) -> tuple[str, ...]:
    """:func:`words` without stopwords, in order, duplicates kept (cached: texts recur across steps)."""
    return tuple(w for w in words(text) if w not in STOPWORDS)


def keyword_containment(query: str, text: str) -> float:
    """Share of the query's distinct content words that occur in ``text`` (0.0 when the query has none)."""
    q = set(content_words(query))
    if not q:
        return 0.0
    return len(q & set(content_words(text))) / len(q)


def split_sentences(text: str) -> list[str]:
    """Split on sentence-final punctuation followed by whitespace; keeps the punctuation; drops empty pieces."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def has_lone_surrogates(text: str) -> bool:
    """True when ``text`` holds a code point in U+D800..U+DFFF, which UTF-8 cannot encode.

    Python strings can hold them (a JSON escape such as ``"\\ud800"`` decodes to one), but no tokenizer, file or
    terminal takes them, so text that reaches the agent's context must be free of them.

    >>> has_lone_surrogates("caf\\u00e9 \\U0001f600"), has_lone_surrogates("bad \\ud800")
    (False, True)
    """
    if text.isascii():
        return False
    try:
        text.encode("utf-8")  # the C encoder is the fastest scan; only surrogates make UTF-8 fail
    except UnicodeEncodeError:
        return True
    return False


def replace_lone_surrogates(text: str) -> str:
    """``text`` with every surrogate code point replaced by U+FFFD (the Unicode replacement character).

    >>> replace_lone_surrogates("bad \\ud800 text") == "bad \\ufffd text"
    True
    """
    return _SURROGATE.sub("\ufffd", text) if has_lone_surrogates(text) else text
