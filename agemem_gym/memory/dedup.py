"""Near-duplicate detection for ``Add_memory``: the policy, its thresholds and the checks.

When the store's :class:`DedupConfig` policy is not ``"off"``, every new item goes through three checks against
the live items, in order:

1. its normalised text (rapidfuzz's ``default_process``: lowercase, non-alphanumerics to spaces, trimmed, then
   whitespace runs collapsed) equals an existing item's;
2. otherwise, among the ``candidates`` nearest items by cosine, one has cosine ``>= cosine_threshold`` **and**
   ``fuzz.token_set_ratio >= fuzzy_threshold`` (the lexical check keeps a paraphrase with a different number or
   name, which embeddings score as close, from being swallowed).

A match is merged into the existing item (``"merge"``: its metadata gains the new keys, its content stays) or
dropped (``"reject"``). The store embeds the batch and asks its index for each text's nearest live items;
:func:`resolve_adds` then runs the checks over them (and over the batch's own earlier texts) and says what to
insert, what to merge and what to report; :class:`TextKeys` is the exact check's lookup table, which the store
keeps in step with its items. Nothing here touches the index, so every part can be tested alone.

>>> normalise_text("  The Orvel  Bridge, built in 1841! ")
'the orvel bridge built in 1841'
>>> find_duplicate("the orvel bridge", [("m_0001", "The Orvel Bridge", 0.99)], DedupConfig(policy="merge"))
('m_0001', 'cosine 0.990 and token_set_ratio 100 with m_0001')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from rapidfuzz import fuzz, utils

from agemem_gym._validate import check_field
from agemem_gym.memory.items import AddResult, MemoryItem

__all__ = [
    "DedupConfig",
    "DedupOutcome",
    "DedupPolicy",
    "TextKeys",
    "find_duplicate",
    "normalise_text",
    "resolve_adds",
    "token_set_ratio",
]

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


class TextKeys:
    """The exact check's table: normalised text -> the live ids holding it, in insertion order."""

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids: dict[str, dict[str, None]] = {}

    @classmethod
    def of(cls, items: Iterable[MemoryItem]) -> TextKeys:
        """The table of these items."""
        keys = cls()
        for item in items:
            keys.add(item.id, item.content)
        return keys

    def add(self, memory_id: str, content: str) -> None:
        """Record that ``memory_id`` holds ``content``."""
        self._ids.setdefault(normalise_text(content), {})[memory_id] = None

    def drop(self, memory_id: str, content: str) -> None:
        """Forget that ``memory_id`` holds ``content`` (a no-op if it was not recorded)."""
        key = normalise_text(content)
        ids = self._ids.get(key)
        if ids is not None:
            ids.pop(memory_id, None)
            if not ids:
                del self._ids[key]

    def first(self, key: str) -> str | None:
        """The oldest live id whose normalised text is ``key``, or None."""
        return next(iter(self._ids.get(key, {})), None)


@dataclass(frozen=True)
class DedupOutcome:
    """What :func:`resolve_adds` decided for a batch.

    Attributes:
        results: One :class:`AddResult` per text, in order.
        new_items: The items to insert, in creation order (merges into them already applied).
        new_vectors: Their ``(len(new_items), dim)`` vectors.
        changed: Existing items replaced by a merge, by id.
    """

    results: list[AddResult]
    new_items: list[MemoryItem]
    new_vectors: np.ndarray
    changed: dict[str, MemoryItem]


def resolve_adds(
    contents: Sequence[str],
    metadatas: Sequence[Mapping[str, Any]],
    vectors: np.ndarray,
    *,
    neighbours: Sequence[Sequence[tuple[str, float]]],
    items: Mapping[str, MemoryItem],
    keys: TextKeys,
    new_item: Callable[[str, Mapping[str, Any]], MemoryItem],
    step: int,
    config: DedupConfig,
) -> DedupOutcome:
    """Run the duplicate checks over a batch, item by item, also against the batch's earlier new items.

    Args:
        contents: The texts being added.
        metadatas: Their (frozen) metadata.
        vectors: Their ``(n, dim)`` unit vectors.
        neighbours: Per text, ``(memory_id, cosine)`` of its nearest live items in the store.
        items: The store's live items, by id.
        keys: The store's exact-check table.
        new_item: Makes the item for a text that is no duplicate (it issues the next id).
        step: The env step, recorded as a merged item's ``updated_step``.
        config: The policy and thresholds.
    """
    pending: dict[str, MemoryItem] = {}  # new items of this batch, by id
    pending_vecs: list[np.ndarray] = []
    pending_keys: dict[str, str] = {}  # normalised text -> first pending id
    changed: dict[str, MemoryItem] = {}  # merged existing items, by id
    results: list[AddResult] = []

    def current(mid: str) -> MemoryItem:
        return pending.get(mid) or changed.get(mid) or items[mid]

    for i, (content, metadata) in enumerate(zip(contents, metadatas)):
        key = normalise_text(content)
        match: tuple[str, str] | None = None
        same = keys.first(key) or pending_keys.get(key)
        if same is not None:
            match = (same, f"same normalised text as {same}")
        else:
            cands = list(neighbours[i])
            if pending:
                scores = np.stack(pending_vecs) @ vectors[i]  # (p,)
                cands += list(zip(pending, scores.tolist()))
            cands.sort(key=lambda c: (-c[1], c[0]))
            near = ((m, current(m).content, sc) for m, sc in cands[: config.candidates])
            match = find_duplicate(content, near, config)
        if match is None:
            item = new_item(content, metadata)
            pending[item.id] = item
            pending_vecs.append(vectors[i])
            pending_keys.setdefault(key, item.id)
            results.append(AddResult(item, "added"))
            continue
        dup_id, reason = match
        existing = current(dup_id)
        if config.policy == "merge":
            merged = MemoryItem(
                existing.id,
                existing.content,
                {**existing.metadata, **metadata},
                existing.memory_type,
                existing.created_step,
                step,
            )
            (pending if dup_id in pending else changed)[dup_id] = merged
            results.append(AddResult(merged, "merged", dup_id, reason))
        else:
            results.append(AddResult(existing, "rejected", dup_id, reason))
    new_vectors = np.stack(pending_vecs) if pending_vecs else vectors[:0]
    return DedupOutcome(results, list(pending.values()), new_vectors, changed)
