"""One case's voxels, read from disk and brought to the canonical ``(C, D, H, W)`` layout.

This is the common first step of the fingerprint and of preprocessing: read every image channel
and the mask (see :mod:`multitask_unet.data.io`), check that they share one grid, and reorient
them (:func:`~multitask_unet.data.orientation.to_canonical`), keeping what is needed to go back.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multitask_unet.data.io import Volume, read_image, read_mask
from multitask_unet.data.orientation import to_canonical, voxel_spacing
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import DataError, DataWarning

__all__ = [
    "CanonicalCase",
    "constant_value",
    "fill_nonfinite",
    "grid_differences",
    "read_canonical_case",
]


@dataclass(frozen=True, eq=False)
class CanonicalCase:
    """A case in canonical orientation.

    Attributes:
        case_id: The record's id.
        image: ``(C, D, H, W)`` float32 voxels.
        seg: ``(D, H, W)`` integer label map, or ``None`` for an unlabelled case.
        affine: ``(4, 4)`` map from ``(d, h, w)`` indices to RAS+ mm.
        original_affine: The image file's ``(4, 4)`` affine.
        original_shape: The image file's spatial shape ``(I, J, K)``.
    """

    case_id: str
    image: np.ndarray
    seg: np.ndarray | None
    affine: np.ndarray
    original_affine: np.ndarray
    original_shape: tuple[int, int, int]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``(D, H, W)``."""
        return voxel_spacing(self.affine)


def read_canonical_case(record: CaseRecord, *, orientation: str = "LPS") -> CanonicalCase:
    """Read ``record``'s channels and mask and reorient them to ``orientation``.

    NaN/Inf image voxels are replaced, with a warning (:func:`fill_nonfinite`); a constant
    channel (:func:`constant_value`) is read with a warning too; a header that
    ITK-based tools read differently (:attr:`Volume.notes`) is read as nibabel does, with a
    :class:`~multitask_unet.errors.DataWarning` naming the file.

    Raises:
        DataError: A file is unreadable, not 3D, or does not share the first channel's grid.
    """
    if not record.images:
        raise DataError(f"case {record.case_id!r} has no image file; give at least one channel")
    volumes = [read_image(path) for path in record.images]
    first = volumes[0]
    for volume in volumes:
        _warn_notes(volume, record.case_id)
        _check_grid(volume, first, record.case_id)
    stacked = np.stack([np.asarray(v.array, dtype=np.float32) for v in volumes])
    if any(np.issubdtype(v.array.dtype, np.floating) for v in volumes):  # integers are finite
        fill_nonfinite(stacked, record.images, record.case_id)
    for channel, path in zip(stacked, record.images):
        value = constant_value(channel)
        if value is not None:
            warnings.warn(
                f"{path} (case {record.case_id}): every voxel is {value:g}, so the image holds "
                "nothing to segment or classify; check it is the right file (a failed export?)",
                DataWarning,
                stacklevel=1,  # one location: a case read again (fingerprint, then cache) warns once
            )
    image, affine = to_canonical(stacked, first.affine, orientation=orientation)
    seg = None
    if record.mask is not None:
        mask = read_mask(record.mask)
        _warn_notes(mask, record.case_id)
        _check_grid(mask, first, record.case_id)
        seg, _ = to_canonical(mask.array, mask.affine, orientation=orientation)
    return CanonicalCase(
        case_id=record.case_id,
        image=np.ascontiguousarray(image),
        seg=None if seg is None else np.ascontiguousarray(seg),
        affine=affine,
        original_affine=first.affine.copy(),
        original_shape=tuple(int(s) for s in first.array.shape),  # type: ignore[arg-type]
    )


def constant_value(array: np.ndarray) -> float | None:
    """The value of every voxel when ``array`` is constant (a blank export), else ``None``."""
    if array.size == 0:
        return None
    low, high = np.min(array), np.max(array)
    return float(low) if low == high else None


