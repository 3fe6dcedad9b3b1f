"""Snapshots and saved stores: writing them, and one validate-then-build path for reading them back.

Two formats carry a store's contents (:class:`~agemem_gym.memory.state.StoreState`):

- a **snapshot** (:func:`snapshot_of`) is an in-memory dict for branching rollouts: the items, the vectors, the
  counters, the settings and hnswlib's own state of the graph (plain numbers and arrays, never a pickle);
- a **saved store** (:func:`save_state`) is a directory: one generation of data files (hnswlib index, vectors
  ``.npy``, items JSON) and a sealed ``manifest.json`` naming them with their sizes and sha256 digests (the
  crash-safe file mechanics are in :mod:`agemem_gym.memory.files`).

Reading either checks its own envelope first (the snapshot's fields; the manifest's seal, fields and file
digests), then hands the contents to :func:`build_state`, the one place that checks what was read (item records,
the id <-> slot bookkeeping, the vectors, the index against the slots) and builds the state from it. Nothing is
changed until everything is checked, so a store that fails to restore or load is left as it was.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agemem_gym.errors import ConfigError, StoreFormatError, StoreWriteError
from agemem_gym.memory.config import StoreConfig, capacity_limit
from agemem_gym.memory.dedup import TextKeys
from agemem_gym.memory.files import (
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
from agemem_gym.memory.index import CosineIndex, check_index_state
from agemem_gym.memory.items import MemoryItem, id_number, is_step
from agemem_gym.memory.state import StoreState

__all__ = [
    "STORE_FORMAT",
    "STORE_FORMAT_VERSION",
    "Contents",
    "build_state",
    "load_state",
    "read_state",
    "restore_state",
    "save_state",
    "snapshot_of",
]

STORE_FORMAT = "agemem-gym-memory-store"
STORE_FORMAT_VERSION = 2  # 2: the manifest is sealed by a checksum
_SNAPSHOT_FORMAT = "agemem-gym-memory-snapshot"
_SNAPSHOT_VERSION = 2  # 2: the index travels as hnswlib's state (plain values and arrays), never as a pickle
GEN_FILE_RE = re.compile(r"^(index|vectors|items)-(\d{6,})\.(bin|npy|json)$")
Fail = Callable[..., StoreFormatError]


# ---------------------------------------------------------------------------------------------------------------
# The one validate-then-build path
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contents:
    """A store's contents as read from a snapshot or a saved store, before :func:`build_state` checks them.

    Attributes:
        records: The item records (``MemoryItem.to_dict`` output), in creation order.
        labels: Live id -> slot.
        counter: Ids issued so far.
        next_label: Slots used, tombstones included.
        capacity: Slots allocated.
        vectors: The ``(next_label, dim)`` vectors of the used slots.
        index: Builds the index once the bookkeeping above is known good: ``(dim, capacity, next_label, labels)
            -> index``, raising through ``fail`` when it does not match.
        rebuilds: Index rebuilds so far.
        exact_fallbacks: Searches answered exactly so far.
    """

    records: Any
    labels: Any
    counter: Any
    next_label: Any
    capacity: Any
    vectors: Any
    index: Callable[[int, int, int, Mapping[str, int]], CosineIndex]
    rebuilds: Any = 0
    exact_fallbacks: Any = 0


def build_state(contents: Contents, *, dim: int, config: StoreConfig, where: str, fail: Fail) -> StoreState:
    """Check everything ``contents`` holds against itself and build the store's state from it.

    Args:
        contents: What was read.
        dim: The embedding width of the store that will hold it.
        config: The settings it will run with (the dedup policy decides whether the exact-check table is built).
        where: What was read, for messages.
        fail: ``(rule) -> StoreFormatError`` with the source's fix.

    Raises:
        StoreFormatError: Anything does not match; nothing was changed.
    """
    items = _items_from_records(contents.records, fail)
    labels = contents.labels
    if not isinstance(labels, Mapping):
        raise fail(f"the label map must be a mapping of id -> slot, got {type(labels).__name__}")
    labels = dict(labels)
    for key in ("counter", "next_label", "capacity", "rebuilds", "exact_fallbacks"):
        if not is_step(getattr(contents, key)):
            raise fail(f"{key!r} must be an int >= 0, got {getattr(contents, key)!r:.40}")
    counter, next_label, capacity = int(contents.counter), int(contents.next_label), int(contents.capacity)
    _check_consistency(items, labels, counter=counter, next_label=next_label, capacity=capacity, where=where)
    vectors = contents.vectors
    if (
        not isinstance(vectors, np.ndarray)
        or vectors.dtype != np.float32
        or vectors.shape != (next_label, dim)
        or not np.isfinite(vectors).all()
    ):
        got = f"{vectors.dtype} {vectors.shape}" if isinstance(vectors, np.ndarray) else type(vectors).__name__
        raise fail(f"the vectors must be finite float32 of shape ({next_label}, {dim}), got {got}")
    index = contents.index(dim, capacity, next_label, labels)
    full = np.zeros((capacity, dim), dtype=np.float32)
    full[:next_label] = vectors
    return StoreState(
        index,
        full,
        items,
        labels,
        counter=counter,
        next_label=next_label,
        rebuilds=int(contents.rebuilds),
        exact_fallbacks=int(contents.exact_fallbacks),
        keys=TextKeys.of(items.values()) if config.dedup.enabled else None,
    )


def _items_from_records(records: Any, fail: Fail) -> dict[str, MemoryItem]:
    if not isinstance(records, list):
        raise fail("the items must be a JSON list of item records")
    try:
        items = {item.id: item for item in (MemoryItem.from_dict(r) for r in records)}
    except StoreFormatError:
        raise
    except (ConfigError, RecursionError) as exc:  # metadata that is not plain JSON, or absurdly deep
        raise fail(f"an item record is invalid ({str(exc)[:200]})") from None
    if len(items) != len(records):
        raise fail("the items repeat an id")
    return items


def _check_consistency(
    items: dict[str, MemoryItem], labels: dict[str, int], *, counter: int, next_label: int, capacity: int, where: str
) -> None:
    """Raise :class:`StoreFormatError` unless the id/label bookkeeping of a snapshot or saved store agrees."""

    def fail(rule: str) -> None:
        raise StoreFormatError(f"{where}: {rule}; the store was not written by this library or was edited by hand")

    if list(labels) != list(items):
        fail(f"the label map's ids must equal the items' ids in order, got {len(labels)} labels for {len(items)} items")
    used = list(labels.values())
    if len(set(used)) != len(used) or any(not is_step(v) or not 0 <= v < next_label for v in used):
        fail(f"labels must be distinct ints in [0, next_label={next_label})")
    if not 0 <= next_label <= capacity:
        fail(f"next_label must be in [0, capacity={capacity}], got {next_label}")
    numbers = [id_number(mid) for mid in items]  # well formed: MemoryItem.from_dict checked them
    if numbers and max(numbers) > counter:
        fail(f"the id counter ({counter}) must be at least the largest id number ({max(numbers)})")


def check_embedder(dim: Any, name: Any, *, store_dim: int, store_embedder: str, where: str) -> None:
    """Raise unless a snapshot's or saved store's dim is the store's; warn when only the embedder's name differs."""
    if dim != store_dim:
        raise StoreFormatError(
            f"{where} holds {dim}-d embeddings from embedder {name!r}, but this store's embedder "
            f"{store_embedder!r} gives {store_dim}-d vectors; open it with the embedder it was saved with"
        )
    if name != store_embedder:
        warnings.warn(
            f"{where} was made with embedder {name!r} but is opened with {store_embedder!r} (same dim "
            f"{store_dim}); searches compare vectors from different embedders",
            stacklevel=4,
        )


# ---------------------------------------------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------------------------------------------


def snapshot_of(state: StoreState, *, dim: int, embedder: str, config: StoreConfig) -> dict[str, Any]:
    """The snapshot dict of ``state`` (independent copies; ``state.index`` is switched to a copy built from the
    same hnswlib state, so that the store and any store restored from the snapshot continue alike)."""
    index_state = state.index.state()
    state.index = CosineIndex.from_state(index_state, dim=dim)
    return {
        "format": _SNAPSHOT_FORMAT,
        "version": _SNAPSHOT_VERSION,
        "dim": dim,
        "embedder": embedder,
        "config": config,
        "index": index_state,
        "capacity": state.capacity,
        "vectors": state.vectors[: state.next_label].copy(),
        "items": [item.to_dict() for item in state.items.values()],
        "labels": dict(state.labels),
        "counter": state.counter,
        "next_label": state.next_label,
        "rebuilds": state.rebuilds,
        "exact_fallbacks": state.exact_fallbacks,
    }


def restore_state(snapshot: Any, *, dim: int, embedder: str) -> tuple[StoreState, StoreConfig]:
    """The state and settings a :func:`snapshot_of` dict holds, checked whole (nothing is unpickled or called).

    Raises:
        StoreFormatError: ``snapshot`` is not a snapshot, was taken with another embedding width, or does not
            agree with itself.
    """
    where = "memory store snapshot"
    if not isinstance(snapshot, Mapping) or snapshot.get("format") != _SNAPSHOT_FORMAT:
        raise StoreFormatError(f"{where}: expects a dict from MemoryStore.snapshot(), got {type(snapshot).__name__}")

    def fail(rule: str) -> StoreFormatError:
        return StoreFormatError(f"{where}: {rule}; take a new snapshot()")

    try:
        name, config, index_state = snapshot["embedder"], snapshot["config"], snapshot["index"]
        contents = Contents(
            records=snapshot["items"],
            labels=snapshot["labels"],
            counter=snapshot["counter"],
            next_label=snapshot["next_label"],
            capacity=snapshot["capacity"],
            vectors=snapshot["vectors"],
            index=lambda d, capacity, next_label, _labels: _index_from_state(
                index_state, d, capacity, next_label, fail
            ),
            rebuilds=snapshot["rebuilds"],
            exact_fallbacks=snapshot["exact_fallbacks"],
        )
        snapshot_dim = snapshot["dim"]
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreFormatError(f"{where}: missing or malformed field {exc}; take a new snapshot()") from None
    if snapshot.get("version") != _SNAPSHOT_VERSION:
        raise StoreFormatError(f"{where}: version must be {_SNAPSHOT_VERSION}, got {snapshot.get('version')!r}")
    check_embedder(snapshot_dim, name, store_dim=dim, store_embedder=embedder, where=where)
    if not isinstance(config, StoreConfig):
        raise StoreFormatError(f"{where}: 'config' must be a StoreConfig, got {type(config).__name__}")
    return build_state(contents, dim=dim, config=config, where=where, fail=fail), config


def _index_from_state(state: Any, dim: int, capacity: int, next_label: int, fail: Fail) -> CosineIndex:
    """The snapshot's index, after its fields and sizes are checked (its ef is the snapshotted store's)."""
    problem = check_index_state(state, dim=dim, capacity=capacity, next_label=next_label)
    if problem is not None:
        raise fail(f"{problem}; it does not match its items and vectors")
    try:
        return CosineIndex.from_state(state, dim=dim)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise fail(f"hnswlib refused the index state ({exc})") from None


# ---------------------------------------------------------------------------------------------------------------
# Saved stores: writing
# ---------------------------------------------------------------------------------------------------------------


def saved_generation(directory: Path) -> int:
    """The generation the manifest in ``directory`` names (0 when there is no readable manifest)."""
    try:
        gen = json.loads((directory / MANIFEST).read_bytes().decode("utf-8")).get("generation", 0)
    except (OSError, ValueError, AttributeError, RecursionError):
        return 0
    return gen if is_step(gen) else 0


def _generation_files(directory: Path) -> dict[str, int]:
    """Every file in ``directory`` named like a store generation file, with its generation number."""
    found = {}
    for entry in directory.iterdir():
        m = GEN_FILE_RE.match(entry.name)
        if m:
            found[entry.name] = int(m.group(2))
    return found


def _is_store_file(name: str) -> bool:
    return GEN_FILE_RE.match(name) is not None or name == MANIFEST_TMP


def _npy_header(array: np.ndarray) -> bytes:
    """The ``.npy`` (format 1.0) header of ``array``: with its raw bytes after it, the file ``np.save`` writes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    return buf.getvalue()


