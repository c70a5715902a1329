"""Budget-aware planning: measured candidates and the recorded choice."""

from __future__ import annotations

import json
import math
import time
from collections import Counter

import numpy as np
import pytest
from _budget_stubs import SEARCH, per_voxel
from _helpers import config

from multitask_unet.data.planning import Plan, create_plan
from multitask_unet.data.planning.budget_section import PlanBudget, parse_duration
from multitask_unet.errors import ConfigError
from multitask_unet.models import resolve_config
from multitask_unet.training.budget import (
    BudgetSearch,
    budget_train_config,
    device_description,
    lowres_spacing,
    measure_step_seconds,
    patch_for_voxels,
    plan_for_budget,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800.0),
        ("1h30m", 5400.0),
        ("2h", 7200.0),
        ("45s", 45.0),
        ("1.5min", 90.0),
        (12, 12.0),
    ],
)
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["30", "ten minutes", "30x", "0m", -5, ""])
def test_parse_duration_rejects_with_the_fix(bad) -> None:
    with pytest.raises(ConfigError, match=r"duration|positive"):
        parse_duration(bad)


#: The pick on the phantoms' fingerprint at 2e-5 s per voxel of a batch, by budget (seconds),
#: worked out from the rule: the more capable preset (tiny_residual) at the finest spacing whose
#: patch covers >= 70% of the median case; at 200 s the target of 3,000 steps moves it to a
#: coarser spacing and a smaller patch that still covers 70%; at 20 s no candidate with enough
#: context reaches the target; at 2000 s the largest patch at nnU-Net's spacing does.
PICKS = {
    20.0: ("tiny_residual", 1.25, (12, 12, 12)),
    200.0: ("tiny_residual", 1.75, (8, 8, 8)),
    2000.0: ("tiny_residual", 1.0, (16, 16, 16)),
}


@pytest.mark.parametrize("budget", sorted(PICKS))
def test_budget_plan_fits_the_budget_and_records_why(fingerprint, budget, tmp_path) -> None:
    timer = per_voxel(2e-5)
    plan = plan_for_budget(fingerprint, budget, search=SEARCH, head=None, measure=timer)
    b = plan.budget
    assert isinstance(b, PlanBudget)
    chosen = b.chosen
    # the schedule, at the measured step time with its margin, fits the training time ...
    assert b.iterations * chosen.step_seconds * b.step_margin <= b.train_seconds + 1e-6
    assert b.train_seconds + b.trial_seconds + b.overhead_seconds <= budget + 1e-6
    assert b.iterations >= SEARCH.min_iterations * 2 / chosen.batch_size
    assert b.epochs * b.iterations_per_epoch == b.iterations
    assert b.epochs <= 21 or b.iterations_per_epoch == 250  # about 20 epochs
    assert b.iterations_per_epoch >= min(10, b.iterations)
    # ... and it is the plan's patch, batch and network
    assert (plan.patch_size, plan.batch_size, b.preset) == (
        chosen.patch_size,
        chosen.batch_size,
        chosen.preset,
    )
    assert plan.target_spacing == chosen.target_spacing
    assert all(p % d == 0 for p, d in zip(plan.patch_size, plan.size_divisor))
    # every candidate is recorded; the measured ones with their step time
    statuses = [c.status for c in b.candidates]
    assert statuses.count("chosen") == 1
    for c in b.candidates:
        assert (c.step_seconds is None) == (c.status == "skipped") and c.note
    assert (chosen.preset, chosen.spacing_factor, chosen.patch_size) == PICKS[budget]
    assert "coverage" in b.reason and str(SEARCH.min_iterations) in b.reason
    # the JSON round-trips
    plan.save(tmp_path / "plan.json")
    assert Plan.load(tmp_path / "plan.json") == plan
    assert json.loads((tmp_path / "plan.json").read_text())["budget"]["preset"] == b.preset


def test_a_larger_budget_buys_at_least_as_much_context(fingerprint) -> None:
    small = plan_for_budget(fingerprint, 20, search=SEARCH, head=None, measure=per_voxel(2e-5))
    large = plan_for_budget(fingerprint, 2000, search=SEARCH, head=None, measure=per_voxel(2e-5))
    assert large.budget.chosen.coverage >= small.budget.chosen.coverage
    assert large.budget.iterations > small.budget.iterations


