"""Training and prediction read a case as validation judges it: same grid rules, same words."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from multitask_unet.data.canonical import read_canonical_case
from multitask_unet.data.io import spacing_affine, write_image
from multitask_unet.data.readers import DatasetIndex
from multitask_unet.data.records import CaseRecord
from multitask_unet.data.validation import validate_dataset
from multitask_unet.errors import DataError

_SPACING = (0.5, 0.5, 2.0)


def _case(tmp_path: Path, *, image_shape=(10, 12, 8), mask_affine=None) -> CaseRecord:
    affine = spacing_affine(_SPACING, (10.0, 20.0, -30.0))
    image = np.arange(np.prod(image_shape), dtype=np.int16).reshape(image_shape)
    mask = (image % 3).astype(np.uint8)
    return CaseRecord(
        "c",
        (write_image(tmp_path / "c_0000.nii.gz", image, affine),),
        write_image(tmp_path / "c.nii.gz", mask, affine if mask_affine is None else mask_affine),
    )


def _shifted(mm: float) -> np.ndarray:
    affine = spacing_affine(_SPACING, (10.0, 20.0, -30.0))
    affine[0, 3] += mm
    return affine


def test_a_2d_slice_stored_as_a_volume_is_refused_naming_the_file(tmp_path: Path) -> None:
    """(X, Y, 1) was preprocessed and predicted as a one-slice volume; validate calls it 2D."""
    record = _case(tmp_path, image_shape=(10, 12, 1))
    with pytest.raises(
        DataError, match=r"c_0000\.nii\.gz \(case c\) is 2D \(shape \(10, 12, 1\)\)"
    ):
        read_canonical_case(record)
    prediction = CaseRecord("c", record.images, split="predict")
    with pytest.raises(DataError, match="is 2D"):
        read_canonical_case(prediction)


def test_a_grid_mismatch_says_what_differs(tmp_path: Path) -> None:
    record = _case(tmp_path, mask_affine=_shifted(0.25))  # half a voxel
    words = (
        r"c\.nii\.gz \(case c\) is not on the grid of .*c_0000\.nii\.gz: origin .* \(0\.5 voxels\)"
    )
    with pytest.raises(DataError, match=words):
        read_canonical_case(record)


@pytest.mark.parametrize("mm", [0.0004, 0.0009, 0.01])
def test_preprocessing_accepts_exactly_what_validation_accepts(tmp_path: Path, mm: float) -> None:
    record = _case(tmp_path, mask_affine=_shifted(mm))
    report = validate_dataset(DatasetIndex(tmp_path, "manifest", (record,)), workers=1)
    try:
        read_canonical_case(record)
        read = True
    except DataError as exc:
        read = False
        assert re.search(r"origin .* differs", str(exc))
    assert read == report.ok, str(report)


def test_a_constant_image_is_read_with_a_warning_naming_it(tmp_path: Path) -> None:
    from multitask_unet.errors import DataWarning

    path = write_image(tmp_path / "blank_0000.nii.gz", np.zeros((6, 7, 8), np.int16),
                       spacing_affine(_SPACING))  # fmt: skip
    with pytest.warns(DataWarning, match=rf"{re.escape(str(path))} \(case b\): every voxel is 0"):
        read_canonical_case(CaseRecord("b", (path,), split="predict"))


def test_a_case_read_twice_warns_once(tmp_path: Path) -> None:
    """Training reads a case for the fingerprint and again for the cache: one warning, not two."""
    import warnings

    path = tmp_path / "c_0000.nii.gz"
    write_image(path, np.zeros((8, 8, 8), np.int16), spacing_affine((1.0, 1.0, 1.0)))
    record = CaseRecord("c", (path,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own: once per message and location
        read_canonical_case(record)  # as the fingerprint does ...
        read_canonical_case(record)  # ... and the cache, from another line
    assert [str(w.message).count("every voxel is 0") for w in caught] == [1]
