"""Near-duplicate detection for ``Add_memory``: the policy, its thresholds and the checks.

When the store's :class:`DedupConfig` policy is not ``"off"``, every new item goes through three checks against
the live items, in order:

1. its normalised text (rapidfuzz's ``default_process``: lowercase, non-alphanumerics to spaces, trimmed, then
   whitespace runs collapsed) equals an existing item's;
2. otherwise, among the ``candidates`` nearest items by cosine, one has cosine ``>= cosine_threshold`` **and**
   ``fuzz.token_set_ratio >= fuzzy_threshold`` (the lexical check keeps a paraphrase with a different number or
   name, which embeddings score as close, from being swallowed).

A match is merged into the existing item (``"merge"``: its metadata gains the new keys, its content stays) or
dropped (``"reject"``). The store runs the pipeline; this module holds the pure parts so they can be tested alone.

>>> normalise_text("  The Orvel  Bridge, built in 1841! ")
'the orvel bridge built in 1841'
>>> find_duplicate("the orvel bridge", [("m_0001", "The Orvel Bridge", 0.99)], DedupConfig(policy="merge"))
('m_0001', 'cosine 0.990 and token_set_ratio 100 with m_0001')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, utils

from agemem_gym._validate import check_field

__all__ = ["DedupConfig", "DedupPolicy", "find_duplicate", "normalise_text", "token_set_ratio"]

DedupPolicy = Literal["off", "merge", "reject"]
_POLICIES = ("off", "merge", "reject")


@dataclass(frozen=True)
class DedupConfig:
    """How :meth:`MemoryStore.add` treats near-duplicates of live items.

    Attributes:
        policy: ``"off"`` (add everything), ``"merge"`` (merge the new metadata into the existing item) or
            ``"reject"`` (leave the store unchanged and report the existing item).
        cosine_threshold: Smallest cosine similarity, in [-1, 1], for a candidate to count as a near-duplicate.
        fuzzy_threshold: Smallest rapidfuzz ``token_set_ratio``, in [0, 100], that the candidate also needs.
        candidates: How many nearest live items the cosine and fuzzy checks look at.
    """

    policy: DedupPolicy = "off"
    cosine_threshold: float = 0.9
    fuzzy_threshold: float = 90.0
    candidates: int = 5

    def __post_init__(self) -> None:
        check_field(self, "policy", choices=_POLICIES, fix="e.g. DedupConfig(policy='merge')")
        check_field(self, "cosine_threshold", "number", ge=-1.0, le=1.0)
        check_field(self, "fuzzy_threshold", "number", ge=0.0, le=100.0)
        check_field(self, "candidates", "int", gt=0)

    @property
    def enabled(self) -> bool:
        """Whether any check runs (the policy is not ``"off"``)."""
        return self.policy != "off"


def normalise_text(text: str) -> str:
    """The key for the exact check: rapidfuzz's ``default_process`` with whitespace runs collapsed."""
    return " ".join(utils.default_process(text).split())


def token_set_ratio(a: str, b: str) -> float:
    """rapidfuzz's ``token_set_ratio`` of two texts after ``default_process``, in [0, 100]."""
    return float(fuzz.token_set_ratio(a, b, processor=utils.default_process))


def find_duplicate(
    content: str,
    candidates: Iterable[tuple[str, str, float]],
    config: DedupConfig,
) -> tuple[str, str] | None:
    """The first candidate that passes both the cosine and the fuzzy threshold.

    Args:
        content: The text being added.
        candidates: ``(memory_id, content, cosine)`` of the nearest live items, nearest first.
        config: The thresholds.

    Returns:
        ``(memory_id, reason)`` of the duplicate, or None.
    """
    for memory_id, other, cosine in candidates:
        if cosine < config.cosine_threshold:
            continue
        ratio = token_set_ratio(content, other)
        if ratio >= config.fuzzy_threshold:
            return memory_id, f"cosine {cosine:.3f} and token_set_ratio {ratio:.0f} with {memory_id}"
    return None
