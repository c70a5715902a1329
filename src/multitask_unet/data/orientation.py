"""Canonical orientation of volumes, reversible without losing the original geometry.

A NIfTI file stores voxels in any axis order and direction; its affine maps voxel indices
``(i, j, k)`` to world millimetres (RAS+, nibabel's convention). Preprocessing brings every
volume to one *canonical* layout so that the network always sees the same anatomy along the same
array axis:

1. flip / permute the voxel axes (no interpolation) so that they point along ``orientation``
   (default ``"LPS"``: ``i`` towards the patient's left, ``j`` posterior, ``k`` superior; the
   DICOM / ITK convention), then
2. store them in ``(D, H, W) = (k, j, i)`` order, so that ``D`` is the slice axis.

For an LPS file this gives exactly the array SimpleITK (and therefore nnU-Net) reads. Oblique
directions are kept in the affine: only the *closest* axis permutation is applied, nothing is
resampled. :func:`from_canonical` undoes both steps exactly.

Example:
    >>> import numpy as np
    >>> affine = np.diag([2.0, 1.0, 3.0, 1.0])  # RAS file, 2 x 1 x 3 mm
    >>> volume = np.arange(24.0).reshape(2, 3, 4)
    >>> canonical, canonical_affine = to_canonical(volume, affine)
    >>> canonical.shape, voxel_spacing(canonical_affine)
    ((4, 3, 2), (3.0, 1.0, 2.0))
    >>> np.array_equal(from_canonical(canonical, affine, volume.shape), volume)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel.orientations as nio
import numpy as np

from multitask_unet.errors import ConfigError, ShapeError

__all__ = ["check_orientation", "from_canonical", "to_canonical", "voxel_spacing"]

_FILE_TO_DHW = (2, 1, 0)  # (i, j, k) -> (k, j, i); its own inverse


def check_orientation(orientation: str) -> str:
    """Validate a three-letter orientation code such as ``"LPS"`` or ``"RAS"``; return it."""
    try:
        nio.axcodes2ornt(tuple(orientation))
        valid = len(orientation) == 3
    except Exception:
        valid = False
    if not valid:
        raise ConfigError(
            f"orientation {orientation!r} is not a valid axis code; use three letters, one of "
            "L/R, one of A/P and one of S/I, e.g. 'LPS' (ITK/DICOM) or 'RAS' (nibabel)"
        )
    return orientation


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis: the norms of the affine's first three columns."""
    affine = np.asarray(affine, dtype=np.float64)
    return tuple(float(x) for x in np.linalg.norm(affine[:3, :3], axis=0))  # type: ignore[return-value]


def _transform(affine: np.ndarray, orientation: str) -> np.ndarray:
    source = nio.io_orientation(np.asarray(affine, dtype=np.float64))
    return nio.ornt_transform(source, nio.axcodes2ornt(tuple(check_orientation(orientation))))


def _apply(array: np.ndarray, transform: np.ndarray, *, channels: bool) -> np.ndarray:
    if channels:  # apply_orientation acts on the leading axes; move channels last and back
        return np.moveaxis(nio.apply_orientation(np.moveaxis(array, 0, -1), transform), -1, 0)
    return nio.apply_orientation(array, transform)


def to_canonical(
    array: np.ndarray, affine: np.ndarray, *, orientation: str = "LPS"
) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a file's voxel array to the canonical ``(D, H, W)`` layout.

    Args:
        array: ``(I, J, K)`` or channel-first ``(C, I, J, K)`` voxels in file order.
        affine: ``(4, 4)`` voxel-to-world (RAS+ mm) matrix of the file.
        orientation: Axis code the ``(W, H, D)`` axes will point to.

    Returns:
        ``(array, affine)``: the ``(D, H, W)`` (or ``(C, D, H, W)``) view and the ``(4, 4)`` matrix
        that maps its ``(d, h, w)`` indices to the same world points.
    """
    channels = _check_ndim(array)
    transform = _transform(affine, orientation)
    spatial = array.shape[1:] if channels else array.shape
    reoriented = _apply(array, transform, channels=channels)
    new_affine = np.asarray(affine, dtype=np.float64) @ nio.inv_ornt_aff(transform, spatial)
    perm = (0, *(a + 1 for a in _FILE_TO_DHW)) if channels else _FILE_TO_DHW
    return reoriented.transpose(perm), new_affine[:, [*_FILE_TO_DHW, 3]]


def from_canonical(
    array: np.ndarray,
    original_affine: np.ndarray,
    original_shape: Sequence[int],
    *,
    orientation: str = "LPS",
) -> np.ndarray:
    """Inverse of :func:`to_canonical`: back to the file's voxel order.

    Args:
        array: ``(D, H, W)`` or ``(C, D, H, W)`` in canonical layout.
        original_affine: The file's ``(4, 4)`` affine.
        original_shape: The file's spatial shape ``(I, J, K)``.
        orientation: The code used by :func:`to_canonical`.

    Returns:
        ``(I, J, K)`` or ``(C, I, J, K)`` array that ``original_affine`` describes.
    """
    channels = _check_ndim(array)
    perm = (0, *(a + 1 for a in _FILE_TO_DHW)) if channels else _FILE_TO_DHW
    file_order = array.transpose(perm)
    source = nio.io_orientation(np.asarray(original_affine, dtype=np.float64))
    target = nio.axcodes2ornt(tuple(check_orientation(orientation)))
    backward = nio.ornt_transform(target, source)
    restored = _apply(file_order, backward, channels=channels)
    spatial = restored.shape[1:] if channels else restored.shape
    if tuple(spatial) != tuple(int(s) for s in original_shape):
        raise ShapeError(
            f"array of spatial shape {tuple(array.shape[-3:])} (canonical) does not map back to "
            f"the original shape {tuple(original_shape)}; pass an array on the canonical grid "
            "of the same case"
        )
    return restored


def _check_ndim(array: np.ndarray) -> bool:
    if array.ndim not in (3, 4):
        raise ShapeError(
            f"expected a (D, H, W) or (C, D, H, W) volume, got an array of shape {array.shape}"
        )
    return array.ndim == 4
