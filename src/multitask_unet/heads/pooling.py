"""Per-level poolers: one feature map in, one decomposable state out.

A pooler is an ``nn.Module`` with ``forward(x, weights) -> state`` for one level's map
``x`` ``(B, C, *S)`` and its voxel weights ``(B, 1, *S)`` (or ``None``), ``readout(state)``
giving ``(B, out_features)``, and ``out_features``. This module holds the parameter-free
global pooling; attention pooling lives in :mod:`multitask_unet.heads.attention`.

Voxel weights ``w >= 0``:

- ``"max"``: masked max, over the voxels with ``w > 0`` (a weight only decides whether a
  voxel counts; a 0/1 ownership mask splits overlapping windows exactly). No counted voxel
  reads as 0.
- ``"mean"``: ``sum(w * x) / sum(w)``; a total weight of 0 reads as 0.

Example:
    >>> pool = GlobalPool("max", channels=2)
    >>> x = torch.tensor([[[1.0, 7.0, 3.0], [0.0, -1.0, 2.0]]])  # (B=1, C=2, N=3)
    >>> pool.readout(pool(x, torch.tensor([[[1.0, 0.0, 0.5]]])))
    tensor([[3., 2.]])
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import nn

from multitask_unet.errors import ConfigError
from multitask_unet.heads.state import MaxState, MeanState

__all__ = ["GlobalPool", "PoolingKind", "check_pooling", "flat"]

PoolingKind = Literal["max", "mean"]
"""Global pooling kinds."""


def check_pooling(pooling: str) -> None:
    """Raise :class:`ConfigError` unless ``pooling`` is a global pooling kind."""
    if pooling not in ("max", "mean"):
        raise ConfigError(f"pooling must be 'max' or 'mean', got {pooling!r}")


def flat(x: torch.Tensor, weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(B, C, *S)`` and ``(B, 1, *S)`` as float32 ``(B, C, N)`` and ``(B, 1, N)``."""
    voxels = "b c ... -> b c (...)"
    x = rearrange(x, voxels).float()
    return x, None if weights is None else rearrange(weights, voxels).float()


class GlobalPool(nn.Module):
    """Global max or mean pooling of one level (no parameters).

    Args:
        kind: ``"max"`` or ``"mean"``.
        channels: Channels ``C`` of the level (= ``out_features``).
    """

    def __init__(self, kind: PoolingKind, *, channels: int) -> None:
        super().__init__()
        check_pooling(kind)
        self.kind = kind
        self.out_features = channels

    def extra_repr(self) -> str:
        return f"{self.kind!r}, channels={self.out_features}"

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> MaxState | MeanState:
        """State of ``x`` ``(B, C, *S)`` with optional weights ``(B, 1, *S)``."""
        x, w = flat(x, weights)
        if self.kind == "max":
            if w is not None:
                x = x.masked_fill(w <= 0, float("-inf"))
            # max(dim) back-propagates by one scatter, cheaper than amax's dense mask
            return MaxState(x.max(dim=-1).values)
        if w is None:
            count = torch.full((x.shape[0], 1), float(x.shape[-1]), device=x.device)
            return MeanState(x.sum(dim=-1), count)
        w = w.expand(x.shape[0], 1, -1)
        return MeanState(torch.bmm(x, w.transpose(1, 2)).squeeze(-1), w.sum(dim=-1))

    def readout(self, state: MaxState | MeanState) -> torch.Tensor:
        """``(B, C)`` pooled features."""
        return state.result()
