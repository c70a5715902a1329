"""The budget planner's choice among measured candidates, and the plan it becomes.

Context first, then capacity, then steps, then resolution (see
:mod:`multitask_unet.training.budget`): :func:`contenders` are the feasible candidates the
choice is made from, :func:`finish` picks one and builds the :class:`Plan` with its
``budget`` section.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from multitask_unet.data.planning import DatasetFingerprint, Plan, create_plan
from multitask_unet.data.planning.budget_section import BudgetCandidate, PlanBudget
from multitask_unet.errors import ConfigError
from multitask_unet.training.budget.search import BudgetSearch
from multitask_unet.training.budget.trial import device_description

__all__ = ["contenders", "contending_keys", "finish"]


def contenders(
    candidates: Sequence[BudgetCandidate], search: BudgetSearch
) -> tuple[list[int], int, list[int]]:
    """Feasible candidates with enough context, how many compete, and those of the best preset.

    Returns the indices of the feasible candidates covering ``min_coverage`` of the median case,
    the number competing on context (those, or without any, the ones within
    ``coverage_tolerance`` of the largest coverage) and the indices of the competing ones of the
    most capable preset among them, which the choice is made from.
    """
    feasible = [i for i, c in enumerate(candidates) if c.status in ("feasible", "chosen")]
    if not feasible:
        return [], 0, []
    enough = [i for i in feasible if candidates[i].coverage >= search.min_coverage]
    if enough:
        pool = enough
    else:
        best_cover = max(candidates[i].coverage for i in feasible)
        pool = [
            i
            for i in feasible
            if candidates[i].coverage >= best_cover * (1 - search.coverage_tolerance)
        ]
    rank = {name: r for r, name in enumerate(search.presets)}
    preset = min((candidates[i].preset for i in pool), key=rank.__getitem__)
    return enough, len(pool), [i for i in pool if candidates[i].preset == preset]


def contending_keys(
    candidates: Sequence[BudgetCandidate], search: BudgetSearch
) -> set[tuple[str, tuple[int, ...], int]]:
    """The measured (preset, patch, batch) of the candidates the choice is made from."""
    pool = contenders(candidates, search)[2]
    return {
        (candidates[i].preset, candidates[i].patch_size, candidates[i].batch_size) for i in pool
    }


def finish(
    fingerprint: DatasetFingerprint,
    candidates: list[BudgetCandidate],
    search: BudgetSearch,
    *,
    seconds: float,
    device: str,
    overhead: float,
    trial_seconds: float,
    divisors: dict[str, tuple[int, int, int]],
    labels: tuple[int, ...],
    normalization: str | Sequence[str],
) -> Plan:
    """Pick the candidate to train and build its plan with the ``budget`` section.

    Among the :func:`contenders`, the most capable preset wins, then (within it) candidates
    reaching ``search.target_iterations``, then the finest spacing, the largest coverage, batch
    and number of steps. Its steps are what the training time left after ``overhead`` and
    ``trial_seconds`` allows; the chosen entry of ``candidates`` is marked ``"chosen"`` with
    the reason.

    Args:
        fingerprint: The dataset's fingerprint the plan is made from.
        candidates: The measured candidates (the chosen one is replaced in place).
        search: The search's settings.
        seconds: The whole budget.
        device: The device trained on, e.g. ``"cuda"``.
        overhead: Seconds of the budget set aside for preprocessing, validation and checkpoints.
        trial_seconds: Seconds the trials took.
        divisors: Size divisor of each preset's network.
        labels: Segmentation labels of the plan.
        normalization: Intensity normalisation scheme (one, or one per channel).

    Returns:
        The plan of the chosen candidate.

    Raises:
        ConfigError: If no candidate is feasible (none reaches ``search.min_iterations``).
    """
    feasible = [i for i, c in enumerate(candidates) if c.status == "feasible"]
    if not feasible:
        timed = [c for c in candidates if c.step_seconds is not None]
        fastest = min(timed, key=lambda c: c.step_seconds or 0.0) if timed else None
        detail = (
            f"the fastest measured candidate ({fastest.preset}, patch {fastest.patch_size}, batch "
            f"{fastest.batch_size}) takes {fastest.step_seconds} s per step"
            if fastest
            else "no candidate could be measured"
        )
        raise ConfigError(
            f"no candidate reaches {search.min_iterations} steps within {seconds:.0f} s on "
            f"{device}: {detail}; give a larger budget, smaller patch_voxels, a smaller preset or "
            "a lower min_iterations"
        )
    enough, competing, pool = contenders(candidates, search)
    # Within the most capable preset, steps up to the target before a finer spacing.
    target = search.target_iterations
    reaching = [
        i
        for i in pool
        if target and candidates[i].iterations >= math.ceil(target * 2 / candidates[i].batch_size)
    ]
    if reaching:
        pool = reaching
    pick = min(
        pool,
        key=lambda i: (
            candidates[i].spacing_factor,
            -candidates[i].coverage,
            -candidates[i].batch_size,
            -candidates[i].iterations,
        ),
    )
    train_seconds = seconds - overhead - trial_seconds
    step = (candidates[pick].step_seconds or 0.0) * search.step_margin
    chosen = candidates[pick].replace(iterations=int(train_seconds / step) if step else 0)
    context = (
        f"{len(enough)} of the {len(feasible)} candidate(s) reaching {search.min_iterations} "
        f"steps (at batch 2) cover at least {search.min_coverage:.0%} of the median case"
        if enough
        else f"none of the {len(feasible)} candidate(s) reaching {search.min_iterations} steps "
        f"(at batch 2) covers {search.min_coverage:.0%} of the median case; the {competing} "
        f"within {search.coverage_tolerance:.0%} of the largest coverage compete"
    )
    if target is None:
        steps = ""
    elif reaching:
        steps = f", reaching the target of {target} steps,"
    else:
        steps = f" (none reaches the target of {target} steps)"
    reason = (
        f"{context}; among them the most capable preset ({chosen.preset}){steps} at the finest "
        "spacing "
        f"({chosen.spacing_factor:g}x, {_fmt(chosen.target_spacing)} mm), the largest patch "
        f"({_fmt(chosen.patch_size)}, {chosen.coverage:.0%} coverage, field of view "
        f"{_fmt(chosen.field_of_view_mm)} mm)"
    )
    candidates[pick] = chosen.replace(status="chosen", note=f"{chosen.note}; {reason}")
    # About 20 epochs (each epoch costs a loader start, a checkpoint and the curves), with
    # 10 to 250 (nnU-Net's) steps per epoch.
    per_epoch = max(1, min(250, chosen.iterations, max(10, chosen.iterations // 20)))
    epochs = max(1, chosen.iterations // per_epoch)
    base = create_plan(
        fingerprint,
        size_divisor=divisors[chosen.preset],
        labels=labels,
        normalization=normalization,
        target_spacing=chosen.target_spacing,
    )
    section = PlanBudget(
        seconds=seconds,
        device=device,
        device_name=device_description(device),
        trial_seconds=round(trial_seconds, 2),
        overhead_seconds=round(overhead, 2),
        train_seconds=round(train_seconds, 2),
        min_iterations=search.min_iterations,
        target_iterations=search.target_iterations,
        step_margin=search.step_margin,
        preset=chosen.preset,
        iterations=epochs * per_epoch,
        epochs=epochs,
        iterations_per_epoch=per_epoch,
        lr=search.lr,
        amp=search.amp,
        recipe=dict(search.recipe),
        reason=reason,
        candidates=tuple(candidates),
    )
    return base.replace(
        patch_size=list(chosen.patch_size), batch_size=chosen.batch_size, budget=section.to_dict()
    )


def _fmt(values: Sequence[float]) -> str:
    return " x ".join(f"{v:g}" for v in values)