def save_state(
    state: StoreState, directory: Path, *, dim: int, embedder: str, config: StoreConfig, where: str
) -> CosineIndex:
    """Write ``state`` as the next generation in ``directory`` (see :meth:`MemoryStore.save`).

    Returns:
        The index read back from the file just written, which the store continues on (hnswlib does not save its
        level generator, so a loaded copy continues from the reloaded graph too).
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(where, "its directory", exc) from None
    with writer_lock(directory, where):
        gen = 1 + max([*_generation_files(directory).values(), saved_generation(directory)])
        files = GenerationWriter(directory, where)
        try:
            manifest, index = _write_generation(state, files, gen, dim=dim, embedder=embedder, config=config)
            files.write_manifest(seal_manifest(manifest))
        except BaseException as exc:
            if saved_generation(directory) == gen:
                raise  # interrupted after the manifest switched: the save is complete, keep its files
            files.discard()
            if isinstance(exc, OSError) and not isinstance(exc, StoreWriteError):
                raise write_error(where, "the store", exc) from exc
            raise
        sweep(directory, {MANIFEST, *(rec["name"] for rec in manifest["files"].values())}, _is_store_file, where)
    return index


def _write_generation(
    s: StoreState, files: GenerationWriter, gen: int, *, dim: int, embedder: str, config: StoreConfig
) -> tuple[dict[str, Any], CosineIndex]:
    """Write and verify generation ``gen``'s data files; returns the manifest body and the reloaded index."""
    names = {"index": f"index-{gen:06d}.bin", "vectors": f"vectors-{gen:06d}.npy", "items": f"items-{gen:06d}.json"}
    index_path = files.create(names["index"])
    expected = s.index.file_size
    s.index.save(index_path)
    records = {"index": files.seal(names["index"], expected)}
    index = _reload_index(index_path, dim, s.capacity, s.next_label, s.index.ef, files.where)
    vectors = np.ascontiguousarray(s.vectors[: s.next_label])
    records["vectors"] = files.write(names["vectors"], [_npy_header(vectors), vectors.reshape(-1).view(np.uint8).data])
    items = json.dumps([item.to_dict() for item in s.items.values()], ensure_ascii=True).encode("ascii")
    records["items"] = files.write(names["items"], [items])
    manifest = {
        "format": STORE_FORMAT,
        "version": STORE_FORMAT_VERSION,
        "generation": gen,
        "space": "cosine",
        "dim": dim,
        "M": config.M,
        "ef_construction": config.ef_construction,
        "ef_search": config.ef_search,
        "embedder": embedder,
        "config": config.to_dict(),
        "id_counter": s.counter,
        "capacity": s.capacity,
        "next_label": s.next_label,
        "rebuilds": s.rebuilds,
        "labels": dict(s.labels),
        "files": records,
    }
    return manifest, index


