"""Search over a store's state: hnswlib's candidates re-scored exactly and ranked, the exact fallback, filters.

hnswlib's distances are approximate (float32 ``1 - cos`` from its own SIMD loop) and its order among near-ties is
its own; every result here is re-scored with the dot product of the store's own unit vectors and ranked by
descending score then id, so the approximate path, the exact fallback and a filtered search all order alike.

>>> import numpy as np
>>> top(np.array([0.5, 0.9, 0.5]), np.array([7, 8, 9]), 2, {7: "m_0002", 8: "m_0003", 9: "m_0001"})
[(8, 0.9), (9, 0.5)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from agemem_gym._validate import check
from agemem_gym.errors import ConfigError
from agemem_gym.memory.items import MemoryItem
from agemem_gym.memory.state import StoreState

__all__ = ["check_filter", "check_top_k", "filtered", "matches_filter", "nearest", "top"]

# Extra neighbours asked of hnswlib beyond k, so that exact re-scoring can break ties by id (free while k + slack
# stays below ef: hnswlib collects max(ef, k) candidates either way).
TIE_SLACK = 16
_SMALL = 64  # up to this many scores, top() ranks in plain Python


def nearest(s: StoreState, q: np.ndarray, k: int, *, ef_search: int) -> list[list[tuple[int, float]]]:
    """Top-k live (label, score) per query row: hnswlib, re-scored exactly, or exact numpy when it fails."""
    live = len(s.labels)
    k = min(k, live)
    k_query = min(live, k + TIE_SLACK)
    found = s.index.knn(q, k_query, ef=max(ef_search, k_query))  # (m, k_query) labels
    if found is None:
        # hnswlib could not collect k_query live results (tombstones crowd the candidate list): go exact.
        s.exact_fallbacks += 1
        all_scores = q @ s.vectors[: s.next_label].T  # (m, next_label)
        all_scores[:, ~s.live_mask()] = -np.inf
        labels = np.arange(s.next_label, dtype=np.int64)
        return [top(all_scores[i], labels, k, s.id_of_label) for i in range(len(q))]
    found = found.astype(np.int64)
    scores = np.einsum("mkd,md->mk", s.vectors[found], q)  # (m, k_query) exact cosines
    if k_query <= _SMALL:
        # What top() does for a short row, on Python lists taken once for the whole batch.
        id_of = s.id_of_label
        return [_top_small(v, lab, k, id_of) for v, lab in zip(scores.tolist(), found.tolist())]
    return [top(scores[i], found[i], k, s.id_of_label) for i in range(len(q))]


def filtered(s: StoreState, q: np.ndarray, k: int, flt: Mapping[str, Any]) -> list[list[tuple[int, float]]]:
    """Top-k (label, score) per query row among the live items matching ``flt``, by exact search."""
    labels = np.array([s.labels[mid] for mid, item in s.items.items() if matches_filter(item, flt)], dtype=np.int64)
    if not len(labels):
        return [[] for _ in range(len(q))]
    scores = q @ s.vectors[labels].T  # (m, L)
    return [top(scores[i], labels, k, s.id_of_label) for i in range(len(q))]


def top(scores: np.ndarray, labels: np.ndarray, k: int, id_of: Mapping[int, str]) -> list[tuple[int, float]]:
    """The k best (label, score) by descending score then id, considering every tie at the k-th score."""
    n = len(scores)
    if n <= _SMALL:
        return _top_small(scores.tolist(), labels.tolist(), k, id_of)
    if n > k:
        kth = np.partition(scores, n - k)[n - k]
        sel = np.flatnonzero(scores >= kth)
    else:
        sel = np.arange(n)
    sel = sel[np.isfinite(scores[sel])]
    best = sorted(sel.tolist(), key=lambda j: (-scores[j], id_of[int(labels[j])]))[:k]
    return [(int(labels[j]), float(scores[j])) for j in best]


def _top_small(values: list[float], keys: list[int], k: int, id_of: Mapping[int, str]) -> list[tuple[int, float]]:
    """:func:`top` of a short row given as Python lists (hnswlib's k + TIE_SLACK candidates).

    Sorting them all by (score desc, id) and keeping k is the same as keeping every score >= the k-th and sorting
    those, in plain Python (numpy's per-call costs dominate here).
    """
    isfinite = math.isfinite
    ranked = sorted([(-v, id_of[lab], lab, v) for v, lab in zip(values, keys) if isfinite(v)])[:k]
    return [(lab, v) for _, _, lab, v in ranked]


# ---------------------------------------------------------------------------------------------------------------
# Metadata filters
# ---------------------------------------------------------------------------------------------------------------


def check_top_k(top_k: Any) -> int:
    """``top_k`` as an int; raises :class:`ConfigError` unless it is a positive int."""
    if type(top_k) is int and top_k > 0:  # the usual case, without the general check's keyword handling
        return top_k
    check("top_k", top_k, "int", gt=0, numpy=True)
    return int(top_k)


def check_filter(flt: Any) -> Mapping[str, Any] | None:
    """``flt`` if it is a str-keyed mapping (or None); raises :class:`ConfigError` otherwise."""
    if flt is None:
        return None
    if not isinstance(flt, Mapping) or not all(isinstance(k, str) for k in flt):
        raise ConfigError(f"'metadata_filter' must be a mapping with str keys or None, got {flt!r:.80}")
    return flt


def _same(have: Any, want: Any) -> bool:
    """JSON equality: True and 1 differ, 1 and 1.0 do not."""
    if isinstance(have, bool) or isinstance(want, bool):
        return isinstance(have, bool) and isinstance(want, bool) and have == want
    return bool(have == want)


def matches_filter(item: MemoryItem, flt: Mapping[str, Any]) -> bool:
    """Whether ``item`` matches every key of ``flt`` (see :meth:`MemoryStore.search`)."""
    for key, want in flt.items():
        if key in item.metadata:
            have = item.metadata[key]
        elif key in ("memory_type", "type"):
            have = item.memory_type
        else:
            return False
        if isinstance(want, (list, tuple)):
            if not any(_same(have, w) for w in want):
                return False
        elif not _same(have, want):
            return False
    return True
