"""The training config: one frozen dataclass that round-trips YAML, as ``train --config`` reads it.

Every option has nnU-Net's default where nnU-Net has one (SGD 0.01 with Nesterov momentum
0.99, weight decay 3e-5, poly decay 0.9, gradient clipping at 12, 250 iterations per epoch,
a third of the patches on foreground). The patch and batch size come from the plan unless set.
``docs/concepts/training.md`` documents every key.

Example:
    >>> config = TrainConfig.from_yaml('''
    ... model: {preset: tiny_residual, head: panda}
    ... epochs: 2
    ... iterations_per_epoch: 5
    ... optimizer: {name: adamw, lr: 0.001}
    ... ''')
    >>> config.optimizer.name, config.optimizer.weight_decay, config.model.preset
    ('adamw', 3e-05, 'tiny_residual')
    >>> TrainConfig.from_yaml(config.to_yaml()) == config
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from multitask_unet.config import Config
from multitask_unet.data.augmentation import AugmentationConfig
from multitask_unet.data.sampling import WEIGHTS_MODES, WeightsMode
from multitask_unet.errors import ConfigError
from multitask_unet.losses import MultiTaskLossConfig
from multitask_unet.training.compiling import COMPILE_MODES, CompileMode

__all__ = ["AMP_MODES", "AmpMode", "ModelSpec", "OptimizerConfig", "TrainConfig"]

AmpMode = Literal["auto", "bf16", "fp16", "off"]
AMP_MODES: tuple[AmpMode, ...] = ("auto", "bf16", "fp16", "off")


@dataclass(frozen=True)
class ModelSpec(Config):
    """Which network to train: a preset, optionally with another encoder and a classification head.

    Attributes:
        preset: A name from ``multitask-unet models`` (``create_model``'s presets).
        encoder: Replace the preset's encoder: a registered name (``"plain"``, ``"residual"``,
            ``"timm3d"``) or a dict with ``name`` and options; None keeps the preset's.
        head: Classification head for the output ``"cls"`` (``"panda"``, ``"ovr"``,
            ``"attention"``, ...); None trains segmentation only. ``num_classes`` is set from the
            dataset's classes.
        head_options: Options of the head, e.g. ``{"hidden": 64, "dropout": 0.1}``.
        deep_supervision: Deep-supervision outputs and loss (nnU-Net: on).
    """

    preset: str = "small_residual"
    encoder: str | dict[str, Any] | None = None
    head: str | None = "panda"
    head_options: dict[str, Any] = field(default_factory=dict)
    deep_supervision: bool = True


@dataclass(frozen=True)
class OptimizerConfig(Config):
    """Optimiser and learning-rate schedule.

    Attributes:
        name: ``"sgd"`` (nnU-Net's) or ``"adamw"``.
        lr: Initial learning rate (nnU-Net: 0.01 for SGD; AdamW typically 1e-3 to 3e-4).
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        weight_decay: Weight decay (SGD: L2 added to the gradient; AdamW: decoupled).
        betas: AdamW's betas.
        poly_exponent: ``lr_e = lr * (1 - e / epochs) ** poly_exponent`` at epoch ``e``.
        grad_clip: Maximum gradient norm (0 turns clipping off).
    """

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.99
    nesterov: bool = True
    weight_decay: float = 3e-5
    betas: tuple[float, float] = (0.9, 0.999)
    poly_exponent: float = 0.9
    grad_clip: float = 12.0

    def __post_init__(self) -> None:
        if self.name not in ("sgd", "adamw"):
            raise ConfigError(f"optimizer.name must be 'sgd' or 'adamw', got {self.name!r}")
        for key in ("lr", "weight_decay", "poly_exponent", "grad_clip"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"optimizer.{key} must be a finite number >= 0, got {value!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"optimizer.momentum must be in [0, 1), got {self.momentum}")


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything a training run needs besides the data; saved in every checkpoint.

    Attributes:
        model: The network (:class:`ModelSpec`).
        loss: The loss terms; None gives ``seg`` Dice+CE (deep supervision) + 0.3 x ``cls``
            cross-entropy, or one-vs-rest BCE for a head whose ``loss_kind`` is ``"bce_ovr"``.
        optimizer: Optimiser and schedule (:class:`OptimizerConfig`).
        epochs: Training epochs.
        iterations_per_epoch: Optimiser steps per epoch (nnU-Net: 250).
        batch_size: Patches per step over all processes (None: the plan's). Under ``torchrun``
            each of N processes takes ``batch_size / N``.
        patch_size: Patch ``(D, H, W)`` (None: the plan's); divisible by the network's
            ``size_divisor``.
        foreground_probability: Share of patches centred on a foreground voxel (nnU-Net: 1/3).
        lesion_probability: Share of patches of labelled cases centred on the lesion label.
        lesion_label: Segmentation label of the lesion (for ``lesion_probability``).
        weights_mode: Case sampling: ``"balanced"`` (every class equally often),
            ``"inverse_sqrt"`` or ``"none"``.
        max_oversampling: No class is drawn more than this many times its natural frequency,
            so that a class of one or two cases cannot take most draws from the others (see
            ``docs/concepts/sampling.md``); None lifts the cap.
        augmentation: Augmentation strengths; None is nnU-Net's recipe for the patch size.
        augment: False turns augmentation off entirely.
        num_workers: Data-loading worker processes per training process.
        val_every: Validate on whole cases every N epochs (and after the last); 0 never.
        val_overlap: Sliding-window overlap during validation.
        amp: Mixed precision: ``"auto"`` (CUDA: bf16 where supported, else fp16; CPU: float32),
            ``"bf16"`` (also on the CPU, native with AVX512-BF16 or AMX), ``"fp16"`` (CUDA) or
            ``"off"`` (see :mod:`~multitask_unet.training.precision`).
        compile: ``torch.compile`` the training forward pass: ``"auto"`` (on CUDA, as nnU-Net
            does by default; eager on the CPU), ``"off"``, or a ``torch.compile`` mode
            (``"default"``, ``"reduce-overhead"``, ``"max-autotune"``); see
            :mod:`~multitask_unet.training.compiling`.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed: Seed of weights, case draws, patches and augmentation.
        deterministic: Ask torch for deterministic kernels (slower on GPU).
        progress: Show a progress bar.
        time_limit_minutes: Stop after the epoch during which this much time has passed (the
            checkpoint is complete, so ``--resume`` continues); None trains every epoch.
        time_budget_minutes: Finish the whole schedule within this wall-clock time (counted from
            the start of ``fit``): after every epoch, when the remaining epochs would not fit at
            the mean epoch time so far, ``epochs`` is shortened and the poly schedule with it, so
            that the learning rate still decays to its end. None keeps ``epochs``. A budget
            plan (``plan --budget``) sets it.
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    loss: MultiTaskLossConfig | None = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    epochs: int = 1000
    iterations_per_epoch: int = 250
    batch_size: int | None = None
    patch_size: tuple[int, int, int] | None = None
    foreground_probability: float = 1 / 3
    lesion_probability: float = 0.0
    lesion_label: int = 2
    weights_mode: WeightsMode = "balanced"
    max_oversampling: float | None = 3.0
    augmentation: AugmentationConfig | None = None
    augment: bool = True
    num_workers: int = 0
    val_every: int = 10
    val_overlap: float = 0.5
    amp: AmpMode = "auto"
    compile: CompileMode = "auto"
    device: str = "auto"
    seed: int = 0
    deterministic: bool = False
    progress: bool = True
    time_limit_minutes: float | None = None
    time_budget_minutes: float | None = None

    def __post_init__(self) -> None:
        for key in ("epochs", "iterations_per_epoch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1 (or null), got {self.batch_size}")
        if self.patch_size is not None and min(self.patch_size) < 1:
            raise ConfigError(f"patch_size must be three positive sizes, got {self.patch_size}")
        for key in ("foreground_probability", "lesion_probability"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        if self.weights_mode not in WEIGHTS_MODES:
            raise ConfigError(
                f"weights_mode must be one of {', '.join(WEIGHTS_MODES)}, got {self.weights_mode!r}"
            )
        if self.max_oversampling is not None and not self.max_oversampling >= 1:
            raise ConfigError(
                f"max_oversampling must be at least 1 (or null for no cap), got "
                f"{self.max_oversampling}"
            )
        if self.num_workers < 0 or self.val_every < 0:
            raise ConfigError("num_workers and val_every must be >= 0")
        if not 0 <= self.val_overlap < 1:
            raise ConfigError(f"val_overlap must be in [0, 1), got {self.val_overlap}")
        if self.time_budget_minutes is not None and not self.time_budget_minutes > 0:
            raise ConfigError(
                f"time_budget_minutes must be positive (or null), got {self.time_budget_minutes}"
            )
        if self.amp not in AMP_MODES:
            raise ConfigError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.compile not in COMPILE_MODES:
            raise ConfigError(
                f"compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}"
            )

    def resumable_dict(self) -> dict[str, Any]:
        """The options that must not change when a run is resumed (all but the cosmetic ones)."""
        out = self.to_dict()
        cosmetic = (
            "epochs",
            "compile",
            "device",
            "progress",
            "num_workers",
            "val_every",
            "time_limit_minutes",
        )
        for key in cosmetic:
            out.pop(key)
        return out
