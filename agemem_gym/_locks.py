"""Advisory file locks (private): one writer per store directory or recording, across processes and threads."""

from __future__ import annotations

import sys

__all__ = ["try_lock"]


def try_lock(fd: int) -> None:
    """Take an exclusive lock on the open file ``fd`` without waiting; ``BlockingIOError`` when it is held.

    POSIX ``flock`` belongs to the open file description, so two opens of one path conflict even within one
    process (threads included), and the system drops the lock when its holder closes the file or dies.
    """
    if sys.platform == "win32":  # pragma: no cover - no fcntl on Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            raise BlockingIOError(str(exc)) from None
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
