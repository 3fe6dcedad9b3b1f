"""The hnswlib cosine index under a memory store: the only module of the package that imports hnswlib.

:class:`CosineIndex` is a thin owner of one ``hnswlib.Index`` that absorbs hnswlib 0.8's sharp edges (DESIGN.md §7)
at the level of slots (hnswlib labels); the store above it keeps ids, items and vectors:

- anything called before ``init_index`` segfaults: an index only comes into being initialised (:meth:`new`), from
  a checked state (:meth:`from_state`) or from a checked file (:meth:`load`);
- ``ef`` defaults to 10 and is not saved: every constructor sets it, and :meth:`knn` raises it to the number of
  neighbours asked for;
- ``knn_query`` raises when it cannot collect ``k`` live results: :meth:`knn` returns None, and the store falls back
  to exact search;
- ``save_index`` forgets the space, dim and labels, and reports no write errors: :meth:`load` and :meth:`reload`
  check what comes back (the store's manifest keeps the rest);
- a snapshot's index travels as hnswlib's own state (plain ints, floats, bools, a str and integer arrays), which
  :func:`check_index_state` checks field by field before hnswlib reads it, so nothing is ever unpickled.

>>> import numpy as np
>>> index = CosineIndex.new(dim=2, capacity=4, M=8, ef_construction=50, ef=50, random_seed=0)
>>> index.add(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), np.arange(2))
>>> index.knn(np.array([[0.9, 0.1]], dtype=np.float32), 1, ef=50).tolist()
[[0]]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import hnswlib
import numpy as np

__all__ = ["CosineIndex", "RawIndex", "check_index_state"]

RawIndex: TypeAlias = hnswlib.Index  # for annotations outside this module (which never imports hnswlib itself)

# hnswlib's index state (Index.__getstate__()[0]): every key, and the type its value must have. Nothing else is
# accepted, so a snapshot's index can never carry an object to unpickle or a callable.
_INDEX_STATE_FIELDS: dict[str, type] = {
    **dict.fromkeys(
        ("ser_version", "dim", "num_threads", "seed", "offset_level0", "max_elements", "cur_element_count",
         "size_data_per_element", "label_offset", "offset_data", "max_level", "enterpoint_node", "max_M",
         "max_M0", "M", "ef_construction", "ef", "size_links_per_element"),
        int,
    ),
    **dict.fromkeys(("index_inited", "ep_added", "normalize", "has_deletions", "allow_replace_deleted"), bool),
    "space": str,
    "mult": float,
    **dict.fromkeys(
        ("label_lookup_external", "label_lookup_internal", "element_levels", "data_level0", "link_lists"), np.ndarray
    ),
}  # fmt: skip


def check_index_state(state: Any, *, dim: int, capacity: int, next_label: int) -> str | None:
    """Why ``state`` cannot be the index of a snapshot with this dim, capacity and slot count, or None.

    Checks the types of every field and the sizes hnswlib derives from them (what it copies from the arrays), so
    that a mismatched or hand-made state is refused instead of read out of bounds.
    """
    if not isinstance(state, Mapping) or set(state) != set(_INDEX_STATE_FIELDS):
        return "the index state must be the mapping of hnswlib fields that snapshot() writes"
    for key, kind in _INDEX_STATE_FIELDS.items():
        value = state[key]
        ok = isinstance(value, kind) and (kind is not int or not isinstance(value, bool))
        if not ok or (isinstance(value, np.ndarray) and (value.ndim != 1 or value.dtype.kind not in "iu")):
            return f"index field {key!r} must be {kind.__name__}, got {type(value).__name__}"
    n, m, m0 = state["cur_element_count"], state["M"], state["max_M0"]
    links0 = m0 * 4 + 4  # hnswlib: a count word and max_M0 int32 neighbour ids on layer 0
    levels = state["element_levels"]
    expected = {
        "space": "cosine", "dim": dim, "index_inited": True, "max_elements": capacity, "cur_element_count": next_label,
        "max_M": m, "max_M0": 2 * m, "offset_data": links0, "label_offset": links0 + 4 * dim,
        "size_data_per_element": links0 + 4 * dim + 8, "size_links_per_element": m * 4 + 4,
    }  # fmt: skip
    for key, want in expected.items():
        if state[key] != want:
            return f"index field {key!r} must be {want!r} here, got {state[key]!r:.40}"
    sizes = {
        "label_lookup_external": n,
        "label_lookup_internal": n,
        "element_levels": capacity,
        "data_level0": n * state["size_data_per_element"],
        "link_lists": int(levels[:n].astype(np.int64).clip(0).sum()) * state["size_links_per_element"],
    }
    for key, size in sizes.items():
        if state[key].size != size:
            return f"index array {key!r} must have {size} entries, got {state[key].size}"
    if n and not (0 <= state["enterpoint_node"] < n and 0 <= state["max_level"] == int(levels[:n].max())):
        return "the index's entry point or top level does not match its elements"
    slots = np.arange(n)  # the store labels slots 0..n-1 (adds and rebuilds alike)
    for key in ("label_lookup_external", "label_lookup_internal"):
        if not np.array_equal(np.sort(state[key]), slots):
            return f"index array {key!r} must hold each slot 0..{n - 1} once"
    return None


def _save_index(index: hnswlib.Index, path: Path) -> None:
    """hnswlib's ``save_index``: one seam, so that tests can make it write a short file as a full disk does."""
    index.save_index(str(path))


