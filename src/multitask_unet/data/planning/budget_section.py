"""The ``budget`` section of a plan: what a wall-clock budget chose, and why.

A budget-aware plan (:func:`multitask_unet.training.budget.plan_for_budget`) measures a few
training steps of every candidate (target spacing x patch size x network x batch size) and keeps
all of them, with their measured step times, in a :class:`PlanBudget` stored in
``Plan.budget``. These are pure records (no torch): the data layer saves and loads them with the
plan; the planner that fills them lives in :mod:`multitask_unet.training.budget`.

Example:
    >>> parse_duration("30m"), parse_duration("1h30m"), parse_duration("45s"), parse_duration(90)
    (1800.0, 5400.0, 45.0, 90.0)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from multitask_unet.config import Config
from multitask_unet.errors import ConfigError

__all__ = ["BudgetCandidate", "CandidateStatus", "PlanBudget", "parse_duration"]

CandidateStatus = Literal["chosen", "feasible", "too_slow", "skipped"]

_UNITS = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(h|min|m|s)")


def parse_duration(value: str | float) -> float:
    """Seconds of a duration: a number of seconds, or text such as ``"30m"``, ``"1h30m"``, ``"90s"``.

    Raises:
        ConfigError: The text is not a positive duration with units ``h``, ``m`` (``min``), ``s``.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ConfigError(
                f"cannot read the duration {value!r}; write it with units, e.g. '30m', '1h30m', "
                "'90s' or '2h'"
            )
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"a budget must be a positive duration, got {value!r}")
    return seconds


@dataclass(frozen=True)
class BudgetCandidate(Config):
    """One configuration the budget planner considered.

    Attributes:
        spacing_factor: In-plane spacing as a multiple of nnU-Net's target spacing.
        target_spacing: Target spacing ``(D, H, W)`` in mm.
        patch_size: Training patch ``(D, H, W)`` in voxels.
        preset: Model preset (width and depth), a name from ``multitask-unet models``.
        batch_size: Patches per step.
        field_of_view_mm: Patch extent ``(D, H, W)`` in mm.
        coverage: Share of the median case (at that spacing) one patch covers, in ``(0, 1]``.
        step_seconds: Measured seconds per training step (forward, backward, optimiser step), or
            None when not measured.
        iterations: Training steps that fit the budget at that step time (0 when not measured).
        status: ``"chosen"``, ``"feasible"`` (enough iterations, not the best score),
            ``"too_slow"`` (fewer than the minimum iterations) or ``"skipped"`` (not measured).
        note: Why it has that status, in words.
    """

    spacing_factor: float
    target_spacing: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    preset: str
    batch_size: int
    field_of_view_mm: tuple[float, float, float]
    coverage: float
    step_seconds: float | None = None
    iterations: int = 0
    status: CandidateStatus = "skipped"
    note: str = ""


@dataclass(frozen=True)
class PlanBudget(Config):
    """What a wall-clock budget decided; ``Plan.budget`` of a budget-aware plan.

    Attributes:
        seconds: The whole budget (planning trials, preprocessing, training, validation).
        device: Device the trial steps ran on (``"cpu"``, ``"cuda"``, ...).
        device_name: The processor or GPU, and the CPU thread count.
        trial_seconds: Wall-clock time the trial steps took.
        overhead_seconds: Time set aside for preprocessing, validation and checkpoints.
        train_seconds: Time left for training steps: ``seconds - trial - overhead``.
        min_iterations: Fewest training steps a candidate needs to count as feasible.
        target_iterations: Steps preferred to a finer spacing within the chosen preset (None:
            no preference).
        step_margin: Factor applied to measured step times for data loading and augmentation.
        preset: The chosen model preset.
        iterations: Planned training steps (``epochs * iterations_per_epoch``).
        epochs: Planned epochs (the poly schedule's length).
        iterations_per_epoch: Steps per epoch.
        lr: Initial learning rate (SGD, poly decay to 0 over ``epochs``).
        amp: Mixed precision of the trial steps, which training uses too (``runtime.amp``).
        recipe: ``TrainConfig`` options by section that training takes from the plan besides
            network and schedule, e.g. ``{"data": {"class_weights": "none"}}`` (optimiser,
            sampling; see ``multitask_unet.training.budget.BUDGET_RECIPE``); plans written
            before the sections hold flat keys, read as their sections.
        reason: Why the chosen candidate won, in words.
        candidates: Every candidate, with its measured step time and status.
    """

    seconds: float
    device: str
    device_name: str
    trial_seconds: float
    overhead_seconds: float
    train_seconds: float
    min_iterations: int
    step_margin: float
    preset: str
    iterations: int
    epochs: int
    iterations_per_epoch: int
    lr: float
    reason: str
    candidates: tuple[BudgetCandidate, ...] = ()
    amp: str = "auto"
    target_iterations: int | None = None
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen(self) -> BudgetCandidate:
        """The chosen candidate."""
        for candidate in self.candidates:
            if candidate.status == "chosen":
                return candidate
        raise ConfigError("this budget section lists no chosen candidate; re-run the planner")

    @property
    def train_minutes(self) -> float:
        """``train_seconds / 60``: the wall-clock budget ``train`` finishes its schedule within."""
        return self.train_seconds / 60.0
