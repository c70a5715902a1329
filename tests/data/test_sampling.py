"""Class-balanced case sampling: weights, balance on the study's 62/106/84 split, ranks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multitask_unet.data import sampling
from multitask_unet.data.sampling import BalancedCaseSampler, case_weights
from multitask_unet.errors import ConfigError

STUDY_LABELS = [0] * 62 + [1] * 106 + [2] * 84  # the study's training subtypes


def _class_mass(labels, weights) -> np.ndarray:
    return np.bincount(labels, weights=weights, minlength=3)


@pytest.mark.parametrize(
    ("mode", "power"), [("balanced", 0.0), ("inverse_sqrt", 0.5), ("none", 1.0)]
)
def test_class_mass_follows_the_mode(mode, power) -> None:
    counts = np.array([62, 106, 84])
    mass = _class_mass(STUDY_LABELS, case_weights(STUDY_LABELS, mode=mode))
    expected = counts**power / (counts**power).sum()  # n * n^-1, n * n^-1/2, n * 1
    assert np.allclose(mass, expected)
    assert math.isclose(mass.sum(), 1.0)


def _within_sampling_error(freq: np.ndarray, p: np.ndarray, n: int, sigmas: float = 4.0) -> bool:
    return bool(np.all(np.abs(freq - p) <= sigmas * np.sqrt(p * (1 - p) / n)))


def test_balanced_sampler_makes_study_subtypes_uniform() -> None:
    n = 6000
    sampler = BalancedCaseSampler(STUDY_LABELS, weights_mode="balanced", num_samples=n, seed=7)
    freq = np.bincount([STUDY_LABELS[i] for i in sampler], minlength=3) / n
    assert _within_sampling_error(freq, np.full(3, 1 / 3), n)
    # without weighting the same draws would be far from uniform (the test can fail)
    plain = BalancedCaseSampler(STUDY_LABELS, weights_mode="none", num_samples=n, seed=7)
    freq_plain = np.bincount([STUDY_LABELS[i] for i in plain], minlength=3) / n
    assert not _within_sampling_error(freq_plain, np.full(3, 1 / 3), n)
    assert _within_sampling_error(freq_plain, np.array([62, 106, 84]) / 252, n)


def test_unknown_labels_form_their_own_group() -> None:
    labels = [0, 0, 0, 1, None, -1]
    w = case_weights(labels, mode="balanced")
    assert np.allclose([w[:3].sum(), w[3], w[4:].sum()], 1 / 3)


def test_same_seed_and_epoch_repeat_new_epoch_changes() -> None:
    a = BalancedCaseSampler(STUDY_LABELS, num_samples=50, seed=3)
    b = BalancedCaseSampler(STUDY_LABELS, num_samples=50, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert len(first) == len(a) == 50


@pytest.mark.parametrize("replacement", [True, False])
def test_ranks_draw_disjoint_shares_of_one_sequence(replacement) -> None:
    world, n = 3, 252
    samplers = [
        BalancedCaseSampler(
            STUDY_LABELS, num_samples=n, replacement=replacement, seed=5, rank=r, world_size=world
        )
        for r in range(world)
    ]
    for s in samplers:
        s.set_epoch(2)
    shares = [list(s) for s in samplers]
    assert all(len(share) == n // world for share in shares)
    interleaved = [shares[pos % world][pos // world] for pos in range(n)]
    assert interleaved == samplers[0].global_indices().tolist()
    if not replacement:  # a permutation: every case exactly once over all ranks
        assert sorted(i for share in shares for i in share) == list(range(n))


def test_uneven_num_samples_rounds_up_per_rank() -> None:
    s = BalancedCaseSampler(STUDY_LABELS, num_samples=10, rank=1, world_size=4)
    assert len(s) == 3 and len(list(s)) == 3


def test_rank_defaults_come_from_torch_distributed(monkeypatch) -> None:
    monkeypatch.setattr(sampling.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(sampling.dist, "get_rank", lambda: 2)
    monkeypatch.setattr(sampling.dist, "get_world_size", lambda: 4)
    s = BalancedCaseSampler(STUDY_LABELS, num_samples=40)
    assert (s.rank, s.world_size, len(s)) == (2, 4, 10)
    assert list(s) == s.global_indices()[2::4].tolist()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weights_mode": "balance"},
        {"num_samples": 0},
        {"rank": 3, "world_size": 3},
        {"num_samples": 300, "replacement": False},
    ],
)
def test_invalid_options_raise_config_error(kwargs) -> None:
    with pytest.raises(ConfigError):
        BalancedCaseSampler(STUDY_LABELS, **kwargs)


def test_empty_labels_are_rejected() -> None:
    with pytest.raises(ConfigError, match="empty"):
        case_weights([])
