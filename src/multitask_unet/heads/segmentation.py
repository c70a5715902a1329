"""Segmentation head: a 1x1 projection to class logits at every decoder stage."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multitask_unet.layers.specs import conv_type

__all__ = ["SegmentationHead"]


class SegmentationHead(nn.Module):
    """One ``1x1`` convolution per decoder stage (all built, so weights load with or without
    deep supervision, as in nnU-Net).

    Args:
        stage_channels: Channels of each decoder stage, coarse to fine.
        num_classes: Number of segmentation classes, background included.
        spatial_dims: 1, 2 or 3.

    Example:
        >>> head = SegmentationHead((16, 8), 3)
        >>> head(torch.zeros(1, 8, 4, 4, 4)).shape
        torch.Size([1, 3, 4, 4, 4])
    """

    def __init__(self, stage_channels: Sequence[int], num_classes: int, *, spatial_dims: int = 3):
        super().__init__()
        conv = conv_type(spatial_dims)
        self.projections = nn.ModuleList(
            conv(c, num_classes, 1, 1, 0, bias=True) for c in stage_channels
        )

    def forward(self, finest: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes, *S)`` of the finest decoder stage."""
        return self.projections[-1](finest)

    def deep(self, stages: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Logits of every stage but the finest, fine to coarse (nnU-Net's order after index 0)."""
        return [self.projections[s](stages[s]) for s in reversed(range(len(stages) - 1))]
