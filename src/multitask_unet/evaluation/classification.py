"""Classification metrics of the subtype head, in numpy, equal to scikit-learn's.

Why not scikit-learn's own functions: a report computes these metrics once per bootstrap
resample (1000 by default), where scikit-learn's input validation dominates; the benchmarks page
shows both, timed side by side on the same resamples, with the same values
(``benchmarks/bench_classification_metrics.py``). The tests compare every metric with
scikit-learn's, and splits and calibration checks use scikit-learn directly.

* :func:`confusion_matrix`: rows are the reference class, columns the predicted class
  (scikit-learn's convention).
* :func:`roc_auc_ovr`: one-vs-rest ROC AUC per class (the Mann-Whitney statistic, ties count
  one half; equal to ``sklearn.metrics.roc_auc_score(y == k, scores[:, k])``). A class without
  positives or without negatives has no ROC curve: its AUC is NaN and the macro average
  (:func:`evaluate_classification`) is the mean over the classes where it is defined.
* :func:`macro_f1`: unweighted mean F1 over the classes present in the reference or the
  prediction; F1 of a class with no true positives is 0 (``f1_score(average="macro",
  zero_division=0)``).
* :func:`balanced_accuracy`: mean recall over the classes present in the reference
  (``balanced_accuracy_score``).

Example:
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> p = np.array([[.8, .1, .1], [.4, .5, .1], [.2, .7, .1], [.1, .8, .1], [.1, .2, .7], [.3, .3, .4]])
    >>> out = evaluate_classification(y, p, class_names=("a", "b", "c"))
    >>> out["auc_ovr_a"], out["macro_f1"], round(out["balanced_accuracy"], 4)
    (1.0, 0.8222222222222223, 0.8333)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from multitask_unet.errors import ShapeError

__all__ = [
    "balanced_accuracy",
    "confusion_matrix",
    "evaluate_classification",
    "macro_f1",
    "roc_auc_ovr",
    "roc_curve",
]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, *, num_classes: int) -> np.ndarray:
    """Counts of (reference, predicted) pairs.

    Args:
        y_true: Reference classes, shape ``(N,)``, values in ``[0, num_classes)``.
        y_pred: Predicted classes, shape ``(N,)``.
        num_classes: K, the size of the matrix.

    Returns:
        ``(K, K)`` int64 matrix; entry ``[i, j]`` counts cases of class ``i`` predicted as ``j``.
    """
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"y_true has {y_true.size} cases but y_pred has {y_pred.size}")
    bad = np.concatenate([y_true, y_pred])
    bad = bad[(bad < 0) | (bad >= num_classes)]
    if bad.size:
        raise ShapeError(f"class {int(bad[0])} is outside [0, {num_classes}) (num_classes)")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def roc_auc_ovr(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC of every class.

    Args:
        y_true: Reference classes, shape ``(N,)``.
        scores: Class scores or probabilities, shape ``(N, K)``.

    Returns:
        ``(K,)`` float array; NaN for a class with no positive or no negative case.
    """
    y_true = _labels(y_true, "y_true")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != y_true.size:
        raise ShapeError(f"scores must have shape (N={y_true.size}, K), got {scores.shape}")
    out = np.full(scores.shape[1], np.nan)
    if y_true.size == 0:
        return out
    ranks = rankdata(scores, axis=0)  # per class; ties get their average rank
    for k in range(scores.shape[1]):
        positive = y_true == k
        n_pos = int(positive.sum())
        n_neg = positive.size - n_pos
        if n_pos and n_neg:
            out[k] = (ranks[positive, k].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def roc_curve(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve points of a binary problem, one per distinct threshold.

    Args:
        positive: Boolean truth, shape ``(N,)``.
        score: Scores, shape ``(N,)``; higher means more likely positive.

    Returns:
        ``(fpr, tpr)`` from ``(0, 0)`` to ``(1, 1)``, as ``sklearn.metrics.roc_curve(...,
        drop_intermediate=False)`` without its thresholds.
    """
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="mergesort")
    score, positive = score[order], positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    tps = np.cumsum(positive)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    tpr = np.r_[0.0, tps / tps[-1]] if tps.size and tps[-1] else np.r_[0.0, tps * np.nan]
    fpr = np.r_[0.0, fps / fps[-1]] if fps.size and fps[-1] else np.r_[0.0, fps * np.nan]
    return fpr, tpr


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in ``y_true`` or ``y_pred``.

    Args:
        y_true: Reference classes, shape ``(N,)``.
        y_pred: Predicted classes, shape ``(N,)``.
    """
    cm = _present_confusion(y_true, y_pred)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # 2 TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1.mean())


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true``.

    Args:
        y_true: Reference classes, shape ``(N,)``.
        y_pred: Predicted classes, shape ``(N,)``.
    """
    cm = _present_confusion(y_true, y_pred)
    support = cm.sum(axis=1)
    recall = np.diag(cm)[support > 0] / support[support > 0]
    return float(recall.mean())


def evaluate_classification(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    y_pred: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Every scalar classification metric of a set of cases.

    Args:
        y_true: Reference classes, shape ``(N,)``.
        scores: Class probabilities, shape ``(N, K)``.
        y_pred: Predicted classes, shape ``(N,)``; default ``scores.argmax(1)``.
        class_names: K names used in the keys ``auc_ovr_<name>``; default ``class<k>``.

    Returns:
        ``auc_ovr_<name>`` per class, ``auc_ovr_macro`` (mean over defined classes, NaN if none),
        ``macro_f1``, ``balanced_accuracy`` and ``accuracy``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    y_true = _labels(y_true, "y_true")
    y_pred = scores.argmax(axis=1) if y_pred is None else _labels(y_pred, "y_pred")
    names = _names(class_names, scores.shape[1])
    aucs = roc_auc_ovr(y_true, scores)
    out = {f"auc_ovr_{name}": float(a) for name, a in zip(names, aucs)}
    defined = aucs[~np.isnan(aucs)]
    out["auc_ovr_macro"] = float(defined.mean()) if defined.size else float("nan")
    out["macro_f1"] = macro_f1(y_true, y_pred)
    out["balanced_accuracy"] = balanced_accuracy(y_true, y_pred)
    out["accuracy"] = float(np.mean(y_true == y_pred)) if y_true.size else float("nan")
    return out


def _present_confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ShapeError(
            f"need the same non-zero number of cases, got {y_true.size} and {y_pred.size}"
        )
    present, inverse = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    k = present.size
    return confusion_matrix(inverse[: y_true.size], inverse[y_true.size :], num_classes=k)


def _labels(values: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ShapeError(f"{what} must be one class per case, shape (N,), got {array.shape}")
    if array.size and not np.all(np.equal(np.mod(array, 1), 0)):
        raise ShapeError(f"{what} must hold integer classes, got {array[:5]}...")
    return array.astype(np.int64)


def _names(class_names: Sequence[str] | None, k: int) -> tuple[str, ...]:
    names = tuple(class_names) if class_names is not None else tuple(f"class{i}" for i in range(k))
    if len(names) != k:
        raise ShapeError(f"{len(names)} class names {names} for {k} score columns")
    return names
