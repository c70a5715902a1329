"""Spacing-aware surface distances: normalised surface distance (NSD) and HD95.

Definitions used here (and in every report the library writes):

* **Surface** of a binary mask: the foreground voxels with at least one background voxel
  among their face neighbours (6-connectivity in 3D), i.e. ``mask & ~binary_erosion(mask)``.
  Voxels on the border of the array count as surface (outside the array is background).
* **Distance** of a surface voxel to the other mask's surface: the Euclidean distance in
  millimetres between voxel centres, ``scipy.ndimage.distance_transform_edt(...,
  sampling=spacing)``, to the nearest surface voxel of the other mask.
* **NSD** at tolerance ``tau`` (Nikolov et al., 2021, "Clinically applicable segmentation of head
  and neck anatomy for radiotherapy"): the fraction of *both* surfaces that lies within ``tau`` mm
  of the other surface, ``(|{p in S_pred: d(p, S_ref) <= tau}| + |{q in S_ref: d(q, S_pred) <=
  tau}|) / (|S_pred| + |S_ref|)``. Surface voxels are counted, not weighted by surfel area
  (as in MONAI's ``compute_surface_dice(use_subvoxels=False)`` and the Metrics Reloaded package).
* **HD95**: the maximum of the two *directed* 95th percentiles, ``max(P95(d(S_pred -> S_ref)),
  P95(d(S_ref -> S_pred)))``, as MONAI's ``compute_hausdorff_distance(percentile=95)`` and
  Metrics Reloaded define it; percentiles use numpy's default linear interpolation.

Empty masks (conventions of Metrics Reloaded, see :mod:`multitask_unet.evaluation.segmentation`):

=====================  ==========================  ======================
reference / prediction  NSD                         HD95
=====================  ==========================  ======================
both empty              ``both_empty`` (default 1)  0.0 mm
only one empty          0.0                         NaN (undefined)
=====================  ==========================  ======================

Example:
    >>> import numpy as np
    >>> ref = np.zeros((8, 8, 8), bool); ref[2:6, 2:6, 2:6] = True
    >>> pred = np.roll(ref, 1, axis=0)  # shifted by one voxel = 3 mm along axis 0
    >>> hd95(pred, ref, spacing=(3.0, 1.0, 1.0))
    3.0
    >>> round(normalized_surface_distance(pred, ref, spacing=(3.0, 1.0, 1.0), tolerance_mm=3.0), 3)
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from multitask_unet.errors import ConfigError, ShapeError

__all__ = [
    "hd95",
    "normalized_surface_distance",
    "surface_distances",
    "surface_mask",
    "surface_metrics",
]


def surface_mask(mask: np.ndarray) -> np.ndarray:
    """The surface voxels of a binary mask (face connectivity, array border is background).

    Args:
        mask: Binary array of any dimension, e.g. ``(D, H, W)``.

    Returns:
        Boolean array of the same shape, True on surface voxels.
    """
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, *, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed distances (mm) between the surfaces of two non-empty binary masks.

    The computation is cropped to the bounding box of both masks (plus one voxel), which gives
    the same distances as on the full array and is much faster on large CT volumes.

    Args:
        pred: Binary prediction, shape ``(D, H, W)`` (any dimension works).
        ref: Binary reference, same shape.
        spacing: Voxel size in mm per axis, in the array's axis order.

    Returns:
        ``(pred_to_ref, ref_to_pred)``: for every surface voxel of ``pred`` its distance to the
        surface of ``ref``, and the other way round (1-D float arrays).

    Raises:
        ShapeError: shapes differ, the spacing has the wrong length, or a mask is empty.
    """
    pred, ref, spacing_t = _check(pred, ref, spacing)
    if not pred.any() or not ref.any():
        raise ShapeError("surface_distances needs two non-empty masks; handle empty masks first")
    box = _bounding_box(pred | ref)
    pred, ref = np.pad(pred[box], 1), np.pad(ref[box], 1)
    # Padding adds background around the crop: array borders still count as surface.
    border_pred, border_ref = surface_mask(pred), surface_mask(ref)
    dist_to_ref = ndimage.distance_transform_edt(~border_ref, sampling=spacing_t)
    dist_to_pred = ndimage.distance_transform_edt(~border_pred, sampling=spacing_t)
    return dist_to_ref[border_pred], dist_to_pred[border_ref]


