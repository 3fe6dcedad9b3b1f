"""Exceptions raised for programmer and file errors.

Agent mistakes never raise: they become typed error codes in ``info["action_error"]`` (see
:mod:`agemem_gym.protocol`). Everything here is for the person writing code against the library. Each class
subclasses the matching builtin so that ``except ValueError`` keeps working, and messages state the rule, the
value and the fix, e.g. ``"'top_k' must be a positive int, got -3"``.
"""

from __future__ import annotations

__all__ = [
    "AgeMemError",
    "ConfigError",
    "DataError",
    "EndpointError",
    "GameableRewardWarning",
    "MemoryNotFoundError",
    "RecordingLockedError",
    "StoreFormatError",
    "StoreLockedError",
    "StoreWriteError",
]


class AgeMemError(Exception):
    """Base class of every exception this library raises on purpose."""


class ConfigError(AgeMemError, ValueError):
    """A constructor or ``reset(options=...)`` argument breaks a rule."""


class DataError(AgeMemError, ValueError):
    """A dataset file or record is missing, malformed or of the wrong schema."""


class EndpointError(AgeMemError, ConnectionError):
    """A served model (an OpenAI-compatible endpoint) refused a request, or stayed unreachable through every retry.

    The message names the endpoint, the HTTP status or the connection failure, the server's own words and the likely
    fix; it never contains the API key.
    """


class StoreFormatError(AgeMemError, ValueError):
    """A saved memory store is corrupt, truncated, or was written for another configuration."""


class StoreWriteError(AgeMemError, OSError):
    """A save could not write the store's files (a read-only directory, a full disk, a short write).

    Nothing of the failed save is left behind, and the store saved there before, if any, is intact.
    """


class StoreLockedError(StoreWriteError):
    """Another writer (a process or a thread) is saving into the same store directory right now."""


class RecordingLockedError(AgeMemError, BlockingIOError):
    """Another :class:`~agemem_gym.evaluation.recorder.RecordEpisodes` (in this or another process) is writing the file."""


class MemoryNotFoundError(AgeMemError, KeyError):
    """A memory id that is not (or no longer) in the store was passed by code, not by the agent."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class GameableRewardWarning(UserWarning):
    """A reward setting was chosen that a scripted policy is known to game (see :mod:`agemem_gym.evaluation.audit`).

    Such settings exist for ablations and for reproducing the paper's literal equations; a policy trained on them
    learns the exploit. The message names the exploit and the audit figures behind it.
    """
