"""Resampling of images, label maps and probabilities between voxel spacings, as nnU-Net does.

* Images: cubic spline (order 3) on voxel centres (``align_corners=False``), values clipped to the
  input's range so that splines cannot overshoot (what ``skimage.transform.resize`` does for
  nnU-Net).
* Label maps: every label's indicator is interpolated linearly (order 1) and each output voxel
  takes the label with the largest score, ties going to the nearest-neighbour label. No label
  value that is not in the input can appear ("no label bleeds"), and boundaries are smoother
  than with nearest-neighbour resampling.
* Anisotropic data (nnU-Net's *separate z*): when the current or the target spacing has one axis
  more than ``anisotropy_threshold`` (3) times coarser than the finest one, slices are resampled
  in-plane with the order above and the coarse axis with ``order_z`` (0, nearest, by default), so
  that no spline rings across thick slices.

All functions take channel-first ``(C, D, H, W)`` arrays (label maps: ``(D, H, W)``) and never
modify their input.

Example:
    >>> import numpy as np
    >>> image = np.random.rand(1, 5, 16, 16).astype(np.float32)
    >>> new_shape = compute_new_shape((5, 16, 16), (5.0, 1.0, 1.0), (2.5, 2.0, 2.0))
    >>> new_shape
    (10, 8, 8)
    >>> resample_image(image, new_shape, spacing=(5.0, 1.0, 1.0), new_spacing=(2.5, 2.0, 2.0)).shape
    (1, 10, 8, 8)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from multitask_unet.errors import ShapeError

__all__ = [
    "compute_new_shape",
    "resample_image",
    "resample_seg",
    "separate_z_axis",
]


def compute_new_shape(
    shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float]
) -> tuple[int, ...]:
    """Shape of a volume after resampling: ``round(shape * spacing / new_spacing)`` per axis."""
    if not len(shape) == len(spacing) == len(new_spacing):
        raise ShapeError(
            f"shape {tuple(shape)}, spacing {tuple(spacing)} and new spacing "
            f"{tuple(new_spacing)} must have the same number of axes"
        )
    return tuple(round(float(s * a / b)) for s, a, b in zip(shape, spacing, new_spacing))


def separate_z_axis(
    spacing: Sequence[float],
    new_spacing: Sequence[float],
    *,
    anisotropy_threshold: float = 3.0,
) -> int | None:
    """The axis to resample separately (nnU-Net's rule), or ``None`` to resample in 3D.

    The current spacing is checked first, then the target spacing: if its coarsest axis is more
    than ``anisotropy_threshold`` times its finest, and that coarsest axis is unique, it is the
    separate axis.
    """
    for candidate in (spacing, new_spacing):
        values = np.asarray(candidate, dtype=np.float64)
        if values.max() / values.min() > anisotropy_threshold:
            coarse = np.flatnonzero(values == values.max())
            return int(coarse[0]) if len(coarse) == 1 else None
    return None


def _zoom(volume: np.ndarray, new_shape: Sequence[int], order: int) -> np.ndarray:
    """Spline resize on voxel centres with edge padding (skimage ``resize`` semantics), float64."""
    factors = [n / o for n, o in zip(new_shape, volume.shape)]
    return ndimage.zoom(
        volume.astype(np.float64, copy=False),
        factors,
        order=order,
        mode="nearest",
        grid_mode=True,
    )


def _zoom_clipped(volume: np.ndarray, new_shape: Sequence[int], order: int) -> np.ndarray:
    out = _zoom(volume, new_shape, order)
    if order > 1:  # splines overshoot; linear and nearest stay in range
        np.clip(out, volume.min(), volume.max(), out=out)
    return out


def _resample_axis(volume: np.ndarray, axis: int, size: int, order: int) -> np.ndarray:
    """Resample one axis to ``size`` voxels, the others untouched (voxel-centre mapping)."""
    if order == 0:
        # The voxels nnU-Net's map_coordinates(order=0, mode="nearest") picks, from coordinates
        # computed as it computes them: at exact half-voxel ties the same neighbour wins.
        scale = float(volume.shape[axis]) / size
        coords = scale * (np.arange(size) + 0.5) - 0.5
        source = ndimage.map_coordinates(
            np.arange(volume.shape[axis], dtype=np.float64), [coords], order=0, mode="nearest"
        )
        return np.take(volume.astype(np.float64, copy=False), source.astype(np.intp), axis=axis)
    new_shape = list(volume.shape)
    new_shape[axis] = size
    scale = volume.shape[axis] / size
    matrix = np.ones(volume.ndim)
    matrix[axis] = scale
    offset = np.zeros(volume.ndim)
    offset[axis] = 0.5 * scale - 0.5
    return ndimage.affine_transform(
        volume.astype(np.float64, copy=False),
        matrix,
        offset=offset,
        output_shape=tuple(new_shape),
        order=order,
        mode="nearest",
    )


def _resample_volume(
    volume: np.ndarray, new_shape: Sequence[int], *, axis: int | None, order: int, order_z: int
) -> np.ndarray:
    """Resample one 3D float volume, separately along ``axis`` if given."""
    new_shape = tuple(int(s) for s in new_shape)
    if volume.shape == new_shape:
        return volume.astype(np.float64, copy=True)
    if axis is None:
        return _zoom_clipped(volume, new_shape, order)
    in_plane = [s for a, s in enumerate(new_shape) if a != axis]
    slices = [
        _zoom_clipped(np.take(volume, i, axis=axis), in_plane, order)
        for i in range(volume.shape[axis])
    ]
    stacked = np.stack(slices, axis=axis)
    if stacked.shape[axis] == new_shape[axis]:
        return stacked
    return _resample_axis(stacked, axis, new_shape[axis], order_z)


def resample_image(
    data: np.ndarray,
    new_shape: Sequence[int],
    *,
    spacing: Sequence[float],
    new_spacing: Sequence[float],
    order: int = 3,
    order_z: int = 0,
    anisotropy_threshold: float = 3.0,
) -> np.ndarray:
    """Resample a channel-first image (or probability map) to ``new_shape``.

    Args:
        data: ``(C, D, H, W)`` array.
        new_shape: Target ``(D', H', W')``.
        spacing: Current voxel spacing in mm, per spatial axis.
        new_spacing: Target spacing; with ``spacing`` it decides separate-z resampling only.
        order: Spline order in 3D or in-plane (3 for images, 1 for probabilities).
        order_z: Order along the separate axis of anisotropic data.
        anisotropy_threshold: Spacing ratio above which data counts as anisotropic.

    Returns:
        ``(C, D', H', W')`` array of ``data``'s float dtype (float32 for integer input).
    """
    _check(data, 4, "data", "(C, D, H, W)")
    axis = separate_z_axis(spacing, new_spacing, anisotropy_threshold=anisotropy_threshold)
    dtype = data.dtype if np.issubdtype(data.dtype, np.floating) else np.float32
    out = np.empty((data.shape[0], *(int(s) for s in new_shape)), dtype=dtype)
    for c in range(data.shape[0]):
        out[c] = _resample_volume(data[c], new_shape, axis=axis, order=order, order_z=order_z)
    return out


def resample_seg(
    seg: np.ndarray,
    new_shape: Sequence[int],
    *,
    spacing: Sequence[float],
    new_spacing: Sequence[float],
    order: int = 1,
    order_z: int = 0,
    anisotropy_threshold: float = 3.0,
) -> np.ndarray:
    """Resample a label map without creating labels that are not in it.

    Each label's indicator is interpolated with ``order`` (in-plane and ``order_z`` along the
    separate axis of anisotropic data); each voxel takes the label of highest score, exact ties
    going to the nearest-neighbour label.

    Args:
        seg: ``(D, H, W)`` integer label map.
        new_shape: Target ``(D', H', W')``.
        spacing: Current voxel spacing in mm.
        new_spacing: Target voxel spacing in mm.
        order: Interpolation order of the indicators (1: linear, as nnU-Net).
        order_z: Order along the separate axis of anisotropic data.
        anisotropy_threshold: Spacing ratio above which data counts as anisotropic.

    Returns:
        ``(D', H', W')`` label map of ``seg``'s dtype.
    """
    _check(seg, 3, "seg", "(D, H, W)")
    new_shape = tuple(int(s) for s in new_shape)
    if seg.shape == new_shape:
        return seg.copy()
    axis = separate_z_axis(spacing, new_spacing, anisotropy_threshold=anisotropy_threshold)
    labels = np.unique(seg)
    nearest = _resample_volume(seg, new_shape, axis=axis, order=0, order_z=0).astype(seg.dtype)
    if len(labels) <= 1 or order == 0:
        return nearest
    best = np.full(new_shape, -np.inf)
    winner = np.zeros(new_shape, dtype=seg.dtype)
    nearest_score = np.zeros(new_shape)
    for label in labels:
        indicator = (seg == label).astype(np.float64)
        score = _resample_volume(indicator, new_shape, axis=axis, order=order, order_z=order_z)
        better = score > best
        winner[better] = label
        np.maximum(best, score, out=best)
        is_nearest = nearest == label
        nearest_score[is_nearest] = score[is_nearest]
    tie = (nearest_score == best) & (best > 0)
    winner[tie] = nearest[tie]
    return winner


def _check(array: np.ndarray, ndim: int, name: str, layout: str) -> None:
    if array.ndim != ndim:
        raise ShapeError(f"{name} must be {layout}, got an array of shape {array.shape}")