class CosineIndex:
    """One initialised ``hnswlib.Index`` in the cosine space, addressed by slot (hnswlib's integer label)."""

    __slots__ = ("_index", "dim")

    def __init__(self, index: hnswlib.Index, dim: int) -> None:
        self._index = index
        self.dim = dim

    @classmethod
    def new(cls, *, dim: int, capacity: int, M: int, ef_construction: int, ef: int, random_seed: int) -> CosineIndex:
        """An empty index with room for ``capacity`` slots and search width ``ef``."""
        index = hnswlib.Index(space="cosine", dim=dim)
        index.init_index(max_elements=capacity, ef_construction=ef_construction, M=M, random_seed=random_seed)
        index.set_ef(ef)
        return cls(index, dim)

    # -- the operations the store runs ------------------------------------------------------------------------

    @property
    def ef(self) -> int:
        """hnswlib's current search width."""
        return int(self._index.ef)

    def set_ef(self, ef: int) -> None:
        """Set the search width (hnswlib neither saves it nor keeps it across a load)."""
        self._index.set_ef(ef)

    def add(self, vectors: np.ndarray, labels: np.ndarray, *, num_threads: int = 1) -> None:
        """Insert ``(n, dim)`` vectors at these slots; a slot that holds a vector already is updated in place."""
        self._index.add_items(vectors, labels, num_threads=num_threads)

    def mark_deleted(self, label: int) -> None:
        """Leave a tombstone at ``label`` (hnswlib keeps counting it; the store keeps the live map)."""
        self._index.mark_deleted(label)

    def resize(self, capacity: int) -> None:
        """Grow to ``capacity`` slots (hnswlib's capacity is fixed until resized)."""
        self._index.resize_index(capacity)

    def knn(self, queries: np.ndarray, k: int, *, ef: int) -> np.ndarray | None:
        """The ``(m, k)`` slots nearest each query row, searched with width ``ef`` (>= k), or None when hnswlib
        cannot collect ``k`` live results (tombstones crowding its candidate list)."""
        if self._index.ef != ef:
            self._index.set_ef(ef)
        try:
            labels, _ = self._index.knn_query(queries, k=k)  # (m, k) uint64 labels, (m, k) distances
        except RuntimeError:
            return None
        return labels

    # -- state and files ----------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """hnswlib's own state of the index (ints, floats, bools, a str and numpy arrays; fresh copies)."""
        return dict(self._index.__getstate__()[0])

    @classmethod
    def from_state(cls, state: Mapping[str, Any], *, dim: int) -> CosineIndex:
        """A new index from :meth:`state` output (hnswlib copies the arrays; nothing is unpickled).

        Check ``state`` with :func:`check_index_state` first: hnswlib trusts the sizes it holds.

        Raises:
            RuntimeError, TypeError, ValueError: hnswlib refused the state.
        """
        index = hnswlib.Index.__new__(hnswlib.Index)
        index.__setstate__((dict(state),))
        return cls(index, dim)

    def copy(self) -> CosineIndex:
        """An independent copy with the same graph and ef (through hnswlib's state: nothing is pickled)."""
        copy = CosineIndex.from_state(self.state(), dim=self.dim)
        copy.set_ef(self.ef)
        return copy

    def raw_copy(self, capacity: int | None = None) -> RawIndex:
        """An independent ``hnswlib.Index`` with the same graph and ef, room for at least ``capacity`` slots."""
        index = self.copy()._index
        if capacity is not None and index.max_elements < capacity:
            index.resize_index(capacity)
        return index

    @property
    def file_size(self) -> int:
        """The bytes :meth:`save` writes."""
        return int(self._index.index_file_size())

    @property
    def element_count(self) -> int:
        """Slots used, tombstones included."""
        return int(self._index.element_count)

    def save(self, path: Path) -> None:
        """hnswlib's ``save_index`` (it reports no write errors: read the file back with :meth:`load`)."""
        _save_index(self._index, path)

    @classmethod
    def load(cls, path: Path, *, dim: int, capacity: int) -> CosineIndex:
        """The index saved at ``path``, with room for ``capacity`` slots (ef still to be set).

        Raises:
            RuntimeError, MemoryError: hnswlib could not read the file (its layout does not match its size).
        """
        index = hnswlib.Index(space="cosine", dim=dim)
        index.load_index(str(path), max_elements=capacity)
        return cls(index, dim)

    def live_problem(self, live: list[int], next_label: int) -> str | None:
        """Why the slots ``live`` are not exactly the live slots of ``range(next_label)`` here, or None."""
        if self.element_count != next_label:
            return f"the index holds {self.element_count} slots, the manifest says {next_label}"
        try:
            for start in range(0, len(live), 4096):  # get_items raises on a deleted label; chunks bound the copy
                self._index.get_items(live[start : start + 4096])
        except RuntimeError:
            return "a live item's slot is deleted in the index (the label map and the index disagree)"
        for label in sorted(set(range(next_label)) - set(live)):
            try:
                self._index.get_items([label])
            except RuntimeError:
                continue  # a tombstone, as it should be
            return f"slot {label} is live in the index but belongs to no item (the label map and the index disagree)"
        return None
