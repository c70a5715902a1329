"""``multitask-unet predict`` on every kind of real image in ``MULTITASK_UNET_TEST_DATA``.

The study's 12 native test images (int16 / int32 / float64 on disk, 0.39-0.98 mm in-plane,
0.6-5 mm slices, LPS), a native-resolution training image, TotalSegmentator's RAS int32 CT and
its DICOM series: every output label map must have exactly the input's shape and affine. The
model is a random-weight tiny network and the plan resamples linearly to a coarse 6 mm grid,
so the test stays fast; geometry must be exact whatever the grid in between.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from multitask_unet.cli import main
from multitask_unet.data.io import read_image
from multitask_unet.evaluation.reading import read_predictions


@pytest.fixture
def coarse_checkpoint(tmp_path: Path, tiny_plan, checkpoint_factory) -> Path:
    plan = replace(
        tiny_plan,
        preprocessing=replace(
            tiny_plan.preprocessing, target_spacing=(6.0, 6.0, 6.0), image_order=1
        ),
        patch_size=(16, 32, 32),
    )
    return checkpoint_factory(tmp_path / "coarse.pt", plan)


def test_output_geometry_equals_input_on_real_images(
    real_data: Path, coarse_checkpoint, tmp_path
) -> None:
    quiz = real_data / "pancreas_quiz_subset"
    total = real_data / "totalsegmentator"
    inputs = [
        quiz / "test",
        quiz / "train" / "subtype0" / "quiz_0_324_0000.nii.gz",
        total / "example_ct.nii.gz",
        total / "example_ct_dicom",
    ]
    missing = [p for p in inputs if not p.exists()]
    if missing:
        pytest.skip(f"{missing} missing from MULTITASK_UNET_TEST_DATA")
    out = tmp_path / "pred"
    args = ["predict", "--checkpoint", str(coarse_checkpoint), *map(str, inputs), "-o", str(out)]
    assert main([*args, "--mirror-axes", "--window-batch", "2", "--no-progress"]) == 0

    sources = {
        p.name.removesuffix("_0000.nii.gz"): p for p in sorted((quiz / "test").glob("*.nii.gz"))
    }
    sources.update(
        {"quiz_0_324": inputs[1], "example_ct": inputs[2], "example_ct_dicom": inputs[3]}
    )
    assert len(sources) == 15
    for case_id, source in sources.items():
        seg, image = read_image(out / f"{case_id}.nii.gz"), read_image(source)
        assert seg.array.dtype == np.uint8, case_id
        assert seg.shape == image.shape, case_id
        # NIfTI headers store the affine in float32: exact for NIfTI inputs, 1e-4 mm for DICOM
        atol = 1e-4 if source.is_dir() else 0.0
        np.testing.assert_allclose(seg.affine, image.affine, rtol=0, atol=atol, err_msg=case_id)
    assert sorted(read_predictions(out / "predictions.csv").case_ids) == sorted(sources)
