"""NaN/Inf voxels in an image to predict: read as the image's lowest value, named in a warning."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from multitask_unet.cli import main
from multitask_unet.data.canonical import fill_nonfinite
from multitask_unet.data.io import read_image, write_image
from multitask_unet.errors import DataError, DataWarning
from multitask_unet.evaluation.reading import read_predictions
from multitask_unet.inference import Predictor


def _copy_with(source: Path, folder: Path, edit) -> Path:
    volume = read_image(source)
    array = volume.array.astype(np.float32)
    edit(array)
    folder.mkdir(parents=True)
    return write_image(folder / source.name, array, volume.affine)


def test_nan_slices_are_predicted_as_the_lowest_value_and_the_rest_as_usual(
    phantom_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    source = sorted((phantom_root / "test").glob("*_0000.nii.gz"))[0]
    hit = np.zeros(read_image(source).shape, dtype=bool)
    hit[:, :, 3:5] = hit[0, 0, 0] = True
    lowest = float(read_image(source).array[~hit].min())

    def damage(a: np.ndarray) -> None:
        a[hit] = np.nan
        a[0, 0, 0] = np.inf

    def repair(a: np.ndarray) -> None:
        a[hit] = lowest

    damaged = _copy_with(source, tmp_path / "damaged", damage)
    repaired = _copy_with(source, tmp_path / "repaired", repair)
    predictor = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=())
    count = int(hit.sum())
    with pytest.warns(DataWarning, match=rf"{re.escape(str(damaged))} .*: {count} NaN/Inf voxel"):
        got = predictor.predict([damaged.parent], tmp_path / "out_damaged", progress=False)
    want = predictor.predict([repaired.parent], tmp_path / "out_repaired", progress=False)
    name = source.name.replace("_0000", "")
    np.testing.assert_array_equal(
        read_image(tmp_path / "out_damaged" / name).array,
        read_image(tmp_path / "out_repaired" / name).array,
    )
    probabilities = read_predictions(got.csv_path).probabilities
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities, read_predictions(want.csv_path).probabilities)


def test_the_command_line_shows_the_warning_and_succeeds(
    phantom_root: Path, tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    source = sorted((phantom_root / "test").glob("*_0000.nii.gz"))[0]
    damaged = _copy_with(source, tmp_path / "damaged", lambda a: a.__setitem__((1, 1, 1), np.nan))
    with pytest.warns(DataWarning, match=re.escape(str(damaged))):
        code = main(["predict", "--checkpoint", str(tiny_checkpoint), str(damaged.parent),
                     "-o", str(tmp_path / "out"), "--no-progress"])  # fmt: skip
    assert code == 0


def test_an_image_without_a_finite_voxel_is_an_error() -> None:
    image = np.full((1, 4, 4, 4), np.nan, dtype=np.float32)
    with pytest.raises(DataError, match=r"ct_0000\.nii\.gz \(case c\) holds no finite voxel"):
        fill_nonfinite(image, [Path("ct_0000.nii.gz")], "c")
    finite = np.ones((2, 3, 3, 3), dtype=np.float32)
    fill_nonfinite(finite, [Path("a"), Path("b")], "c")  # nothing to repair: no warning
    assert (finite == 1).all()
