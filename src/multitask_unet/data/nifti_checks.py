"""Checks of a NIfTI header before its voxels are read.

nibabel repairs some header defects without a word, and allocates what a header claims before it
finds out that the file is shorter. Both turn into a :class:`~multitask_unet.errors.DataError`
that names the file and the fix:

- **Spacing 0**: with no sform, the affine comes from ``pixdim``; nibabel reads a spacing of 0 as
  1 mm, so every millimetre computed from it (resampling, surface distances) would be wrong.
- **A degenerate affine**: a zero or non-finite scaling column (spacing 0, NaN or Inf).
- **A header larger than its file**: a shape whose voxels the file cannot hold is refused before
  any array is allocated. For ``.nii.gz`` under 4 GiB the gzip trailer gives the uncompressed
  size; otherwise, or when it disagrees, the stream is decompressed in chunks to count its bytes.

Headers that readers interpret differently are readable, but :func:`geometry_notes` describes
them, so that callers can warn: ITK-based tools (SimpleITK, ITK-SNAP, nnU-Net's default reader)
would place the voxels elsewhere than nibabel and this library do, and a prediction written for
such a file would not overlay it there.

- **No orientation** (``qform_code`` and ``sform_code`` 0): nibabel reads the axes as LAS with
  the origin at the volume's centre, ITK as LPS with the origin at 0.
- **qform and sform disagree**: nibabel uses the sform, ITK the qform unless ``sform_code`` is 1.
- **A negative spacing in pixdim** (qform only): nibabel reads its absolute value, ITK flips
  the axis.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from multitask_unet.errors import DataError

__all__ = ["GeometryNote", "check_nifti_size", "checked_nifti_affine", "geometry_notes"]

#: ``(what is wrong, the fix)``: a header that readers interpret differently.
GeometryNote = tuple[str, str]

_ITK = "ITK-based tools (SimpleITK, ITK-SNAP, nnU-Net's default reader)"


def checked_nifti_affine(path: Path, img) -> np.ndarray:  # img: nibabel.Nifti1Image
    """``img``'s voxel -> RAS+ affine, refusing a spacing nibabel would silently repair."""
    if int(img.header["sform_code"]) == 0:  # the affine comes from pixdim (qform or base affine)
        pixdim = [float(v) for v in _header_as_stored(path, img)["pixdim"][1:4]]
        bad = [axis for axis, v in enumerate(pixdim) if not (math.isfinite(v) and v != 0)]
        if bad:
            raise DataError(
                f"{path}: the header's voxel spacing (pixdim) is {tuple(pixdim)}: axis "
                f"{bad[0]} is {pixdim[bad[0]]}, which nibabel would read as 1 mm. Set the true "
                "spacing in the header (e.g. nibabel's header.set_zooms) and save the file again"
            )
    affine = np.asarray(img.affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if not np.all(np.isfinite(affine)) or np.any(spacing == 0):
        raise DataError(
            f"{path}: the header's affine has a zero or non-finite spacing "
            f"({tuple(round(float(s), 6) for s in spacing)} mm); set a valid sform/qform with "
            "the true spacing and save the file again"
        )
    return affine.copy()


def geometry_notes(path: Path, img) -> tuple[GeometryNote, ...]:  # img: nibabel.Nifti1Image
    """Where nibabel and ITK-based readers disagree about ``img``'s geometry (module docstring).

    Returns:
        ``(what, fix)`` pairs, empty for a header that every reader reads alike.
    """
    header = img.header
    qcode, scode = int(header["qform_code"]), int(header["sform_code"])
    if qcode == 0 and scode == 0:
        what = (
            "the header holds no orientation (qform_code and sform_code are 0): nibabel and this "
            f"library read its axes as LAS with the origin at the centre, {_ITK} as LPS with the "
            "origin at 0, so a prediction written for it is flipped and shifted against it in "
            "one of them"
        )
        fix = "set the scanner geometry in the qform and sform and save the file again"
        return ((what, fix),)
    notes: list[GeometryNote] = []
    if qcode > 0 and scode > 1:  # sform_code 1 (scanner): ITK reads the sform too
        qform, sform = header.get_qform(), header.get_sform()
        step = float(np.linalg.norm(sform[:3, :3], axis=0).min())
        gap = float(np.abs(qform - sform)[:3].max())
        if not gap <= 1e-3 * step:
            what = (
                f"the qform and sform disagree (by up to {gap:.3g} mm; voxels of {step:.3g} mm): "
                f"nibabel and this library use the sform, {_ITK} the qform, as sform_code is "
                f"{scode}, not 1"
            )
            fix = (
                "set both to the true geometry (e.g. img.set_qform(img.get_sform())) and save "
                "the file again"
            )
            notes.append((what, fix))
    if scode == 0:  # the qform uses pixdim, which nibabel made positive on loading
        pixdim = [round(float(v), 6) for v in _header_as_stored(path, img)["pixdim"][1:4]]
        negative = [axis for axis, v in enumerate(pixdim) if v < 0]
        if negative:
            what = (
                f"the header's voxel spacing (pixdim) is {tuple(pixdim)}: axis {negative[0]} is "
                "negative, which nibabel and this library read as its absolute value and "
                f"{_ITK} as a flipped axis"
            )
            fix = (
                "store positive pixdim and the axis directions in the qform and save the file again"
            )
            notes.append((what, fix))
    return tuple(notes)


def _header_as_stored(path: Path, img):  # -> nibabel header
    """The header as the file holds it: nibabel's loader has already set a 0 spacing to 1."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        return type(img.header).from_fileobj(handle, check=False)


def check_nifti_size(path: Path, img) -> None:
    """Raise when the file is too short for the voxels its header claims (see module docstring)."""
    shape = tuple(int(s) for s in img.shape)
    needed = int(np.prod(shape, dtype=np.float64)) * np.dtype(img.get_data_dtype()).itemsize
    offset = int(getattr(img.dataobj, "offset", 0))
    if path.name.lower().endswith(".gz"):
        held = _gzip_size(path, expected=offset + needed)
    else:
        held = os.path.getsize(path)
    if held < offset + needed:
        raise DataError(
            f"{path}: the header claims shape {shape} of {img.get_data_dtype()} "
            f"({_size(needed)}), but the file holds {_size(max(held - offset, 0))} of voxels; it "
            "is truncated or its header is wrong. Re-export or re-download the file"
        )


def _gzip_size(path: Path, *, expected: int) -> int:
    """Uncompressed size of a gzip file: the trailer when it agrees, else a chunked count."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if expected < 2**32 and handle.tell() >= 18:  # the trailer holds the size modulo 4 GiB
            handle.seek(-4, os.SEEK_END)
            if struct.unpack("<I", handle.read(4))[0] == expected % 2**32:
                return expected
    try:
        with gzip.open(path, "rb") as stream:
            return stream.seek(0, os.SEEK_END)  # decompresses chunk by chunk, keeps nothing
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
            "re-export or re-download the file"
        ) from exc


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n:,} bytes"
