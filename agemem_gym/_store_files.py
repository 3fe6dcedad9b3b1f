"""The files of a saved memory store: the sealed manifest (private; :mod:`agemem_gym.memory` uses it).

A saved store is a directory holding one generation of data files (``index-NNNNNN.bin``, ``vectors-NNNNNN.npy``,
``items-NNNNNN.json``) and ``manifest.json``, which names them with their sizes and sha256 digests. The manifest
itself is sealed by a ``checksum`` field: the sha256 of its canonical JSON (sorted keys, no whitespace, ASCII)
without that field. The chain manifest -> file digests -> files means that any change to any byte of the store
is either refused on load or changes nothing the store holds (whitespace in the manifest, say). This module
knows nothing of hnswlib.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "manifest_digest", "read_manifest", "seal_manifest"]

MANIFEST = "manifest.json"
_CHECKSUM = "checksum"


def manifest_digest(body: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of ``body``'s canonical JSON (every field but the checksum)."""
    fields = {k: v for k, v in body.items() if k != _CHECKSUM}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def seal_manifest(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with its ``checksum`` field set (the last key, so the file reads top-down)."""
    return {**{k: v for k, v in body.items() if k != _CHECKSUM}, _CHECKSUM: manifest_digest(body)}


def read_manifest(
    path: Path, *, fmt: str, version: int, fail: Callable[[str, str], Exception], old_fix: str
) -> dict[str, Any]:
    """Read and unseal a manifest: valid JSON, the right format and version, and an intact checksum.

    Args:
        path: The manifest file.
        fmt: The ``format`` it must name.
        version: The ``version`` it must have.
        fail: ``(rule, fix) -> exception`` to raise (the store's own :class:`StoreFormatError` factory).
        old_fix: What to do about a manifest of another version.

    Returns:
        The manifest's fields (the checksum included).
    """
    fix = "save it again, or restore the directory from a backup"
    try:
        m = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise fail(f"{MANIFEST} is not valid JSON ({exc})", fix) from None
    except RecursionError:  # nesting past the interpreter's recursion limit
        raise fail(f"{MANIFEST} is nested too deeply to be a manifest", fix) from None
    if not isinstance(m, dict) or m.get("format") != fmt:
        got = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise fail(f"{MANIFEST} must have format {fmt!r}, got {got!r:.80}", fix)
    if m.get("version") != version:
        raise fail(f"format version must be {version}, got {m.get('version')!r:.40}", old_fix)
    recorded = m.get(_CHECKSUM)
    try:
        actual = manifest_digest(m)
    except ValueError:  # NaN or infinity: never written by save()
        actual = "<not canonical JSON>"
    if recorded != actual:
        raise fail(
            f"{MANIFEST} fails its checksum (recorded {str(recorded)[:19]!r}, computed {actual[:19]!r}): it was "
            "edited or corrupted after it was saved",
            fix,
        )
    return m
