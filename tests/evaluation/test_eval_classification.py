"""Classification metrics equal scikit-learn's on random, tied and degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from multitask_unet.errors import ShapeError
from multitask_unet.evaluation import (
    balanced_accuracy,
    confusion_matrix,
    evaluate_classification,
    macro_f1,
    roc_auc_ovr,
    roc_curve,
)


def _problem(seed: int, n: int, k: int, *, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class present
    logits = rng.standard_normal((n, k)) + 1.5 * np.eye(k)[y]
    if ties:
        logits = np.round(logits)  # many tied scores
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("n", "k"), [(12, 2), (40, 3), (71, 5)])
@pytest.mark.parametrize("ties", [False, True])
def test_equal_to_sklearn(seed, n, k, ties):
    y, probs = _problem(seed, n, k, ties=ties)
    y_pred = probs.argmax(axis=1)
    aucs = roc_auc_ovr(y, probs)
    for c in range(k):
        assert aucs[c] == pytest.approx(skm.roc_auc_score(y == c, probs[:, c]), abs=1e-12)
    out = evaluate_classification(y, probs, class_names=[f"s{c}" for c in range(k)])
    if k > 2:
        want_macro = skm.roc_auc_score(y, probs, multi_class="ovr", average="macro")
        assert out["auc_ovr_macro"] == pytest.approx(want_macro, abs=1e-12)
    assert out["macro_f1"] == pytest.approx(
        skm.f1_score(y, y_pred, average="macro", zero_division=0), abs=1e-12
    )
    assert out["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(y, y_pred), abs=1e-12
    )
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, y_pred), abs=1e-12)
    np.testing.assert_array_equal(
        confusion_matrix(y, y_pred, num_classes=k), skm.confusion_matrix(y, y_pred, labels=range(k))
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_roc_curve_equals_sklearn(seed):
    y, probs = _problem(seed, 30, 3, ties=True)
    fpr, tpr = roc_curve(y == 1, probs[:, 1])
    want_fpr, want_tpr, _ = skm.roc_curve(y == 1, probs[:, 1], drop_intermediate=False)
    np.testing.assert_allclose(fpr, want_fpr)
    np.testing.assert_allclose(tpr, want_tpr)
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)  # trapezoid rule
    assert area == pytest.approx(roc_auc_ovr(y, probs)[1])


def test_classes_absent_from_reference_or_prediction():
    # Class 2 is never the reference; class 1 is never predicted.
    y = np.array([0, 0, 1, 1, 0, 1])
    y_pred = np.array([0, 2, 0, 0, 0, 2])
    probs = np.full((6, 3), 1 / 3)
    probs[np.arange(6), y_pred] = 0.5
    out = evaluate_classification(y, probs, y_pred=y_pred)
    assert np.isnan(out["auc_ovr_class2"])  # no positive case: undefined, not 0.5
    assert out["auc_ovr_macro"] == pytest.approx(
        np.mean([out["auc_ovr_class0"], out["auc_ovr_class1"]])
    )
    assert macro_f1(y, y_pred) == pytest.approx(
        skm.f1_score(y, y_pred, average="macro", zero_division=0)
    )
    with pytest.warns(UserWarning):  # sklearn warns about class 2; the value is what we match
        want = skm.balanced_accuracy_score(y, y_pred)
    assert balanced_accuracy(y, y_pred) == pytest.approx(want)
    np.testing.assert_array_equal(
        confusion_matrix(y, y_pred, num_classes=3),
        skm.confusion_matrix(y, y_pred, labels=[0, 1, 2]),
    )


def test_errors_name_the_problem():
    with pytest.raises(ShapeError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), num_classes=3)
    with pytest.raises(ShapeError, match=r"shape \(N=3, K\)"):
        roc_auc_ovr(np.array([0, 1, 1]), np.ones((2, 2)))
    with pytest.raises(ShapeError, match="integer"):
        macro_f1(np.array([0.5, 1.0]), np.array([0, 1]))
    with pytest.raises(ShapeError, match="class names"):
        evaluate_classification(np.array([0, 1]), np.eye(2), class_names=["a"])
