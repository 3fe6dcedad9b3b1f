"""The long-term memory store: memory items, an hnswlib cosine index, and their persistence.

:class:`MemoryStore` is what the ``Add_memory`` / ``Update_memory`` / ``Delete_memory`` / ``Retrieve_memory`` tools
act on (DESIGN.md §3). It is the only module that imports hnswlib, and it absorbs hnswlib 0.8's sharp edges
(DESIGN.md §7):

- ``knn_query`` raises when it cannot find ``k`` live results (``k`` above the live count, or a small ``ef`` after
  deletions): ``k`` is clamped to the live count and a failed query falls back to exact numpy search over the
  store's own float32 vector matrix.
- ``mark_deleted`` leaves tombstones that ``element_count`` and ``get_ids_list`` still count: the store keeps its own
  id <-> label maps and never asks the index what is live. When tombstones exceed ``max_tombstone_ratio`` of the
  slots used, the index is rebuilt from the live vectors.
- Capacity is fixed at ``init_index``: the index is resized geometrically (``growth``) before it fills.
- Anything called before ``init_index`` segfaults: the index is created in ``__init__``, once the dim is known.
- ``ef`` defaults to 10 and is not saved: it is set after init and after loading, and raised to the number of
  neighbours asked for (``k`` plus a small slack for tie-breaking) when that exceeds ``ef_search``.
- ``save_index`` forgets the space, dim and labels: a JSON manifest beside it records them with every file's sha256,
  sealed by its own checksum, and loading checks all of it.
- add and query must not run concurrently: one ``threading.RLock`` guards every public method.

Search results are re-scored with exact dot products from the store's own vectors and sorted by descending score
then id, so the approximate path and the exact fallback order ties the same way.

>>> store = MemoryStore("hash")
>>> store.add("The Orvel Bridge was built in 1841.", metadata={"topic": "bridges"}).item.id
'm_0001'
>>> _ = store.add("Paris is the capital of France.", memory_type="geo")
>>> [hit.item.id for hit in store.search("When was the Orvel Bridge built?", top_k=1)]
['m_0001']
>>> [hit.item.id for hit in store.search("bridge", metadata_filter={"type": "geo"})]
['m_0002']
>>> store.delete("m_0001").content
'The Orvel Bridge was built in 1841.'
>>> len(store), store.add("A new fact.").item.id
(1, 'm_0003')
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import hnswlib
import numpy as np

from agemem_gym._store_files import (
    MANIFEST,
    MANIFEST_TMP,
    GenerationWriter,
    read_manifest,
    seal_manifest,
    sha256_file,
    sweep,
    write_error,
    writer_lock,
)
from agemem_gym._validate import check, check_field, is_int
from agemem_gym.dedup import DedupConfig, find_duplicate, normalise_text
from agemem_gym.embedders import Embedder, make_embedder
from agemem_gym.errors import ConfigError, MemoryNotFoundError, StoreFormatError, StoreWriteError

__all__ = [
    "STORE_FORMAT",
    "STORE_FORMAT_VERSION",
    "AddResult",
    "DedupConfig",
    "MemoryItem",
    "MemoryStore",
    "SearchHit",
    "StoreConfig",
    "format_memory_id",
]

logger = logging.getLogger(__name__)

STORE_FORMAT = "agemem-gym-memory-store"
STORE_FORMAT_VERSION = 2  # 2: the manifest is sealed by a checksum
_SNAPSHOT_FORMAT = "agemem-gym-memory-snapshot"
_SNAPSHOT_VERSION = 2  # 2: the index travels as hnswlib's state (plain values and arrays), never as a pickle
_GEN_FILE_RE = re.compile(r"^(index|vectors|items)-(\d{6,})\.(bin|npy|json)$")
_ID_RE = re.compile(r"^m_([0-9a-f]{4,})$")
# Extra neighbours asked of hnswlib beyond k, so that exact re-scoring can break ties by id (free while k + slack
# stays below ef: hnswlib collects max(ef, k) candidates either way).
_TIE_SLACK = 16


def format_memory_id(number: int) -> str:
    """The id of the ``number``-th item a store creates: ``m_`` + lowercase hex, at least 4 digits.

    >>> format_memory_id(1), format_memory_id(0x10000)
    ('m_0001', 'm_10000')
    """
    return f"m_{number:04x}"


# ---------------------------------------------------------------------------------------------------------------
# Items and results
# ---------------------------------------------------------------------------------------------------------------


class _FrozenMapping(Mapping[str, Any]):
    """A read-only, picklable mapping over a private (JSON round-tripped) copy of the metadata."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        # Nested lists and dicts come out as copies, so no caller can change a stored item through them.
        return _plain(value) if isinstance(value, (list, dict)) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def __getstate__(self) -> dict[str, Any]:
        return self._data

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._data = state


def _freeze_metadata(metadata: Mapping[str, Any] | None) -> _FrozenMapping:
    """Validate ``metadata`` as a JSON object and return an immutable deep copy of it."""
    if metadata is None:
        return _FrozenMapping({})
    if isinstance(metadata, _FrozenMapping):
        return metadata
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"'metadata' must be a mapping (a JSON object) or None, got {type(metadata).__name__}")
    for key in metadata:
        if not isinstance(key, str):
            raise ConfigError(f"'metadata' keys must be str (JSON object keys), got {type(key).__name__} {key!r}")
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"'metadata' must be JSON-serialisable (str, int, float, bool, None, lists and str-keyed dicts; "
            f"no NaN or infinity): {exc}"
        ) from None
    return _FrozenMapping(json.loads(text))


