"""The candidates of budget-aware planning: target spacings x patch sizes x presets x batches.

For every in-plane spacing factor, the target spacing is nnU-Net's with the in-plane axes
multiplied by it (the slice axis is kept unless the in-plane spacing grows past it). At each
spacing, every patch voxel count gives a patch isotropic in mm, clipped to the median case shape
at that spacing and rounded to each preset's ``size_divisor``; ``coverage`` is the share of the
median case the patch covers.

Example:
    >>> scaled_spacing((2.0, 0.75, 0.75), 2.0, slice_axis=0)
    (2.0, 1.5, 1.5)
    >>> scaled_spacing((2.0, 0.75, 0.75), 4.0, slice_axis=0)
    (3.0, 3.0, 3.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from multitask_unet.data.budget import BudgetCandidate
from multitask_unet.data.fingerprint import DatasetFingerprint
from multitask_unet.data.planning import plan_target_spacing
from multitask_unet.data.resampling import compute_new_shape

__all__ = ["candidate_grid", "scaled_spacing"]


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
        spacing_factors: In-plane multipliers of nnU-Net's target spacing.
        patch_voxels: Patch sizes as voxel counts, shaped isotropic in mm.
        batch_sizes: Batch sizes.
        divisors: Each preset's ``size_divisor``, by preset name (in preference order).

    Returns:
        Candidates with ``status="skipped"``; duplicates (same spacing, patch, preset, batch)
        are left out.
    """
    base, _ = plan_target_spacing(fingerprint.spacings, fingerprint.shapes_after_crop)
    slice_axis = int(np.argmax(base))
    out: list[BudgetCandidate] = []
    seen: set[tuple[object, ...]] = set()
    for factor in spacing_factors:
        spacing = scaled_spacing(base, factor, slice_axis=slice_axis)
        shapes = [
            compute_new_shape(c.shape_after_crop, c.spacing, spacing) for c in fingerprint.cases
        ]
        median = np.median(np.asarray(shapes, dtype=np.float64), axis=0)
        for preset, divisor in divisors.items():
            for voxels in patch_voxels:
                patch = _patch_for_voxels(voxels, spacing, median, divisor)
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


def scaled_spacing(
    base: Sequence[float], factor: float, *, slice_axis: int
) -> tuple[float, float, float]:
    """In-plane axes times ``factor``; the slice axis is kept unless in-plane grows past it.

    Args:
        base: Target spacing ``(D, H, W)`` in mm (nnU-Net's).
        factor: In-plane multiplier.
        slice_axis: The coarse (slice) axis.
    """
    out = [float(s) * factor for s in base]
    in_plane = max(out[a] for a in range(3) if a != slice_axis)
    out[slice_axis] = max(float(base[slice_axis]), in_plane)
    return tuple(round(s, 4) for s in out)  # type: ignore[return-value]


def _patch_for_voxels(
    voxels: int, spacing: Sequence[float], median: np.ndarray, divisor: Sequence[int]
) -> tuple[int, int, int]:
    """About ``voxels`` voxels, isotropic in mm, clipped to the median shape, divisor multiples."""
    inverse = 1.0 / np.asarray(spacing, dtype=np.float64)
    patch = np.minimum(inverse * (voxels / np.prod(inverse)) ** (1 / 3), median)
    div = np.asarray(divisor)
    return tuple(int(v) for v in np.maximum(np.round(patch / div), 1).astype(np.int64) * div)  # type: ignore[return-value]