def fill_nonfinite(image: np.ndarray, paths: Sequence[Path], case_id: str) -> None:
    """Replace NaN/Inf voxels of each channel, in place, by the channel's lowest finite value.

    The lowest value is what lies outside the body (air in CT, background in MR), so the network
    reads a damaged slice as empty and the rest of the volume is predicted as usual; without it
    one NaN spreads through every convolution and normalisation it reaches. Each repair is
    reported with a :class:`~multitask_unet.errors.DataWarning` naming the file; ``validate``
    reports such files as errors, so no training set holds them.

    Raises:
        DataError: A channel has no finite voxel at all.
    """
    for channel, path in zip(image, paths):
        bad = ~np.isfinite(channel)
        if not bad.any():
            continue
        finite = channel[~bad]
        if finite.size == 0:
            raise DataError(
                f"{path} (case {case_id}) holds no finite voxel (every one is NaN or Inf); "
                "re-export the image"
            )
        fill = float(finite.min())
        channel[bad] = fill
        slices = int(np.any(bad, axis=(0, 1)).sum())
        warnings.warn(
            f"{path} (case {case_id}): {int(bad.sum())} NaN/Inf voxel(s) in {slices} slice(s) "
            f"along the file's third axis were read as the image's lowest value {fill:g}; their "
            "prediction is background-like. Fix the file to predict them",
            DataWarning,
            stacklevel=1,  # one location: a case read again warns once
        )


def _warn_notes(volume: Volume, case_id: str) -> None:
    for what, fix in volume.notes:
        message = f"{volume.path} (case {case_id}): {what}; {fix}"
        warnings.warn(message, DataWarning, stacklevel=1)  # one location: warned once


def grid_differences(reference: Volume, volume: Volume, tolerance: float = 1e-3) -> list[str]:
    """How ``volume``'s voxel grid differs from ``reference``'s (the image's), one phrase each.

    Args:
        reference: The case's first image channel.
        volume: Another channel or the mask.
        tolerance: Relative tolerance on spacing, on origin (in voxels) and on direction cosines.

    Returns:
        E.g. ``["origin (10.4, 20, -30) differs from the image's (10, 20, -30) (0.5 voxels)"]``;
        empty when the grids match.
    """
    if volume.shape != reference.shape:
        return [f"shape {volume.shape} differs from the image's {reference.shape}"]
    out = []
    ref_spacing, spacing = np.asarray(reference.spacing), np.asarray(volume.spacing)
    if np.max(np.abs(spacing - ref_spacing) / ref_spacing) > tolerance:
        out.append(f"spacing {_fmt(spacing)} differs from the image's {_fmt(ref_spacing)}")
    shift = np.abs(np.asarray(volume.origin) - np.asarray(reference.origin)) / ref_spacing.min()
    if np.max(shift) > tolerance:
        out.append(
            f"origin {_fmt(volume.origin)} differs from the image's {_fmt(reference.origin)} "
            f"({np.max(shift):.3g} voxels)"
        )
    if np.max(np.abs(volume.direction - reference.direction)) > tolerance:
        out.append(
            f"direction {_fmt(volume.direction.ravel())} differs from the image's "
            f"{_fmt(reference.direction.ravel())} (axes flipped or rotated)"
        )
    return out


def _check_grid(volume: Volume, first: Volume, case_id: str) -> None:
    shape = volume.shape
    if len(shape) != 3 or min(shape) == 1:
        kind = "2D" if len(shape) < 3 or min(shape[:3]) == 1 else f"{len(shape)}D"
        raise DataError(
            f"{volume.path} (case {case_id}) is {kind} (shape {shape}); 3D volumes with several "
            "voxels along every axis are needed: provide the full volume, one channel per file"
        )
    differences = grid_differences(first, volume)
    if differences:
        raise DataError(
            f"{volume.path} (case {case_id}) is not on the grid of {first.path}: "
            f"{'; '.join(differences)}; resample it onto the image grid"
        )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in np.asarray(values).ravel()) + ")"
