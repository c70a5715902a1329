"""What the budget planner considers and how it judges: :class:`BudgetSearch`.

Example:
    >>> BudgetSearch.for_device("cuda").presets
    ('nnunet_3d_fullres', 'small_residual')
    >>> BudgetSearch(min_iterations=10).target_iterations
    3000
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from multitask_unet.config import Config
from multitask_unet.errors import ConfigError
from multitask_unet.training.budget.recipe import BUDGET_RECIPE, recipe_sections
from multitask_unet.training.config import AMP_MODES, AmpMode
from multitask_unet.training.precision import cpu_has_native_bf16

__all__ = ["BudgetSearch"]


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
        step_margin: Factor on measured step times for data loading and augmentation, which
            the trial steps leave out.
        max_trial_fraction: Share of the budget the trial steps may use.
        max_trial_seconds: Absolute cap on trial time (None: only the fraction).
        trial_steps: Timed steps per candidate (after one warm-up step).
        min_coverage: Share of the median case a patch must cover to count as enough context.
        coverage_tolerance: Without enough context: candidates within this share of the best
            coverage count as ties.
        lr: Initial learning rate of the SGD poly schedule (nnU-Net: 0.01).
        amp: Mixed precision of the trial steps and of the training the plan sets up (as
            ``TrainConfig.runtime.amp``); ``"auto"`` is bfloat16 on CPUs with native bfloat16
            (faster steps there: ``benchmarks/bench_cpu_bf16.py``), else the runtime's ``"auto"``.
        recipe: ``TrainConfig`` options by section that the plan prescribes for training
            (default :data:`BUDGET_RECIPE`), e.g. ``{"data": {"class_weights": "none"}}``; a
            config that sets one of them itself keeps its own.
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
        object.__setattr__(self, "recipe", recipe_sections(self.recipe, warn=True))

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
