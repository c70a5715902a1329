"""Budget-aware planning: choose spacing, patch, network, batch and schedule by measured steps.

:func:`plan_for_budget` turns a wall-clock budget (``"30m"``) on a device into a plan whose
training finishes within it. It starts from nnU-Net's target spacing and considers, for every
spacing factor (1x to 2.5x by default, coarsened as nnU-Net's ``3d_lowres``), a ladder of patch
sizes (nnU-Net's patch rule under a voxel cap: the shape of the median case at that spacing,
multiples of the network's ``size_divisor``), every model preset and batch size of the
:class:`BudgetSearch` (see :mod:`~multitask_unet.training.budget_candidates`). For each candidate it runs a few real training steps (forward,
backward and optimiser step on random tensors of the patch size, after one warm-up step) and
computes how many steps fit ``budget - trials - overhead``. The smallest candidate of each preset
is measured first (least capable preset first), then the others from the cheapest up; once one
is too slow (confirmed by a second measurement), larger ones of the same preset are skipped, and
measuring stops when ``max_trial_fraction`` of the budget (or ``max_trial_seconds``) is spent.
The candidates the choice is then made from are measured a second time, the faster measurement
counting, so that one passing hiccup of the machine cannot decide the plan.

**Score.** Feasible candidates reach at least ``min_iterations * 2 / batch_size`` steps (the
same number of patches as ``min_iterations`` steps at batch 2). Context first, then capacity,
then resolution: among feasible candidates whose patch covers at least ``min_coverage`` of the
median case, the most capable preset wins (the order of ``presets``; nnU-Net likewise fixes its
network and shrinks the patch, never the other way round); within it, the candidates reaching
``target_iterations`` steps, if any (more steps were worth more than a finer spacing below it),
at the finest spacing where it reaches that coverage, with its largest patch, then the larger
batch and more steps. When no
feasible candidate reaches ``min_coverage``, the largest coverage wins (candidates within
``coverage_tolerance`` of it ranked the same way). Every candidate, its measured step time and
the reason for the choice are stored in ``plan.budget``
(:class:`~multitask_unet.data.budget.PlanBudget`).

Without a budget nothing here runs: ``create_plan`` keeps nnU-Net's rules.

Example:
    >>> from multitask_unet.data.phantoms import write_phantom_dataset
    >>> from multitask_unet.data.readers import read_dataset
    >>> from multitask_unet.data.fingerprint import compute_fingerprint
    >>> import tempfile
    >>> root = write_phantom_dataset(tempfile.mkdtemp(), n_train=2, n_validation=0, n_test=0,
    ...                              shape=(16, 16, 16)).root
    >>> fp = compute_fingerprint(read_dataset(root).split("train").records, num_workers=1,
    ...                          intensity_samples=1000, progress=False)
    >>> search = BudgetSearch(presets=("tiny_plain",), patch_voxels=(8**3, 16**3),
    ...                       min_iterations=10)
    >>> plan = plan_for_budget(fp, "5m", search=search, measure=lambda m, p, b: 0.5)
    >>> plan.budget.preset, plan.budget.chosen.status, plan.budget.iterations >= 10
    ('tiny_plain', 'chosen', True)
    >>> budget_train_config(plan).time_budget_minutes == plan.budget.train_minutes
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from multitask_unet.config import Config
from multitask_unet.data.budget import BudgetCandidate, PlanBudget, parse_duration
from multitask_unet.data.fingerprint import DatasetFingerprint
from multitask_unet.data.planning import Plan, create_plan
from multitask_unet.errors import ConfigError
from multitask_unet.models import MultiTaskUNet
from multitask_unet.training.budget_candidates import candidate_grid
from multitask_unet.training.budget_trial import (
    StepTimer,
    device_description,
    measure_step_seconds,
)
from multitask_unet.training.builders import build_model_config
from multitask_unet.training.config import AMP_MODES, AmpMode, ModelSpec, TrainConfig
from multitask_unet.training.precision import cpu_has_native_bf16

__all__ = [
    "BUDGET_RECIPE",
    "MAX_LENGTHENING",
    "BudgetSearch",
    "budget_train_config",
    "plan_for_budget",
]

#: How far a budget run may lengthen its planned schedule when steps run faster than measured.
MAX_LENGTHENING = 1.5
#: The training recipe a budget plan prescribes besides network and schedule (``TrainConfig``
#: keys), as cross-validated on the pancreas study (docs/study/pancreas.md): AdamW, which
#: converges within the few thousand steps of a short budget where nnU-Net's SGD needs far more;
#: cases drawn uniformly; some patches of classified cases centred on the lesion.
BUDGET_RECIPE: dict[str, Any] = {
    "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 1e-4},
    "weights_mode": "none",
    "lesion_probability": 0.15,
}


@dataclass(frozen=True)
class BudgetSearch(Config):
    """The candidates :func:`plan_for_budget` considers and how it judges them.

    Attributes:
        presets: Model presets, most capable first (the order breaks ties).
        spacing_factors: Coarsening factors of nnU-Net's target spacing (its finest axis).
        patch_voxels: Voxel caps of the patch sizes to try.
        batch_sizes: Batch sizes to try.
        min_iterations: Fewest steps at batch 2 for a candidate to count (scaled by 2 / batch).
        target_iterations: Steps at batch 2 worth more than a finer spacing: within the chosen
            preset, candidates reaching them are preferred (None: no preference).
        overhead_fraction: Share of the budget set aside for preprocessing, validation and
            checkpoints.
        step_margin: Factor on measured step times for data loading and augmentation (on the
            2-core CPU box, real steps with augmentation took 0.8-1.07x the trial time).
        max_trial_fraction: Share of the budget the trial steps may use.
        max_trial_seconds: Absolute cap on trial time (None: only the fraction).
        trial_steps: Timed steps per candidate (after one warm-up step).
        min_coverage: Share of the median case a patch must cover to count as enough context.
        coverage_tolerance: Without enough context: candidates within this share of the best
            coverage count as ties.
        lr: Initial learning rate of the SGD poly schedule (nnU-Net: 0.01).
        amp: Mixed precision of the trial steps and of the training the plan sets up (as
            ``TrainConfig.amp``); ``"auto"`` is bfloat16 on CPUs with native bfloat16 (1.7x
            faster steps there), else ``TrainConfig``'s ``"auto"``.
        recipe: ``TrainConfig`` keys the plan prescribes for training (default
            :data:`BUDGET_RECIPE`); a config that sets one of them itself keeps its own.
    """

    presets: tuple[str, ...] = ("small_residual", "tiny_residual")
    spacing_factors: tuple[float, ...] = (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5)
    patch_voxels: tuple[int, ...] = (32**3, 40**3, 48**3, 56**3, 64**3, 80**3, 96**3, 128**3)
    batch_sizes: tuple[int, ...] = (2,)
    min_iterations: int = 2000
    target_iterations: int | None = 3000
    overhead_fraction: float = 0.15
    step_margin: float = 1.1
    max_trial_fraction: float = 0.05
    max_trial_seconds: float | None = None
    trial_steps: int = 2
    min_coverage: float = 0.7
    coverage_tolerance: float = 0.1
    lr: float = 0.01
    amp: AmpMode = "auto"
    recipe: dict[str, Any] = field(default_factory=lambda: dict(BUDGET_RECIPE))

    def __post_init__(self) -> None:
        for key in ("presets", "spacing_factors", "patch_voxels", "batch_sizes"):
            if not getattr(self, key):
                raise ConfigError(f"BudgetSearch.{key} needs at least one value")
        if min(self.spacing_factors) < 1 or min(self.patch_voxels) < 1:
            raise ConfigError(
                "spacing_factors must be >= 1 (nnU-Net's spacing or coarser) and patch_voxels "
                f"positive, got {self.spacing_factors} and {self.patch_voxels}"
            )
        if not 0 < self.min_coverage <= 1:
            raise ConfigError(f"min_coverage must be in (0, 1], got {self.min_coverage}")
        if min(self.batch_sizes) < 1 or self.min_iterations < 1 or self.trial_steps < 1:
            raise ConfigError("batch_sizes, min_iterations and trial_steps must be >= 1")
        if self.target_iterations is not None and self.target_iterations < self.min_iterations:
            raise ConfigError(
                f"target_iterations ({self.target_iterations}) must be at least min_iterations "
                f"({self.min_iterations}), or None"
            )
        if not 0 <= self.overhead_fraction < 1 or not 0 < self.max_trial_fraction < 1:
            raise ConfigError("overhead_fraction must be in [0, 1), max_trial_fraction in (0, 1)")
        if self.step_margin < 1:
            raise ConfigError(f"step_margin must be >= 1, got {self.step_margin}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        unknown = sorted(set(self.recipe) - set(TrainConfig().to_dict()))
        if unknown:
            raise ConfigError(
                f"BudgetSearch.recipe has keys that are no TrainConfig option: {unknown}; "
                "see docs/concepts/training.md for the keys"
            )
        TrainConfig().replace(**self.recipe)  # the values must make a valid config

    def resolved_amp(self, device: str | torch.device) -> AmpMode:
        """The precision trials and training use: ``"auto"`` is bf16 on CPUs with native bf16."""
        if self.amp == "auto" and torch.device(device).type == "cpu" and cpu_has_native_bf16():
            return "bf16"
        return self.amp

    @classmethod
    def for_device(cls, device: str | torch.device, **changes: Any) -> BudgetSearch:
        """The default search for ``device``, with ``changes`` applied.

        On the CPU: :class:`BudgetSearch`'s defaults (small networks, patches up to 128³). On
        CUDA: nnU-Net's 3d_fullres network first, then ``small_residual``, patches 64³ to 192³.

        Example:
            >>> BudgetSearch.for_device("cuda").presets
            ('nnunet_3d_fullres', 'small_residual')
        """
        if torch.device(device).type == "cuda":
            changes = {"presets": _CUDA_PRESETS, "patch_voxels": _CUDA_PATCH_VOXELS, **changes}
        return cls.from_dict(changes)


_CUDA_PRESETS = ("nnunet_3d_fullres", "small_residual")
_CUDA_PATCH_VOXELS = (64**3, 96**3, 128**3, 160**3, 192**3)


def plan_for_budget(
    fingerprint: DatasetFingerprint,
    budget: str | float,
    *,
    device: str = "cpu",
    search: BudgetSearch | None = None,
    head: str | None = "panda",
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
    models = {
        name: build_model_config(
            ModelSpec(preset=name, head=head),
            in_channels=fingerprint.num_channels,
            seg_classes=max(labels) + 1,
            case_classes=case_classes,
        )
        for name in search.presets
    }
    divisors = {name: MultiTaskUNet(cfg).size_divisor for name, cfg in models.items()}
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
            # second measurement, the faster one counting (a passing hiccup of the machine once
            # made small_residual measure 0.93 s per step instead of 0.58 s).
            confirmed.add(key)
            again = float(timer(models[c.preset], c.patch_size, c.batch_size))
            step = measured[key] = min(step, again)
            iterations = _steps_that_fit(seconds - overhead, started, step, search.step_margin)
        results[i] = _judged(c, step, iterations, needed)
        if results[i].status == "too_slow":
            too_slow_load[c.preset] = min(_load(c), too_slow_load.get(c.preset, math.inf))

    # The candidates the choice is among are measured once more, the faster measurement
    # counting: a passing hiccup once made 32 x 48 x 64 at 2.25x measure 0.61 s per step
    # instead of 0.35 s and fall below the target steps, so a finer spacing won.
    ranked = [results[i] for i in range(len(candidates))]
    again = [k for k in _contending_keys(ranked, search) if k not in confirmed]
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
    return _finish(
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


def budget_train_config(plan: Plan, config: TrainConfig | None = None) -> TrainConfig:
    """``config`` with the budget plan's network, schedule, recipe and time budget applied.

    The result trains ``plan.budget.epochs`` x ``plan.budget.iterations_per_epoch`` steps of the
    chosen preset at the plan's patch and batch size and finishes within
    ``plan.budget.train_seconds`` (``time_budget_minutes``), shortening its schedule if the
    machine turns out slower than the trial steps said. ``epochs`` is set
    :data:`MAX_LENGTHENING` times higher, as a cap: when training runs faster than the trial
    steps said, the trainer's refit lengthens the schedule into the unused time instead of
    finishing early. The plan's recipe (``plan.budget.recipe``, e.g. :data:`BUDGET_RECIPE`)
    fills every key that ``config`` leaves at :class:`TrainConfig`'s default; a key the config
    sets itself is kept. It does not validate during training (``val_every=0``):
    sliding-window validation of whole cases at a small patch can take longer than the training
    itself; evaluate the final checkpoint with ``predict`` and ``evaluate``. An SGD optimiser
    takes the plan's learning rate. Mixed precision (``amp``) is the trial steps', so that
    training runs as fast as they did.

    Raises:
        ConfigError: The plan has no budget section.
    """
    if plan.budget is None:
        raise ConfigError("this plan was not made with a budget; plan again with --budget")
    b = plan.budget
    config = config or TrainConfig()
    defaults = TrainConfig().to_dict()
    current = config.to_dict()
    recipe = {k: v for k, v in b.recipe.items() if current.get(k) == defaults.get(k)}
    config = config.replace(**recipe)
    optimizer = config.optimizer.to_dict()
    if optimizer["name"] == "sgd" and current["optimizer"] == defaults["optimizer"]:
        optimizer["lr"] = b.lr  # the plan's learning rate is SGD's
    return config.replace(
        model={**config.model.to_dict(), "preset": b.preset},
        optimizer=optimizer,
        epochs=math.ceil(b.epochs * MAX_LENGTHENING),  # a cap; time_budget_minutes fits it
        iterations_per_epoch=b.iterations_per_epoch,
        patch_size=list(plan.patch_size),
        batch_size=plan.batch_size,
        val_every=0,
        amp=b.amp,
        time_budget_minutes=b.train_minutes,
        device=b.device if config.device == "auto" else config.device,
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


# -- choice ----------------------------------------------------------------------------------------
def _contenders(
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


def _contending_keys(
    candidates: Sequence[BudgetCandidate], search: BudgetSearch
) -> set[tuple[str, tuple[int, ...], int]]:
    """The measured (preset, patch, batch) of the candidates the choice is made from."""
    pool = _contenders(candidates, search)[2]
    return {
        (candidates[i].preset, candidates[i].patch_size, candidates[i].batch_size) for i in pool
    }


def _finish(
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
    enough, competing, pool = _contenders(candidates, search)
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


def _empty_cache(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
