"""Volume I/O: NIfTI through nibabel, other formats and DICOM through SimpleITK, one RAS+ affine."""

from __future__ import annotations

import gzip
import locale
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from multitask_unet.data.io import (
    read_header,
    read_image,
    read_mask,
    round_labels,
    spacing_affine,
    write_image,
)
from multitask_unet.errors import DataError


def _rotated_affine(spacing=(0.7, 0.9, 2.5), origin=(12.0, -30.0, 5.0)) -> np.ndarray:
    angle = 0.3
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, -1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def _sitk_world_ras(image: sitk.Image, index) -> np.ndarray:
    """ITK's physical point (LPS) of a voxel index, in RAS."""
    lps = np.asarray(image.TransformContinuousIndexToPhysicalPoint([float(i) for i in index]))
    return lps * [-1, -1, 1]


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint8, np.float64])
@pytest.mark.parametrize("orientation", ["LPS", "RAS"])
def test_nifti_round_trip_keeps_voxels_dtype_and_geometry(tmp_path: Path, dtype, orientation):
    rng = np.random.default_rng(0)
    array = (rng.random((5, 7, 3)) * 100).astype(dtype)
    affine = spacing_affine((0.8, 0.6, 2.5), (1.0, 2.0, 3.0), orientation=orientation)
    path = write_image(tmp_path / "v.nii.gz", array, affine)
    vol = read_image(path)
    np.testing.assert_array_equal(vol.array, array)
    assert vol.array.dtype == array.dtype
    np.testing.assert_allclose(vol.affine, affine, atol=1e-6)
    np.testing.assert_allclose(vol.spacing, (0.8, 0.6, 2.5), rtol=1e-6)
    assert nib.aff2axcodes(vol.affine) == (
        ("L", "P", "S") if orientation == "LPS" else tuple("RAS")
    )
    header = read_header(path)
    assert header.shape == (5, 7, 3) and header.dtype == array.dtype
    assert not list(tmp_path.glob(".*")), "no temporary file may be left behind"