def _reload_index(path: Path, dim: int, capacity: int, next_label: int, ef: int, where: str) -> CosineIndex:
    """The index just written to ``path``, loaded back (hnswlib checks the file's layout against its size)."""
    try:
        index = CosineIndex.load(path, dim=dim, capacity=capacity)
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
# Saved stores: reading
# ---------------------------------------------------------------------------------------------------------------


def read_state(
    directory: Path, *, dim: int, embedder: str, config: StoreConfig | None
) -> tuple[StoreState, StoreConfig]:
    """Read and check a saved store whole: the sealed manifest, every file's size and digest, then its contents.

    Args:
        directory: The store's directory.
        dim: The reading store's embedding width.
        embedder: The reading store's embedder name.
        config: Settings to run with from now on; None uses the saved ones.

    Raises:
        StoreFormatError: Anything is missing, damaged or inconsistent.
    """
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
    saved_config = _check_manifest(m, where, fail, dim=dim, embedder=embedder)
    use = config if config is not None else saved_config
    paths = _verified_files(directory, m["files"], fail)

    def load_index(d: int, capacity: int, next_label: int, labels: Mapping[str, int]) -> CosineIndex:
        try:
            index = CosineIndex.load(paths["index"], dim=d, capacity=capacity)
        except (RuntimeError, MemoryError) as exc:
            raise fail(f"hnswlib could not read the index file ({exc})") from None
        problem = index.live_problem(sorted(labels.values()), next_label)
        if problem is not None:
            raise fail(problem)
        index.set_ef(use.ef_search)  # ef is not saved by hnswlib (it loads as 10)
        return index

    contents = Contents(
        records=_read_json(paths["items"], fail),
        labels=m["labels"],
        counter=m["id_counter"],
        next_label=m["next_label"],
        capacity=m["capacity"],
        vectors=_read_npy(paths["vectors"], fail),
        index=load_index,
        rebuilds=m["rebuilds"],
    )
    return build_state(contents, dim=dim, config=use, where=where, fail=fail), use


