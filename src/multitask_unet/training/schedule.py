"""Optimiser and learning-rate schedule: nnU-Net's SGD with poly decay, or AdamW.

nnU-Net (``nnUNetTrainer.configure_optimizers``) uses
``SGD(lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)`` and sets the learning rate at
the start of every epoch ``e`` to ``lr * (1 - e / epochs) ** 0.9`` (``PolyLRScheduler``).

Example:
    >>> import torch
    >>> from multitask_unet.training.config import OptimizerConfig
    >>> params = [torch.nn.Parameter(torch.zeros(2))]
    >>> optimizer = build_optimizer(params, OptimizerConfig())
    >>> scheduler = PolyLR(optimizer, epochs=10)
    >>> scheduler.step(5)
    >>> round(optimizer.param_groups[0]["lr"], 6)
    0.005359
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LRScheduler

from multitask_unet.errors import ConfigError
from multitask_unet.training.config import OptimizerConfig

__all__ = ["PolyLR", "build_optimizer", "poly_lr"]


def poly_lr(initial_lr: float, epoch: int, epochs: int, exponent: float = 0.9) -> float:
    """nnU-Net's poly learning rate ``initial_lr * (1 - epoch / epochs) ** exponent``."""
    return initial_lr * (1 - epoch / epochs) ** exponent


class PolyLR(LRScheduler):
    """Poly decay by epoch, as nnU-Net's ``PolyLRScheduler``; its state dict holds only numbers.

    Call ``step(epoch)`` at the start of each epoch (or ``step()`` to advance by one).

    Args:
        optimizer: The optimiser whose groups' ``initial_lr`` decays.
        epochs: Total epochs (``max_steps`` in nnU-Net).
        exponent: The poly exponent (0.9).
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, epochs: int, *, exponent: float = 0.9
    ) -> None:
        if epochs < 1:
            raise ConfigError(f"PolyLR needs epochs >= 1, got {epochs}")
        self.epochs = int(epochs)
        self.exponent = float(exponent)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        epoch = min(max(self.last_epoch, 0), self.epochs)
        return [poly_lr(base, epoch, self.epochs, self.exponent) for base in self.base_lrs]

    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        """Set the learning rate of ``epoch`` (the next epoch when None)."""
        self._step_count += 1
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = values


def build_optimizer(
    params: Iterable[torch.nn.Parameter], config: OptimizerConfig, *, fused: bool = False
) -> torch.optim.Optimizer:
    """The optimiser that ``config`` names (``"sgd"`` as nnU-Net, or ``"adamw"``).

    Args:
        params: The parameters to optimise.
        config: Optimiser name and hyper-parameters.
        fused: Use torch's fused kernels (one kernel for all parameters; the Trainer sets it on
            CUDA). The update is the same; only its rounding may differ.
    """
    params = list(params)
    kernels = {"fused": True} if fused else {}
    if config.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
            **kernels,
        )
    return torch.optim.AdamW(
        params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, **kernels
    )
