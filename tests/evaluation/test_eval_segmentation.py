"""Dice per label and region, against scikit-learn's F1 and an independent numpy count."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.evaluation import (
    PANCREAS_REGIONS,
    EvaluationConfig,
    Region,
    dice,
    evaluate_segmentation,
    hd95,
    normalized_surface_distance,
)

#: The pancreas study's scoring (whole pancreas = labels 1 and 2, lesion = label 2).
STUDY = EvaluationConfig(regions=PANCREAS_REGIONS, labels=(1, 2))


def _label_maps(seed: int, shape=(9, 10, 7)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.choice(3, size=shape, p=[0.6, 0.3, 0.1]).astype(np.uint8)
    pred = ref.copy()
    flip = rng.random(shape) < 0.2
    pred[flip] = rng.integers(0, 3, size=int(flip.sum()))
    return pred, ref


def _independent_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    # Count by set operations on voxel indices, not by boolean algebra.
    p = set(map(tuple, np.argwhere(pred)))
    r = set(map(tuple, np.argwhere(ref)))
    return 2 * len(p & r) / (len(p) + len(r))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_dice_equals_sklearn_f1_and_set_count(seed):
    pred, ref = _label_maps(seed)
    row = evaluate_segmentation(pred, ref, spacing=(1.0, 1.0, 1.0), config=STUDY)
    for label in (1, 2):
        want = f1_score((ref == label).ravel(), (pred == label).ravel())
        assert row[f"dice_label_{label}"] == pytest.approx(want, abs=1e-12)
    whole = _independent_dice(np.isin(pred, [1, 2]), np.isin(ref, [1, 2]))
    assert row["dice_whole_pancreas"] == pytest.approx(whole, abs=1e-12)
    assert row["dice_lesion"] == pytest.approx(_independent_dice(pred == 2, ref == 2), abs=1e-12)


def test_region_metrics_use_spacing_and_volumes():
    pred, ref = _label_maps(5)
    spacing = (2.0, 0.5, 3.0)
    row = evaluate_segmentation(
        pred, ref, spacing=spacing, config=STUDY.replace(nsd_tolerance_mm=1.5)
    )
    p, r = np.isin(pred, [1, 2]), np.isin(ref, [1, 2])
    assert row["nsd_whole_pancreas"] == normalized_surface_distance(
        p, r, spacing=spacing, tolerance_mm=1.5
    )
    assert row["hd95_whole_pancreas"] == hd95(p, r, spacing=spacing)
    assert row["ref_volume_ml_lesion"] == pytest.approx((ref == 2).sum() * 3.0 / 1000)
    assert row["pred_volume_ml_whole_pancreas"] == pytest.approx(p.sum() * 3.0 / 1000)
    assert all(type(v) is float for v in row.values())  # plain floats for CSV and JSON


@pytest.mark.parametrize(
    ("pred_lesion", "ref_lesion", "both_empty", "want_dice", "want_nsd", "want_hd"),
    [
        (False, False, "one", 1.0, 1.0, 0.0),
        (False, False, "nan", np.nan, np.nan, 0.0),
        (True, False, "one", 0.0, 0.0, np.nan),
        (False, True, "one", 0.0, 0.0, np.nan),
    ],
)
def test_empty_reference_conventions(
    pred_lesion, ref_lesion, both_empty, want_dice, want_nsd, want_hd
):
    ref = np.zeros((6, 6, 6), np.uint8)
    ref[1:5, 1:5, 1:5] = 1
    pred = ref.copy()
    if ref_lesion:
        ref[2:4, 2:4, 2:4] = 2
    if pred_lesion:
        pred[2:4, 2:4, 2:4] = 2
    row = evaluate_segmentation(
        pred, ref, spacing=(1, 1, 1), config=STUDY.replace(both_empty=both_empty)
    )
    np.testing.assert_equal(
        (row["dice_lesion"], row["nsd_lesion"], row["hd95_lesion"]), (want_dice, want_nsd, want_hd)
    )
    assert row["dice_whole_pancreas"] == 1.0  # labels 1 and 2 together are unchanged


def test_without_regions_every_label_found_is_a_region_and_so_is_their_union():
    pred, ref = _label_maps(3)
    row = evaluate_segmentation(pred, ref, spacing=(1, 1, 1))
    assert {k for k in row if k.startswith("hd95_")} == {
        "hd95_label_1", "hd95_label_2", "hd95_foreground"
    }  # fmt: skip
    assert row["dice_foreground"] == pytest.approx(
        _independent_dice(np.isin(pred, [1, 2]), np.isin(ref, [1, 2])), abs=1e-12
    )
    assert evaluate_segmentation(np.zeros((3, 3, 3)), np.zeros((3, 3, 3)), spacing=(1, 1, 1)) == {}


def test_custom_regions_and_labels():
    pred, ref = _label_maps(7)
    config = EvaluationConfig(regions=(Region("organ", (1,)),), labels=(2,))
    row = evaluate_segmentation(pred, ref, spacing=(1, 1, 1), config=config)
    assert {k for k in row if k.startswith("dice_")} == {"dice_label_2", "dice_organ"}
    assert row["dice_organ"] == pytest.approx(f1_score((ref == 1).ravel(), (pred == 1).ravel()))


def test_dice_examples_and_errors():
    assert dice(np.zeros(4), np.zeros(4)) == 1.0
    assert np.isnan(dice(np.zeros(4), np.zeros(4), both_empty=float("nan")))
    assert dice(np.array([1, 0]), np.array([0, 1])) == 0.0
    with pytest.raises(ShapeError):
        dice(np.zeros(3), np.zeros(4))
    with pytest.raises(ShapeError, match="spacing"):
        evaluate_segmentation(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), spacing=(1, 1))


@pytest.mark.parametrize(
    ("text", "ok"),
    [("whole=1,2", True), ("lesion=2", True), ("lesion", False), ("x=a", False), ("1x=1", False)],
)
def test_region_parse(text, ok):
    if ok:
        assert Region.parse(text).key == text.split("=")[0]
    else:
        with pytest.raises(ConfigError):
            Region.parse(text)


def test_config_round_trip_and_validation():
    config = EvaluationConfig(regions=(Region("a", (1, 3)),), nsd_tolerance_mm=1.0, seed=3)
    assert EvaluationConfig.from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="unique"):
        EvaluationConfig(regions=(Region("a", (1,)), Region("a", (2,))))
    with pytest.raises(ConfigError, match="confidence"):
        EvaluationConfig(confidence=95)
    with pytest.raises(ConfigError):
        Region("a", (0, 1))
