"""Dataset defects for validation tests and the validation benchmark.

Each breaker damages a phantom dataset (``write_phantom_dataset``) in one way, in ``case`` (by
default :func:`first_case`) or in the layout, and returns the file that the report must name.
:data:`DEFECTS` lists them with the severity and words of the expected report entry;
:data:`CASE_DEFECTS` are those that touch a single case, so that many can damage one dataset.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from multitask_unet.data.io import read_image, write_image
from multitask_unet.data.readers import DatasetIndex
from multitask_unet.data.records import CaseRecord


def _rewrite(path: Path, *, array=None, affine=None, dtype=None) -> Path:
    vol = read_image(path)
    return write_image(
        path,
        vol.array if array is None else array,
        vol.affine if affine is None else affine,
        dtype=dtype,
    )


def first_case(index: DatasetIndex, split: str = "train", label: int | None = 0) -> CaseRecord:
    """The first case of ``split`` with class ``label``: the default victim of a defect."""
    return next(r for r in index if r.split == split and r.label == label)


def missing_image(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).images[0]
    path.unlink()
    return path


def missing_mask(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    path.unlink()
    return path


def corrupt_file(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).images[0]
    path.write_bytes(gzip.compress(b"this is not NIfTI" * 10))
    return path


def truncated_file(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    path.write_bytes(path.read_bytes()[:200])
    return path


def shape_mismatch(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    return _rewrite(path, array=read_image(path).array[:-2])


def spacing_mismatch(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    affine = read_image(path).affine.copy()
    affine[:3, 2] *= 1.05
    return _rewrite(path, affine=affine)


def origin_mismatch(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    affine = read_image(path).affine.copy()
    affine[0, 3] += 1.0
    return _rewrite(path, affine=affine)


def direction_mismatch(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    affine = read_image(path).affine.copy()
    affine[:3, 0] *= -1
    return _rewrite(path, affine=affine)


def image_2d(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).images[0]
    return _rewrite(path, array=read_image(path).array[:, :, 5])


def image_4d(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).images[0]
    array = read_image(path).array
    return _rewrite(path, array=np.stack([array, array], axis=-1))


def nan_intensity(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).images[0]
    array = read_image(path).array.astype(np.float32)
    array[3, 4, 5] = np.nan
    return _rewrite(path, array=array)


def inf_intensity(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).images[0]
    array = read_image(path).array.astype(np.float32)
    array[1, 1, 1] = -np.inf
    return _rewrite(path, array=array)


def constant_image(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    """A blank export: every voxel -1024."""
    path = (case or first_case(index)).images[0]
    return _rewrite(path, array=np.full(read_image(path).shape, -1024, np.int16))


def nearly_integer_labels(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    array = read_image(path).array.astype(np.float32)
    array[array == 1] = 1.0000153  # as in the real train/subtype1/quiz_1_010
    return _rewrite(path, array=array)


def non_integer_labels(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    array = read_image(path).array.astype(np.float32)
    array[array == 2] = 1.5
    return _rewrite(path, array=array)


def undeclared_label(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    array = read_image(path).array.copy()
    array[0, 0, 0] = 7
    return _rewrite(path, array=array)


def negative_label(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    array = read_image(path).array.astype(np.int16)
    array[0, 0, 0] = -1  # an 'ignore' value of another tool
    return _rewrite(path, array=array)


def label_gap_declared(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    """dataset.json declares a label 5 after 0, 1, 2: a head of 6 outputs, 2 never trained."""
    path = index.root / "dataset.json"
    declared = json.loads(path.read_text())
    declared["labels"]["extra"] = 5
    path.write_text(json.dumps(declared))
    return path


def mask_255_undeclared(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    """No dataset.json, and a mask storing its foreground as 255 (a common binary export)."""
    (index.root / "dataset.json").unlink()
    path = (case or first_case(index)).mask
    array = read_image(path).array.copy()
    array[array > 0] = 255
    return _rewrite(path, array=array)


def duplicate_case_id(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    record = case or first_case(index, label=0)
    target = record.images[0].parent.parent / "subtype1"
    for path in (*record.images, record.mask):
        shutil.copy(path, target / path.name)
    return target / record.images[0].name


def label_contradicts_folder(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    record = case or first_case(index, label=0)
    table = index.root / "cases.csv"
    rows = list(csv.reader(table.open()))
    for row in rows:
        if row[0] == record.case_id:
            row[2] = "2"
    with table.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return record.images[0]


def empty_split(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    (index.root / "holdout").mkdir()
    return index.root / "holdout"


def empty_subtype_folder(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    (index.root / "train" / "subtype3").mkdir()
    return index.root / "train" / "subtype3"


def subtype_without_training_cases(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    folder = index.root / "train" / "subtype1"
    for path in folder.iterdir():
        path.unlink()
    return index.root


def _edit_nifti_header(path: Path, edit: Callable[[bytearray], None]) -> Path:
    """Rewrite header bytes of a ``.nii.gz`` file (NIfTI-1 offsets, little endian)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    edit(raw)
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