def _plain(value: Any) -> Any:
    """A deep, mutable, JSON-shaped copy of a metadata value."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class MemoryItem:
    """One long-term memory.

    Attributes:
        id: Stable id, ``m_`` + lowercase hex (``m_0001``); never reused within a store's life.
        content: The text that was embedded.
        metadata: A read-only copy of the item's JSON metadata.
        memory_type: The agent's category for the item (``"fact"`` by default).
        created_step: The env step at which it was added.
        updated_step: The env step of its last update or merge.
    """

    id: str
    content: str
    metadata: Mapping[str, Any]
    memory_type: str
    created_step: int
    updated_step: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _freeze_metadata(self.metadata))

    def to_dict(self) -> dict[str, Any]:
        """The item as a JSON-ready dict (a deep copy)."""
        return {
            "id": self.id,
            "content": self.content,
            "metadata": _plain(dict(self.metadata)),
            "memory_type": self.memory_type,
            "created_step": self.created_step,
            "updated_step": self.updated_step,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryItem:
        """The inverse of :meth:`to_dict`; raises :class:`StoreFormatError` on a malformed record."""
        try:
            ok = (
                isinstance(data["id"], str)
                and _ID_RE.match(data["id"]) is not None
                and isinstance(data["content"], str)
                and isinstance(data["metadata"], dict)
                and isinstance(data["memory_type"], str)
                and _is_step(data["created_step"])
                and _is_step(data["updated_step"])
            )
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise StoreFormatError(
                f"a memory item record must have id (m_<hex>), content (str), metadata (object), memory_type (str), "
                f"created_step and updated_step (ints >= 0); got {str(data)[:200]}"
            )
        return cls(
            data["id"],
            data["content"],
            data["metadata"],
            data["memory_type"],
            data["created_step"],
            data["updated_step"],
        )


@dataclass(frozen=True)
class SearchHit:
    """One search result: the item and its cosine similarity to the query (higher is closer)."""

    item: MemoryItem
    score: float


@dataclass(frozen=True)
class AddResult:
    """What :meth:`MemoryStore.add` did.

    Attributes:
        item: The new item, or the existing one it was merged into or rejected as a duplicate of.
        action: ``"added"``, ``"merged"`` or ``"rejected"``.
        duplicate_of: The id of the existing item on merge or reject, else None.
        reason: Which duplicate check matched, e.g. ``"same normalised text as m_0003"``; empty when added.
    """

    item: MemoryItem
    action: Literal["added", "merged", "rejected"]
    duplicate_of: str | None = None
    reason: str = ""


# ---------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return is_int(value, numpy=True)


def _is_step(value: Any) -> bool:
    return _is_int(value) and value >= 0


@dataclass(frozen=True)
class StoreConfig:
    """Index and maintenance settings of a :class:`MemoryStore` (validated on construction).

    Attributes:
        M: hnswlib's graph degree (links per node on upper layers; twice that on the base layer).
        ef_construction: hnswlib's candidate-list size while inserting.
        ef_search: hnswlib's candidate-list size while searching (raised to ``k`` for larger ``k``). The default,
            384, is what gave recall@5 >= 0.99 against exact search at 10k items for the hashing embedder, whose
            sparse, nearly orthogonal vectors need a wide search (0.86 at ef 64); MiniLM reached 0.99 at 128.
        initial_capacity: Slots allocated up front; the index grows before it fills.
        growth: Factor (> 1) by which capacity grows.
        max_tombstone_ratio: Rebuild the index from the live vectors once deleted slots exceed this share of
            the slots used.
        random_seed: hnswlib's level-generator seed.
        num_threads: Threads for ``add_items``. 1 (the default) keeps the graph a pure function of the operations,
            which exact replay after :meth:`MemoryStore.restore` relies on; more speeds up big ``add_many`` calls.
        dedup: Near-duplicate policy on add (see :class:`~agemem_gym.dedup.DedupConfig`).
    """

    M: int = 16
    ef_construction: int = 200
    ef_search: int = 384
    initial_capacity: int = 64
    growth: float = 2.0
    max_tombstone_ratio: float = 0.25
    random_seed: int = 0
    num_threads: int = 1
    dedup: DedupConfig = field(default_factory=DedupConfig)

    def __post_init__(self) -> None:
        for name, lo in (
            ("M", 2),
            ("ef_construction", 1),
            ("ef_search", 1),
            ("initial_capacity", 1),
            ("num_threads", 1),
        ):
            check_field(self, name, "int", ge=lo, numpy=True)
        check_field(self, "random_seed", "int", ge=0, numpy=True)
        check_field(self, "growth", "number", gt=1)
        check_field(self, "max_tombstone_ratio", "number", gt=0, le=1)
        check_field(self, "dedup", DedupConfig, fix="e.g. DedupConfig('merge')")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoreConfig:
        """The inverse of :meth:`to_dict` (unknown keys raise :class:`ConfigError`)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown StoreConfig fields {unknown}; known: {sorted(known)}")
        kwargs = dict(data)
        if isinstance(kwargs.get("dedup"), Mapping):
            kwargs["dedup"] = DedupConfig(**kwargs["dedup"])
        return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# The store's state: everything that snapshot/restore and save/load carry
# ---------------------------------------------------------------------------------------------------------------