def test_written_nifti_geometry_agrees_with_simpleitk(tmp_path: Path):
    affine = _rotated_affine()
    path = write_image(tmp_path / "rot.nii.gz", np.zeros((6, 5, 4), np.int16), affine)
    ours, theirs = read_image(path), sitk.ReadImage(str(path))
    for index in [(0, 0, 0), (5, 4, 3), (2.5, 1.0, 3.0)]:
        mine = ours.affine @ np.append(index, 1.0)
        np.testing.assert_allclose(mine[:3], _sitk_world_ras(theirs, index), atol=1e-4)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_simpleitk_formats_have_the_same_geometry_as_in_itk(tmp_path: Path, suffix: str):
    array_zyx = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing((0.5, 0.75, 3.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection(tuple(_rotated_affine((1, 1, 1))[:3, :3].ravel()))
    path = tmp_path / f"v{suffix}"
    sitk.WriteImage(image, str(path))
    vol = read_image(path)
    np.testing.assert_array_equal(vol.array, array_zyx.transpose(2, 1, 0))
    for index in [(0, 0, 0), (5, 4, 3), (1, 2, 3)]:
        mine = vol.affine @ np.append(index, 1.0)
        np.testing.assert_allclose(mine[:3], _sitk_world_ras(image, index), atol=1e-6)


def test_trailing_singleton_axis_is_dropped_and_4d_kept(tmp_path: Path):
    affine = spacing_affine((1, 1, 1))
    write_image(tmp_path / "a.nii.gz", np.zeros((4, 4, 4, 1), np.int16), affine)
    write_image(tmp_path / "b.nii.gz", np.zeros((4, 4, 4, 2), np.int16), affine)
    assert read_image(tmp_path / "a.nii.gz").shape == (4, 4, 4)
    assert read_image(tmp_path / "b.nii.gz").shape == (4, 4, 4, 2)


@pytest.mark.parametrize(
    ("values", "expected", "deviation"),
    [
        ([0, 1, 2], [0, 1, 2], 0.0),
        ([0.0, 1.0000153, 2.0], [0, 1, 2], 1.53e-5),
        ([0.0, 0.9995, 2.0], [0, 1, 2], 5e-4),
    ],
)
def test_round_labels_within_tolerance(values, expected, deviation):
    labels, dev = round_labels(np.asarray(values))
    assert labels.tolist() == expected
    assert labels.dtype.kind in "iu"
    assert dev == pytest.approx(deviation, rel=1e-2, abs=1e-9)


@pytest.mark.parametrize("values", [[0.0, 1.2, 2.0], [0.0, np.nan], [1.0, np.inf], [0.0, 1.002]])
def test_round_labels_rejects_values_beyond_tolerance(values):
    with pytest.raises(DataError, match=r"labels|integer"):
        round_labels(np.asarray(values, float))


def test_read_mask_returns_integers_and_names_the_file(tmp_path: Path):
    affine = spacing_affine((1, 1, 1))
    good = write_image(tmp_path / "m.nii.gz", np.full((3, 3, 3), 1.0000153, np.float32), affine)
    assert read_mask(good).array.dtype == np.uint8
    bad = write_image(tmp_path / "bad.nii.gz", np.full((3, 3, 3), 1.5, np.float32), affine)
    with pytest.raises(DataError, match=r"bad\.nii\.gz"):
        read_mask(bad)


@pytest.mark.parametrize("name", ["ct.NII.GZ", "ct.nii.GZ", "ct.NII", "ct.nii.gz"])
def test_an_uppercase_ending_is_written_compressed_as_it_says_and_read_back(tmp_path: Path, name):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    path = write_image(tmp_path / name, data, spacing_affine((1, 1, 1)))
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.lower().endswith(".gz")
    np.testing.assert_array_equal(read_image(path).array, data)


def test_an_ending_of_mixed_case_that_nibabel_cannot_open_is_named_with_the_fix(tmp_path: Path):
    path = write_image(tmp_path / "ct.Nii.gz", np.zeros((2, 3, 4), np.int16), np.eye(4))
    with pytest.raises(DataError, match=r"ct\.Nii\.gz: .*\(mixed case\); rename it ct\.nii\.gz"):
        read_image(path)


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_a_negative_label_is_refused_where_training_and_prediction_read_masks(
    tmp_path: Path, dtype
):
    """-1 (another tool's 'ignore') would reach the loss as a class index."""
    from multitask_unet.data.canonical import read_canonical_case
    from multitask_unet.data.records import CaseRecord

    affine = spacing_affine((1, 1, 1))
    image = np.arange(27, dtype=np.int16).reshape(3, 3, 3)
    image = write_image(tmp_path / "c_0000.nii.gz", image, affine)
    labels = np.zeros((3, 3, 3), dtype)
    labels[0, 0, 0] = -1
    mask = write_image(tmp_path / "c.nii.gz", labels, affine)
    words = r"c\.nii\.gz: label map holds negative values such as -1"
    with pytest.raises(DataError, match=words):
        read_mask(mask)
    with pytest.raises(DataError, match=words):
        read_canonical_case(CaseRecord("c", (image,), mask))


def test_missing_corrupt_and_truncated_files_raise_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "nope.nii.gz")
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(gzip.compress(b"not a nifti header" * 3))
    with pytest.raises(DataError, match=r"garbage\.nii\.gz"):
        read_image(garbage)
    path = write_image(
        tmp_path / "t.nii.gz",
        np.random.default_rng(0).random((20, 20, 20)),
        spacing_affine((1,) * 3),
    )
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_image(path)


def test_real_dicom_series_matches_simpleitk(real_data: Path):
    folder = real_data / "totalsegmentator" / "example_ct_dicom"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    vol = read_image(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reference = reader.Execute()
    assert vol.shape == reference.GetSize()
    np.testing.assert_array_equal(vol.array[:, :, 3], sitk.GetArrayFromImage(reference)[3].T)
    for index in [(0, 0, 0), (511, 0, 19), (100, 200, 7)]:
        mine = vol.affine @ np.append(index, 1.0)
        np.testing.assert_allclose(mine[:3], _sitk_world_ras(reference, index), atol=1e-4)


def test_real_ras_and_lps_niftis_read_with_their_orientation(real_data: Path, quiz_subset: Path):
    ras = read_image(real_data / "totalsegmentator" / "example_ct.nii.gz")
    lps = read_image(quiz_subset / "train" / "subtype1" / "quiz_1_010_0000.nii.gz")
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
    assert nib.aff2axcodes(lps.affine) == ("L", "P", "S")
    for vol in (ras, lps):
        reference = sitk.ReadImage(str(vol.path))
        np.testing.assert_allclose(vol.spacing, reference.GetSpacing(), rtol=1e-5)
        np.testing.assert_allclose(
            vol.affine[:3, 3], _sitk_world_ras(reference, (0, 0, 0)), atol=1e-3
        )


def _write_dicom_series(folder: Path, series_uid: str, slices: int = 3) -> None:
    """Write a tiny DICOM series. SimpleITK's DICOM writer sets the process locale to "C"
    (text files would then default to ASCII): the caller's locale is put back."""
    saved = locale.setlocale(locale.LC_ALL, None)
    try:
        _write_slices(folder, series_uid, slices)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_slices(folder: Path, series_uid: str, slices: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for z in range(slices):
        image = sitk.GetImageFromArray(np.full((4, 5), 10 * z, dtype=np.int16))
        for tag, value in {
            "0008|0060": "CT",
            "0020|000e": series_uid,  # Series Instance UID
            "0020|0013": str(z + 1),  # Instance Number
            "0020|0032": f"0\\0\\{2 * z}",  # Image Position (Patient)
            "0020|0037": "1\\0\\0\\0\\1\\0",  # Image Orientation (Patient)
        }.items():
            image.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"{series_uid.rsplit('.', 1)[-1]}_{z}.dcm"))
        writer.Execute(image)


def test_a_dicom_folder_with_two_series_is_refused_naming_the_fix(tmp_path: Path):
    folder = tmp_path / "dicom"
    _write_dicom_series(folder, "1.2.826.0.1.3680043.8.498.1")
    assert read_image(folder).shape == (5, 4, 3)  # one series reads
    _write_dicom_series(folder, "1.2.826.0.1.3680043.8.498.2")
    with pytest.raises(DataError, match=rf"{folder} holds 2 DICOM series; put each series in its "
                                        "own folder"):  # fmt: skip
        read_image(folder)
