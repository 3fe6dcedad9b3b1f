"""The files of a saved memory store: the sealed manifest and verified writes (private; used by the store).

A saved store is a directory holding one generation of data files (``index-NNNNNN.bin``, ``vectors-NNNNNN.npy``,
``items-NNNNNN.json``) and ``manifest.json``, which names them with their sizes and sha256 digests. The manifest
itself is sealed by a ``checksum`` field: the sha256 of its canonical JSON (sorted keys, no whitespace, ASCII)
without that field. The chain manifest -> file digests -> files means that any change to any byte of the store
is either refused on load or changes nothing the store holds (whitespace in the manifest, say). This module
knows nothing of hnswlib.

Writes never follow a symlink or reuse a name (``O_EXCL | O_NOFOLLOW``), every file is read back and compared with
what was meant to be written (hnswlib's ``save_index`` reports no write errors, so only reading back catches a
full disk), and a failed save removes everything it created.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from agemem_gym._locks import try_lock
from agemem_gym.errors import StoreLockedError, StoreWriteError

__all__ = [
    "LOCK_FILE",
    "MANIFEST",
    "MANIFEST_TMP",
    "GenerationWriter",
    "fsync_dir",
    "manifest_digest",
    "read_manifest",
    "seal_manifest",
    "sha256_file",
    "sweep",
    "write_error",
    "writer_lock",
]

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


# ---------------------------------------------------------------------------------------------------------------
# Writing: exclusive creation, verified contents, nothing left behind on failure
# ---------------------------------------------------------------------------------------------------------------

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
MANIFEST_TMP = MANIFEST + ".tmp"


def write_error(where: str, what: str, exc: BaseException) -> StoreWriteError:
    """A :class:`StoreWriteError` for an ``OSError`` while writing ``what``, with its likely cause and the fix."""
    errno_ = getattr(exc, "errno", None)
    cause = {
        errno.EROFS: "the directory is on a read-only file system",
        errno.EACCES: "the directory is not writable (read-only)",
        errno.EPERM: "the directory is not writable (read-only)",
        errno.ENOSPC: "the disk is full",
        getattr(errno, "EDQUOT", -2): "the disk quota is exhausted",
        errno.EFBIG: "a file-size limit was reached",
    }.get(errno_ or -1, "the write failed")
    detail = getattr(exc, "strerror", None) or str(exc)
    err = StoreWriteError(
        f"{where}: could not write {what}: {cause} ({detail}). Nothing of this save is left behind and the store "
        "saved there before, if any, is intact; free space or make the directory writable, or save elsewhere"
    )
    err.errno = errno_
    return err


def sha256_file(path: Path) -> tuple[int, str]:
    """``(size, sha256 hex)`` of what is on disk at ``path``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (not possible on Windows, where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class GenerationWriter:
    """Writes the files of one save: each created exclusively (never through a symlink or over a file), fsynced
    and read back against what was meant to be written; :meth:`discard` removes every one of them.

    Args:
        directory: The store directory.
        where: How messages name the store.
    """

    def __init__(self, directory: Path, where: str) -> None:
        self.directory = directory
        self.where = where
        self.created: list[Path] = []

    def create(self, name: str) -> Path:
        """Create ``name`` empty and exclusively (``O_EXCL | O_NOFOLLOW``), for a writer that opens it by name."""
        path = self.directory / name
        try:
            os.close(os.open(path, _CREATE, 0o644))
        except OSError as exc:
            raise write_error(self.where, f"{name!r}", exc) from None
        self.created.append(path)
        return path

    def write(self, name: str, chunks: Iterable[bytes | memoryview]) -> dict[str, Any]:
        """Write ``chunks`` to the new file ``name``, fsync it, and check it reads back byte for byte.

        Returns:
            Its manifest record: ``{"name", "bytes", "sha256"}``.

        Raises:
            StoreWriteError: A write failed, or the file on disk is not what was written (a short write).
        """
        path = self.create(name)
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk) if isinstance(chunk, bytes) else chunk.nbytes
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise write_error(self.where, f"{name!r}", exc) from None
        return self.seal(name, size, digest.hexdigest())

    def seal(self, name: str, size: int, sha256: str | None = None) -> dict[str, Any]:
        """fsync ``name`` and check its size (and digest, when known) on disk; returns its manifest record."""
        path = self.directory / name
        try:
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
            on_disk, digest = sha256_file(path)
        except OSError as exc:
            raise write_error(self.where, f"{name!r}", exc) from None
        if on_disk != size or (sha256 is not None and digest != sha256):
            raise StoreWriteError(
                f"{self.where}: {name!r} reads back as {on_disk} bytes (sha256 {digest[:12]}...), not the {size} bytes "
                f"meant to be written: a short or failed write (is the disk full?). Nothing of this save is left behind; "
                "free space and save again"
            )
        return {"name": name, "bytes": size, "sha256": digest}

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Atomically make ``manifest`` the store's manifest: a verified temp file, ``os.replace``, fsync the dir.

        A stale temp file (or a symlink planted in its place) is removed first, never written through.
        """
        tmp = self.directory / MANIFEST_TMP
        try:
            tmp.unlink(missing_ok=True)  # unlinks a symlink itself, not its target
        except OSError as exc:
            raise write_error(self.where, f"{MANIFEST_TMP!r}", exc) from None
        self.write(MANIFEST_TMP, [json.dumps(manifest, indent=1).encode("ascii")])
        try:
            os.replace(tmp, self.directory / MANIFEST)  # the commit point
        except OSError as exc:
            raise write_error(self.where, f"{MANIFEST!r}", exc) from None
        fsync_dir(self.directory)

    def discard(self) -> None:
        """Remove every file this writer created (best effort: it runs while another error propagates)."""
        for path in reversed(self.created):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        self.created.clear()


def sweep(directory: Path, keep: set[str], is_store_file: Callable[[str], bool], where: str) -> None:
    """After a committed save, delete the store files not in ``keep``. A failure here does not undo the save, so
    it is a warning, not an error (the next save sweeps again)."""
    try:
        names = [entry.name for entry in directory.iterdir()]
    except OSError as exc:
        warnings.warn(f"{where}: saved, but could not list the directory to remove old files ({exc})", stacklevel=3)
        return
    for name in names:
        if name in keep or not is_store_file(name):
            continue
        try:
            (directory / name).unlink(missing_ok=True)
        except OSError as exc:
            warnings.warn(
                f"{where}: saved, but could not remove the old file {name!r} ({exc}); the next save retries",
                stacklevel=3,
            )


# ---------------------------------------------------------------------------------------------------------------
# One writer per directory
# ---------------------------------------------------------------------------------------------------------------

LOCK_FILE = "store.lock"


@contextlib.contextmanager
def writer_lock(directory: Path, where: str) -> Iterator[None]:
    """Hold the store directory's writer lock (``flock`` on ``store.lock``) for the duration of a save.

    Two savers into one directory would pick the same generation number and delete each other's files; with
    the lock, the second one fails at once with :class:`StoreLockedError` and the directory keeps a complete
    store. The lock belongs to the open file, so it also separates threads of one process, and the system drops
    it when a writer dies. The lock file itself stays (deleting it would let two writers lock different files).
    """
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise write_error(where, f"the lock file {LOCK_FILE!r}", exc) from None
    try:
        try:
            try_lock(fd)
        except BlockingIOError:
            raise StoreLockedError(
                f"{where}: another save into this directory is in progress (it holds {LOCK_FILE!r}); wait for it "
                "to finish and save again, or save into another directory"
            ) from None
        except OSError as exc:
            raise write_error(where, f"a lock on {LOCK_FILE!r}", exc) from None
        yield
    finally:
        os.close(fd)  # closing the file releases the lock