class _State:
    """The mutable contents of a store, swapped as a whole by restore and load (so a failure leaves it intact)."""

    def __init__(
        self,
        index: hnswlib.Index,
        vectors: np.ndarray,
        items: dict[str, MemoryItem],
        labels: dict[str, int],
        *,
        counter: int,
        next_label: int,
        rebuilds: int = 0,
        exact_fallbacks: int = 0,
    ) -> None:
        self.index = index
        self.vectors = vectors  # (capacity, dim) float32, row = hnswlib label; rows >= next_label unused
        self.items = items  # id -> item, in creation order
        self.labels = labels  # id -> label, live items only
        self.id_of_label = {label: mid for mid, label in labels.items()}
        self.counter = counter  # ids issued so far
        self.next_label = next_label  # slots used, tombstones included
        self.rebuilds = rebuilds
        self.exact_fallbacks = exact_fallbacks
        self.keys: dict[str, dict[str, None]] | None = None  # normalised text -> ids, when dedup is on
        self._live_mask: np.ndarray | None = None

    @property
    def capacity(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def tombstones(self) -> int:
        return self.next_label - len(self.labels)

    def live_mask(self) -> np.ndarray:
        if self._live_mask is None:
            mask = np.zeros(self.next_label, dtype=bool)
            mask[list(self.labels.values())] = True
            self._live_mask = mask
        return self._live_mask

    def invalidate(self) -> None:
        self._live_mask = None

    def index_keys(self) -> None:
        self.keys = {}
        for mid, item in self.items.items():
            self.keys.setdefault(normalise_text(item.content), {})[mid] = None


def _new_index(dim: int, capacity: int, config: StoreConfig) -> hnswlib.Index:
    index = hnswlib.Index(space="cosine", dim=dim)
    index.init_index(
        max_elements=capacity, ef_construction=config.ef_construction, M=config.M, random_seed=config.random_seed
    )
    index.set_ef(config.ef_search)
    return index


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


def _index_state(index: hnswlib.Index) -> dict[str, Any]:
    """hnswlib's own state of ``index`` (ints, floats, bools, a str and numpy arrays; fresh copies)."""
    return dict(index.__getstate__()[0])


def _check_index_state(state: Any, *, dim: int, capacity: int, next_label: int) -> str | None:
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


def _index_from_state(state: Mapping[str, Any]) -> hnswlib.Index:
    """A new hnswlib index from :func:`_index_state` output (hnswlib copies the arrays; nothing is unpickled)."""
    index = hnswlib.Index.__new__(hnswlib.Index)
    index.__setstate__((dict(state),))
    return index


def _check_consistency(
    items: dict[str, MemoryItem], labels: dict[str, int], *, counter: int, next_label: int, capacity: int, where: str
) -> None:
    """Raise :class:`StoreFormatError` unless the id/label bookkeeping of a snapshot or saved store agrees."""

    def fail(rule: str) -> None:
        raise StoreFormatError(f"{where}: {rule}; the store was not written by this library or was edited by hand")

    if list(labels) != list(items):
        fail(f"the label map's ids must equal the items' ids in order, got {len(labels)} labels for {len(items)} items")
    used = list(labels.values())
    if len(set(used)) != len(used) or any(not _is_int(v) or not 0 <= v < next_label for v in used):
        fail(f"labels must be distinct ints in [0, next_label={next_label})")
    if not 0 <= next_label <= capacity:
        fail(f"next_label must be in [0, capacity={capacity}], got {next_label}")
    numbers = [int(_ID_RE.match(mid).group(1), 16) for mid in items]  # type: ignore[union-attr]
    if numbers and max(numbers) > counter:
        fail(f"the id counter ({counter}) must be at least the largest id number ({max(numbers)})")
    for mid, item in items.items():
        if item.id != mid:
            fail(f"item keyed {mid!r} has id {item.id!r}")


# ---------------------------------------------------------------------------------------------------------------
# Persistence helpers
# ---------------------------------------------------------------------------------------------------------------


def _file_record(path: Path) -> dict[str, Any]:
    size, digest = sha256_file(path)
    return {"name": path.name, "bytes": size, "sha256": digest}


def _npy_header(array: np.ndarray) -> bytes:
    """The ``.npy`` (format 1.0) header of ``array``: with its raw bytes after it, the file ``np.save`` writes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    return buf.getvalue()


def _is_store_file(name: str) -> bool:
    return _GEN_FILE_RE.match(name) is not None or name == MANIFEST_TMP


def _saved_generation(directory: Path) -> int:
    """The generation the manifest in ``directory`` names (0 when there is no readable manifest)."""
    try:
        gen = json.loads((directory / MANIFEST).read_bytes().decode("utf-8")).get("generation", 0)
    except (OSError, ValueError, AttributeError, RecursionError):
        return 0
    return gen if _is_int(gen) and gen >= 0 else 0


def _generation_files(directory: Path) -> dict[str, int]:
    """Every file in ``directory`` named like a store generation file, with its generation number."""
    found = {}
    for entry in directory.iterdir():
        m = _GEN_FILE_RE.match(entry.name)
        if m:
            found[entry.name] = int(m.group(2))
    return found


def _capacity_limit(config: StoreConfig, id_counter: int) -> int:
    """The largest capacity a store with these settings and this many ids issued can have reached.

    Capacity only grows, geometrically, when an add needs a slot (and every slot ever used took an id), so it
    stays below ``growth * id_counter``; 2**20 slots (a few tens of MB) are allowed whatever the history, which
    covers stores whose settings were changed on load. It bounds what a load allocates.
    """
    return max(config.initial_capacity, math.ceil(max(config.growth, 2.0) * (id_counter + 1)), 1 << 20)


def _verified_files(
    directory: Path, files: Mapping[str, Any], fail: Callable[..., StoreFormatError]
) -> dict[str, Path]:
    """The index, vectors and items files the manifest names, each checked against its size and sha256."""
    paths: dict[str, Path] = {}
    for role in ("index", "vectors", "items"):
        rec = files.get(role)
        if not isinstance(rec, dict) or not {"name", "bytes", "sha256"} <= set(rec):
            raise fail(f"{MANIFEST} lacks a name/bytes/sha256 record for the {role} file")
        if not isinstance(rec["name"], str) or _GEN_FILE_RE.match(rec["name"]) is None:
            raise fail(f"the {role} file name {rec['name']!r:.80} is not a store file name")
        p = directory / rec["name"]
        if not p.is_file():
            raise fail(f"the {role} file {rec['name']!r} is missing")
        size = p.stat().st_size
        if size != rec["bytes"]:
            raise fail(
                f"the {role} file {rec['name']!r} has {size} bytes, the manifest says {rec['bytes']!r:.40} "
                "(truncated or overwritten)"
            )
        digest = _file_record(p)["sha256"]
        if digest != rec["sha256"]:
            raise fail(
                f"the {role} file {rec['name']!r} has sha256 {digest[:12]}..., the manifest says "
                f"{str(rec['sha256'])[:12]}... (corrupted or altered)"
            )
        paths[role] = p
    return paths


def _read_items(path: Path, fail: Callable[..., StoreFormatError]) -> dict[str, MemoryItem]:
    try:
        records = json.loads(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise fail(f"the items file is not valid JSON ({exc})") from None
    except RecursionError:
        raise fail("the items file is nested too deeply to read") from None
    if not isinstance(records, list):
        raise fail("the items file must hold a JSON list")
    try:
        items = {item.id: item for item in (MemoryItem.from_dict(r) for r in records)}
    except StoreFormatError:
        raise
    except (ConfigError, RecursionError) as exc:  # metadata that is not plain JSON, or absurdly deep
        raise fail(f"an item record is invalid ({str(exc)[:200]})") from None
    if len(items) != len(records):
        raise fail("the items file repeats an id")
    return items


def _read_vectors(path: Path, next_label: int, dim: int, fail: Callable[..., StoreFormatError]) -> np.ndarray:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise fail(f"the vectors file is not a readable .npy ({exc})") from None
    if vectors.dtype != np.float32 or vectors.shape != (next_label, dim) or not np.isfinite(vectors).all():
        raise fail(
            f"the vectors must be finite float32 of shape ({next_label}, {dim}), got {vectors.dtype} {vectors.shape}"
        )
    return np.asarray(vectors)


def _read_index(
    path: Path,
    dim: int,
    capacity: int,
    next_label: int,
    labels: Mapping[str, int],
    fail: Callable[..., StoreFormatError],
) -> hnswlib.Index:
    """Load the hnswlib index and check that exactly the live labels are live in it (no bare KeyError later)."""
    index = hnswlib.Index(space="cosine", dim=dim)
    try:
        index.load_index(str(path), max_elements=capacity)
    except (RuntimeError, MemoryError) as exc:
        raise fail(f"hnswlib could not read the index file ({exc})") from None
    if index.element_count != next_label:
        raise fail(f"the index holds {index.element_count} slots, the manifest says {next_label}")
    live = sorted(labels.values())
    try:
        for start in range(0, len(live), 4096):  # get_items raises on a deleted label; chunks bound the copy
            index.get_items(live[start : start + 4096])
    except RuntimeError:
        raise fail("a live item's slot is deleted in the index (the label map and the index disagree)") from None
    for label in sorted(set(range(next_label)) - set(live)):
        try:
            index.get_items([label])
        except RuntimeError:
            continue  # a tombstone, as it should be
        raise fail(f"slot {label} is live in the index but belongs to no item (the label map and the index disagree)")
    return index


def _save_index(index: hnswlib.Index, path: Path) -> None:
    """hnswlib's ``save_index`` (it reports no write errors: :meth:`MemoryStore.save` reads the file back)."""
    index.save_index(str(path))


def _reload_index(path: Path, dim: int, capacity: int, next_label: int, ef: int, where: str) -> hnswlib.Index:
    """The index just written to ``path``, loaded back (hnswlib checks the file's layout against its size)."""
    index = hnswlib.Index(space="cosine", dim=dim)
    try:
        index.load_index(str(path), max_elements=capacity)
    except (RuntimeError, MemoryError) as exc:
        raise StoreWriteError(
            f"{where}: the index file {path.name!r} does not read back ({exc}): a short or failed write (is the disk "
            "full?). Nothing of this save is left behind; free space and save again"
        ) from None
    if index.element_count != next_label:
        raise StoreWriteError(
            f"{where}: the index file {path.name!r} reads back {index.element_count} slots, not {next_label}"
        )
    index.set_ef(ef)
    return index


# ---------------------------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------------------------


class MemoryStore:
    """Long-term memory: items with ids, an hnswlib cosine index over their embeddings, and persistence.

    Args:
        embedder: ``"hash"`` (default), ``"minilm"``, an :class:`~agemem_gym.embedders.Embedder`, or a callable
            ``list[str] -> array`` (see :func:`~agemem_gym.embedders.make_embedder`).
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

    def _empty_state(self, *, counter: int, rebuilds: int = 0) -> _State:
        capacity = self._config.initial_capacity
        state = _State(
            _new_index(self._dim, capacity, self._config),
            np.zeros((capacity, self._dim), dtype=np.float32),
            {},
            {},
            counter=counter,
            next_label=0,
            rebuilds=rebuilds,
        )
        if self._config.dedup.enabled:
            state.index_keys()
        return state

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
        return self._normalise(vecs, f"embedder {self._embedder.name!r}")

    def _normalise(self, vecs: np.ndarray, source: str) -> np.ndarray:
        if not np.isfinite(vecs).all():
            raise ConfigError(f"{source} produced NaN or infinite values; vectors must be finite")
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)  # (n, 1)
        if (norms <= 0).any():
            raise ConfigError(f"{source} produced an all-zero vector, which has no direction for cosine similarity")
        return np.ascontiguousarray(vecs / norms, dtype=np.float32)

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
        frozen = [_freeze_metadata(m) for m in metadatas]
        _check_memory_type(memory_type)
        _check_step(step)
        with self._lock:
            vecs = self._embed(contents)  # (n, dim)
            if self._config.dedup.enabled:
                return self._add_with_dedup(contents, frozen, vecs, memory_type, step)
            items = [self._new_item(c, m, memory_type, step) for c, m in zip(contents, frozen)]
            self._insert(items, vecs)
            return [AddResult(item, "added") for item in items]

    def _new_item(self, content: str, metadata: _FrozenMapping, memory_type: str, step: int) -> MemoryItem:
        self._s.counter += 1
        return MemoryItem(format_memory_id(self._s.counter), content, metadata, memory_type, step, step)

    def _insert(self, items: list[MemoryItem], vecs: np.ndarray) -> None:
        """Give ``items`` labels, grow if needed, and insert their vectors in one hnswlib call."""
        if not items:
            return
        s = self._s
        self._reserve(len(items))
        labels = np.arange(s.next_label, s.next_label + len(items), dtype=np.int64)
        s.index.add_items(vecs, labels, num_threads=self._config.num_threads)
        s.vectors[labels] = vecs
        for item, label in zip(items, labels.tolist()):
            s.items[item.id] = item
            s.labels[item.id] = label
            s.id_of_label[label] = item.id
            if s.keys is not None:
                s.keys.setdefault(normalise_text(item.content), {})[item.id] = None
        s.next_label += len(items)
        s.invalidate()

    def _reserve(self, extra: int) -> None:
        """Grow the index and the vector matrix geometrically so that ``extra`` more slots fit."""
        s = self._s
        needed = s.next_label + extra
        if needed <= s.capacity:
            return
        capacity = s.capacity
        while capacity < needed:
            capacity = max(capacity + 1, math.ceil(capacity * self._config.growth))
        s.index.resize_index(capacity)
        vectors = np.zeros((capacity, self._dim), dtype=np.float32)
        vectors[: s.next_label] = s.vectors[: s.next_label]
        s.vectors = vectors
        logger.debug("memory store grown to %d slots", capacity)

    def _add_with_dedup(
        self, contents: Sequence[str], metadatas: list[_FrozenMapping], vecs: np.ndarray, memory_type: str, step: int
    ) -> list[AddResult]:
        s, cfg = self._s, self._config.dedup
        assert s.keys is not None
        store_cands = self._knn(vecs, min(cfg.candidates, len(s.items))) if s.items else [[] for _ in contents]
        pending: dict[str, MemoryItem] = {}  # new items of this batch, by id
        pending_vecs: list[np.ndarray] = []
        pending_keys: dict[str, str] = {}  # normalised text -> first pending id
        changed: dict[str, MemoryItem] = {}  # merged existing items, by id
        results: list[AddResult] = []

        def current(mid: str) -> MemoryItem:
            return pending.get(mid) or changed.get(mid) or s.items[mid]

        for i, (content, metadata) in enumerate(zip(contents, metadatas)):
            key = normalise_text(content)
            match: tuple[str, str] | None = None
            same = next(iter(s.keys.get(key, {})), None) or pending_keys.get(key)
            if same is not None:
                match = (same, f"same normalised text as {same}")
            else:
                cands = [(s.id_of_label[label], score) for label, score in store_cands[i]]
                if pending:
                    scores = np.stack(pending_vecs) @ vecs[i]  # (p,)
                    cands += list(zip(pending, scores.tolist()))
                cands.sort(key=lambda c: (-c[1], c[0]))
                match = find_duplicate(content, ((m, current(m).content, sc) for m, sc in cands[: cfg.candidates]), cfg)
            if match is None:
                item = self._new_item(content, metadata, memory_type, step)
                pending[item.id] = item
                pending_vecs.append(vecs[i])
                pending_keys.setdefault(key, item.id)
                results.append(AddResult(item, "added"))
                continue
            dup_id, reason = match
            existing = current(dup_id)
            if cfg.policy == "merge":
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
        new_items = list(pending.values())
        self._insert(new_items, np.stack(pending_vecs) if pending_vecs else vecs[:0])
        s.items.update(changed)  # merged items keep their place in creation order
        return results

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
        frozen = _freeze_metadata(metadata)
        if memory_type is not None:
            _check_memory_type(memory_type)
        _check_step(step)
        with self._lock:
            s = self._s
            old = s.items.get(memory_id) if isinstance(memory_id, str) else None
            if old is None:
                raise self._not_found(memory_id)
            vec = self._embed([content])  # (1, dim)
            label = s.labels[memory_id]
            # Adding an existing label makes hnswlib update that node's vector and repair its links in place.
            s.index.add_items(vec, np.array([label], dtype=np.int64), num_threads=self._config.num_threads)
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
                self._drop_key(old)
                s.keys.setdefault(normalise_text(content), {})[memory_id] = None
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
                self._drop_key(item)
            s.invalidate()
            if s.tombstones > self._config.max_tombstone_ratio * s.next_label:
                self._rebuild()
            return item

    def _drop_key(self, item: MemoryItem) -> None:
        keys = self._s.keys
        assert keys is not None
        key = normalise_text(item.content)
        ids = keys.get(key)
        if ids is not None:
            ids.pop(item.id, None)
            if not ids:
                del keys[key]

    def _rebuild(self) -> None:
        """Rebuild the index from the live vectors, in creation order, with labels 0..n-1 (drops tombstones)."""
        s = self._s
        live = list(s.items)
        vecs = s.vectors[[s.labels[mid] for mid in live]] if live else np.zeros((0, self._dim), np.float32)
        capacity = s.capacity
        index = _new_index(self._dim, capacity, self._config)
        if live:
            index.add_items(vecs, np.arange(len(live)), num_threads=self._config.num_threads)
        vectors = np.zeros((capacity, self._dim), dtype=np.float32)
        vectors[: len(live)] = vecs
        new = _State(
            index,
            vectors,
            s.items,
            {mid: i for i, mid in enumerate(live)},
            counter=s.counter,
            next_label=len(live),
            rebuilds=s.rebuilds + 1,
            exact_fallbacks=s.exact_fallbacks,
        )
        new.keys = s.keys
        self._s = new
        logger.debug("memory store index rebuilt with %d live items", len(live))

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
        k = _check_top_k(top_k)
        flt = _check_filter(metadata_filter)
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
        k = _check_top_k(top_k)
        flt = _check_filter(metadata_filter)
        q = self._normalise(q, "'vectors'") if len(q) else q
        with self._lock:
            if not self._s.items or not len(q):
                return [[] for _ in range(len(q))]
            return self._search(q, k, flt)

    def _search(self, q: np.ndarray, k: int, flt: Mapping[str, Any] | None) -> list[list[SearchHit]]:
        s = self._s
        if flt:
            labels = np.array([s.labels[mid] for mid, item in s.items.items() if _matches(item, flt)], dtype=np.int64)
            if not len(labels):
                return [[] for _ in range(len(q))]
            scores = q @ s.vectors[labels].T  # (m, L)
            ranked = [self._top(scores[i], labels, k) for i in range(len(q))]
        else:
            ranked = self._knn(q, k)
        return [[SearchHit(s.items[s.id_of_label[label]], score) for label, score in row] for row in ranked]

    def _knn(self, q: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k live (label, score) per query row: hnswlib, re-scored exactly, or exact numpy when it fails."""
        s = self._s
        live = len(s.labels)
        k = min(k, live)
        k_query = min(live, k + _TIE_SLACK)
        ef = max(self._config.ef_search, k_query)
        if s.index.ef != ef:
            s.index.set_ef(ef)
        try:
            found, _ = s.index.knn_query(q, k=k_query)  # (m, k_query) labels
        except RuntimeError:
            # hnswlib could not collect k_query live results (tombstones crowd the candidate list): go exact.
            s.exact_fallbacks += 1
            all_scores = q @ s.vectors[: s.next_label].T  # (m, next_label)
            all_scores[:, ~s.live_mask()] = -np.inf
            labels = np.arange(s.next_label, dtype=np.int64)
            return [self._top(all_scores[i], labels, k) for i in range(len(q))]
        found = found.astype(np.int64)
        scores = np.einsum("mkd,md->mk", s.vectors[found], q)  # (m, k_query) exact cosines
        return [self._top(scores[i], found[i], k) for i in range(len(q))]

    def _top(self, scores: np.ndarray, labels: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k best (label, score) by descending score then id, considering every tie at the k-th score."""
        n = len(scores)
        if n > k:
            kth = np.partition(scores, n - k)[n - k]
            sel = np.flatnonzero(scores >= kth)
        else:
            sel = np.arange(n)
        id_of = self._s.id_of_label
        sel = sel[np.isfinite(scores[sel])]
        best = sorted(sel.tolist(), key=lambda j: (-scores[j], id_of[int(labels[j])]))[:k]
        return [(int(labels[j]), float(scores[j])) for j in best]

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
            s = self._s
            index_state = _index_state(s.index)
            s.index = _index_from_state(index_state)
            return {
                "format": _SNAPSHOT_FORMAT,
                "version": _SNAPSHOT_VERSION,
                "dim": self._dim,
                "embedder": self._embedder.name,
                "config": self._config,
                "index": index_state,
                "capacity": s.capacity,
                "vectors": s.vectors[: s.next_label].copy(),
                "items": [item.to_dict() for item in s.items.values()],
                "labels": dict(s.labels),
                "counter": s.counter,
                "next_label": s.next_label,
                "rebuilds": s.rebuilds,
                "exact_fallbacks": s.exact_fallbacks,
            }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Make this store an exact copy of the one :meth:`snapshot` captured (settings included).

        Nothing in ``snapshot`` is unpickled or called: the index is rebuilt from hnswlib's plain state after its
        fields and array sizes are checked.

        Raises:
            StoreFormatError: ``snapshot`` is not a snapshot, or was taken with a different embedding width; the
                store is left unchanged.
        """
        where = "memory store snapshot"
        if not isinstance(snapshot, Mapping) or snapshot.get("format") != _SNAPSHOT_FORMAT:
            raise StoreFormatError(
                f"{where}: expects a dict from MemoryStore.snapshot(), got {type(snapshot).__name__}"
            )
        try:
            dim, name, config = snapshot["dim"], snapshot["embedder"], snapshot["config"]
            index_state, capacity, vectors = snapshot["index"], snapshot["capacity"], snapshot["vectors"]
            item_dicts, labels = snapshot["items"], dict(snapshot["labels"])
            counter, next_label = snapshot["counter"], snapshot["next_label"]
            rebuilds, fallbacks = snapshot["rebuilds"], snapshot["exact_fallbacks"]
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreFormatError(f"{where}: missing or malformed field {exc}; take a new snapshot()") from None
        if snapshot.get("version") != _SNAPSHOT_VERSION:
            raise StoreFormatError(f"{where}: version must be {_SNAPSHOT_VERSION}, got {snapshot.get('version')!r}")
        self._check_embedder(dim, name, where)
        if not isinstance(config, StoreConfig):
            raise StoreFormatError(f"{where}: 'config' must be a StoreConfig, got {type(config).__name__}")
        items = {item.id: item for item in (MemoryItem.from_dict(d) for d in item_dicts)}
        _check_consistency(items, labels, counter=counter, next_label=next_label, capacity=capacity, where=where)
        if not isinstance(vectors, np.ndarray) or vectors.shape != (next_label, self._dim):
            raise StoreFormatError(f"{where}: vectors must have shape ({next_label}, {self._dim})")
        problem = _check_index_state(index_state, dim=self._dim, capacity=capacity, next_label=next_label)
        if problem is not None:
            raise StoreFormatError(
                f"{where}: {problem}; it does not match its items and vectors: take a new snapshot()"
            )
        full = np.zeros((capacity, self._dim), dtype=np.float32)
        full[:next_label] = vectors
        try:
            index = _index_from_state(index_state)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise StoreFormatError(f"{where}: hnswlib refused the index state ({exc}); take a new snapshot()") from None
        state = _State(
            index,
            full,
            items,
            labels,
            counter=counter,
            next_label=next_label,
            rebuilds=rebuilds,
            exact_fallbacks=fallbacks,
        )
        if config.dedup.enabled:
            state.index_keys()
        with self._lock:
            self._config = config
            self._s = state

    def _check_embedder(self, dim: Any, name: Any, where: str) -> None:
        if dim != self._dim:
            raise StoreFormatError(
                f"{where} holds {dim}-d embeddings from embedder {name!r}, but this store's embedder "
                f"{self._embedder.name!r} gives {self._dim}-d vectors; open it with the embedder it was saved with"
            )
        if name != self._embedder.name:
            warnings.warn(
                f"{where} was made with embedder {name!r} but is opened with {self._embedder.name!r} (same dim "
                f"{self._dim}); searches compare vectors from different embedders",
                stacklevel=3,
            )

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
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(where, "its directory", exc) from None
        with self._lock, writer_lock(directory, where):
            gen = 1 + max([*_generation_files(directory).values(), _saved_generation(directory)])
            files = GenerationWriter(directory, where)
            try:
                manifest, index = self._write_generation(files, gen)
                files.write_manifest(seal_manifest(manifest))
            except BaseException as exc:
                if _saved_generation(directory) == gen:
                    raise  # interrupted after the manifest switched: the save is complete, keep its files
                files.discard()
                if isinstance(exc, OSError) and not isinstance(exc, StoreWriteError):
                    raise write_error(where, "the store", exc) from exc
                raise
            # hnswlib does not save its level generator: continue on the reloaded index, as a loaded copy will.
            self._s.index = index
            sweep(directory, {MANIFEST, *(rec["name"] for rec in manifest["files"].values())}, _is_store_file, where)

    def _write_generation(self, files: GenerationWriter, gen: int) -> tuple[dict[str, Any], hnswlib.Index]:
        """Write and verify generation ``gen``'s data files; returns the manifest body and the reloaded index."""
        s = self._s
        names = {"index": f"index-{gen:06d}.bin", "vectors": f"vectors-{gen:06d}.npy", "items": f"items-{gen:06d}.json"}
        index_path = files.create(names["index"])
        expected = int(s.index.index_file_size())
        _save_index(s.index, index_path)
        records = {"index": files.seal(names["index"], expected)}
        index = _reload_index(index_path, self._dim, s.capacity, s.next_label, int(s.index.ef), files.where)
        vectors = np.ascontiguousarray(s.vectors[: s.next_label])
        records["vectors"] = files.write(
            names["vectors"], [_npy_header(vectors), vectors.reshape(-1).view(np.uint8).data]
        )
        items = json.dumps([item.to_dict() for item in s.items.values()], ensure_ascii=True).encode("ascii")
        records["items"] = files.write(names["items"], [items])
        manifest = {
            "format": STORE_FORMAT,
            "version": STORE_FORMAT_VERSION,
            "generation": gen,
            "space": "cosine",
            "dim": self._dim,
            "M": self._config.M,
            "ef_construction": self._config.ef_construction,
            "ef_search": self._config.ef_search,
            "embedder": self._embedder.name,
            "config": self._config.to_dict(),
            "id_counter": s.counter,
            "capacity": s.capacity,
            "next_label": s.next_label,
            "rebuilds": s.rebuilds,
            "labels": dict(s.labels),
            "files": records,
        }
        return manifest, index

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
        directory = Path(path)
        attempts = 5
        for attempt in range(attempts):
            generation = _saved_generation(directory)
            try:
                state, saved_config = self._read(directory, config)
                break
            except (StoreFormatError, FileNotFoundError):
                # A concurrent save replaced the generation (and deleted its files, so a read can also find one
                # gone) while we read it: read the new one. Damage that is really there does not change the
                # generation, and is raised.
                if attempt == attempts - 1 or _saved_generation(directory) == generation:
                    raise
        with self._lock:
            self._config = saved_config
            self._s = state

    def _read(self, directory: Path, config: StoreConfig | None) -> tuple[_State, StoreConfig]:
        """Read and check a saved store whole: the sealed manifest, every file's size and digest, then contents."""
        where = f"memory store at {str(directory)!r}"

        def fail(rule: str, fix: str = "save it again, or restore the directory from a backup") -> StoreFormatError:
            return StoreFormatError(f"{where}: {rule}; {fix}")

        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise fail(
                f"no {MANIFEST} found",
                "pass the directory given to MemoryStore.save() (a save that never completed leaves no manifest)",
            )
        m = read_manifest(
            manifest_path,
            fmt=STORE_FORMAT,
            version=STORE_FORMAT_VERSION,
            fail=fail,
            old_fix="open it with the agemem-gym version that wrote it (format 1 had no checksum and cannot be "
            "verified: re-create such a store with this version)",
        )
        saved_config = self._check_manifest(m, where, fail)
        paths = _verified_files(directory, m["files"], fail)
        items = _read_items(paths["items"], fail)
        labels, capacity, next_label, dim = m["labels"], m["capacity"], m["next_label"], self._dim
        _check_consistency(
            items, labels, counter=m["id_counter"], next_label=next_label, capacity=capacity, where=where
        )
        vectors = _read_vectors(paths["vectors"], next_label, dim, fail)
        use = config if config is not None else saved_config
        index = _read_index(paths["index"], dim, capacity, next_label, labels, fail)
        index.set_ef(use.ef_search)  # ef is not saved by hnswlib (it loads as 10)
        full = np.zeros((capacity, dim), dtype=np.float32)
        full[:next_label] = vectors
        state = _State(
            index, full, items, labels, counter=m["id_counter"], next_label=next_label, rebuilds=m["rebuilds"]
        )
        if use.dedup.enabled:
            state.index_keys()
        return state, use

    def _check_manifest(self, m: Mapping[str, Any], where: str, fail: Callable[..., StoreFormatError]) -> StoreConfig:
        """Check the manifest's fields (types, space, dim, settings, capacity); returns the saved settings."""
        expected = {
            "space": str, "dim": int, "M": int, "ef_construction": int, "ef_search": int, "embedder": str,
            "config": dict, "id_counter": int, "capacity": int, "next_label": int, "rebuilds": int,
            "labels": dict, "files": dict,
        }  # fmt: skip
        for key, kind in expected.items():
            if key not in m:
                raise fail(f"{MANIFEST} lacks the field {key!r}")
            if not isinstance(m[key], kind) or isinstance(m[key], bool):
                raise fail(f"{MANIFEST} field {key!r} must be {kind.__name__}, got {m[key]!r:.80}")
        if m["space"] != "cosine":
            raise fail(f"space must be 'cosine', got {m['space']!r}")
        self._check_embedder(m["dim"], m["embedder"], where)
        try:
            saved = StoreConfig.from_dict(m["config"])
        except (ConfigError, TypeError) as exc:
            raise fail(f"its saved settings are invalid ({exc})") from None
        for key in ("M", "ef_construction", "ef_search"):
            if m[key] != getattr(saved, key):
                raise fail(f"{MANIFEST} field {key!r} is {m[key]}, but its saved settings say {getattr(saved, key)}")
        for key in ("id_counter", "next_label", "rebuilds"):
            if m[key] < 0:
                raise fail(f"{MANIFEST} field {key!r} must be >= 0, got {m[key]}")
        limit = _capacity_limit(saved, m["id_counter"])
        if not m["next_label"] <= m["capacity"] <= limit:
            raise fail(
                f"capacity must be in [next_label={m['next_label']}, {limit}] (what the growth rule can reach for "
                f"{m['id_counter']} ids), got {m['capacity']}"
            )
        return saved


# ---------------------------------------------------------------------------------------------------------------
# Argument checks and metadata filters
# ---------------------------------------------------------------------------------------------------------------


def _check_top_k(top_k: Any) -> int:
    check("top_k", top_k, "int", gt=0, numpy=True)
    return int(top_k)


def _check_memory_type(memory_type: Any) -> None:
    if not isinstance(memory_type, str) or not memory_type:
        raise ConfigError(f"'memory_type' must be a non-empty str, got {memory_type!r}; e.g. 'fact'")


def _check_step(step: Any) -> None:
    check("step", step, "int", ge=0, numpy=True)


def _check_filter(flt: Any) -> Mapping[str, Any] | None:
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


def _matches(item: MemoryItem, flt: Mapping[str, Any]) -> bool:
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
