"""Calibration metrics of class probabilities: ECE, Brier score, NLL and reliability bins.

Definitions (``N`` cases, ``K`` classes, probabilities ``p`` of shape ``(N, K)``, reference
classes ``y``):

* **Expected calibration error** (top-label ECE, Guo et al. 2017): the confidence of a case is
  its largest probability ``c_i = max_k p_ik``, its prediction ``argmax_k p_ik`` (first index on
  ties) and it is correct when that equals ``y_i``. Cases fall into ``n_bins`` (default 15)
  **equal-width bins on [0, 1], left-open and right-closed**: bin ``m`` (0-based) holds
  ``m / M < c <= (m + 1) / M`` (a confidence of exactly 0 goes into bin 0). Then
  ``ECE = sum_m (|B_m| / N) * |accuracy(B_m) - mean confidence(B_m)|`` over non-empty bins.
* **Brier score** (multi-class, Brier 1950): ``mean_i sum_k (p_ik - 1[y_i = k])^2``, in
  ``[0, 2]``; for ``K = 2`` it is twice the binary Brier score of either class.
* **Negative log-likelihood**: ``mean_i -log p_{i, y_i}`` (natural log), with the probability
  clipped below at ``1e-12`` so that one confident mistake gives a large but finite value.

All three are "lower is better" and computed in float64.

Example:
    >>> import numpy as np
    >>> p = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    >>> y = np.array([0, 1, 1])
    >>> round(expected_calibration_error(y, p, n_bins=10), 4)  # |1-.9|/3 + |0-.6|/3 + |1-.8|/3
    0.3
    >>> round(brier_score(y, p), 4)  # (0.02 + 0.72 + 0.08) / 3
    0.2733
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multitask_unet.errors import ConfigError, DataError, ShapeError
from multitask_unet.evaluation.bootstrap import bootstrap_many

__all__ = [
    "CALIBRATION_BINNING",
    "NLL_FLOOR",
    "UNCALIBRATED_PREFIX",
    "ReliabilityBins",
    "brier_score",
    "calibration_metrics",
    "expected_calibration_error",
    "negative_log_likelihood",
    "read_uncalibrated",
    "reliability_bins",
    "summarize_calibration",
]

NLL_FLOOR = 1e-12
"""Probabilities are clipped below at this value before the logarithm of the NLL."""

CALIBRATION_BINNING = (
    "Top-label ECE: confidence = largest class probability, correct = its class is the "
    "reference; {n_bins} equal-width bins on [0, 1], left-open and right-closed (m/M, (m+1)/M]; "
    "ECE = sum over non-empty bins of (cases in bin / N) * |accuracy - mean confidence|. "
    "Brier = mean over cases of sum_k (p_k - 1[y = k])^2 (range [0, 2]). NLL = mean of "
    "-ln p_y with p clipped below at 1e-12."
)
"""The conventions behind :func:`calibration_metrics`, for reports (``{n_bins}`` is filled in)."""

UNCALIBRATED_PREFIX = "uncalibrated_prob_"
"""Prefix of the ``predictions.csv`` columns holding the probabilities before calibration."""


@dataclass(frozen=True)
class ReliabilityBins:
    """Top-label reliability statistics per confidence bin.

    Attributes:
        edges: ``(M + 1,)`` bin edges from 0 to 1.
        count: ``(M,)`` cases per bin.
        confidence: ``(M,)`` mean confidence per bin (NaN for an empty bin).
        accuracy: ``(M,)`` share of correct predictions per bin (NaN for an empty bin).
    """

    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def gaps(self) -> np.ndarray:
        """``(M,)`` ``|accuracy - confidence|`` per bin (NaN for an empty bin)."""
        return np.abs(self.accuracy - self.confidence)

    @property
    def ece(self) -> float:
        """The expected calibration error these bins define."""
        total = int(self.count.sum())
        if total == 0:
            return float("nan")
        filled = self.count > 0
        return float(np.sum(self.count[filled] / total * self.gaps[filled]))


def reliability_bins(y_true: np.ndarray, probs: np.ndarray, *, n_bins: int = 15) -> ReliabilityBins:
    """Sort cases into equal-width confidence bins (see the module docstring).

    Args:
        y_true: ``(N,)`` reference classes in ``[0, K)``.
        probs: ``(N, K)`` class probabilities.
        n_bins: Number of equal-width bins ``M`` on ``[0, 1]``.

    Returns:
        The :class:`ReliabilityBins`.

    Example:
        >>> bins = reliability_bins(np.array([0, 1]), np.array([[0.7, 0.3], [0.95, 0.05]]), n_bins=4)
        >>> bins.count.tolist(), bins.accuracy[2:].tolist()
        ([0, 0, 1, 1], [1.0, 0.0])
    """
    y_true, probs = _check(y_true, probs)
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, e.g. 15, got {n_bins!r}")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    # Bin m holds edges[m] < c <= edges[m+1] with edges[m] = m / M as floats, compared exactly;
    # c = 0 goes to bin 0 and c > 1 (rounding) to the last bin.
    edges = np.arange(n_bins + 1) / n_bins
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / count
    return ReliabilityBins(
        edges=edges,
        count=count.astype(np.int64),
        confidence=mean_conf,
        accuracy=accuracy,
    )


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, *, n_bins: int = 15) -> float:
    """Top-label expected calibration error with ``n_bins`` equal-width bins.

    Args:
        y_true: ``(N,)`` reference classes.
        probs: ``(N, K)`` class probabilities.
        n_bins: Number of equal-width confidence bins on ``[0, 1]``.

    Returns:
        ECE in ``[0, 1]``; NaN without cases.
    """
    return reliability_bins(y_true, probs, n_bins=n_bins).ece


def brier_score(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Multi-class Brier score ``mean_i sum_k (p_ik - 1[y_i = k])^2``, in ``[0, 2]``.

    Args:
        y_true: ``(N,)`` reference classes.
        probs: ``(N, K)`` class probabilities.

    Returns:
        The score; NaN without cases.
    """
    y_true, probs = _check(y_true, probs)
    if y_true.size == 0:
        return float("nan")
    onehot = np.eye(probs.shape[1])[y_true]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def negative_log_likelihood(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean ``-ln p_{i, y_i}``, the probability clipped below at :data:`NLL_FLOOR`.

    Args:
        y_true: ``(N,)`` reference classes.
        probs: ``(N, K)`` class probabilities.

    Returns:
        The mean negative log-likelihood in nats; NaN without cases.
    """
    y_true, probs = _check(y_true, probs)
    if y_true.size == 0:
        return float("nan")
    picked = probs[np.arange(y_true.size), y_true]
    return float(-np.mean(np.log(np.maximum(picked, NLL_FLOOR))))


def calibration_metrics(
    y_true: np.ndarray, probs: np.ndarray, *, n_bins: int = 15
) -> dict[str, float]:
    """``{"ece", "brier", "nll"}`` of one set of probabilities.

    Args:
        y_true: ``(N,)`` reference classes.
        probs: ``(N, K)`` class probabilities.
        n_bins: Bins of the ECE.

    Example:
        >>> m = calibration_metrics(np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]))
        >>> {k: round(v, 4) for k, v in m.items()}
        {'ece': 0.0, 'brier': 0.5, 'nll': 0.6931}
    """
    return {
        "ece": expected_calibration_error(y_true, probs, n_bins=n_bins),
        "brier": brier_score(y_true, probs),
        "nll": negative_log_likelihood(y_true, probs),
    }


def summarize_calibration(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    uncalibrated: np.ndarray | None = None,
    n_bins: int = 15,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """ECE, Brier and NLL with paired bootstrap intervals, before and after calibration.

    Args:
        y_true: ``(N,)`` reference classes.
        scores: ``(N, K)`` probabilities as written (calibrated when the model was).
        uncalibrated: ``(N, K)`` probabilities of the same cases before calibration, or None.
        n_bins: Bins of the ECE.
        n_resamples: Bootstrap resamples (0: no intervals).
        confidence: Interval level.
        seed: Seed of the resampling; equal seeds pair these intervals with the other metrics'.

    Returns:
        ``{"ece", "brier", "nll"}`` (and ``"<metric>_uncalibrated"`` when given) to the interval
        dicts of ``summary.json`` (``estimate``, ``low``, ``high``, ...; ``n_undefined`` 0).
    """
    y_true, scores = _check(y_true, scores)
    versions = {"": scores}
    if uncalibrated is not None:
        versions["_uncalibrated"] = _check(y_true, uncalibrated)[1]

    def statistics(idx: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for suffix, probs in versions.items():
            metrics = calibration_metrics(y_true[idx], probs[idx], n_bins=n_bins)
            out.update({f"{name}{suffix}": value for name, value in metrics.items()})
        return out

    intervals = bootstrap_many(
        statistics, y_true.size, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return {name: {**iv.to_dict(), "n_undefined": 0} for name, iv in intervals.items()}


def read_uncalibrated(
    path: str | Path, case_ids: Sequence[str], class_names: Sequence[str]
) -> np.ndarray | None:
    """The ``uncalibrated_prob_<class>`` columns of ``predictions.csv``, if it has them.

    Args:
        path: The ``predictions.csv`` file.
        case_ids: Case order of the returned rows (every case must be in the file).
        class_names: Class order of the returned columns.

    Returns:
        ``(N, K)`` probabilities in ``case_ids`` order, or None without such columns.

    Raises:
        DataError: some but not all classes have a column, or a value is missing or not finite.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in (reader.fieldnames or []) if c.startswith(UNCALIBRATED_PREFIX)]
        rows = {(row.get("case_id") or "").strip(): row for row in reader}
    if not columns:
        return None
    wanted = [UNCALIBRATED_PREFIX + name for name in class_names]
    if sorted(columns) != sorted(wanted):
        raise DataError(
            f"{path}: the {UNCALIBRATED_PREFIX}<class> columns {columns} do not match the classes "
            f"{list(class_names)}; write one per prob_ column, or none"
        )
    out = np.empty((len(case_ids), len(wanted)))
    for i, case_id in enumerate(case_ids):
        try:
            out[i] = [float(rows[case_id][c]) for c in wanted]
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"{path}: case {case_id!r} lacks a numeric value in {', '.join(wanted)}"
            ) from None
        if not all(math.isfinite(v) for v in out[i]):
            raise DataError(f"{path}: case {case_id!r} has a non-finite uncalibrated probability")
    return out


def _check(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ShapeError(
            f"probabilities must have shape (N, K) and classes (N,), got {p.shape} and {y.shape}"
        )
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]):
        raise ShapeError(
            f"reference classes must be integers in [0, {p.shape[1]}) for {p.shape[1]} "
            f"probability columns, got values from {y.min()} to {y.max()}"
        )
    if not np.all(np.isfinite(p)):
        raise ShapeError("probabilities must be finite; found NaN or inf")
    return y.astype(np.int64), p