def zero_spacing_header(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    """pixdim[3] = 0 with no sform or qform: nibabel would read 1 mm."""

    def edit(raw: bytearray) -> None:
        pixdim = list(struct.unpack("<8f", raw[76:108]))
        pixdim[3] = 0.0
        raw[76:108] = struct.pack("<8f", *pixdim)
        raw[252:256] = struct.pack("<hh", 0, 0)  # qform_code, sform_code

    return _edit_nifti_header((case or first_case(index)).images[0], edit)


def header_claims_more_voxels(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    """A header whose shape (2048 per axis) the file cannot hold."""

    def edit(raw: bytearray) -> None:
        raw[40:56] = struct.pack("<8h", 3, 2048, 2048, 2048, 1, 1, 1, 1)

    return _edit_nifti_header((case or first_case(index)).mask, edit)


def _edit_both_headers(
    index: DatasetIndex, case: CaseRecord | None, edit: Callable[[bytearray], None]
) -> Path:
    """The same header edit in the mask and the image (so that they still share one grid)."""
    record = case or first_case(index)
    _edit_nifti_header(record.mask, edit)
    return _edit_nifti_header(record.images[0], edit)


def no_orientation(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    """qform_code = sform_code = 0: nibabel reads LAS about the centre, ITK LPS at 0."""

    def edit(raw: bytearray) -> None:
        raw[252:256] = struct.pack("<hh", 0, 0)

    return _edit_both_headers(index, case, edit)


def qform_sform_disagree(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    """An 'aligned' sform (code 2) and a qform 25 mm away: ITK reads the qform."""

    def edit(raw: bytearray) -> None:
        qoffset_x = struct.unpack("<f", raw[268:272])[0]
        raw[268:272] = struct.pack("<f", qoffset_x + 25.0)
        raw[254:256] = struct.pack("<h", 2)

    return _edit_both_headers(index, case, edit)


def negative_pixdim(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    """pixdim[1] < 0 under a qform (no sform): nibabel reads |pixdim|, ITK a flipped axis."""

    def edit(raw: bytearray) -> None:
        pixdim = list(struct.unpack("<8f", raw[76:108]))
        pixdim[1] = -pixdim[1]
        raw[76:108] = struct.pack("<8f", *pixdim)
        raw[254:256] = struct.pack("<h", 0)

    return _edit_both_headers(index, case, edit)


def mask_linked_outside(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    """The mask replaced by a link to a file outside the dataset folder."""
    path = (case or first_case(index)).mask
    elsewhere = index.root.parent / "elsewhere" / f"{(case or first_case(index)).case_id}.nii.gz"
    elsewhere.parent.mkdir(exist_ok=True)
    shutil.move(path, elsewhere)
    path.symlink_to(elsewhere)
    return path


def no_foreground(index: DatasetIndex, case: CaseRecord | None = None) -> Path:
    path = (case or first_case(index)).mask
    return _rewrite(path, array=np.zeros_like(read_image(path).array))


#: (breaker, severity, words of the expected report entry), every defect the tests know.
DEFECTS: list[tuple[Callable[..., Path], str, str]] = [
    (missing_image, "error", "image channel 0 missing"),
    (missing_mask, "error", "mask missing"),
    (corrupt_file, "error", "unreadable image"),
    (truncated_file, "error", "unreadable mask"),
    (shape_mismatch, "error", "mask shape"),
    (spacing_mismatch, "error", "mask spacing"),
    (origin_mismatch, "error", "mask origin"),
    (direction_mismatch, "error", "mask direction"),
    (image_2d, "error", "is 2D"),
    (image_4d, "error", "is 4D"),
    (nan_intensity, "error", "NaN or Inf"),
    (inf_intensity, "error", "NaN or Inf"),
    (constant_image, "warning", "image channel 0 is constant (every voxel is -1024)"),
    (nearly_integer_labels, "warning", "rounded to integers"),
    (non_integer_labels, "error", "non-integer values such as 1.5"),
    (undeclared_label, "error", "mask values [7] are not declared"),
    (negative_label, "error", "mask holds negative values [-1]"),
    (label_gap_declared, "error", "the declared labels are [0, 1, 2, 5]: the segmentation head"),
    (mask_255_undeclared, "error", "the masks hold labels [0, 1, 2, 255] (no dataset.json"),
    (duplicate_case_id, "error", "appears 2 times"),
    (label_contradicts_folder, "error", "gives subtype 2 but the case is in train/subtype0"),
    (empty_split, "error", "split folder 'holdout' has no cases"),
    (empty_subtype_folder, "error", "subtype folder train/subtype3 has no cases"),
    (subtype_without_training_cases, "error", "subtype1 (label 1) has no training cases"),
    (no_foreground, "warning", "no foreground"),
    (zero_spacing_header, "error", "which nibabel would read as 1 mm"),
    (header_claims_more_voxels, "error", "the header claims shape (2048, 2048, 2048)"),
    (mask_linked_outside, "warning", "outside the dataset"),
    (no_orientation, "warning", "holds no orientation (qform_code and sform_code are 0)"),
    (qform_sform_disagree, "warning", "qform and sform disagree (by up to 25 mm"),
    (negative_pixdim, "warning", "axis 0 is negative"),
]


#: The defects of one case each (several can damage one dataset, in different cases).
CASE_DEFECTS = [d for d in DEFECTS if d[0] not in (
    duplicate_case_id, empty_split, empty_subtype_folder, subtype_without_training_cases,
    label_gap_declared, mask_255_undeclared,
)]  # fmt: skip
