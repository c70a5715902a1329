"""Reading and writing medical volumes: NIfTI through nibabel, DICOM series and others through SimpleITK.

Every volume is returned as a :class:`Volume`: the voxel array in the file's own axis order
``(X, Y, Z)`` (no reorientation, the order nibabel and TorchIO use) and a 4x4 ``affine`` that
maps voxel indices to **RAS+** world millimetres (nibabel's convention). Spacing, origin and
direction are read from the affine, so a file stored in LPS (the study's data, DICOM) and one
stored in RAS (TotalSegmentator) are both described correctly.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ct.nii.gz"
    >>> _ = write_image(path, np.zeros((4, 5, 6), np.int16), spacing_affine((0.75, 0.75, 2.0)))
    >>> vol = read_image(path)
    >>> vol.shape, vol.spacing
    ((4, 5, 6), (0.75, 0.75, 2.0))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multitask_unet._atomic import atomic_path
from multitask_unet.data.nifti_checks import (
    GeometryNote,
    check_nifti_size,
    checked_nifti_affine,
    geometry_notes,
)
from multitask_unet.errors import DataError

__all__ = [
    "NIFTI_SUFFIXES",
    "ImageHeader",
    "Volume",
    "image_suffix",
    "read_header",
    "read_image",
    "read_mask",
    "round_labels",
    "spacing_affine",
    "write_image",
]

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
_SITK_SUFFIXES: tuple[str, ...] = (".nrrd", ".nhdr", ".mha", ".mhd")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Volume:
    """A volume and its geometry.

    Attributes:
        array: Voxels in the file's axis order, shape ``(X, Y, Z)``; the on-disk dtype is kept
            (scaled NIfTI data becomes float64).
        affine: ``(4, 4)`` voxel-index -> RAS+ millimetre transform.
        path: The file or DICOM folder it was read from, if any.
        notes: ``(what, fix)`` for each way other readers (ITK) would place the voxels
            elsewhere, e.g. a NIfTI header without orientation (see
            :func:`~multitask_unet.data.nifti_checks.geometry_notes`); callers warn about them.
    """

    array: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    notes: tuple[GeometryNote, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape ``(X, Y, Z)``."""
        return tuple(int(s) for s in self.array.shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in millimetres along each array axis."""
        return _spacing(self.affine)

    @property
    def origin(self) -> tuple[float, float, float]:
        """World (RAS+) position in millimetres of voxel ``(0, 0, 0)``."""
        return tuple(float(v) for v in self.affine[:3, 3])  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """``(3, 3)`` unit column vectors: the RAS+ direction of each array axis."""
        return self.affine[:3, :3] / np.asarray(self.spacing)


@dataclass(frozen=True, eq=False)
class ImageHeader:
    """What a file says about a volume before its voxels are read.

    Attributes:
        shape: Array shape, ``(X, Y, Z)`` for a 3D volume.
        affine: ``(4, 4)`` voxel-index -> RAS+ millimetre transform.
        dtype: On-disk voxel dtype.
    """

    shape: tuple[int, ...]
    affine: np.ndarray
    dtype: np.dtype

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in millimetres along each array axis."""
        return _spacing(self.affine)


def spacing_affine(
    spacing: Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    *,
    orientation: str = "LPS",
) -> np.ndarray:
    """Affine of an axis-aligned volume with the given spacing.

    Args:
        spacing: Voxel size ``(sx, sy, sz)`` in millimetres.
        origin: RAS+ position of voxel ``(0, 0, 0)``.
        orientation: ``"LPS"`` (array axes point left, posterior, superior: the study's files and
            DICOM) or ``"RAS"``.

    Returns:
        ``(4, 4)`` float64 affine.
    """
    if orientation not in ("LPS", "RAS"):
        raise DataError(f"orientation must be 'LPS' or 'RAS', got {orientation!r}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise DataError(f"spacing must be three positive numbers, got {tuple(spacing)!r}")
    signs = (-1.0, -1.0, 1.0) if orientation == "LPS" else (1.0, 1.0, 1.0)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(np.asarray(spacing, float) * signs)
    affine[:3, 3] = np.asarray(origin, float)
    return affine


def image_suffix(path: str | Path) -> str | None:
    """The image-format suffix of ``path`` (``".nii.gz"``, ``".nrrd"``, ...), or ``None``."""
    name = Path(path).name.lower()
    for suffix in NIFTI_SUFFIXES + _SITK_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def read_header(path: str | Path) -> ImageHeader:
    """Shape, affine and on-disk dtype of a volume without reading its voxels (NIfTI only is lazy)."""
    path = Path(path)
    if _is_nifti(path):
        img = _load_nifti(path)
        check_nifti_size(path, img)
        return ImageHeader(
            tuple(int(s) for s in img.shape), checked_nifti_affine(path, img), img.get_data_dtype()
        )
    vol = read_image(path)
    return ImageHeader(vol.shape, vol.affine, vol.array.dtype)


def read_image(path: str | Path) -> Volume:
    """Read a NIfTI file, a SimpleITK-readable file, or a folder holding one DICOM series.

    Trailing axes of length 1 beyond the third (``(X, Y, Z, 1)``) are dropped; other 4D volumes
    are returned as they are, so that callers can report them.

    Args:
        path: ``.nii.gz``/``.nii`` file (nibabel), ``.nrrd``/``.mha``/``.mhd`` file or a DICOM
            folder (SimpleITK).

    Returns:
        The :class:`Volume`, array shape ``(X, Y, Z)``.

    Raises:
        DataError: The file is missing, unreadable or truncated, claims more voxels than it
            holds, or has a zero or non-finite spacing (see :mod:`.nifti_checks`); the message
            names it.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path or add the file")
    if _is_nifti(path):
        img = _load_nifti(path)
        affine = checked_nifti_affine(path, img)
        check_nifti_size(path, img)  # before the array is allocated
        try:
            array = np.asanyarray(img.dataobj)
        except Exception as exc:  # gzip/zlib/EOF errors of truncated files vary by version
            raise DataError(
                f"{path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                "re-export or re-download the file"
            ) from exc
        notes = geometry_notes(path, img)
    else:
        (array, affine), notes = _read_sitk(path), ()
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Volume(np.asarray(array), affine, path, notes)


def round_labels(array: np.ndarray, *, tolerance: float = 1e-3) -> tuple[np.ndarray, float]:
    """Convert a label map to integers, rounding values within ``tolerance`` of an integer.

    Args:
        array: Label map of any numeric dtype, shape ``(X, Y, Z)``.
        tolerance: Largest accepted distance to the nearest integer.

    Returns:
        ``(labels, deviation)``: the smallest integer dtype holding the labels, and the largest
        distance of a value to its integer (0.0 for integer input).

    Raises:
        DataError: A value is NaN/Inf or farther than ``tolerance`` from an integer.

    Example:
        >>> labels, dev = round_labels(np.array([0.0, 1.0000153, 2.0]))
        >>> labels.tolist(), round(dev, 7)
        ([0, 1, 2], 1.53e-05)
    """
    if array.dtype.kind in "iub":
        return _smallest_int(array), 0.0
    if not np.isfinite(array).all():
        raise DataError("label map holds NaN or Inf values; labels must be integers")
    rounded = np.rint(array)
    deviation = float(np.max(np.abs(array - rounded))) if array.size else 0.0
    if deviation > tolerance:
        bad = array[np.abs(array - rounded) > tolerance]
        raise DataError(
            f"label map holds non-integer values such as {float(bad.flat[0])!r} (up to "
            f"{deviation:.3g} from an integer, tolerance {tolerance:g}); store integer labels"
        )
    return _smallest_int(rounded), deviation


def read_mask(path: str | Path, *, tolerance: float = 1e-3) -> Volume:
    """Read a label map and return it with integer voxels (see :func:`round_labels`).

    Raises:
        DataError: A value is not an integer (beyond ``tolerance``) or is negative; the message
            names the file.
    """
    vol = read_image(path)
    try:
        labels, _ = round_labels(vol.array, tolerance=tolerance)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    if labels.size and labels.min() < 0:
        raise DataError(
            f"{path}: label map holds negative values such as {int(labels.min())}; labels are "
            "0 (background), 1, 2, ...: remap them and save the mask again"
        )
    return Volume(labels, vol.affine, vol.path, vol.notes)


def write_image(
    path: str | Path,
    array: np.ndarray,
    affine: np.ndarray,
    *,
    dtype: np.dtype | type | None = None,
) -> Path:
    """Write a NIfTI volume atomically (temporary file in the same folder, then ``os.replace``).

    Both the qform and the sform hold ``affine`` (code 1, scanner), so every reader agrees on
    the geometry.

    Args:
        path: Output ``.nii.gz`` or ``.nii`` path; parent folders are created.
        array: Voxels, shape ``(X, Y, Z)``.
        affine: ``(4, 4)`` voxel -> RAS+ transform, e.g. from :func:`spacing_affine`.
        dtype: On-disk dtype; defaults to ``array.dtype``.

    Returns:
        The written path.
    """
    import nibabel as nib

    path = Path(path)
    if not _is_nifti(path):
        raise DataError(f"{path}: write_image writes NIfTI; name the file *.nii.gz or *.nii")
    data = np.asarray(array, dtype=dtype) if dtype is not None else np.asarray(array)
    img = nib.Nifti1Image(data, np.asarray(affine, float))
    img.header.set_data_dtype(data.dtype)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"  # .NII.GZ too
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(img, tmp)
    return path


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))  # type: ignore[return-value]


def _load_nifti(path: Path):  # -> nibabel.Nifti1Image
    import nibabel as nib

    if not path.exists():
        raise DataError(f"{path} does not exist; check the path or add the file")
    ending = path.name[len(path.name) - len(image_suffix(path) or "") :]
    if any(part not in (part.lower(), part.upper()) for part in ending.split(".")):
        raise DataError(  # nibabel would look for the lower-case name and find no file
            f"{path}: nibabel cannot open a file ending in {ending} (mixed case); rename it "
            f"{path.name[: -len(ending)]}{ending.lower()}"
        )
    try:
        return nib.load(path)
    except Exception as exc:
        raise DataError(
            f"{path} is not a readable NIfTI file ({type(exc).__name__}: {exc}); "
            "re-export it as .nii.gz"
        ) from exc


def _read_sitk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            series = reader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise DataError(f"{path} is a folder without a DICOM series; point to a file")
            if len(series) > 1:
                raise DataError(
                    f"{path} holds {len(series)} DICOM series; put each series in its own folder"
                )
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(path))
    except DataError:
        raise
    except Exception as exc:  # SimpleITK raises RuntimeError with a long ITK trace
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        raise DataError(
            f"{path} could not be read ({first_line}); check it is a valid image or DICOM series"
        ) from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"{path} has vector pixels; store one channel per file")
    array = sitk.GetArrayFromImage(image)  # (Z, Y, X) for 3D
    array = np.ascontiguousarray(array.transpose(tuple(range(array.ndim))[::-1]))
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), float).reshape(dim, dim)[:3, :3]
    spacing = np.asarray(image.GetSpacing(), float)[:3]
    origin = np.asarray(image.GetOrigin(), float)[:3]
    if dim == 2:  # embed a 2D image in 3D so that the caller can report it as 2D
        direction, spacing, origin = np.eye(3), np.append(spacing, 1.0), np.append(origin, 0.0)
        direction[:2, :2] = np.asarray(image.GetDirection(), float).reshape(2, 2)
        array = array[..., None]
    if not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise DataError(
            f"{path}: the image's spacing is {tuple(float(s) for s in spacing)} mm; set the true "
            "(positive) spacing in the file and save it again"
        )
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(spacing)
    affine[:3, 3] = _LPS_TO_RAS @ origin
    return array, affine


def _smallest_int(array: np.ndarray) -> np.ndarray:
    if array.size == 0:
        return array.astype(np.uint8)
    lo, hi = int(array.min()), int(array.max())
    for dtype in (np.uint8, np.int16, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return array.astype(dtype, copy=False)
    return array.astype(np.int64)