def load_state(
    directory: Path, *, dim: int, embedder: str, config: StoreConfig | None, attempts: int = 5
) -> tuple[StoreState, StoreConfig]:
    """:func:`read_state`, read again when a concurrent save replaced the generation while it was being read.

    A save deletes the previous generation's files once its manifest is in place, so a read can also find one
    gone; damage that is really there does not change the generation, and is raised.
    """
    for attempt in range(attempts):
        generation = saved_generation(directory)
        try:
            return read_state(directory, dim=dim, embedder=embedder, config=config)
        except (StoreFormatError, FileNotFoundError):
            if attempt == attempts - 1 or saved_generation(directory) == generation:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def _check_manifest(m: Mapping[str, Any], where: str, fail: Fail, *, dim: int, embedder: str) -> StoreConfig:
    """Check the manifest's own fields (types, space, dim, settings, capacity); returns the saved settings."""
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
    check_embedder(m["dim"], m["embedder"], store_dim=dim, store_embedder=embedder, where=where)
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
    limit = capacity_limit(saved, m["id_counter"])
    if not m["next_label"] <= m["capacity"] <= limit:
        raise fail(
            f"capacity must be in [next_label={m['next_label']}, {limit}] (what the growth rule can reach for "
            f"{m['id_counter']} ids), got {m['capacity']}"
        )
    return saved


def _verified_files(directory: Path, files: Mapping[str, Any], fail: Fail) -> dict[str, Path]:
    """The index, vectors and items files the manifest names, each checked against its size and sha256."""
    paths: dict[str, Path] = {}
    for role in ("index", "vectors", "items"):
        rec = files.get(role)
        if not isinstance(rec, dict) or not {"name", "bytes", "sha256"} <= set(rec):
            raise fail(f"{MANIFEST} lacks a name/bytes/sha256 record for the {role} file")
        if not isinstance(rec["name"], str) or GEN_FILE_RE.match(rec["name"]) is None:
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
        digest = sha256_file(p)[1]
        if digest != rec["sha256"]:
            raise fail(
                f"the {role} file {rec['name']!r} has sha256 {digest[:12]}..., the manifest says "
                f"{str(rec['sha256'])[:12]}... (corrupted or altered)"
            )
        paths[role] = p
    return paths


def _read_json(path: Path, fail: Fail) -> Any:
    try:
        return json.loads(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise fail(f"the items file is not valid JSON ({exc})") from None
    except RecursionError:
        raise fail("the items file is nested too deeply to read") from None


def _read_npy(path: Path, fail: Fail) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise fail(f"the vectors file is not a readable .npy ({exc})") from None
