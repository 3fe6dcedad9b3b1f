"""Where the GRPO trainer runs: this process's rank and device under ``torchrun``, and the collectives it needs.

Under ``torchrun`` every rank plays its own share of the groups, DDP averages gradients, and the few numbers the
trainer reports about the whole batch (token counts, loss sums, episode summaries, RNG states for a checkpoint)
are summed or gathered here. Without ``torchrun`` (no process group) each function is the single-process
identity, so the trainer runs one code path either way:

>>> rank(), world_size()  # no process group: rank 0 of 1
(0, 1)
>>> all_sum([1.0, 2.5], torch.device("cpu")), gather_lists(["this rank's"])
([1.0, 2.5], ["this rank's"])
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "Launch",
    "all_gather_objects",
    "all_sum",
    "autocast",
    "barrier",
    "gather_lists",
    "gradient_sync",
    "peak_memory_mb",
    "rank",
    "resolve_device",
    "setup",
    "world_size",
    "wrap_ddp",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Launch:
    """This process's place in the launch: its global rank, its rank on this machine and the number of ranks."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_environment(cls) -> Launch:
        """Read ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (set by ``torchrun``; a plain run is rank 0 of 1)."""
        env = os.environ
        return cls(int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")), int(env.get("WORLD_SIZE", "1")))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: CUDA device ``local_rank`` when CUDA is available, else the CPU; any other name as given."""
    if name != "auto":
        return torch.device(name)
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def setup(launch: Launch, device_name: str) -> torch.device:
    """This rank's device (made current on CUDA); joins the process group when there is more than one rank.

    NCCL on CUDA, gloo on CPU. Calling it again once the group exists joins nothing new.
    """
    device = resolve_device(device_name, launch.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if launch.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def rank() -> int:
    """This process's rank in the joined process group (0 without one)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """The number of ranks in the joined process group (1 without one)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def all_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """Each value summed over the ranks (float64, on ``device``: NCCL reduces CUDA tensors only); as given alone."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a process group."""
    if not dist.is_initialized():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_lists(items: list[T]) -> list[T]:
    """Every rank's ``items`` concatenated in rank order (the same list on every rank); ``items`` itself alone."""
    if not dist.is_initialized():
        return items
    return [item for part in all_gather_objects(items) for item in part]


def barrier() -> None:
    """Wait for every rank (nothing to wait for without a process group)."""
    if dist.is_initialized():
        dist.barrier()


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """The module that takes the backward passes: ``model`` in DDP when there are several ranks, else ``model``.

    DDP broadcasts rank 0's weights when it wraps, so load a checkpoint into ``model`` before calling this.
    """
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def gradient_sync(module: nn.Module, *, last: bool) -> AbstractContextManager[Any]:
    """The context of one micro-batch's backward pass: DDP's gradient all-reduce runs on the ``last`` one only
    (``no_sync`` on the others, which accumulate locally); nothing to hold back without DDP."""
    no_sync: Callable[[], AbstractContextManager[Any]] | None = getattr(module, "no_sync", None)
    if last or no_sync is None or world_size() == 1:
        return nullcontext()
    return no_sync()


def autocast(device: torch.device, bf16: bool) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of autocast contexts: bf16 on CUDA (weights stay fp32 unless frozen under LoRA), nothing on CPU."""
    if device.type == "cuda" and bf16:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this rank: CUDA's allocator peak on a GPU, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
