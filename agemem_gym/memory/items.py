"""Memory items and search results, and the frozen copies of their JSON metadata.

A :class:`MemoryItem` is immutable all the way down: its metadata is validated as a JSON object once and kept as a
private deep copy behind a read-only mapping, whose nested lists and dicts come out as copies, so no caller can
change a stored item through what the store hands out.

>>> item = MemoryItem("m_0001", "Paris is the capital of France.", {"tags": ["geo"]}, "fact", 2, 2)
>>> item.metadata["tags"].append("edited")  # a copy: the item is unchanged
>>> dict(item.metadata), MemoryItem.from_dict(item.to_dict()) == item
({'tags': ['geo']}, True)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agemem_gym._validate import check, is_int
from agemem_gym.errors import ConfigError, StoreFormatError

__all__ = [
    "AddResult",
    "MemoryItem",
    "SearchHit",
    "check_memory_type",
    "check_step",
    "format_memory_id",
    "freeze_metadata",
    "id_number",
    "is_step",
]

ID_RE = re.compile(r"^m_([0-9a-f]{4,})$")


def format_memory_id(number: int) -> str:
    """The id of the ``number``-th item a store creates: ``m_`` + lowercase hex, at least 4 digits.

    >>> format_memory_id(1), format_memory_id(0x10000)
    ('m_0001', 'm_10000')
    """
    return f"m_{number:04x}"


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


def freeze_metadata(metadata: Mapping[str, Any] | None) -> _FrozenMapping:
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
        object.__setattr__(self, "metadata", freeze_metadata(self.metadata))

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
                and ID_RE.match(data["id"]) is not None
                and isinstance(data["content"], str)
                and isinstance(data["metadata"], dict)
                and isinstance(data["memory_type"], str)
                and is_step(data["created_step"])
                and is_step(data["updated_step"])
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


def id_number(memory_id: str) -> int:
    """The counter value behind an id: ``id_number(format_memory_id(n)) == n`` (``memory_id`` must be well formed).

    >>> id_number("m_0001"), id_number(format_memory_id(0x10000))
    (1, 65536)
    """
    m = ID_RE.match(memory_id)
    if m is None:
        raise ConfigError(f"a memory id must be m_ followed by at least 4 lowercase hex digits, got {memory_id!r:.60}")
    return int(m.group(1), 16)


def is_step(value: Any) -> bool:
    """Whether ``value`` can be an env step (an int >= 0; NumPy ints too, never a bool)."""
    return is_int(value, numpy=True) and value >= 0


def check_step(step: Any) -> None:
    """Raise :class:`ConfigError` unless ``step`` is an int >= 0."""
    if type(step) is int and step >= 0:  # the usual case, without the general check's keyword handling
        return
    check("step", step, "int", ge=0, numpy=True)


def check_memory_type(memory_type: Any) -> None:
    """Raise :class:`ConfigError` unless ``memory_type`` is a non-empty str."""
    if not isinstance(memory_type, str) or not memory_type:
        raise ConfigError(f"'memory_type' must be a non-empty str, got {memory_type!r}; e.g. 'fact'")
