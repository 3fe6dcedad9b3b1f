"""Settings read back from a checkpoint are data, not instructions: they cannot import code or turn downloads on.

A ``checkpoint.pt`` stores the ``Args`` of its run. Loading it for evaluation (``evaluate_checkpoint``, the
``model:`` policy of ``agemem-eval``) must not let the file decide what this process runs: its ``env_id`` could
name ``some_module:Env-v0`` (``gymnasium.make`` imports ``some_module``), and its ``allow_download`` could let
transformers fetch any model from the Hub. :func:`trusted_saved_args` checks and neutralises both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from agemem_gym.errors import DataError
from agemem_gym.trust import check_env_id

__all__ = ["trusted_saved_args"]


def trusted_saved_args(saved: Any, args_cls: type, *, source: str, trust_remote_module: bool = False) -> dict[str, Any]:
    """The keyword arguments of ``args_cls`` that a checkpoint's saved ``args`` may set.

    Lists come back as tuples (JSON-like storage loses them); ``allow_download`` is dropped, so downloads stay off
    unless the caller passes it again; ``env_id`` must be registered (or its module imported) unless
    ``trust_remote_module``.

    Raises:
        DataError: ``saved`` is not a mapping of known field names, or its ``env_id`` would import a module.
    """
    if not isinstance(saved, Mapping) or not all(isinstance(k, str) for k in saved):
        raise DataError(f"{source}: its saved 'args' must be a mapping of setting names, got {type(saved).__name__}")
    known = {f.name for f in dataclasses.fields(args_cls)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise DataError(
            f"{source}: saved settings {unknown} are not fields of {args_cls.__name__}; it was written by another "
            "version of the trainer: pass the settings you want as overrides to a matching version"
        )
    out = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k != "allow_download"}
    if "env_id" in out:
        check_env_id(out["env_id"], source=source, trust_remote_module=trust_remote_module)
    return out
