"""Evaluation on the real pancreas CT masks (needs MULTITASK_UNET_TEST_DATA)."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial import cKDTree

from multitask_unet.evaluation import PANCREAS_REGIONS, EvaluationConfig, evaluate
from multitask_unet.evaluation.reading import read_label_map
from multitask_unet.evaluation.surface import surface_mask

pytestmark = pytest.mark.real_data


def _kdtree_nsd_hd(pred: np.ndarray, ref: np.ndarray, spacing, tau: float):
    """Independent reference: nearest surface points by KD-tree in millimetre coordinates."""
    p = np.argwhere(surface_mask(pred)) * np.asarray(spacing)
    r = np.argwhere(surface_mask(ref)) * np.asarray(spacing)
    a, b = cKDTree(r).query(p)[0], cKDTree(p).query(r)[0]
    nsd = ((a <= tau).sum() + (b <= tau).sum()) / (a.size + b.size)
    return nsd, max(np.percentile(a, 95), np.percentile(b, 95))


def test_real_validation_split(quiz_subset, tmp_path):
    """Predictions = reference masks, one of them shifted by one slice (about 2 mm)."""
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    shifted = "quiz_2_089"
    for mask in sorted((quiz_subset / "validation" / "subtype2").glob("quiz_2_???.nii.gz")):
        image = nib.load(str(mask))
        data = np.asanyarray(image.dataobj).astype(np.uint8)
        if mask.name.startswith(shifted):
            data = np.roll(data, 1, axis=2)
        nib.save(nib.Nifti1Image(data, image.affine, image.header), str(pred_dir / mask.name))
    ref_root = tmp_path / "ref"  # the validation split only, to keep the test fast
    shutil.copytree(quiz_subset / "validation", ref_root / "validation")
    config = EvaluationConfig(regions=PANCREAS_REGIONS, n_bootstrap=100)
    report = evaluate(
        pred_dir, ref_root, output_dir=tmp_path / "report", split="validation", config=config
    )
    rows = {row["case_id"]: row for row in report.cases}
    assert set(rows) == {"quiz_2_074", "quiz_2_089", "quiz_2_364"}
    for case, row in rows.items():
        if case != shifted:
            assert (row["dice_whole_pancreas"], row["nsd_whole_pancreas"], row["hd95_lesion"]) == (
                1.0,
                1.0,
                0.0,
            )
    ref, spacing, _ = read_label_map(ref_root / "validation" / "subtype2" / f"{shifted}.nii.gz")
    pred = np.roll(ref, 1, axis=2)
    for region, labels in (("whole_pancreas", [1, 2]), ("lesion", [2])):
        want_nsd, want_hd = _kdtree_nsd_hd(
            np.isin(pred, labels), np.isin(ref, labels), spacing, 2.0
        )
        assert rows[shifted][f"nsd_{region}"] == pytest.approx(want_nsd, abs=1e-12)
        assert rows[shifted][f"hd95_{region}"] == pytest.approx(want_hd, abs=1e-9)
    assert 0 < rows[shifted]["hd95_whole_pancreas"] <= spacing[2] + 1e-6
    assert rows[shifted]["dice_whole_pancreas"] < 1.0
    summary = report.summary
    assert summary["cases"]["segmentation"] == 3
    assert (tmp_path / "report" / "summary.json").is_file()


def test_real_float_mask_with_off_integer_labels(quiz_subset):
    labels, spacing, _ = read_label_map(quiz_subset / "train" / "subtype1" / "quiz_1_010.nii.gz")
    assert set(np.unique(labels)) <= {0, 1, 2} and (labels == 1).any()
    assert spacing == pytest.approx((1.0, 1.0, 3.0))
