"""ECE, Brier score and NLL against independent computations (plain loops, sklearn, by hand)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.evaluation.calibration_metrics import (
    NLL_FLOOR,
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)


def random_probs(n: int, k: int, seed: int, *, sharpness: float = 2.0):
    rng = np.random.default_rng(seed)
    logits = sharpness * rng.standard_normal((n, k))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, k, n)
    return labels, probs


def loop_ece(labels, probs, n_bins):
    """Reference ECE written case by case with explicit bin edges (no vectorised binning)."""
    n = len(labels)
    members = [[] for _ in range(n_bins)]
    for i in range(n):
        row = list(probs[i])
        confidence = max(row)
        predicted = row.index(confidence)
        for m in range(n_bins):
            low, high = m / n_bins, (m + 1) / n_bins
            if low < confidence <= high or (m == 0 and confidence == 0):
                members[m].append((confidence, predicted == labels[i]))
                break
    total = 0.0
    for cases in members:
        if cases:
            accuracy = sum(ok for _, ok in cases) / len(cases)
            confidence = sum(c for c, _ in cases) / len(cases)
            total += len(cases) / n * abs(accuracy - confidence)
    return total


@pytest.mark.parametrize("n_bins", [1, 10, 15])
@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_ece_matches_plain_loop(n_bins, k, seed):
    labels, probs = random_probs(300, k, seed)
    assert expected_calibration_error(labels, probs, n_bins=n_bins) == pytest.approx(
        loop_ece(labels, probs, n_bins), abs=1e-12
    )


@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_confidences_on_bin_edges_go_to_the_lower_bin(n_bins):
    # Confidence exactly m / M belongs to bin m - 1 (bins are left-open, right-closed).
    edges = [m / n_bins for m in range(1, n_bins + 1) if m / n_bins >= 0.5]
    probs = np.array([[c, 1 - c] for c in edges])
    labels = np.arange(len(edges)) % 2
    bins = reliability_bins(labels, probs, n_bins=n_bins)
    expected = np.bincount([round(c * n_bins) - 1 for c in edges], minlength=n_bins)
    np.testing.assert_array_equal(bins.count, expected)
    assert bins.ece == pytest.approx(loop_ece(labels, probs, n_bins), abs=1e-12)
    # One float step above an edge is in the upper bin (11/15 * 15 rounds back to 11 exactly).
    above = np.nextafter(np.array(edges[:-1]), 1.0)
    bins = reliability_bins(labels[:-1], np.stack([above, 1 - above], axis=1), n_bins=n_bins)
    np.testing.assert_array_equal(bins.count, np.r_[0, expected[:-1]])


def test_ece_hand_example():
    # 5 bins: (0.6, 0.8] holds the cases of confidence 0.7 and 0.75 (one right), (0.8, 1] holds
    # 0.9 (right) and 1.0 (wrong). ECE = 2/4 |0.5 - 0.725| + 2/4 |0.5 - 0.95| = 0.3375.
    probs = np.array([[0.7, 0.3], [0.25, 0.75], [0.1, 0.9], [1.0, 0.0]])
    labels = np.array([0, 0, 1, 1])
    assert expected_calibration_error(labels, probs, n_bins=5) == pytest.approx(0.3375)
    bins = reliability_bins(labels, probs, n_bins=5)
    assert bins.count.tolist() == [0, 0, 0, 2, 2]
    assert bins.confidence[3:] == pytest.approx([0.725, 0.95])
    assert np.isnan(bins.accuracy[:3]).all()


def test_ece_is_small_for_calibrated_probabilities():
    # Labels drawn from the probabilities themselves: ECE is sampling noise only.
    rng = np.random.default_rng(3)
    _, probs = random_probs(20000, 3, 3)
    labels = (rng.random(20000)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    assert expected_calibration_error(labels, probs) < 0.015
    overconfident = probs**3 / (probs**3).sum(axis=1, keepdims=True)
    assert expected_calibration_error(labels, overconfident) > 0.08


@pytest.mark.parametrize("k", [2, 4])
def test_brier_equals_sum_of_sklearn_binary_scores(k):
    labels, probs = random_probs(200, k, 5)
    reference = sum(
        brier_score_loss((labels == c).astype(int), probs[:, c], pos_label=1) for c in range(k)
    )
    assert brier_score(labels, probs) == pytest.approx(reference, rel=1e-12)


def test_brier_hand_values():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    labels = np.array([0, 0, 2])
    # 0 (perfect) + 2 (confidently wrong) + (1/9 + 1/9 + 4/9) = 2/3, mean over 3 cases.
    assert brier_score(labels, probs) == pytest.approx((0 + 2 + 2 / 3) / 3)


@pytest.mark.parametrize("k", [2, 3])
def test_nll_matches_sklearn_log_loss(k):
    labels, probs = random_probs(200, k, 7)
    assert negative_log_likelihood(labels, probs) == pytest.approx(
        log_loss(labels, probs, labels=list(range(k))), rel=1e-10
    )


def test_nll_floor_keeps_confident_mistakes_finite():
    value = negative_log_likelihood(np.array([1]), np.array([[1.0, 0.0]]))
    assert value == pytest.approx(-np.log(NLL_FLOOR))


def test_calibration_metrics_keys_and_values():
    labels, probs = random_probs(50, 3, 9)
    metrics = calibration_metrics(labels, probs, n_bins=10)
    assert list(metrics) == ["ece", "brier", "nll"]
    assert metrics["ece"] == pytest.approx(loop_ece(labels, probs, 10))


@pytest.mark.parametrize(
    ("labels", "probs", "error"),
    [
        (np.array([0, 1]), np.ones((3, 2)) / 2, ShapeError),
        (np.array([0, 2]), np.ones((2, 2)) / 2, ShapeError),
        (np.array([0.0, 1.0]), np.ones((2, 2)) / 2, ShapeError),
        (np.array([0, 1]), np.array([[np.nan, 1.0], [0.5, 0.5]]), ShapeError),
    ],
)
def test_bad_inputs_raise(labels, probs, error):
    with pytest.raises(error):
        brier_score(labels, probs)


def test_bad_bins_raise():
    with pytest.raises(ConfigError, match="n_bins"):
        expected_calibration_error(np.array([0]), np.array([[0.6, 0.4]]), n_bins=0)


def test_no_cases_give_nan():
    empty = np.zeros((0, 3))
    labels = np.zeros(0, dtype=np.int64)
    assert all(np.isnan(v) for v in calibration_metrics(labels, empty).values())
