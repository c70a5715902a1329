"""The pieces a :class:`~multitask_unet.training.trainer.Trainer` fit is made of.

:class:`FitParts` (model, loss, optimiser, schedule, scaler), :class:`FitClock` (the schedule's
length under a time limit), restoring them from ``last.pt``, and the checks between epochs.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from multitask_unet.checkpoints import load_checkpoint
from multitask_unet.data.planning.patch_size import MIN_BOTTLENECK_VOXELS, bottleneck_voxels
from multitask_unet.data.sampling.batch import Batch
from multitask_unet.errors import ConfigError, TrainingError
from multitask_unet.losses import MultiTaskLoss
from multitask_unet.models import MultiTaskUNet
from multitask_unet.training.config import TrainConfig
from multitask_unet.training.distributed import DistInfo
from multitask_unet.training.schedule import PolyLR
from multitask_unet.training.state import STATE_VERSION, set_rng_state

__all__ = ["FitClock", "FitParts", "check_resumable", "restore_training_state"]


@dataclass
class FitParts:
    """What a fit trains with (built by ``Trainer._build``)."""

    model: MultiTaskUNet
    net: nn.Module
    loss_fn: MultiTaskLoss
    optimizer: torch.optim.Optimizer
    scheduler: PolyLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    graphed: bool
    ignore_label: int | None


@dataclass
class FitClock:
    """A fit's start, and the schedule's total epochs as a ``fit`` time limit refits them."""

    started: float
    start_epoch: int
    total: int
    reported: int = 0
    first_epoch_s: float = 0.0

    def __post_init__(self) -> None:
        self.reported = self.total


def restore_training_state(
    path: Path, config: TrainConfig, parts: FitParts, dist: DistInfo
) -> tuple[int, tuple[float, int] | None]:
    """Load ``path`` (a ``last.pt``) into ``parts``: weights, optimiser, schedule, scaler, loss
    weights and RNG states. Returns the next epoch and the best ``(score, epoch)``.

    Raises:
        ConfigError: No resumable state, or options that differ from the saved run.
    """
    ckpt = load_checkpoint(path, map_location=dist.device)
    state = ckpt.training or {}
    if state.get("version") != STATE_VERSION:
        raise ConfigError(f"{path} holds no resumable training state (version {STATE_VERSION})")
    check_resumable(path, state["config"], config)
    if state.get("world_size", 1) != dist.world_size:
        print(
            f"warning: resuming a run of {state['world_size']} process(es) on "
            f"{dist.world_size}; the batches of the remaining epochs change",
            file=sys.stderr,
        )
    parts.model.load_state_dict(ckpt.state_dict)
    parts.loss_fn.load_state_dict(state["loss"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.scheduler.epochs = config.optimization.epochs  # a resumed run may train longer
    parts.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    best = None if state.get("best_score") is None else (state["best_score"], state["best_epoch"])
    return int(state["epoch"]) + 1, best


def check_resumable(path: Path, saved: Mapping[str, Any], config: TrainConfig) -> None:
    """``config`` may resume the run whose ``last.pt`` is ``path`` and config dict ``saved``.

    Raises:
        ConfigError: Options that must not change (:meth:`TrainConfig.resumable_dict`) differ.
    """
    before = TrainConfig.from_saved(saved).resumable_dict()  # either layout
    mine = config.resumable_dict()
    changed = sorted(k for k in {*mine, *before} if mine.get(k) != before.get(k))
    if changed:
        run = path.parent.parent
        raise ConfigError(
            f"cannot resume {run}: the options {changed} differ from the saved run "
            f"({run / 'config.yaml'}); resume with the same config or start a new run"
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_finite(model: nn.Module, epoch: int, row: dict[str, float], last: Path) -> None:
    """Stop before a checkpoint is written when the weights are no longer finite.

    A NaN weight never recovers: every later step and prediction would be NaN. One check per
    epoch (a single reduction over the weights) keeps ``last.pt`` at the last finite epoch.
    """
    if all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return
    kept = f"{last} still holds epoch {epoch}" if epoch and last.exists() else "no checkpoint kept"
    raise TrainingError(
        f"the network's weights became NaN or infinite in epoch {epoch + 1} (mean loss "
        f"{row.get('loss', float('nan')):.4g}); {kept}. Lower optimization.optimizer.lr, set "
        "runtime.amp: off, or check the images' intensities and the normalisation in the plan"
    )


def check_run_folder(run_dir: Path, last: Path, *, resume: bool) -> None:
    """Before anything is built: ``resume`` needs ``last``; a fresh run must not overwrite one."""
    if resume and not last.is_file():
        raise ConfigError(
            f"nothing to resume: {last} does not exist; start the run without --resume"
        )
    if not resume and last.exists():
        raise ConfigError(
            f"{run_dir} already holds a run ({last}); resume it with --resume (resume=True) or "
            "choose a new run folder"
        )


def check_patch(model: MultiTaskUNet, patch: Sequence[int]) -> None:
    bad = [p % d for p, d in zip(patch, model.size_divisor)]
    if any(bad):
        raise ConfigError(
            f"patch_size {tuple(patch)} is not divisible by the network's size_divisor "
            f"{model.size_divisor}; choose multiples (e.g. with --patch-size)"
        )
    if bottleneck_voxels(patch, model.size_divisor) < MIN_BOTTLENECK_VOXELS:
        larger = (*patch[:-1], patch[-1] + model.size_divisor[-1])
        raise ConfigError(
            f"patch_size {tuple(patch)} leaves a single voxel at the network's deepest stage "
            f"(size_divisor {model.size_divisor}): instance normalisation cannot train on it. "
            f"Use a patch with at least {MIN_BOTTLENECK_VOXELS} voxels there, e.g. {larger}"
        )


def targets(batch: Batch, loss_fn: MultiTaskLoss) -> dict[str, torch.Tensor | None]:
    """Loss targets by key: the label map for ``seg``, the case class for every head."""
    targets: dict[str, torch.Tensor | None] = {}
    for key in loss_fn.losses:
        targets[key] = batch.seg.long() if key == "seg" else batch.label
    return targets


def agree(flag: bool, dist: DistInfo) -> bool:
    """True on every rank when rank 0 says so (ranks' clocks differ slightly)."""
    if not dist.distributed:
        return flag
    value = torch.tensor([float(flag)], device=dist.device)
    torch.distributed.broadcast(value, src=0)
    return bool(value.item())


def barrier(dist: DistInfo) -> None:
    if dist.distributed:
        torch.distributed.barrier()
