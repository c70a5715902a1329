"""Class-balanced case sampling: weights, balance on the study's 62/106/84 split, ranks, the
oversampling cap on lopsided data (2/1/44) and the warnings about too small classes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multitask_unet.data.sampling import case_sampling
from multitask_unet.data.sampling.case_sampling import (
    BalancedCaseSampler,
    case_weights,
    sampling_warnings,
)
from multitask_unet.errors import ConfigError

STUDY_LABELS = [0] * 62 + [1] * 106 + [2] * 84  # the study's training subtypes
LOPSIDED = [0] * 2 + [1] * 1 + [2] * 44  # e.g. a small real subset
NAMES = ("subtype0", "subtype1", "subtype2")


def _class_mass(labels, weights) -> np.ndarray:
    return np.bincount(labels, weights=weights, minlength=3)


@pytest.mark.parametrize(
    ("mode", "power"), [("balanced", 0.0), ("inverse_sqrt", 0.5), ("none", 1.0)]
)
def test_class_mass_follows_the_mode(mode, power) -> None:
    counts = np.array([62, 106, 84])
    mass = _class_mass(STUDY_LABELS, case_weights(STUDY_LABELS, class_weights=mode))
    expected = counts**power / (counts**power).sum()  # n * n^-1, n * n^-1/2, n * 1
    assert np.allclose(mass, expected)
    assert math.isclose(mass.sum(), 1.0)


def _within_sampling_error(freq: np.ndarray, p: np.ndarray, n: int, sigmas: float = 4.0) -> bool:
    return bool(np.all(np.abs(freq - p) <= sigmas * np.sqrt(p * (1 - p) / n)))


def test_balanced_sampler_makes_study_subtypes_uniform() -> None:
    n = 6000
    sampler = BalancedCaseSampler(STUDY_LABELS, class_weights="balanced", num_samples=n, seed=7)
    freq = np.bincount([STUDY_LABELS[i] for i in sampler], minlength=3) / n
    assert _within_sampling_error(freq, np.full(3, 1 / 3), n)
    # without weighting the same draws would be far from uniform (the test can fail)
    plain = BalancedCaseSampler(STUDY_LABELS, class_weights="none", num_samples=n, seed=7)
    freq_plain = np.bincount([STUDY_LABELS[i] for i in plain], minlength=3) / n
    assert not _within_sampling_error(freq_plain, np.full(3, 1 / 3), n)
    assert _within_sampling_error(freq_plain, np.array([62, 106, 84]) / 252, n)


def test_unknown_labels_form_their_own_group() -> None:
    labels = [0, 0, 0, 1, None, -1]
    w = case_weights(labels, class_weights="balanced")
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
    monkeypatch.setattr(case_sampling.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(case_sampling.dist, "get_rank", lambda: 2)
    monkeypatch.setattr(case_sampling.dist, "get_world_size", lambda: 4)
    s = BalancedCaseSampler(STUDY_LABELS, num_samples=40)
    assert (s.rank, s.world_size, len(s)) == (2, 4, 10)
    assert list(s) == s.global_indices()[2::4].tolist()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"class_weights": "balance"},
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


@pytest.mark.parametrize("bad", ["a", 1.5, float("nan"), [1]])
def test_a_label_that_is_not_a_class_index_is_explained(bad: object) -> None:
    with pytest.raises(
        ConfigError, match=r"case label 1 is .*labels must be integers \(class index\) or None"
    ):
        BalancedCaseSampler([0, bad, 1])


def test_integer_like_labels_are_class_indices() -> None:
    import torch

    labels = [np.int64(0), torch.tensor(1), 2.0, None, -1, True]
    groups = case_sampling._shares(labels, "balanced", None)[0].tolist()
    assert groups == [0, 1, 2, -1, -1, 1]


# -- the oversampling cap ------------------------------------------------------------------------


def _old_weights(labels, mode: str) -> np.ndarray:
    """The uncapped weights as computed before the cap existed."""
    groups = [-1 if v is None or v < 0 else v for v in labels]
    n = {g: groups.count(g) for g in groups}
    power = {"balanced": 1.0, "inverse_sqrt": 0.5, "none": 0.0}[mode]
    raw = np.array([1.0 / n[g] ** power for g in groups])
    return raw / raw.sum()


@pytest.mark.parametrize("mode", ["balanced", "inverse_sqrt"])
def test_cap_keeps_lopsided_classes_within_3x_their_natural_share(mode) -> None:
    counts, total = np.array([2, 1, 44]), 47
    w = case_weights(LOPSIDED, class_weights=mode, max_oversampling=3)
    mass = _class_mass(LOPSIDED, w)
    assert math.isclose(w.sum(), 1.0) and math.isclose(mass.sum(), 1.0)
    assert np.all(mass <= 3 * counts / total + 1e-12)
    assert np.allclose(mass[:2], 3 * counts[:2] / total)  # the cap binds on both small classes
    large = w[np.array(LOPSIDED) == 2]
    assert np.allclose(large, large[0])  # the share is split evenly among the class's cases
    assert large[0] >= 0.8 / total  # every large-class case at >= 80 % of the uniform rate
    # uncapped, the three small cases would take two thirds of all draws
    assert math.isclose(
        _class_mass(LOPSIDED, case_weights(LOPSIDED, max_oversampling=None))[:2].sum(), 2 / 3
    )


@pytest.mark.parametrize("mode", ["balanced", "inverse_sqrt", "none"])
def test_cap_leaves_the_study_split_unchanged(mode) -> None:
    capped = case_weights(STUDY_LABELS, class_weights=mode, max_oversampling=3)
    assert np.array_equal(
        capped, case_weights(STUDY_LABELS, class_weights=mode, max_oversampling=None)
    )
    default = case_weights(STUDY_LABELS, class_weights=mode)  # the cap is 3 by default
    assert np.array_equal(capped, default)


@pytest.mark.parametrize("labels", [LOPSIDED, STUDY_LABELS, [0, 0, 0, 1, None, -1]])
@pytest.mark.parametrize("mode", ["balanced", "inverse_sqrt", "none"])
def test_no_cap_is_the_old_behaviour(labels, mode) -> None:
    assert np.allclose(
        case_weights(labels, class_weights=mode, max_oversampling=None), _old_weights(labels, mode)
    )


def test_excess_is_redistributed_until_stable() -> None:
    # 2 / 12 / 86 cases: capping class 0 (1/3 -> 0.06) pushes class 1 over its cap (0.36) too
    labels = [0] * 2 + [1] * 12 + [2] * 86
    assert np.allclose(_class_mass(labels, case_weights(labels)), [0.06, 0.36, 0.58])
    # uncapped classes keep the ratio of their shares
    labels = [0] * 1 + [1] * 10 + [2] * 30
    mass = _class_mass(
        labels, case_weights(labels, class_weights="inverse_sqrt", max_oversampling=2)
    )
    assert math.isclose(mass[0], 2 / 41) and math.isclose(mass[1] / mass[2], math.sqrt(10 / 30))


def test_cap_of_one_gives_natural_frequencies_and_none_mode_is_unaffected() -> None:
    uniform = np.full(47, 1 / 47)
    assert np.allclose(case_weights(LOPSIDED, max_oversampling=1), uniform)
    for cap in (1, 3, None):
        assert np.allclose(
            case_weights(LOPSIDED, class_weights="none", max_oversampling=cap), uniform
        )


def test_unknown_cases_form_one_capped_group() -> None:
    labels = [0] * 40 + [None, -1]
    w = case_weights(labels, max_oversampling=3)
    assert np.allclose(w[40:].sum(), 3 * 2 / 42) and np.allclose(w[40], w[41])


@pytest.mark.parametrize("cap", [0.5, 0, -3, float("nan")])
def test_invalid_cap_raises_config_error_naming_value_and_fix(cap) -> None:
    with pytest.raises(ConfigError, match=r"max_oversampling.*at least 1.*None"):
        case_weights(LOPSIDED, max_oversampling=cap)
    with pytest.raises(ConfigError, match="max_oversampling"):
        BalancedCaseSampler(LOPSIDED, max_oversampling=cap)
    with pytest.raises(ConfigError, match="max_oversampling"):
        sampling_warnings(LOPSIDED, class_weights="balanced", max_oversampling=cap)


def test_sampler_draws_respect_the_cap() -> None:
    n, total = 20000, 47
    natural = np.array([2, 1, 44]) / total
    sampler = BalancedCaseSampler(LOPSIDED, num_samples=n, seed=3)
    assert sampler.max_oversampling == 3.0 and "max_oversampling=3.0" in repr(sampler)
    freq = np.bincount([LOPSIDED[i] for i in sampler], minlength=3) / n
    capped = np.array([6, 3, total - 9]) / total  # small classes at 3x their natural share
    assert _within_sampling_error(freq, capped, n)
    assert freq[2] >= 0.8 * natural[2]
    uncapped = BalancedCaseSampler(LOPSIDED, num_samples=n, seed=3, max_oversampling=None)
    freq = np.bincount([LOPSIDED[i] for i in uncapped], minlength=3) / n
    assert _within_sampling_error(freq, np.full(3, 1 / 3), n)


# -- warnings ------------------------------------------------------------------------------------


def test_warnings_name_classes_counts_and_the_cap() -> None:
    warnings = sampling_warnings(LOPSIDED, class_weights="balanced", class_names=NAMES)
    capped = [w for w in warnings if "capped" in w]
    assert len(capped) == 2
    assert capped[1].startswith("class subtype1 has 1 of 47 cases: balanced sampling would draw")
    assert "15.7x its natural rate" in capped[1] and "capped at 3x (max_oversampling)" in capped[1]
    assert "class subtype0 has 2 of 47 cases" in capped[0] and "7.8x" in capped[0]
    few = [w for w in warnings if "too few" in w]
    assert [w.split(":")[0] for w in few] == [
        "class subtype0 has 2 of 47 cases",
        "class subtype1 has 1 of 47 cases",
    ]
    assert all("class-weighted" in w and "add cases" in w for w in few)
    assert not any("subtype2" in w for w in warnings)


def test_warnings_depend_on_mode_and_cap() -> None:
    sqrt = sampling_warnings(LOPSIDED, class_weights="inverse_sqrt", class_names=NAMES)
    assert any("subtype1" in w and "inverse_sqrt sampling would draw it 5.2x" in w for w in sqrt)
    uncapped = sampling_warnings(LOPSIDED, class_weights="balanced", max_oversampling=None)
    assert any(
        w.startswith("class 1 has 1 of 47 cases") and "set max_oversampling" in w for w in uncapped
    )
    loose = sampling_warnings(
        LOPSIDED, class_weights="balanced", max_oversampling=20, class_names=NAMES
    )
    assert not any("capped" in w or "max_oversampling" in w for w in loose)  # the cap does not bind
    none = sampling_warnings(LOPSIDED, class_weights="none", class_names=NAMES)
    assert len(none) == 2 and all("too few" in w for w in none)  # small classes, whatever the mode
    unknown = sampling_warnings([0] * 40 + [None], class_weights="balanced")
    assert unknown and "without a class has 1 of 41 cases" in unknown[0]


@pytest.mark.parametrize("mode", ["balanced", "inverse_sqrt", "none"])
@pytest.mark.parametrize("cap", [3.0, None])
def test_no_warnings_on_balanced_data(mode, cap) -> None:
    assert (
        sampling_warnings(STUDY_LABELS, class_weights=mode, max_oversampling=cap, class_names=NAMES)
        == []
    )
    assert sampling_warnings([], class_weights=mode, max_oversampling=cap) == []
    assert "sampling_warnings" in case_sampling.__all__


def test_the_former_keyword_weights_mode_still_works_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="class_weights="):
        old = BalancedCaseSampler([0, 0, 1], weights_mode="none", num_samples=4, seed=0)
    new = BalancedCaseSampler([0, 0, 1], class_weights="none", num_samples=4, seed=0)
    assert old.class_weights == "none" and list(old) == list(new)
