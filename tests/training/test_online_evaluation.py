"""The Dice that picks ``best.pt`` (``val/score``) equals the evaluation's and an independent count."""

from __future__ import annotations

import numpy as np
import pytest

from multitask_unet.evaluation.segmentation import dice, region_mask
from multitask_unet.training.online_evaluation import dice_scores

LABELS = {"background": 0, "pancreas": 1, "lesion": 2}


def _by_hand(pred: np.ndarray, ref: np.ndarray, values: list[int]) -> float:
    """Dice counted voxel by voxel, without numpy's set operations."""
    both = p_count = r_count = 0
    for p, r in zip(pred.ravel().tolist(), ref.ravel().tolist()):
        in_p, in_r = p in values, r in values
        both += in_p and in_r
        p_count += in_p
        r_count += in_r
    return 1.0 if p_count + r_count == 0 else 2 * both / (p_count + r_count)


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    ref = np.zeros((6, 8, 8), np.uint8)
    ref[1:5, 2:7, 2:7] = 1
    ref[2:4, 3:5, 3:5] = 2
    noisy = np.where(rng.random(ref.shape) < 0.1, rng.integers(0, 3, ref.shape), ref)
    no_lesion = np.where(ref == 2, 1, ref).astype(np.uint8)
    empty = np.zeros_like(ref)
    return [
        ("perfect", ref, ref),
        ("noisy", noisy.astype(np.uint8), ref),
        ("lesion missed", no_lesion, ref),
        ("lesion invented on a case without one", ref, no_lesion),
        ("both empty", empty, empty),
        ("prediction empty", empty, ref),
        ("reference empty", ref, empty),
    ]


@pytest.mark.parametrize(("name", "pred", "ref"), _cases(), ids=[c[0] for c in _cases()])
def test_online_dice_equals_the_evaluation_dice_and_a_count_by_hand(name, pred, ref) -> None:
    scores = dice_scores(pred, ref, LABELS)
    regions = {"pancreas": [1], "lesion": [2], "whole": [1, 2]}
    assert set(scores) == set(regions)
    for key, values in regions.items():
        evaluated = dice(region_mask(pred, values), region_mask(ref, values), both_empty=1.0)
        assert scores[key] == pytest.approx(evaluated, abs=1e-12), key
        assert scores[key] == pytest.approx(_by_hand(pred, ref, values), abs=1e-12), key


def test_online_dice_of_known_overlaps() -> None:
    ref = np.array([0, 1, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 0, 2, 1])
    scores = dice_scores(pred, ref, LABELS)
    assert scores["pancreas"] == pytest.approx(2 * 2 / (3 + 3))  # {1,2} shared of {1,2,5}, {1,2,3}
    assert scores["lesion"] == pytest.approx(2 * 1 / (1 + 2))
    assert scores["whole"] == pytest.approx(2 * 4 / (4 + 5))
