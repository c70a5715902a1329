"""Bootstrap intervals: reproducible by seed, covering the estimate, right width, NaN-aware."""

from __future__ import annotations

import numpy as np
import pytest

from multitask_unet.errors import ConfigError
from multitask_unet.evaluation import (
    balanced_accuracy,
    bootstrap_ci,
    bootstrap_many,
    bootstrap_mean,
    macro_f1,
)
from multitask_unet.evaluation.bootstrap import resample_indices


def test_reproducible_with_seed_and_seed_matters():
    values = np.random.default_rng(0).random(25)
    a = bootstrap_mean(values, n_resamples=300, seed=7)
    b = bootstrap_mean(values, n_resamples=300, seed=7)
    c = bootstrap_mean(values, n_resamples=300, seed=8)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)


@pytest.mark.parametrize("seed", range(5))
def test_interval_covers_point_estimate(seed):
    rng = np.random.default_rng(seed)
    values = rng.beta(8, 2, size=30)  # Dice-like, skewed
    ci = bootstrap_mean(values, n_resamples=500, seed=seed)
    assert ci.estimate == pytest.approx(values.mean())
    assert ci.low < ci.estimate < ci.high
    y = rng.integers(0, 3, 40)
    y_hat = np.where(rng.random(40) < 0.7, y, rng.integers(0, 3, 40))
    f1 = bootstrap_ci(lambda i: macro_f1(y[i], y_hat[i]), y.size, n_resamples=300, seed=seed)
    assert f1.estimate == pytest.approx(macro_f1(y, y_hat))
    assert f1.low <= f1.estimate <= f1.high


def test_width_matches_normal_theory_for_a_mean():
    # For a large sample the percentile bootstrap of a mean is close to mean +- 1.96 s / sqrt(n).
    values = np.random.default_rng(1).normal(0.8, 0.1, size=400)
    ci = bootstrap_mean(values, n_resamples=2000, seed=0)
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert ci.low == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert ci.high == pytest.approx(values.mean() + half, abs=0.15 * half)
    narrow = bootstrap_mean(values, n_resamples=2000, seed=0, confidence=0.5)
    assert ci.low < narrow.low < narrow.high < ci.high


def test_generic_and_mean_bootstrap_draw_the_same_resamples():
    values = np.random.default_rng(2).random(17)
    a = bootstrap_mean(values, n_resamples=200, seed=3)
    b = bootstrap_ci(lambda i: values[i].mean(), values.size, n_resamples=200, seed=3)
    assert (a.low, a.high) == pytest.approx((b.low, b.high), abs=1e-12)
    assert resample_indices(17, n_resamples=200, seed=3).shape == (200, 17)


def test_nan_values_are_left_out_and_counted():
    values = np.array([0.9, np.nan, 0.7, 0.8, np.nan])
    ci = bootstrap_mean(values, n_resamples=200, seed=0)
    assert ci.estimate == pytest.approx(0.8)
    assert ci.n == 3
    assert 0.7 <= ci.low <= ci.high <= 0.9
    empty = bootstrap_mean(np.array([np.nan, np.nan]), n_resamples=10)
    assert np.isnan(empty.estimate) and empty.to_dict()["low"] is None


def test_no_resamples_and_bad_confidence():
    ci = bootstrap_mean(np.array([0.5, 0.7]), n_resamples=0)
    assert ci.estimate == pytest.approx(0.6) and np.isnan(ci.low)
    with pytest.raises(ConfigError, match="confidence"):
        bootstrap_mean(np.array([0.5]), confidence=95)


def test_many_statistics_share_resamples_with_single_ones():
    rng = np.random.default_rng(5)
    y, y_hat = rng.integers(0, 3, 30), rng.integers(0, 3, 30)
    many = bootstrap_many(
        lambda i: {"f1": macro_f1(y[i], y_hat[i]), "bacc": balanced_accuracy(y[i], y_hat[i])},
        y.size,
        n_resamples=150,
        seed=2,
    )
    assert list(many) == ["f1", "bacc"]
    single = bootstrap_ci(
        lambda i: balanced_accuracy(y[i], y_hat[i]), y.size, n_resamples=150, seed=2
    )
    assert many["bacc"] == single
    with pytest.raises(ConfigError, match="zero cases"):
        bootstrap_many(lambda i: {"x": 0.0}, 0)
