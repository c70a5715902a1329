"""The loss registry and the conventions every multitask_unet loss follows.

Every loss is an ``nn.Module`` called as ``loss(prediction, target, *, valid=None)`` and returns a
0-dim float32 tensor:

- ``prediction`` holds logits (activations live in the losses);
- ``valid`` is an optional bool tensor ``(B,)`` marking the samples that have a target for this
  loss. Invalid samples contribute nothing, and a batch without any valid sample gives a zero loss
  that is still connected to the graph (so ``backward()`` and DDP work), never NaN.
- ``lower_bound`` (a float attribute) is the smallest value the loss can take, e.g. ``-1`` for
  nnU-Net's Dice+CE, whose Dice term is negative. Uncertainty weighting needs it.

Losses register under a short name in :data:`LOSSES` so that configs can name them.

Example:
    >>> from multitask_unet.losses import LOSSES, create_loss
    >>> LOSSES.list()
    ['bce_ovr', 'ce', 'dice', 'dice_ce', 'focal']
    >>> create_loss("focal", gamma=2.0)
    FocalLoss(gamma=2.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.registry import Registry

__all__ = ["LOSSES", "create_loss"]

LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")
"""Every registered loss factory, by name (``"dice_ce"``, ``"ce"``, ``"focal"``, ...)."""


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss registered as ``name`` with keyword options ``kwargs``.

    Args:
        name: A name from ``LOSSES.list()``, e.g. ``"dice_ce"``, ``"ce"``, ``"focal"``, ``"bce_ovr"``.
        **kwargs: Options of that loss (see its class).

    Raises:
        RegistryError: ``name`` is unknown (the message lists close matches).
        ConfigError: an option is not accepted by that loss.
    """
    factory = LOSSES.get(name)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"loss {name!r}: {exc}") from None


# -- helpers shared by the loss modules (private) -----------------------------------------------


def check_valid(valid: torch.Tensor | None, batch: int, where: str) -> torch.Tensor | None:
    """Check a per-sample validity tensor and return it as a bool ``(B,)`` tensor."""
    if valid is None:
        return None
    if not isinstance(valid, torch.Tensor):
        raise ShapeError(f"{where}: valid must be a bool tensor of shape ({batch},), got {valid!r}")
    if valid.shape != (batch,):
        raise ShapeError(
            f"{where}: valid must have shape ({batch},) (one flag per sample), "
            f"got {tuple(valid.shape)}"
        )
    if valid.dtype != torch.bool:
        if valid.is_floating_point() or valid.is_complex():
            raise ShapeError(f"{where}: valid must be a bool tensor, got dtype {valid.dtype}")
        valid = valid != 0
    return valid


def zero_loss(prediction: torch.Tensor) -> torch.Tensor:
    """A float32 zero that depends on ``prediction`` (so every parameter still gets a gradient)."""
    return (prediction * 0).sum(dtype=torch.float32)


def masked_ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator``, or 0 (not NaN) where the denominator is 0; no host sync."""
    return numerator / denominator.clamp_min(torch.finfo(denominator.dtype).tiny)
