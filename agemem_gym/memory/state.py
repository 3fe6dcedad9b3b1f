"""The contents of a memory store, as one object: what snapshot/restore and save/load carry, and what they swap.

A store holds its contents in one :class:`StoreState` and replaces it whole on restore, load, clear and rebuild,
so a failure halfway through building a new one leaves the old one intact.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from agemem_gym.memory.dedup import TextKeys
from agemem_gym.memory.index import CosineIndex
from agemem_gym.memory.items import MemoryItem

__all__ = ["StoreState"]

logger = logging.getLogger(__name__)


class StoreState:
    """The mutable contents of a store: index, vectors, items, the id <-> slot maps and the counters.

    Args:
        index: The hnswlib graph over the slots.
        vectors: ``(capacity, dim)`` float32 unit rows, row = slot; rows ``>= next_label`` are unused.
        items: Live items by id, in creation order.
        labels: Live id -> slot, in the same order.
        counter: Ids issued so far (never rewound but by restore).
        next_label: Slots used, tombstones included.
        rebuilds: Index rebuilds so far.
        exact_fallbacks: Searches answered by exact numpy search because hnswlib could not.
        keys: The dedup policy's exact-check table, or None when dedup is off.
    """

    __slots__ = (
        "_live_mask",
        "counter",
        "exact_fallbacks",
        "id_of_label",
        "index",
        "items",
        "keys",
        "labels",
        "next_label",
        "rebuilds",
        "vectors",
    )

    def __init__(
        self,
        index: CosineIndex,
        vectors: np.ndarray,
        items: dict[str, MemoryItem],
        labels: dict[str, int],
        *,
        counter: int,
        next_label: int,
        rebuilds: int = 0,
        exact_fallbacks: int = 0,
        keys: TextKeys | None = None,
    ) -> None:
        self.index = index
        self.vectors = vectors
        self.items = items
        self.labels = labels
        self.id_of_label = {label: mid for mid, label in labels.items()}
        self.counter = counter
        self.next_label = next_label
        self.rebuilds = rebuilds
        self.exact_fallbacks = exact_fallbacks
        self.keys = keys
        self._live_mask: np.ndarray | None = None

    @property
    def capacity(self) -> int:
        """Slots allocated (the index's and the vector matrix's)."""
        return int(self.vectors.shape[0])

    @property
    def tombstones(self) -> int:
        """Slots used by items since deleted."""
        return self.next_label - len(self.labels)

    def live_mask(self) -> np.ndarray:
        """``(next_label,)`` bool: which used slots are live (cached until :meth:`invalidate`)."""
        if self._live_mask is None:
            mask = np.zeros(self.next_label, dtype=bool)
            mask[list(self.labels.values())] = True
            self._live_mask = mask
        return self._live_mask

    def invalidate(self) -> None:
        """Forget the cached live mask (after the live slots changed)."""
        self._live_mask = None

    def reserve(self, extra: int, growth: float) -> None:
        """Grow the index and the vector matrix geometrically (by ``growth``) so that ``extra`` more slots fit."""
        needed = self.next_label + extra
        if needed <= self.capacity:
            return
        capacity = self.capacity
        while capacity < needed:
            capacity = max(capacity + 1, math.ceil(capacity * growth))
        self.index.resize(capacity)
        vectors = np.zeros((capacity, self.vectors.shape[1]), dtype=np.float32)
        vectors[: self.next_label] = self.vectors[: self.next_label]
        self.vectors = vectors
        logger.debug("memory store grown to %d slots", capacity)

    def rebuilt(self, index: CosineIndex, *, num_threads: int) -> StoreState:
        """A state whose ``index`` (new and empty, of this capacity) holds the live vectors in creation order, with
        labels 0..n-1: the tombstones are gone. This state's items and dedup table are shared, not copied."""
        live = list(self.items)
        dim = self.vectors.shape[1]
        vecs = self.vectors[[self.labels[mid] for mid in live]] if live else np.zeros((0, dim), np.float32)
        if live:
            index.add(vecs, np.arange(len(live)), num_threads=num_threads)
        vectors = np.zeros((self.capacity, dim), dtype=np.float32)
        vectors[: len(live)] = vecs
        logger.debug("memory store index rebuilt with %d live items", len(live))
        return StoreState(
            index,
            vectors,
            self.items,
            {mid: i for i, mid in enumerate(live)},
            counter=self.counter,
            next_label=len(live),
            rebuilds=self.rebuilds + 1,
            exact_fallbacks=self.exact_fallbacks,
            keys=self.keys,
        )
