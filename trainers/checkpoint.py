"""A GRPO run's ``checkpoint.pt``: written atomically, read with validation, and restored exactly.

A checkpoint holds what continuing a run bit for bit needs, and nothing that can run code (it is read with
``torch.load(weights_only=True)``):

| key | what |
|---|---|
| ``update`` | updates done so far |
| ``args`` | the run's settings (``dataclasses.asdict`` of the trainer's ``Args``) |
| ``model`` | the trained weights: every weight, or only the LoRA adapters under LoRA |
| ``optimizer`` | AdamW's state |
| ``rng`` | each rank's Python and torch (and CUDA) RNG state, in rank order |

:func:`restore_run` is the one place where a run starts: a fresh one at update 0, or a checkpoint's exactly where
it stopped, with the frozen reference model of the KL term (paper Eq. 6) set up for each case.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agemem_gym.errors import DataError
from agemem_gym.trainers import distributed
from agemem_gym.trainers.lora import lora_state_dict

__all__ = [
    "RESUME_KEYS",
    "RunStart",
    "load_checkpoint",
    "restore_run",
    "rng_state",
    "save_checkpoint",
    "save_json",
    "set_rng_state",
]

RESUME_KEYS = ("update", "args", "model", "optimizer", "rng")
"""What a checkpoint must hold to resume training (evaluation needs only ``args`` and ``model``)."""


def rng_state() -> dict[str, Any]:
    """This process's Python and torch RNG states (and every CUDA device's, when there is CUDA)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Put back what :func:`rng_state` returned (the CUDA part only where there is CUDA)."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, update: int, args: Mapping[str, Any], *, lora: bool
) -> None:
    """Write ``path`` atomically: weights (adapters only under ``lora``), optimizer, every rank's RNG state, the
    update count and ``args``.

    A collective under ``torchrun``: every rank calls it (each contributes its RNG state) and rank 0 writes. The
    file is written beside ``path`` and renamed over it, so a crash never leaves a half-written checkpoint.pt (the
    previous one stays until the new one is complete).
    """
    state = {
        "update": update,
        "args": dict(args),
        "model": lora_state_dict(model) if lora else model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": distributed.all_gather_objects(rng_state()),  # each rank samples its own rollouts: one stream each
    }
    if distributed.rank() == 0:
        _write_atomically(path, lambda tmp: torch.save(state, tmp))


def save_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically (a run folder's ``args.json`` and ``eval.json``)."""
    _write_atomically(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2), encoding="utf-8"))


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` a temporary file beside ``path``, then rename it over ``path``: readers see the old file or the
    whole new one, never a half-written one; the temporary file does not outlive a failed write."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # only there when writing failed


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain data only; no code runs).

    Raises:
        FileNotFoundError: There is no file at ``path``.
        DataError: The file is not a readable torch checkpoint, or it lacks the ``args`` and ``model`` that every
            use needs (resuming also needs the rest of :data:`RESUME_KEYS`, checked by :func:`restore_run`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}: pass the checkpoint.pt of a run folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch, pickle and zip each raise their own type for a truncated or foreign file
        raise DataError(
            f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}); it is truncated or not a "
            "torch checkpoint: pass the checkpoint.pt a run wrote"
        ) from err
    missing = [key for key in ("args", "model") if not isinstance(state, dict) or not isinstance(state.get(key), dict)]
    if missing:
        raise DataError(
            f"checkpoint {str(path)!r} has no {' or '.join(missing)} mapping: pass the checkpoint.pt a run wrote"
        )
    return state


@dataclass(frozen=True)
class RunStart:
    """Where :func:`restore_run` leaves a run: the updates already done and the frozen reference model (or None)."""

    update: int
    reference: nn.Module | None


def restore_run(
    checkpoint: Mapping[str, Any] | None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    lora: bool,
    beta: float,
    starting_model: Callable[[], nn.Module],
    source: str = "the checkpoint",
) -> RunStart:
    """Start a run: fresh (``checkpoint=None``) or exactly where ``checkpoint`` stopped.

    ``model`` is the policy as built from the run's settings (its starting weights) and ``optimizer`` is over its
    trainable parameters. From a checkpoint this loads the trained weights into ``model``, the optimizer's state,
    this rank's RNG state and the update count. Call it before wrapping ``model`` in DDP (which broadcasts rank
    0's weights) and before anything draws random numbers that the checkpoint's RNG state should decide.

    The frozen reference π_ref of the KL term (paper Eq. 6) is always the *starting* policy, never the trained one:

    - ``beta == 0``: no KL term, no reference (``None``).
    - LoRA: the reference is ``model`` itself with its adapters disabled (the frozen base), so there is nothing to
      copy or restore (``None``; the trainer disables the adapters for the reference pass). The checkpoint holds
      only the adapters and the base comes from the run's settings again.
    - every weight trained, fresh run: a frozen copy of ``model`` as built.
    - every weight trained, resumed: the checkpoint holds the trained weights only, so the starting weights are
      rebuilt by ``starting_model()`` (from the run's settings, and seeded, so a random model is the same one).

    Raises:
        DataError: The checkpoint lacks what resuming needs, holds no RNG state for this rank (it was written by
            fewer ranks), or its weights do not fit ``model`` (other model or LoRA settings than the run's).
    """
    rank = distributed.rank()
    if checkpoint is not None:
        missing = [key for key in RESUME_KEYS if key not in checkpoint]
        if missing:
            raise DataError(f"{source} cannot be resumed: it has no {missing}; it was not written by the trainer's run")
        if len(checkpoint["rng"]) <= rank:
            raise DataError(
                f"{source} holds the RNG states of {len(checkpoint['rng'])} rank(s), this is rank {rank}: resume "
                "with as many ranks as the run had"
            )
        try:
            model.load_state_dict(checkpoint["model"], strict=not lora)
        except RuntimeError as err:
            saved = checkpoint["args"]
            raise DataError(
                f"{source}'s weights do not fit this run's model ({err}); it was written with model="
                f"{saved.get('model')!r}, lora_rank={saved.get('lora_rank')!r}: resume with the run's settings "
                "(its args.json)"
            ) from err

    reference: nn.Module | None = None
    if beta > 0 and not lora:
        reference = copy.deepcopy(model) if checkpoint is None else starting_model()
        reference.requires_grad_(False).eval()

    if checkpoint is None:
        return RunStart(update=0, reference=reference)
    optimizer.load_state_dict(checkpoint["optimizer"])
    set_rng_state(checkpoint["rng"][rank])  # last: building the reference above may draw random numbers
    return RunStart(update=int(checkpoint["update"]), reference=reference)