def surface_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    spacing: Sequence[float],
    tolerance_mm: float,
    percentile: float = 95.0,
    both_empty: float = 1.0,
) -> tuple[float, float]:
    """NSD and robust Hausdorff distance from one computation of the surface distances.

    Args:
        pred: Binary prediction, shape ``(D, H, W)``.
        ref: Binary reference, same shape.
        spacing: Voxel size in mm per axis, in the array's axis order.
        tolerance_mm: NSD tolerance; distances up to and including it count as agreement.
        percentile: 95 for HD95, 100 for the classic Hausdorff distance.
        both_empty: NSD when both masks are empty (1.0 as Metrics Reloaded; NaN to leave such
            cases out of averages).

    Returns:
        ``(nsd, hd)`` with the empty-mask conventions of the module docstring.
    """
    if not np.isfinite(tolerance_mm) or tolerance_mm < 0:
        raise ConfigError(f"tolerance_mm must be a finite number >= 0, got {tolerance_mm!r}")
    if not 0 <= percentile <= 100:
        raise ConfigError(f"percentile must be in [0, 100], got {percentile!r}")
    pred, ref, spacing_t = _check(pred, ref, spacing)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return float(both_empty), 0.0
    if not has_pred or not has_ref:
        return 0.0, float("nan")
    pred_to_ref, ref_to_pred = surface_distances(pred, ref, spacing=spacing_t)
    within = np.count_nonzero(pred_to_ref <= tolerance_mm) + np.count_nonzero(
        ref_to_pred <= tolerance_mm
    )
    nsd = within / (pred_to_ref.size + ref_to_pred.size)
    hd = max(np.percentile(pred_to_ref, percentile), np.percentile(ref_to_pred, percentile))
    return float(nsd), float(hd)


def normalized_surface_distance(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    spacing: Sequence[float],
    tolerance_mm: float,
    both_empty: float = 1.0,
) -> float:
    """Normalised surface distance (surface Dice) at a tolerance in millimetres.

    Args:
        pred: Binary prediction, shape ``(D, H, W)``.
        ref: Binary reference, same shape.
        spacing: Voxel size in mm per axis, in the array's axis order.
        tolerance_mm: Distances up to and including this value count as agreement.
        both_empty: Value when both masks are empty (1.0 as Metrics Reloaded; ``float("nan")``
            to leave such cases out of averages).

    Returns:
        NSD in ``[0, 1]``; 0.0 when exactly one mask is empty.
    """
    return surface_metrics(
        pred, ref, spacing=spacing, tolerance_mm=tolerance_mm, both_empty=both_empty
    )[0]


def hd95(
    pred: np.ndarray,
    ref: np.ndarray,
    *,
    spacing: Sequence[float],
    percentile: float = 95.0,
) -> float:
    """Robust Hausdorff distance: max of the two directed ``percentile``-th percentiles (mm).

    Args:
        pred: Binary prediction, shape ``(D, H, W)``.
        ref: Binary reference, same shape.
        spacing: Voxel size in mm per axis, in the array's axis order.
        percentile: 95 for HD95, 100 for the classic Hausdorff distance.

    Returns:
        Distance in mm; 0.0 when both masks are empty; NaN when exactly one is empty
        (undefined; averages skip it and reports count it, see the module docstring).
    """
    return surface_metrics(pred, ref, spacing=spacing, tolerance_mm=0.0, percentile=percentile)[1]


def _check(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ShapeError(
            f"prediction shape {pred.shape} differs from reference shape {ref.shape}; "
            "resample the prediction to the reference grid first"
        )
    spacing_t = tuple(float(s) for s in spacing)
    if len(spacing_t) != ref.ndim or not all(np.isfinite(s) and s > 0 for s in spacing_t):
        raise ShapeError(
            f"spacing {spacing_t} must hold {ref.ndim} positive sizes in mm, one per array axis"
        )
    return pred, ref, spacing_t


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)
