"""Stubs of the budget tests: a small search space and a step timer proportional to the voxels."""

from __future__ import annotations

import numpy as np

from multitask_unet.training.budget import BudgetSearch

SEARCH = BudgetSearch(
    presets=("tiny_residual", "tiny_plain"),
    patch_voxels=(4**3, 8**3, 12**3, 16**3),
    min_iterations=100,
    amp="off",  # the same on every CPU (auto is bf16 where the CPU has it natively)
)


def per_voxel(seconds_per_voxel: float):
    """A fast stub timer: step time proportional to the voxels of one batch."""
    calls: list[tuple[str, tuple[int, ...], int]] = []

    def timer(model_config, patch, batch) -> float:
        calls.append((model_config.encoder.name, tuple(patch), batch))
        return seconds_per_voxel * float(np.prod(patch)) * batch

    timer.calls = calls  # type: ignore[attr-defined]
    return timer
