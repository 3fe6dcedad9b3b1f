"""The long-term memory store: ids and items over an hnswlib cosine index, with dedup, snapshots and saving.

:class:`MemoryStore` is what the ``Add_memory`` / ``Update_memory`` / ``Delete_memory`` / ``Retrieve_memory`` tools
act on (DESIGN.md §3). It keeps the ids, the items, the id <-> slot maps and its own float32 copy of every
vector; the graph lives in :class:`~agemem_gym.memory.index.CosineIndex` (the only hnswlib importer), and the store
absorbs what hnswlib 0.8 leaves to its caller (DESIGN.md §7):

- ``knn_query`` raises when it cannot find ``k`` live results (``k`` above the live count, or a small ``ef`` after
  deletions): ``k`` is clamped to the live count and a failed query falls back to exact numpy search over the
  store's own vector matrix.
- ``mark_deleted`` leaves tombstones that ``element_count`` and ``get_ids_list`` still count: the store keeps its own
  id <-> label maps and never asks the index what is live. When tombstones exceed ``max_tombstone_ratio`` of the
  slots used, the index is rebuilt from the live vectors.
- Capacity is fixed at ``init_index``: the index is resized geometrically (``growth``) before it fills.
- ``ef`` is raised to the number of neighbours asked for (``k`` plus a small slack for tie-breaking) when that
  exceeds ``ef_search``.
- add and query must not run concurrently: one ``threading.RLock`` guards every public method.

Search results are re-scored with exact dot products from the store's own vectors and sorted by descending score
then id, so the approximate path and the exact fallback order ties the same way. Saving and restoring are in
:mod:`agemem_gym.memory.persistence`; the duplicate checks in :mod:`agemem_gym.memory.dedup`.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agemem_gym._validate import check
from agemem_gym.errors import ConfigError, MemoryNotFoundError
from agemem_gym.memory.config import StoreConfig
from agemem_gym.memory.dedup import TextKeys, resolve_adds
from agemem_gym.memory.embedders import Embedder, make_embedder
from agemem_gym.memory.index import CosineIndex, RawIndex
from agemem_gym.memory.items import (
    AddResult,
    MemoryItem,
    SearchHit,
    check_memory_type,
    check_step,
    format_memory_id,
    freeze_metadata,
)
from agemem_gym.memory.persistence import load_state, restore_state, save_state, snapshot_of
from agemem_gym.memory.search import check_filter, check_top_k, filtered, nearest
from agemem_gym.memory.state import StoreState

__all__ = ["MemoryStore"]


class MemoryStore:
    """Long-term memory: items with ids, an hnswlib cosine index over their embeddings, and persistence.

    Args:
        embedder: ``"hash"`` (default), ``"minilm"``, an :class:`~agemem_gym.memory.embedders.Embedder`, or a callable
            ``list[str] -> array`` (see :func:`~agemem_gym.memory.embedders.make_embedder`).
        config: Index, maintenance and duplicate settings (:class:`StoreConfig`).

    Every public method holds one re-entrant lock, so a store can be shared between threads. Ids are
    ``m_0001``, ``m_0002``, ... from a counter that survives delete, clear and save/load, so an id is never reused
    within a store's life; :meth:`restore` rewinds the counter with everything else, so a restored store issues
    the ids the snapshotted one would have.

    >>> store = MemoryStore("hash")
    >>> r = store.add("Marie Curie won two Nobel prizes.", metadata={"source": "wiki"}, step=3)
    >>> r.action, r.item.id, dict(r.item.metadata)
    ('added', 'm_0001', {'source': 'wiki'})
    >>> hit = store.search("How many Nobel prizes did Curie win?", top_k=5)[0]
    >>> hit.item.id, hit.score > 0.3
    ('m_0001', True)
    >>> store.update("m_0001", "Marie Curie won the Nobel prize in 1903 and 1911.", step=4).updated_step
    4
    >>> state = store.snapshot()
    >>> _ = store.delete("m_0001")
    >>> store.restore(state)
    >>> store.ids()
    ['m_0001']
    """

    def __init__(
        self,
        embedder: Embedder | str | Callable[[list[str]], Any] = "hash",
        *,
        config: StoreConfig | None = None,
    ) -> None:
        if config is None:
            config = StoreConfig()
        if not isinstance(config, StoreConfig):
            raise ConfigError(f"'config' must be a StoreConfig or None, got {type(config).__name__}")
        self._lock = threading.RLock()
        self._embedder = make_embedder(embedder)
        dim = self._embedder.dim
        check(
            "dim",
            dim,
            "int",
            gt=0,
            numpy=True,
            label="the embedder's",
            fix=lambda: f"it came from {self._embedder!r}, whose 'dim' must be the width of its vectors",
        )
        self._dim = int(dim)
        self._config = config
        self._s = self._empty_state(counter=0)

    # -- basics -------------------------------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The embedder this store embeds with."""
        return self._embedder

    @property
    def config(self) -> StoreConfig:
        """The store's settings."""
        return self._config

    @property
    def dim(self) -> int:
        """The embedding width."""
        return self._dim

    def __repr__(self) -> str:
        return f"MemoryStore(embedder={self._embedder.name!r}, live={len(self)}, dim={self._dim})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._s.items)

    def __contains__(self, memory_id: object) -> bool:
        with self._lock:
            return isinstance(memory_id, str) and memory_id in self._s.items

    def __iter__(self) -> Iterator[MemoryItem]:
        with self._lock:
            return iter(list(self._s.items.values()))

    def ids(self) -> list[str]:
        """The live ids in creation order."""
        with self._lock:
            return list(self._s.items)

    def get(self, memory_id: str) -> MemoryItem | None:
        """The live item with this id, or None."""
        with self._lock:
            return self._s.items.get(memory_id) if isinstance(memory_id, str) else None

    def clear(self) -> None:
        """Remove every item (the id counter is kept, so old ids are still never reused)."""
        with self._lock:
            self._s = self._empty_state(counter=self._s.counter, rebuilds=self._s.rebuilds)

    def stats(self) -> dict[str, Any]:
        """Counters for logs and tests: live items, capacity, tombstones, rebuilds, dim, embedder, ef, ..."""
        with self._lock:
            s = self._s
            return {
                "live": len(s.items),
                "capacity": s.capacity,
                "slots_used": s.next_label,
                "tombstones": s.tombstones,
                "rebuilds": s.rebuilds,
                "exact_fallbacks": s.exact_fallbacks,
                "id_counter": s.counter,
                "dim": self._dim,
                "embedder": self._embedder.name,
                "ef_search": self._config.ef_search,
                "ef": int(s.index.ef),
                "M": self._config.M,
                "ef_construction": self._config.ef_construction,
                "dedup_policy": self._config.dedup.policy,
            }

    def _new_index(self, capacity: int) -> CosineIndex:
        c = self._config
        return CosineIndex.new(
            dim=self._dim,
            capacity=capacity,
            M=c.M,
            ef_construction=c.ef_construction,
            ef=c.ef_search,
            random_seed=c.random_seed,
        )

    def copy_index(self, capacity: int | None = None) -> RawIndex:
        """An independent ``hnswlib.Index`` holding this store's graph: the same vectors, links and ``ef``.

        For baselines that time hnswlib alone on the very graph the store searches (``benchmarks/memory_ops.py``)
        and for inspection; changing the copy never changes the store. Slots are the store's internal labels.

        Args:
            capacity: Room for at least this many slots (None: the store's capacity).
        """
        with self._lock:
            return self._s.index.raw_copy(capacity)

    def _empty_state(self, *, counter: int, rebuilds: int = 0) -> StoreState:
        capacity = self._config.initial_capacity
        return StoreState(
            self._new_index(capacity),
            np.zeros((capacity, self._dim), dtype=np.float32),
            {},
            {},
            counter=counter,
            next_label=0,
            rebuilds=rebuilds,
            keys=TextKeys() if self._config.dedup.enabled else None,
        )

    def _not_found(self, memory_id: object) -> MemoryNotFoundError:
        live = self._s.items
        sample = ", ".join(list(live)[-3:])
        return MemoryNotFoundError(
            f"no live memory with id {memory_id!r}: the store holds {len(live)} live items"
            + (f" (latest: {sample})" if sample else "")
            + "; ids come from add() and are never reused after delete()"
        )

    # -- embedding ----------------------------------------------------------------------------------------------

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed and check: (n, dim) finite float32 unit rows, whatever embedder was plugged in."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        vecs = np.asarray(self._embedder(list(texts)), dtype=np.float32)
        if vecs.shape != (len(texts), self._dim):
            raise ConfigError(
                f"embedder {self._embedder.name!r} must return shape ({len(texts)}, {self._dim}), got {vecs.shape}"
            )
        return self._normalise(vecs, None)

    def _normalise(self, vecs: np.ndarray, source: str | None) -> np.ndarray:
        """``vecs`` as unit rows; ``source`` names them in errors (None: this store's embedder)."""
        # What np.linalg.norm(vecs, axis=1, keepdims=True) computes for real input, without its wrapper (same bits).
        norms = np.sqrt(np.add.reduce(vecs * vecs, axis=1, keepdims=True))  # (n, 1)
        # A NaN or an infinity anywhere makes its row's norm NaN or infinite, so finite norms prove finite input and
        # the element-wise check runs only when a norm is not finite (it may also have overflowed from finite input).
        if len(norms) == 1:  # one query or one new memory: plain floats, without numpy's reductions
            norm = float(norms[0, 0])
            finite, zero = math.isfinite(norm), norm <= 0
        else:
            finite, zero = bool(np.isfinite(norms).all()), bool((norms <= 0).any())
        if not finite and not np.isfinite(vecs).all():
            raise ConfigError(f"{source or self._source()} produced NaN or infinite values; vectors must be finite")
        if zero:
            raise ConfigError(
                f"{source or self._source()} produced an all-zero vector, which has no direction for cosine similarity"
            )
        unit = vecs / norms
        return unit if unit.flags.c_contiguous and unit.dtype == np.float32 else np.ascontiguousarray(unit, np.float32)

    def _source(self) -> str:
        return f"embedder {self._embedder.name!r}"

    # -- add ----------------------------------------------------------------------------------------------------

    def add(
        self,
        content: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        memory_type: str = "fact",
        step: int = 0,
    ) -> AddResult:
        """Add one item (or merge/reject it as a near-duplicate, per ``config.dedup``).

        Args:
            content: The text to remember; it is embedded as is.
            metadata: JSON object stored with the item (a private read-only copy is kept).
            memory_type: The item's category, matched by metadata filters on ``memory_type`` / ``type``.
            step: The env step, recorded as ``created_step`` and ``updated_step``.

        Returns:
            What happened: ``action`` is ``"added"``, ``"merged"`` or ``"rejected"``.

        Raises:
            ConfigError: An argument has the wrong type, or metadata is not JSON-serialisable.
        """
        return self.add_many([content], metadatas=[metadata], memory_type=memory_type, step=step)[0]

    def add_many(
        self,
        contents: Sequence[str],
        *,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        memory_type: str = "fact",
        step: int = 0,
    ) -> list[AddResult]:
        """Add several items with one embedder call and one hnswlib insert.

        Duplicate checks run item by item, also against earlier items of the same batch. All arguments are
        checked before anything changes.

        Args:
            contents: The texts.
            metadatas: One metadata mapping (or None) per text, or None for none at all.
            memory_type: The category of every item.
            step: The env step.

        Returns:
            One :class:`AddResult` per text, in order.
        """
        if isinstance(contents, str) or not isinstance(contents, Sequence):
            raise ConfigError(f"'contents' must be a sequence of str, got {type(contents).__name__}; use add() for one")
        for i, content in enumerate(contents):
            if not isinstance(content, str):
                raise ConfigError(f"'content' must be a str, got {type(content).__name__} {content!r:.60} (item {i})")
        if metadatas is None:
            metadatas = [None] * len(contents)
        elif len(metadatas) != len(contents):
            raise ConfigError(f"'metadatas' must have one entry per content ({len(contents)}), got {len(metadatas)}")
        frozen = [freeze_metadata(m) for m in metadatas]
        check_memory_type(memory_type)
        check_step(step)
        with self._lock:
            vecs = self._embed(contents)  # (n, dim)
            if self._config.dedup.enabled:
                return self._add_with_dedup(contents, frozen, vecs, memory_type, step)
            items = [self._new_item(c, m, memory_type, step) for c, m in zip(contents, frozen)]
            self._insert(items, vecs)
            return [AddResult(item, "added") for item in items]

    def _new_item(self, content: str, metadata: Mapping[str, Any], memory_type: str, step: int) -> MemoryItem:
        self._s.counter += 1
        return MemoryItem(format_memory_id(self._s.counter), content, metadata, memory_type, step, step)

    def _insert(self, items: list[MemoryItem], vecs: np.ndarray) -> None:
        """Give ``items`` labels, grow if needed, and insert their vectors in one hnswlib call."""
        if not items:
            return
        s = self._s
        s.reserve(len(items), self._config.growth)
        start, stop = s.next_label, s.next_label + len(items)
        s.index.add(vecs, np.arange(start, stop, dtype=np.int64), num_threads=self._config.num_threads)
        s.vectors[start:stop] = vecs  # the new slots are consecutive: a slice, not a fancy-indexed write
        for item, label in zip(items, range(start, stop)):
            s.items[item.id] = item
            s.labels[item.id] = label
            s.id_of_label[label] = item.id
            if s.keys is not None:
                s.keys.add(item.id, item.content)
        s.next_label += len(items)
        s.invalidate()

    def _add_with_dedup(
        self,
        contents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vecs: np.ndarray,
        memory_type: str,
        step: int,
    ) -> list[AddResult]:
        s, cfg = self._s, self._config.dedup
        assert s.keys is not None
        if s.items:
            near = self._knn(vecs, min(cfg.candidates, len(s.items)))
            neighbours = [[(s.id_of_label[label], score) for label, score in row] for row in near]
        else:
            neighbours = [[] for _ in contents]
        outcome = resolve_adds(
            contents,
            metadatas,
            vecs,
            neighbours=neighbours,
            items=s.items,
            keys=s.keys,
            new_item=lambda content, metadata: self._new_item(content, metadata, memory_type, step),
            step=step,
            config=cfg,
        )
        self._insert(outcome.new_items, outcome.new_vectors)
        s.items.update(outcome.changed)  # merged items keep their place in creation order
        return outcome.results

    # -- update and delete ----------------------------------------------------------------------------------------

    def update(
        self,
        memory_id: str,
        content: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        memory_type: str | None = None,
        step: int = 0,
    ) -> MemoryItem:
        """Replace an item's content in place: re-embedded under the same id and the same index label.

        Args:
            memory_id: A live id.
            content: The new text.
            metadata: Merged into the item's metadata (new keys override).
            memory_type: A new category, or None to keep the current one.
            step: Recorded as ``updated_step``.

        Returns:
            The updated item.

        Raises:
            MemoryNotFoundError: ``memory_id`` is not live.
        """
        if not isinstance(content, str):
            raise ConfigError(f"'content' must be a str, got {type(content).__name__} {content!r:.60}")
        frozen = freeze_metadata(metadata)
        if memory_type is not None:
            check_memory_type(memory_type)
        check_step(step)
        with self._lock:
            s = self._s
            old = s.items.get(memory_id) if isinstance(memory_id, str) else None
            if old is None:
                raise self._not_found(memory_id)
            vec = self._embed([content])  # (1, dim)
            label = s.labels[memory_id]
            # Adding an existing label makes hnswlib update that node's vector and repair its links in place.
            s.index.add(vec, np.array([label], dtype=np.int64), num_threads=self._config.num_threads)
            s.vectors[label] = vec[0]
            new = MemoryItem(
                memory_id,
                content,
                {**old.metadata, **frozen},
                old.memory_type if memory_type is None else memory_type,
                old.created_step,
                step,
            )
            s.items[memory_id] = new
            if s.keys is not None:
                s.keys.drop(memory_id, old.content)
                s.keys.add(memory_id, content)
            return new

    def delete(self, memory_id: str) -> MemoryItem:
        """Remove an item and return it; rebuilds the index when tombstones pile up.

        Raises:
            MemoryNotFoundError: ``memory_id`` is not live.
        """
        with self._lock:
            s = self._s
            item = s.items.get(memory_id) if isinstance(memory_id, str) else None
            if item is None:
                raise self._not_found(memory_id)
            label = s.labels.pop(memory_id)
            del s.items[memory_id]
            del s.id_of_label[label]
            s.index.mark_deleted(label)
            if s.keys is not None:
                s.keys.drop(memory_id, item.content)
            s.invalidate()
            if s.tombstones > self._config.max_tombstone_ratio * s.next_label:
                self._s = s.rebuilt(self._new_index(s.capacity), num_threads=self._config.num_threads)
            return item

    # -- search -------------------------------------------------------------------------------------------------

    def search(
        self, query: str, top_k: int = 3, *, metadata_filter: Mapping[str, Any] | None = None
    ) -> list[SearchHit]:
        """The ``top_k`` live items closest to ``query`` by cosine, best first (ties by id).

        Args:
            query: The text to search for.
            top_k: A positive int; fewer hits come back when fewer items are live (or match the filter).
            metadata_filter: Every key must match: a key absent from an item's metadata but named
                ``memory_type`` or ``type`` is compared with the item's ``memory_type``; a list or tuple value
                matches any of its elements; any other value must be equal. With a filter the search is exact
                (numpy over the matching items).

        Raises:
            ConfigError: ``top_k`` is not a positive int, or the filter is not a str-keyed mapping.
        """
        if not isinstance(query, str):
            raise ConfigError(f"'query' must be a str, got {type(query).__name__} {query!r:.60}")
        return self.search_many([query], top_k, metadata_filter=metadata_filter)[0]

    def search_many(
        self, queries: Sequence[str], top_k: int = 3, *, metadata_filter: Mapping[str, Any] | None = None
    ) -> list[list[SearchHit]]:
        """:meth:`search` for several queries, with one embedder call and one batched hnswlib query."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise ConfigError(
                f"'queries' must be a sequence of str, got {type(queries).__name__}; use search() for one"
            )
        for i, q in enumerate(queries):
            if not isinstance(q, str):
                raise ConfigError(f"'query' must be a str, got {type(q).__name__} {q!r:.60} (query {i})")
        k = check_top_k(top_k)
        flt = check_filter(metadata_filter)
        with self._lock:
            if not self._s.items or not queries:
                return [[] for _ in queries]
            return self._search(self._embed(queries), k, flt)

    def search_vectors(
        self, vectors: np.ndarray, top_k: int = 3, *, metadata_filter: Mapping[str, Any] | None = None
    ) -> list[list[SearchHit]]:
        """:meth:`search_many` for callers that embedded the queries already.

        Args:
            vectors: ``(m, dim)`` (or ``(dim,)`` for one query) finite, non-zero vectors; they are normalised.
            top_k: As in :meth:`search`.
            metadata_filter: As in :meth:`search`.

        Returns:
            One list of hits per query row.
        """
        q = np.asarray(vectors, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self._dim:
            raise ConfigError(f"'vectors' must have shape (m, {self._dim}) or ({self._dim},), got {np.shape(vectors)}")
        k = check_top_k(top_k)
        flt = check_filter(metadata_filter)
        q = self._normalise(q, "'vectors'") if len(q) else q
        with self._lock:
            if not self._s.items or not len(q):
                return [[] for _ in range(len(q))]
            return self._search(q, k, flt)

    def _search(self, q: np.ndarray, k: int, flt: Mapping[str, Any] | None) -> list[list[SearchHit]]:
        s = self._s
        ranked = filtered(s, q, k, flt) if flt else self._knn(q, k)
        return [[SearchHit(s.items[s.id_of_label[label]], score) for label, score in row] for row in ranked]

    def _knn(self, q: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        return nearest(self._s, q, k, ef_search=self._config.ef_search)

    # -- snapshot / restore -------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """An in-memory, picklable, independent copy of the whole store, for :meth:`restore`.

        It holds the items, the vectors, the id counter, the settings and the hnswlib graph itself (hnswlib's own
        state: plain numbers and numpy arrays, not a pickle), so a store restored from it answers every later add,
        update, delete and search exactly as this store will. hnswlib does not keep the state of its level
        generator in that state (a rebuilt index starts it afresh), so this store also switches to a freshly
        rebuilt copy of its own index: both then continue alike.
        """
        with self._lock:
            return snapshot_of(self._s, dim=self._dim, embedder=self._embedder.name, config=self._config)

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Make this store an exact copy of the one :meth:`snapshot` captured (settings included).

        Nothing in ``snapshot`` is unpickled or called: the index is rebuilt from hnswlib's plain state after its
        fields and array sizes are checked.

        Raises:
            StoreFormatError: ``snapshot`` is not a snapshot, or was taken with a different embedding width; the
                store is left unchanged.
        """
        state, config = restore_state(snapshot, dim=self._dim, embedder=self._embedder.name)
        with self._lock:
            self._config = config
            self._s = state

    # -- save / load --------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the store into the directory ``path`` (created if missing), atomically and crash-safely.

        The new generation's files (hnswlib index, vectors ``.npy``, items JSON) are written under new names,
        fsynced and read back against what was meant to be written (hnswlib reports no write errors, so the index
        is also reloaded from its file); then ``manifest.json`` (format, version, space, dim, index settings,
        embedder, id counter, label map, each file's size and sha256, and a checksum sealing all of it)
        atomically replaces the old one; then the directory is fsynced and the previous generation's files are
        deleted. A crash at any point leaves the old or the new store complete and loadable, and a save that
        fails removes every file it created. After a save this store continues exactly as a store loaded from
        ``path`` does. Files in ``path`` that are not named like store files are left alone.

        One directory has one writer at a time: a save holds an exclusive ``flock`` on ``store.lock`` in it, and a
        second save into the same directory (another process or thread) fails at once instead of mixing files.
        Loading takes no lock: it reads the generation the manifest names, and reads again if a save replaced it.

        Raises:
            ConfigError: ``path`` is a file.
            StoreLockedError: Another save into ``path`` is in progress; nothing was written.
            StoreWriteError: A file could not be written or reads back wrong (a read-only directory, a full disk);
                nothing of this save is left behind and the previously saved store is intact.
        """
        directory = Path(path)
        where = f"memory store at {str(directory)!r}"
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"'path' must be a directory for the store's files, got the file {str(directory)!r}")
        with self._lock:
            # hnswlib does not save its level generator: continue on the reloaded index, as a loaded copy will.
            self._s.index = save_state(
                self._s, directory, dim=self._dim, embedder=self._embedder.name, config=self._config, where=where
            )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        embedder: Embedder | str | Callable[[list[str]], Any] = "hash",
        config: StoreConfig | None = None,
    ) -> MemoryStore:
        """Open a store saved with :meth:`save`.

        Args:
            path: The store's directory.
            embedder: The embedder it was saved with (its dim is checked; a different name only warns).
            config: Settings to use from now on; None uses the saved ones.

        Raises:
            StoreFormatError: The directory holds no complete store, a file is missing, truncated or altered, or
                the embedder's dim differs from the saved one.
        """
        store = cls(embedder, config=config)
        store.load_into(path, config=config)
        return store

    def load_into(self, path: str | os.PathLike[str], *, config: StoreConfig | None = None) -> None:
        """Replace this store's contents with the store saved at ``path``.

        Everything is read and checked first: on any error this store is left unchanged.

        Raises:
            StoreFormatError: As for :meth:`load`.
        """
        state, saved_config = load_state(Path(path), dim=self._dim, embedder=self._embedder.name, config=config)
        with self._lock:
            self._config = saved_config
            self._s = state
