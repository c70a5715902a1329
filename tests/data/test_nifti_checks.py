"""Header defects that nibabel would repair or act on silently are named, before voxels are read."""

from __future__ import annotations

import gzip
import re
import struct
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from multitask_unet.data.io import read_header, read_image, spacing_affine, write_image
from multitask_unet.errors import DataError

_PIXDIM, _DIM, _SFORM_CODE, _QFORM_CODE, _SROW = 76, 40, 254, 252, 280  # NIfTI-1 offsets


def _edit_header(path: Path, **fields: object) -> Path:
    """Rewrite fields of an uncompressed ``.nii`` header in place (pixdim, dim, *form codes)."""
    raw = bytearray(path.read_bytes())
    if "pixdim" in fields:
        raw[_PIXDIM : _PIXDIM + 32] = struct.pack("<8f", *fields["pixdim"])
    if "dim" in fields:
        raw[_DIM : _DIM + 16] = struct.pack("<8h", *fields["dim"])
    for name, offset in (("sform_code", _SFORM_CODE), ("qform_code", _QFORM_CODE)):
        if name in fields:
            raw[offset : offset + 2] = struct.pack("<h", fields[name])
    path.write_bytes(bytes(raw))
    return path


def _nii(tmp_path: Path, name: str = "ct.nii") -> Path:
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    return write_image(tmp_path / name, data, spacing_affine((1.0, 1.0, 2.0)))


@pytest.mark.parametrize("codes", [{"sform_code": 0, "qform_code": 0}, {"sform_code": 0}])
def test_a_zero_spacing_that_nibabel_would_read_as_1mm_is_named(tmp_path: Path, codes) -> None:
    path = _edit_header(_nii(tmp_path), pixdim=(1.0, 1.0, 1.0, 0.0, 1, 1, 1, 1), **codes)
    assert nib.load(path).header.get_zooms()[2] == 1.0  # what nibabel makes of it
    for reader in (read_image, read_header):
        with pytest.raises(DataError, match=rf"{re.escape(str(path))}: .*axis 2 is 0\.0.*1 mm"):
            reader(path)


def test_a_valid_sform_wins_over_a_zero_pixdim(tmp_path: Path) -> None:
    path = _edit_header(_nii(tmp_path), pixdim=(1.0, 1.0, 1.0, 0.0, 1, 1, 1, 1))
    assert read_image(path).spacing == (1.0, 1.0, 2.0)


def test_a_degenerate_affine_is_named(tmp_path: Path) -> None:
    path = _edit_header(_nii(tmp_path), qform_code=0)  # the sform alone gives the affine
    raw = bytearray(path.read_bytes())
    for row in range(3):  # srow_x, srow_y, srow_z: zero the third column (spacing 0 along k)
        offset = _SROW + 16 * row + 8
        raw[offset : offset + 4] = struct.pack("<f", 0.0)
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: .*zero or non-finite spacing"):
        read_image(path)


@pytest.mark.parametrize("name", ["huge.nii", "huge.nii.gz"])
def test_a_header_claiming_more_voxels_than_the_file_holds_allocates_nothing(
    tmp_path: Path, name: str
) -> None:
    path = _edit_header(
        _nii(tmp_path, "huge.nii"), dim=(3, 2048, 2048, 2048, 1, 1, 1, 1)
    )  # 16 GiB of int16
    if name.endswith(".gz"):
        path = path.rename(tmp_path / name.removesuffix(".gz"))
        (tmp_path / name).write_bytes(gzip.compress(path.read_bytes()))
        path = tmp_path / name
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=rf"{re.escape(str(path))}: the header claims shape "
                                            r"\(2048, 2048, 2048\).*16\.00 GiB.*Re-export"):  # fmt: skip
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_a_gzip_of_several_members_is_counted_and_read(tmp_path: Path) -> None:
    """The gzip trailer only sees the last member; the chunked count then reads the truth."""
    data = np.random.default_rng(0).integers(0, 100, (8, 9, 10)).astype(np.int16)
    raw = write_image(tmp_path / "one.nii", data, spacing_affine((1.0, 1.0, 1.0))).read_bytes()
    path = tmp_path / "members.nii.gz"
    path.write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:]))
    np.testing.assert_array_equal(read_image(path).array, data)


def _sitk_affine(path: Path) -> np.ndarray:
    """The RAS+ affine SimpleITK (ITK-SNAP, nnU-Net's default reader) gives the file."""
    from multitask_unet.data.io import _read_sitk

    return _read_sitk(path)[1]


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ({"qform_code": 0, "sform_code": 0}, "holds no orientation"),
        ({"sform_code": 2, "qoffset_x": 25.0}, "qform and sform disagree"),
        ({"sform_code": 0, "pixdim": (1.0, -1.0, 1.0, 2.0, 1, 1, 1, 1)}, "axis 0 is negative"),
    ],
    ids=["no_orientation", "qform_sform_disagree", "negative_pixdim"],
)
def test_a_header_itk_reads_differently_is_read_as_nibabel_does_with_a_warning(
    tmp_path: Path, edit: dict, words: str
) -> None:
    from multitask_unet.data.canonical import read_canonical_case
    from multitask_unet.data.records import CaseRecord
    from multitask_unet.errors import DataWarning

    path = _nii(tmp_path, "ct_0000.nii")
    if "qoffset_x" in edit:
        raw = bytearray(path.read_bytes())
        raw[268:272] = struct.pack("<f", edit.pop("qoffset_x"))
        path.write_bytes(bytes(raw))
    _edit_header(path, **edit)
    volume = read_image(path)
    assert not np.allclose(volume.affine, _sitk_affine(path), atol=1e-3)  # readers disagree
    assert len(volume.notes) == 1 and words in volume.notes[0][0]
    with pytest.warns(DataWarning, match=rf"{re.escape(str(path))} \(case c\): .*{words}"):
        case = read_canonical_case(CaseRecord("c", (path,)))
    np.testing.assert_array_equal(case.original_affine, volume.affine)


def test_a_header_every_reader_reads_alike_has_no_note(tmp_path: Path) -> None:
    path = _nii(tmp_path)
    assert np.allclose(read_image(path).affine, _sitk_affine(path), atol=1e-4)
    assert read_image(path).notes == ()


def test_a_scanner_sform_is_read_by_every_reader_so_a_stale_qform_has_no_note(
    tmp_path: Path,
) -> None:
    path = _nii(tmp_path, "ct_0000.nii")
    raw = bytearray(path.read_bytes())
    raw[268:272] = struct.pack("<f", 25.0)  # qoffset_x: the qform 25 mm away
    path.write_bytes(bytes(raw))
    _edit_header(path, sform_code=1)  # scanner coordinates: ITK reads the sform as nibabel does
    assert np.allclose(read_image(path).affine, _sitk_affine(path), atol=1e-3)
    assert read_image(path).notes == ()
