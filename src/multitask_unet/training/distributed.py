"""``torchrun`` support: process-group setup, metric reduction and the rank that writes.

Launched as ``torchrun --nproc_per_node N -m multitask_unet.cli train ...`` (or with the
``multitask-unet`` script), every process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from
the environment; :func:`setup_distributed` joins the process group (NCCL on CUDA, gloo on the
CPU) and picks the process's device. Without those variables it is a no-op: one process.

Example:
    >>> info = setup_distributed("cpu")
    >>> info.rank, info.world_size, info.is_main
    (0, 1, True)
    >>> reduce_mean({"loss": 0.5}, info)
    {'loss': 0.5}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from multitask_unet.devices import resolve_device

__all__ = ["DistInfo", "cleanup_distributed", "reduce_mean", "resolve_device", "setup_distributed"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands.

    Attributes:
        rank: Global rank (0 when not distributed).
        world_size: Number of processes (1 when not distributed).
        local_rank: Rank on this machine (selects the GPU).
        device: The device this process trains on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the rank that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | torch.device = "auto") -> DistInfo:
    """Join the ``torchrun`` process group if launched by it, and choose this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device, local_rank=local_rank)
    if world_size > 1 and not dist.is_initialized():
        if target.type == "cuda":
            torch.cuda.set_device(target)
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=target)


def cleanup_distributed() -> None:
    """Leave the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def reduce_mean(values: Mapping[str, float], info: DistInfo) -> dict[str, float]:
    """Average floats over all ranks (one all-reduce); every rank must pass the same keys."""
    if not info.distributed or not values:
        return dict(values)
    keys = sorted(values)
    device = info.device if info.device.type == "cuda" else torch.device("cpu")
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    tensor /= info.world_size
    return {k: float(v) for k, v in zip(keys, tensor.tolist())}
