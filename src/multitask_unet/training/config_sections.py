"""The sections of a :class:`~multitask_unet.training.TrainConfig`: data, optimization, runtime.

Every option has nnU-Net's default where nnU-Net has one (SGD 0.01 with Nesterov momentum
0.99, weight decay 3e-5, poly decay 0.9, gradient clipping at 12, 250 iterations per epoch,
a third of the patches on foreground). ``docs/concepts/training.md`` documents every key.

Example:
    >>> RuntimeConfig(time_limit_minutes=30.0).fit_minutes, RuntimeConfig().stop_minutes
    (30.0, None)
    >>> DataConfig.from_dict({"patch_size": [32, 64, 64]}).patch_size
    (32, 64, 64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from multitask_unet.config import Config, check_seed
from multitask_unet.data.sampling.config import DataConfig
from multitask_unet.errors import ConfigError
from multitask_unet.losses import MultiTaskLossConfig
from multitask_unet.training.compiling import COMPILE_MODES, CompileMode

__all__ = [
    "AMP_MODES",
    "ON_TIME_LIMIT",
    "AmpMode",
    "DataConfig",
    "OnTimeLimit",
    "OptimizationConfig",
    "OptimizerConfig",
    "RuntimeConfig",
]

AmpMode = Literal["auto", "bf16", "fp16", "off"]
AMP_MODES: tuple[AmpMode, ...] = ("auto", "bf16", "fp16", "off")
OnTimeLimit = Literal["fit", "stop"]
ON_TIME_LIMIT: tuple[OnTimeLimit, ...] = ("fit", "stop")


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
class OptimizationConfig(Config):
    """What is optimised and for how long.

    Attributes:
        optimizer: Optimiser and schedule (:class:`OptimizerConfig`).
        loss: The loss terms; None gives ``seg`` Dice+CE (deep supervision) + 0.3 x each
            head's own loss (cross-entropy, or one-vs-rest BCE for a head whose ``loss_kind``
            is ``"bce_ovr"``).
        epochs: Training epochs.
        iterations_per_epoch: Optimiser steps per epoch (nnU-Net: 250).
    """

    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    loss: MultiTaskLossConfig | None = None
    epochs: int = 1000
    iterations_per_epoch: int = 250

    def __post_init__(self) -> None:
        for key in ("epochs", "iterations_per_epoch"):
            if getattr(self, key) < 1:
                raise ConfigError(
                    f"optimization.{key} must be at least 1, got {getattr(self, key)}"
                )


@dataclass(frozen=True)
class RuntimeConfig(Config):
    """Where and how the run executes: device, precision, seeds, validation, time limit.

    Attributes:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        amp: Mixed precision: ``"auto"`` (CUDA: bf16 where supported, else fp16; CPU: float32),
            ``"bf16"`` (also on the CPU, native with AVX512-BF16 or AMX), ``"fp16"`` (CUDA) or
            ``"off"`` (see :mod:`~multitask_unet.training.precision`).
        compile: ``torch.compile`` the training forward pass: ``"auto"`` (on CUDA, as nnU-Net
            does by default; eager on the CPU), ``"off"``, or a ``torch.compile`` mode
            (``"default"``, ``"reduce-overhead"``, ``"max-autotune"``); see
            :mod:`~multitask_unet.training.compiling`.
        seed: Seed of weights, case draws, patches and augmentation.
        deterministic: Ask torch for deterministic kernels (slower on GPU).
        progress: Show a progress bar.
        val_every: Validate on whole cases every N epochs (and after the last); 0 never.
        val_overlap: Sliding-window overlap during validation.
        time_limit_minutes: Wall-clock limit of the run (counted from the start of ``fit``);
            None trains every epoch. What happens at the limit is ``on_time_limit``'s.
        on_time_limit: ``"fit"``: after every epoch, when the remaining epochs would not fit
            at the mean epoch time so far, ``epochs`` is shortened and the poly schedule with
            it, so that the learning rate still decays to its end (a budget plan sets it).
            ``"stop"``: stop after the epoch in which the limit passed; the checkpoint is
            complete, so ``--resume`` continues.
    """

    device: str = "auto"
    amp: AmpMode = "auto"
    compile: CompileMode = "auto"
    seed: int = 0
    deterministic: bool = False
    progress: bool = True
    val_every: int = 10
    val_overlap: float = 0.5
    time_limit_minutes: float | None = None
    on_time_limit: OnTimeLimit = "fit"

    def __post_init__(self) -> None:
        if self.val_every < 0:
            raise ConfigError(f"runtime.val_every must be >= 0, got {self.val_every}")
        check_seed(self.seed, "runtime.seed")
        if not 0 <= self.val_overlap < 1:
            raise ConfigError(f"runtime.val_overlap must be in [0, 1), got {self.val_overlap}")
        if self.amp not in AMP_MODES:
            raise ConfigError(
                f"runtime.amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}"
            )
        if self.compile not in COMPILE_MODES:
            raise ConfigError(
                f"runtime.compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}"
            )
        if self.on_time_limit not in ON_TIME_LIMIT:
            raise ConfigError(
                f"runtime.on_time_limit must be 'fit' or 'stop', got {self.on_time_limit!r}"
            )
        limit = self.time_limit_minutes
        if limit is not None and not (limit > 0 or (limit == 0 and self.on_time_limit == "stop")):
            raise ConfigError(f"runtime.time_limit_minutes must be positive (or null), got {limit}")

    @property
    def fit_minutes(self) -> float | None:
        """The limit the schedule is fitted into (``on_time_limit: fit``), else None."""
        return self.time_limit_minutes if self.on_time_limit == "fit" else None

    @property
    def stop_minutes(self) -> float | None:
        """The limit after which training stops (``on_time_limit: stop``), else None."""
        return self.time_limit_minutes if self.on_time_limit == "stop" else None
