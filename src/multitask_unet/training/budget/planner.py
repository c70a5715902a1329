"""Measure candidates and plan: :func:`plan_for_budget` (see :mod:`multitask_unet.training.budget`)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from multitask_unet.data.planning import DatasetFingerprint, Plan
from multitask_unet.data.planning.budget_section import BudgetCandidate, parse_duration
from multitask_unet.training.budget.candidates import candidate_grid
from multitask_unet.training.budget.choice import contending_keys, finish
from multitask_unet.training.budget.search import BudgetSearch
from multitask_unet.training.budget.trial import StepTimer, measure_step_seconds
from multitask_unet.training.builders import build_model_config
from multitask_unet.training.config import ModelSpec

__all__ = ["plan_for_budget"]


def plan_for_budget(
    fingerprint: DatasetFingerprint,
    budget: str | float,
    *,
    device: str = "cpu",
    search: BudgetSearch | None = None,
    head: str | None = "panda",
    model: ModelSpec | None = None,
    labels: Sequence[int] | None = None,
    normalization: str | Sequence[str] = "ct",
    measure: StepTimer | None = None,
) -> Plan:
    """A plan whose training fits ``budget`` on ``device``, chosen by measured trial steps.

    Args:
        fingerprint: The dataset fingerprint.
        budget: Wall-clock budget: seconds, or text such as ``"30m"`` or ``"1h"``.
        device: Where the trial steps run and training will run (``"cpu"``, ``"cuda"``).
        search: The candidates and the score (default :meth:`BudgetSearch.for_device`).
        head: Classification head of the trial networks (None: segmentation only).
        model: The network options of the trial networks besides the preset (heads, encoder,
            ...), e.g. the training config's ``model``; replaces ``head``.
        labels: Segmentation labels (default: those of the fingerprint).
        normalization: As :func:`~multitask_unet.data.planning.create_plan`.
        measure: Step timer (default: :func:`measure_step_seconds` on ``device``); tests pass a
            fast stub.

    Returns:
        The :class:`Plan` of the chosen candidate, with ``plan.budget`` recording all of them.

    Raises:
        ConfigError: No candidate reaches the minimum number of steps within the budget (the
            message lists the fastest one and what to change).
    """
    seconds = parse_duration(budget)
    search = search or BudgetSearch.for_device(device)
    search = search.replace(amp=search.resolved_amp(device))
    timer = measure or (
        lambda m, p, b: measure_step_seconds(
            m, p, b, device=device, steps=search.trial_steps, amp=search.amp
        )
    )
    labels = tuple(sorted({0, *(fingerprint.labels if labels is None else map(int, labels))}))
    case_classes = len([k for k in fingerprint.subtype_counts if k != "none"])
    spec = model or ModelSpec(head=head)
    models = {
        name: build_model_config(
            spec.replace(preset=name),
            in_channels=fingerprint.num_channels,
            seg_classes=max(labels) + 1,
            case_classes=case_classes,
        )
        for name in search.presets
    }
    divisors = {name: cfg.size_divisor for name, cfg in models.items()}
    candidates = candidate_grid(
        fingerprint,
        spacing_factors=search.spacing_factors,
        patch_voxels=search.patch_voxels,
        batch_sizes=search.batch_sizes,
        divisors=divisors,
    )
    trial_limit = seconds * search.max_trial_fraction
    if search.max_trial_seconds is not None:
        trial_limit = min(trial_limit, search.max_trial_seconds)
    overhead = seconds * search.overhead_fraction

    # Measure (see _measuring_order); skip what is larger than a too-slow candidate.
    started = time.perf_counter()
    measured: dict[tuple[str, tuple[int, ...], int], float | None] = {}
    too_slow_load: dict[str, float] = {}
    confirmed: set[tuple[str, tuple[int, ...], int]] = set()  # too-slow verdicts measured twice
    order = _measuring_order(candidates, search.presets)
    results: dict[int, BudgetCandidate] = {}
    for i in order:
        c = candidates[i]
        key = (c.preset, c.patch_size, c.batch_size)
        if _load(c) >= too_slow_load.get(c.preset, math.inf):
            results[i] = c.replace(note="not measured: at least as large as a too-slow candidate")
            continue
        if key not in measured:
            if _elapsed(started) >= trial_limit:
                results[i] = c.replace(
                    note=f"not measured: trial time ({trial_limit:.0f} s) used up"
                )
                continue
            try:
                measured[key] = float(timer(models[c.preset], c.patch_size, c.batch_size))
            except torch.OutOfMemoryError:
                measured[key] = None
                _empty_cache(device)
        step = measured[key]
        needed = math.ceil(search.min_iterations * 2 / c.batch_size)
        if step is None:
            results[i] = c.replace(status="too_slow", note="out of device memory")
            too_slow_load[c.preset] = min(_load(c), too_slow_load.get(c.preset, math.inf))
            continue

        iterations = _steps_that_fit(seconds - overhead, started, step, search.step_margin)
        if iterations < needed and key not in confirmed and _elapsed(started) < trial_limit:
            # "Too slow" also rules out every larger candidate of the preset: confirm it with a
            # second measurement, the faster one counting.
            confirmed.add(key)
            again = float(timer(models[c.preset], c.patch_size, c.batch_size))
            step = measured[key] = min(step, again)
            iterations = _steps_that_fit(seconds - overhead, started, step, search.step_margin)
        results[i] = _judged(c, step, iterations, needed)
        if results[i].status == "too_slow":
            too_slow_load[c.preset] = min(_load(c), too_slow_load.get(c.preset, math.inf))

    # The candidates the choice is among are measured once more, the faster measurement
    # counting, so that a passing slow spell of the machine cannot decide the plan.
    ranked = [results[i] for i in range(len(candidates))]
    again = [k for k in contending_keys(ranked, search) if k not in confirmed]
    for key in sorted(again, key=lambda k: (math.prod(k[1]) * k[2], k)):
        if _elapsed(started) >= trial_limit:
            break
        confirmed.add(key)
        step = min(measured[key] or math.inf, float(timer(models[key[0]], key[1], key[2])))
        measured[key] = step
        for i, c in enumerate(ranked):
            if (c.preset, c.patch_size, c.batch_size) == key:
                needed = math.ceil(search.min_iterations * 2 / c.batch_size)
                fit = _steps_that_fit(seconds - overhead, started, step, search.step_margin)
                ranked[i] = _judged(c, step, fit, needed)
    trial_seconds = _elapsed(started)
    return finish(
        fingerprint,
        ranked,
        search,
        seconds=seconds,
        device=device,
        overhead=overhead,
        trial_seconds=trial_seconds,
        divisors=divisors,
        labels=labels,
        normalization=normalization,
    )


def _judged(c: BudgetCandidate, step: float, iterations: int, needed: int) -> BudgetCandidate:
    """``c`` with its measured step time and the steps that fit: feasible or too slow."""
    return c.replace(
        step_seconds=round(step, 4),
        iterations=iterations,
        status="feasible" if iterations >= needed else "too_slow",
        note=f"{iterations} steps fit; needs {needed}",
    )


def _elapsed(started: float) -> float:
    return time.perf_counter() - started


def _steps_that_fit(seconds: float, started: float, step: float, margin: float) -> int:
    """Training steps of ``step`` seconds (times ``margin``) in what is left of ``seconds``."""
    return max(int((seconds - _elapsed(started)) / (step * margin)), 0)


# -- measuring order -------------------------------------------------------------------------------
def _measuring_order(candidates: list[BudgetCandidate], presets: Sequence[str]) -> list[int]:
    """The smallest candidate of each preset (least capable first), then the rest by size.

    Measuring every preset's cheapest candidate first means that a short trial time still finds
    the fastest feasible configuration before it looks at larger ones.
    """
    by_load = sorted(range(len(candidates)), key=lambda i: (_load(candidates[i]), i))
    first = []
    for preset in reversed(presets):
        mine = [i for i in by_load if candidates[i].preset == preset]
        first += mine[:1]
    return first + [i for i in by_load if i not in first]


def _load(c: BudgetCandidate) -> float:
    return float(np.prod(c.patch_size)) * c.batch_size


def _empty_cache(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