def test_candidates_larger_than_a_too_slow_one_are_not_measured(fingerprint) -> None:
    timer = per_voxel(1e-3)  # 8^3 x 2 takes ~1 s: only the smallest patches fit 200 s
    plan = plan_for_budget(fingerprint, 200, search=SEARCH, head=None, measure=timer)
    cands = plan.budget.candidates
    slow = [c for c in cands if c.status == "too_slow"]
    skipped = [c for c in cands if c.status == "skipped"]
    assert slow and skipped
    for c in skipped:
        assert "too-slow" in c.note
        assert any(s.preset == c.preset and np.prod(s.patch_size) <= np.prod(c.patch_size)
                   for s in slow)  # fmt: skip

    # A too-slow verdict and the pick are confirmed by a second trial; nothing runs 3 times.
    def key(c):
        return resolve_config(c.preset).encoder.name, c.patch_size, c.batch_size

    trials = Counter(timer.calls)
    assert trials[key(plan.budget.chosen)] == 2
    assert all(trials[key(c)] == 2 for c in slow)
    assert set(trials.values()) <= {1, 2} and len(trials) < len(cands)


def test_the_contenders_are_measured_twice_and_a_hiccup_does_not_decide(fingerprint) -> None:
    steady = per_voxel(2e-5)
    untargeted = SEARCH.replace(target_iterations=None)
    first = plan_for_budget(fingerprint, 600, search=untargeted, head=None, measure=steady).budget
    covering = [c for c in first.candidates if c.status in ("feasible", "chosen")
                and c.preset == first.preset and c.coverage >= SEARCH.min_coverage]  # fmt: skip
    most = max(c.iterations for c in covering)
    search = SEARCH.replace(target_iterations=most - most // 100)  # only the fastest reach it
    expected = plan_for_budget(fingerprint, 600, search=search, head=None, measure=steady).budget
    key = (resolve_config(expected.preset).encoder.name, expected.chosen.patch_size, 2)
    calls = []

    def hiccup_on_the_pick(model_config, patch, batch) -> float:  # its first trial: 1.5x slower
        calls.append((model_config.encoder.name, tuple(patch), batch))
        slow = calls[-1] == key and calls.count(key) == 1
        return steady(model_config, patch, batch) * (1.5 if slow else 1.0)

    plan = plan_for_budget(fingerprint, 600, search=search, head=None, measure=hiccup_on_the_pick)
    pick = plan.budget.chosen
    assert calls.count(key) == 2  # without the second trial it would miss the target steps
    assert (pick.preset, pick.spacing_factor, pick.patch_size) == (
        expected.preset,
        expected.chosen.spacing_factor,
        expected.chosen.patch_size,
    )
    assert pick.step_seconds == pytest.approx(2e-5 * np.prod(pick.patch_size) * 2, rel=1e-3)


def test_each_preset_smallest_candidate_is_measured_first(fingerprint) -> None:
    timer = per_voxel(1e-6)
    plan = plan_for_budget(fingerprint, 600, search=SEARCH, head=None, measure=timer)
    smallest = {}
    for c in plan.budget.candidates:
        name = resolve_config(c.preset).encoder.name
        if name not in smallest or np.prod(c.patch_size) < np.prod(smallest[name]):
            smallest[name] = c.patch_size
    first_two = timer.calls[:2]
    # SEARCH lists tiny_residual first, so tiny_plain (less capable) is measured first
    assert [name for name, _, _ in first_two] == ["plain", "residual"]
    assert [patch for _, patch, _ in first_two] == [smallest["plain"], smallest["residual"]]


def test_trial_time_is_capped(fingerprint) -> None:
    calls = []

    def slow_timer(model_config, patch, batch) -> float:
        calls.append(patch)
        time.sleep(0.05)
        return 1e-4

    search = SEARCH.replace(max_trial_seconds=0.12)
    plan = plan_for_budget(fingerprint, 600, search=search, head=None, measure=slow_timer)
    notes = [c.note for c in plan.budget.candidates if c.status == "skipped"]
    assert any("trial time" in n for n in notes)
    assert len(calls) <= math.ceil(0.12 / 0.05)  # no measurement starts after the cap
    assert plan.budget.trial_seconds < 0.12 + 1.0  # (loose: bookkeeping of a busy machine)


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
def test_default_search_depends_on_the_device(device) -> None:
    search = BudgetSearch.for_device(device, min_iterations=7)
    assert search.min_iterations == 7
    cuda = device.startswith("cuda")
    assert ("nnunet_3d_fullres" in search.presets) == cuda
    assert (max(search.patch_voxels) > 128**3) == cuda
    assert BudgetSearch.for_device(device, presets=["tiny_plain"]).presets == ("tiny_plain",)


def test_no_feasible_candidate_names_the_fix(fingerprint) -> None:
    with pytest.raises(ConfigError, match="larger budget") as info:
        plan_for_budget(fingerprint, 5, search=SEARCH, head=None, measure=per_voxel(1e-2))
    assert "s per step" in str(info.value)


def test_budget_spacing_starts_from_nnunet_and_only_coarsens(fingerprint) -> None:
    plan = plan_for_budget(fingerprint, 2000, search=SEARCH, head=None, measure=per_voxel(1e-6))
    base = create_plan(fingerprint).target_spacing
    by_factor = {c.spacing_factor: c.target_spacing for c in plan.budget.candidates}
    assert by_factor[1.0] == pytest.approx(base, abs=1e-4)
    anisotropy = max(2.0, max(base) / min(base))
    for factor, spacing in by_factor.items():
        assert all(s >= b - 1e-4 for s, b in zip(spacing, base))
        assert min(spacing) == pytest.approx(factor * min(base), rel=1e-3)
        assert max(spacing) / min(spacing) <= anisotropy + 1e-3


@pytest.mark.parametrize(
    ("base", "factor", "expected"),
    [
        ((2.0, 0.75, 0.75), 1.0, (2.0, 0.75, 0.75)),  # nnU-Net's own spacing
        ((2.0, 0.75, 0.75), 1.2, (2.0, 0.9, 0.9)),  # only the fine axes coarsen ...
        ((2.0, 0.75, 0.75), 2.0, (3.0, 1.5, 1.5)),  # ... until 2x anisotropy, then all axes
        ((1.0, 1.0, 1.0), 1.5, (1.5, 1.5, 1.5)),  # isotropic data coarsens isotropically
        ((0.8, 0.8, 2.5), 2.0, (1.6, 1.6, 3.2)),  # the slice axis may be any axis
    ],
)
def test_lowres_spacing_is_nnunets_lowres_rule(base, factor, expected) -> None:
    assert lowres_spacing(base, factor) == pytest.approx(expected, abs=1e-4)


def test_lowres_spacing_rejects_a_finer_factor() -> None:
    with pytest.raises(ConfigError, match="coarser"):
        lowres_spacing((2.0, 0.75, 0.75), 0.5)
    with pytest.raises(ConfigError, match="spacing_factors"):
        BudgetSearch(spacing_factors=(0.5, 1.0))


@pytest.mark.parametrize("voxels", [4**3, 16**3, 40**3, 64**3, 10**7])
def test_patch_for_voxels_fits_the_cap_and_keeps_the_case_shape(voxels) -> None:
    median, divisor = (40.0, 51.0, 81.0), (16, 16, 16)
    patch = patch_for_voxels(voxels, (3.0, 1.6, 1.6), median, divisor)
    assert all(p % d == 0 and p >= d for p, d in zip(patch, divisor))
    assert np.prod(np.asarray(patch) // divisor) >= 2  # never a single voxel at the bottleneck
    assert np.prod(patch) <= max(voxels, 2 * np.prod(divisor))
    assert all(p <= math.ceil(m / d) * d for p, m, d in zip(patch, median, divisor))
    # it shrinks the axis largest relative to the case: the patch keeps the case's proportions
    ratios = np.asarray(patch) / np.asarray(median)
    assert ratios.max() - ratios.min() <= max(d / m for d, m in zip(divisor, median)) + 1e-9


def test_with_enough_context_capacity_beats_more_context(fingerprint) -> None:
    # tiny_residual (listed first: more capable) fits 100 steps only up to 8^3 patches, which
    # cover half a case from 1.75x spacing on; tiny_plain is fast enough for whole cases at 1x.
    def timer(model_config, patch, batch) -> float:
        if model_config.encoder.name == "residual":
            return 2e-3 * float(np.prod(patch)) * batch
        return 1e-3

    plan = plan_for_budget(fingerprint, 600, search=SEARCH, head=None, measure=timer)
    chosen = plan.budget.chosen
    plain = [c for c in plan.budget.candidates if c.preset == "tiny_plain"]
    assert max(c.coverage for c in plain if c.spacing_factor == 1.0) == 1.0  # more context ...
    assert (chosen.preset, chosen.spacing_factor, chosen.patch_size) == (
        "tiny_residual",  # ... but the more capable network sees enough of a case
        1.75,  # at the finest spacing where it does
        (8, 8, 8),
    )
    assert chosen.coverage >= SEARCH.min_coverage
    assert "most capable preset" in plan.budget.reason


def test_the_target_steps_come_before_a_finer_spacing_but_not_before_capacity(fingerprint):
    timer = per_voxel(2e-5)
    untargeted = SEARCH.replace(target_iterations=None)
    first = plan_for_budget(fingerprint, 600, search=untargeted, head=None, measure=timer).budget
    covering = [
        c
        for c in first.candidates
        if c.status in ("feasible", "chosen")
        and c.preset == first.preset
        and c.coverage >= SEARCH.min_coverage
    ]
    most = max(c.iterations for c in covering)
    target = most - most // 100  # only the fastest covering candidates reach it
    assert target > first.chosen.iterations  # the untargeted pick does not

    plan = plan_for_budget(
        fingerprint, 600, search=SEARCH.replace(target_iterations=target), head=None, measure=timer
    )
    chosen = plan.budget.chosen
    assert chosen.preset == first.preset and chosen.coverage >= SEARCH.min_coverage
    assert chosen.spacing_factor > first.chosen.spacing_factor  # coarser, for the steps
    assert chosen.iterations >= target and plan.budget.target_iterations == target
    assert f"reaching the target of {target} steps" in plan.budget.reason

    # Out of reach of the preset: the same pick as without a target, never a lesser preset.
    far = SEARCH.replace(target_iterations=10 * most)
    plan = plan_for_budget(fingerprint, 600, search=far, head=None, measure=timer)
    assert plan.budget.chosen.patch_size == first.chosen.patch_size
    assert plan.budget.preset == first.preset
    assert "none reaches the target" in plan.budget.reason
    with pytest.raises(ConfigError, match=r"target_iterations .* at least min_iterations"):
        BudgetSearch(min_iterations=2000, target_iterations=1000)


def test_without_enough_context_the_largest_coverage_wins(fingerprint) -> None:
    search = SEARCH.replace(presets=("tiny_plain",), spacing_factors=(1.0,), min_coverage=1.0)
    timer = per_voxel(3e-4)  # only patches up to 8^3 are fast enough: none covers a case
    plan = plan_for_budget(fingerprint, 120, search=search, head=None, measure=timer)
    feasible = [c for c in plan.budget.candidates if c.status in ("feasible", "chosen")]
    assert feasible and max(c.coverage for c in feasible) < 1.0
    assert plan.budget.chosen.coverage == max(c.coverage for c in feasible)
    assert "none of the" in plan.budget.reason


@pytest.mark.parametrize(("preset", "batch"), [("tiny_plain", 1), ("tiny_residual", 2)])
def test_measure_step_seconds_runs_real_steps(preset, batch) -> None:
    model_config = resolve_config(preset, num_classes=3)
    seconds = measure_step_seconds(model_config, (8, 8, 12), batch, steps=1)
    assert math.isfinite(seconds) and 0 < seconds < 30


def test_trial_steps_refuse_float16_on_the_cpu() -> None:
    with pytest.raises(ConfigError, match="fp16"):
        measure_step_seconds(resolve_config("tiny_plain", num_classes=3), (8, 8, 8), 1, amp="fp16")


def test_the_plan_records_the_trial_precision_and_training_uses_it(fingerprint) -> None:
    search = SEARCH.replace(amp="off")
    plan = plan_for_budget(fingerprint, 600, search=search, head=None, measure=per_voxel(1e-6))
    assert plan.budget.amp == "off"
    assert budget_train_config(plan, config(amp="auto")).runtime.amp == "off"
    with pytest.raises(ConfigError, match="amp must be one of"):
        BudgetSearch(amp="fp8")


def test_device_description_names_the_cpu_and_threads() -> None:
    text = device_description("cpu")
    assert text.endswith("thread(s)") and not text.startswith(",")
