"""Descriptions of feature maps that join encoders, decoders and heads."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["FeatureInfo", "Features"]


@dataclass(frozen=True)
class FeatureInfo:
    """What one feature level looks like, known before any tensor is computed.

    Attributes:
        channels: Number of channels of the level.
        stride: Cumulative stride of the level per spatial axis relative to the input,
            e.g. ``(1, 2, 2)`` for a level pooled in-plane only.
    """

    channels: int
    stride: tuple[int, ...]


@dataclass
class Features:
    """The feature maps of one forward pass, as the classification heads read them.

    Attributes:
        encoder: Encoder levels, fine to coarse, each ``(B, C_i, *S / stride_i)``.
        decoder: Decoder stages, coarse to fine (the last one is the finest).
    """

    encoder: list[torch.Tensor]
    decoder: list[torch.Tensor]
