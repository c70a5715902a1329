"""Cropping to the non-zero region (nnU-Net's ``crop_to_nonzero``) and its inverse.

Bounding boxes are half-open ``((d0, d1), (h0, h1), (w0, w1))``, like Python slices.

Example:
    >>> import numpy as np
    >>> image = np.zeros((1, 4, 5, 6), np.float32)
    >>> image[0, 1:3, 2:4, 1:5] = 1.0
    >>> bbox = nonzero_bbox(image)
    >>> bbox
    ((1, 3), (2, 4), (1, 5))
    >>> crop(image, bbox).shape
    (1, 2, 2, 4)
    >>> bool(uncrop(crop(image, bbox), bbox, (4, 5, 6)).sum() == image.sum())
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import binary_fill_holes

from multitask_unet.errors import ShapeError

__all__ = ["BBox", "crop", "nonzero_bbox", "uncrop"]

BBox = tuple[tuple[int, int], ...]
"""Half-open ``((start, stop), ...)`` per spatial axis."""


def nonzero_bbox(image: np.ndarray) -> BBox:
    """Bounding box of the voxels that are non-zero in any channel, holes filled (as nnU-Net).

    Args:
        image: ``(C, D, H, W)`` array.

    Returns:
        The box; the whole volume if every voxel is zero.
    """
    if image.ndim != 4:
        raise ShapeError(f"nonzero_bbox needs a (C, D, H, W) image, got shape {image.shape}")
    mask = binary_fill_holes(np.any(image != 0, axis=0))
    if not mask.any():
        return tuple((0, int(s)) for s in image.shape[1:])
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        box.append((int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _slices(bbox: BBox) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in bbox)


def crop(array: np.ndarray, bbox: BBox) -> np.ndarray:
    """The ``bbox`` region of the last three axes of ``array`` (a view)."""
    return array[(..., *_slices(bbox))]


def uncrop(array: np.ndarray, bbox: BBox, shape: Sequence[int], *, fill: float = 0) -> np.ndarray:
    """Place a cropped ``(..., d, h, w)`` array back into a volume of spatial ``shape``.

    Voxels outside ``bbox`` take ``fill``.
    """
    size = tuple(b - a for a, b in bbox)
    if tuple(array.shape[-3:]) != size:
        raise ShapeError(
            f"cropped array has spatial shape {tuple(array.shape[-3:])} but the box {bbox} "
            f"holds {size}"
        )
    out = np.full((*array.shape[:-3], *(int(s) for s in shape)), fill, dtype=array.dtype)
    out[(..., *_slices(bbox))] = array
    return out
