"""The candidates of budget-aware planning: target spacings x patch sizes x presets x batches.

**Spacing** follows nnU-Net's ``3d_lowres`` rule: the finer axes coarsen first until no axis is
more than ``max_anisotropy`` (2) times finer than the coarsest, then all axes coarsen together.
A candidate's ``spacing_factor`` is how much coarser than nnU-Net's target spacing its finest
axis is; e.g. from 2 x 0.73 x 0.73 mm, factor 2 gives 2.93 x 1.47 x 1.47 mm.

**Patch** follows nnU-Net's patch rule with a voxel cap in place of its memory estimate: start
from a patch isotropic in mm, clipped to the median case at that spacing and rounded up to the
preset's ``size_divisor``; while it has more voxels than the cap, take one divisor off the axis
that is largest relative to the median case. The patch thus keeps the median case's shape.
``coverage`` is the share of the median case one patch covers.

Example:
    >>> lowres_spacing((2.0, 0.75, 0.75), 2.0)
    (3.0, 1.5, 1.5)
    >>> lowres_spacing((2.0, 0.75, 0.75), 1.2)
    (2.0, 0.9, 0.9)
    >>> patch_for_voxels(32 * 48 * 64, (3.0, 1.6, 1.6), (40, 51, 81), (16, 16, 16))
    (32, 48, 64)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from multitask_unet.data.planning import DatasetFingerprint, plan_target_spacing
from multitask_unet.data.planning.budget_section import BudgetCandidate
from multitask_unet.data.planning.patch_size import round_to_divisor, shrink_to_fit
from multitask_unet.data.preprocessing.resampling import compute_new_shape
from multitask_unet.errors import ConfigError

__all__ = ["candidate_grid", "lowres_spacing", "patch_for_voxels"]


def candidate_grid(
    fingerprint: DatasetFingerprint,
    *,
    spacing_factors: Sequence[float],
    patch_voxels: Sequence[int],
    batch_sizes: Sequence[int],
    divisors: Mapping[str, tuple[int, int, int]],
) -> list[BudgetCandidate]:
    """Every (spacing, patch, preset, batch) candidate, unmeasured, in a stable order.

    Args:
        fingerprint: The dataset fingerprint (spacings and shapes after cropping).
        spacing_factors: Coarsening factors of nnU-Net's target spacing (:func:`lowres_spacing`).
        patch_voxels: Voxel caps of the patch (:func:`patch_for_voxels`).
        batch_sizes: Batch sizes.
        divisors: Each preset's ``size_divisor``, by preset name (in preference order).

    Returns:
        Candidates with ``status="skipped"``; duplicates (same spacing, patch, preset, batch)
        are left out.
    """
    base, _ = plan_target_spacing(fingerprint.spacings, fingerprint.shapes_after_crop)
    out: list[BudgetCandidate] = []
    seen: set[tuple[object, ...]] = set()
    for factor in spacing_factors:
        spacing = lowres_spacing(base, factor)
        shapes = [
            compute_new_shape(c.shape_after_crop, c.spacing, spacing) for c in fingerprint.cases
        ]
        median = np.median(np.asarray(shapes, dtype=np.float64), axis=0)
        for preset, divisor in divisors.items():
            for voxels in patch_voxels:
                patch = patch_for_voxels(voxels, spacing, median, divisor)
                for batch in batch_sizes:
                    key = (spacing, patch, preset, batch)
                    if key in seen:
                        continue
                    seen.add(key)
                    cover = float(np.prod(np.minimum(np.asarray(patch) / median, 1.0)))
                    out.append(
                        BudgetCandidate(
                            spacing_factor=float(factor),
                            target_spacing=spacing,
                            patch_size=patch,
                            preset=preset,
                            batch_size=batch,
                            coverage=round(cover, 4),
                            field_of_view_mm=tuple(round(p * s, 1) for p, s in zip(patch, spacing)),
                        )
                    )
    return out


def lowres_spacing(
    base: Sequence[float], factor: float, *, max_anisotropy: float = 2.0
) -> tuple[float, float, float]:
    """``base`` coarsened by ``factor`` on its finest axis, the way nnU-Net plans ``3d_lowres``.

    Axes finer than ``max(base) / max_anisotropy`` grow first (by up to ``factor``) until they
    reach it; what is left of ``factor`` then scales every axis. ``factor`` 1 returns ``base``.

    Raises:
        ConfigError: ``factor`` below 1 or ``max_anisotropy`` below 1.
    """
    if factor < 1 or max_anisotropy < 1:
        raise ConfigError(
            f"spacing factors must be >= 1 (coarser than nnU-Net's target spacing) and "
            f"max_anisotropy >= 1, got factor={factor}, max_anisotropy={max_anisotropy}"
        )
    b = np.asarray(base, dtype=np.float64)
    floor = b.max() / max_anisotropy  # the fine axes grow alone until they reach this
    alone = float(np.clip(floor / b.min(), 1.0, factor))
    spacing = np.maximum(b, np.minimum(b * alone, floor)) * (factor / alone)
    return tuple(round(float(s), 4) for s in spacing)  # type: ignore[return-value]


def patch_for_voxels(
    voxels: int,
    spacing: Sequence[float],
    median_shape: Sequence[float],
    divisor: Sequence[int],
) -> tuple[int, int, int]:
    """The largest patch of at most ``voxels`` voxels by nnU-Net's shrinking rule (see above).

    Starts isotropic in mm (``voxels`` worth), clipped to ``median_shape`` and rounded up to
    ``divisor``; then takes ``divisor`` off the axis largest relative to the median shape until
    it fits. Never smaller than one divisor per axis, and never a single voxel at the
    network's deepest stage (:data:`~multitask_unet.data.planning.patch_size.MIN_BOTTLENECK_VOXELS`).
    """
    div = np.asarray(divisor, dtype=np.int64)
    median = np.maximum(np.asarray(median_shape, dtype=np.float64), 1.0)
    inverse = 1.0 / np.asarray(spacing, dtype=np.float64)
    start = np.minimum(inverse * (voxels / np.prod(inverse)) ** (1 / 3), median)
    patch = round_to_divisor(start, median, div)
    patch = shrink_to_fit(patch, median, div, lambda p: int(np.prod(p)) <= voxels)
    return tuple(int(p) for p in patch)  # type: ignore[return-value]
