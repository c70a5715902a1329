"""Percentile bootstrap confidence intervals over cases.

Cases are drawn with replacement, ``n_resamples`` times, from a generator seeded with ``seed``;
the statistic is recomputed on every resample, and the interval is the ``(1 - confidence) / 2``
and ``(1 + confidence) / 2`` percentiles of the resampled values (resamples where the statistic
is undefined, NaN, are left out). Equal ``(n, n_resamples, seed)`` draw the same resamples, so
intervals of different metrics over the same cases are paired and reproducible.

Example:
    >>> import numpy as np
    >>> values = np.array([0.91, 0.85, 0.88, 0.79, 0.93, 0.90])
    >>> ci = bootstrap_mean(values, n_resamples=200, seed=0)
    >>> ci.low <= ci.estimate <= ci.high
    True
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from multitask_unet.errors import ConfigError

__all__ = ["Interval", "bootstrap_ci", "bootstrap_many", "bootstrap_mean", "resample_indices"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval.

    Attributes:
        estimate: The statistic on all cases.
        low: Lower bound of the interval (NaN when it cannot be computed).
        high: Upper bound of the interval.
        confidence: Level of the interval, e.g. 0.95.
        n: Number of cases the statistic is computed on.
        n_resamples: Number of bootstrap resamples (0: no interval).
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict; NaN becomes ``None`` so that the result is valid JSON."""
        return {
            k: (None if isinstance(v, float) and np.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def resample_indices(n: int, *, n_resamples: int, seed: int) -> np.ndarray:
    """Bootstrap resamples of ``range(n)``, shape ``(n_resamples, n)``, reproducible by seed."""
    if n < 0 or n_resamples < 0:
        raise ConfigError(f"n and n_resamples must be >= 0, got {n} and {n_resamples}")
    return (
        np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
        if n
        else (np.zeros((n_resamples, 0), dtype=np.int64))
    )


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of any statistic of ``n`` cases.

    Args:
        statistic: Maps an index array into the cases (shape ``(n,)``) to a float, e.g.
            ``lambda idx: macro_f1(y[idx], y_hat[idx])``; may return NaN when undefined.
        n: Number of cases.
        n_resamples: Resamples; 0 returns the estimate with NaN bounds.
        confidence: Interval level in ``(0, 1)``.
        seed: Seed of the resampling.

    Returns:
        The :class:`Interval`.
    """
    intervals = bootstrap_many(
        lambda idx: {"value": statistic(idx)},
        n,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    return intervals["value"]


def bootstrap_many(
    statistics: Callable[[np.ndarray], Mapping[str, float]],
    n: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Bootstrap intervals of several statistics computed together on each resample.

    Args:
        statistics: Maps an index array into the cases to named floats, e.g.
            ``lambda idx: evaluate_classification(y[idx], p[idx])``; always the same names.
        n: Number of cases.
        n_resamples: Resamples; 0 returns the estimates with NaN bounds.
        confidence: Interval level in ``(0, 1)``.
        seed: Seed of the resampling (the resamples of :func:`resample_indices`).

    Returns:
        Name to :class:`Interval`, in the order ``statistics`` returns them.
    """
    _check_confidence(confidence)
    if n == 0:
        raise ConfigError("cannot bootstrap a statistic of zero cases")
    point = {k: float(v) for k, v in statistics(np.arange(n)).items()}
    indices = resample_indices(n, n_resamples=n_resamples, seed=seed)
    values = np.full((n_resamples, len(point)), np.nan)
    for row, idx in enumerate(indices):
        resampled = statistics(idx)
        values[row] = [float(resampled[k]) for k in point]
    return {
        k: _interval(v, values[:, j], confidence, n, n_resamples)
        for j, (k, v) in enumerate(point.items())
    }


def bootstrap_mean(
    values: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of the mean of per-case values, NaN values left out.

    The resamples are those of :func:`bootstrap_ci` with ``n = len(values)``: NaN cases are
    drawn like any other and then skipped, so columns with and without NaN stay paired.

    Args:
        values: Per-case values, shape ``(N,)``; NaN marks an undefined value.
        n_resamples: Resamples; 0 returns the estimate with NaN bounds.
        confidence: Interval level in ``(0, 1)``.
        seed: Seed of the resampling.

    Returns:
        The :class:`Interval`; ``n`` counts the defined (non-NaN) values.
    """
    _check_confidence(confidence)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    defined = int(np.count_nonzero(~np.isnan(values)))
    estimate = float(np.nanmean(values)) if defined else float("nan")
    indices = resample_indices(values.size, n_resamples=n_resamples, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples give NaN
        means = np.nanmean(values[indices], axis=1) if values.size and defined else np.zeros(0)
    return _interval(estimate, means, confidence, defined, n_resamples)


def _interval(
    estimate: float, values: np.ndarray, confidence: float, n: int, n_resamples: int
) -> Interval:
    values = values[~np.isnan(values)]
    if values.size == 0 or np.isnan(estimate):
        low = high = float("nan")
    else:
        alpha = (1.0 - confidence) / 2.0
        low, high = (float(v) for v in np.percentile(values, [100 * alpha, 100 * (1 - alpha)]))
    return Interval(estimate, low, high, confidence, n, n_resamples)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")
