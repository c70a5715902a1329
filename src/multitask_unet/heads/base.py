"""The classification-head contract: ``pool`` -> ``merge`` -> ``project``.

A head summarises feature maps into a *decomposable* pool state, so that the states of
non-overlapping windows merge into exactly the state of the whole volume; ``project`` then
turns one state into logits. ``forward(features) == project(pool(features))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from multitask_unet.config import Config
from multitask_unet.features import FeatureInfo, Features
from multitask_unet.registry import Registry

__all__ = ["HEADS", "ClassificationHead", "HeadConfig"]

HEADS: Registry[type[Config]] = Registry("head")


class ClassificationHead(nn.Module):
    """Base class of classification heads; see the module docstring for the contract."""

    num_classes: int

    def pool(self, features: Features, weights: torch.Tensor | None = None) -> Any:
        """Summarise one volume or window; ``weights`` ``(B, 1, *S)`` weight voxels (e.g. a
        foreground probability) at the input resolution."""
        raise NotImplementedError

    def merge(self, states: Sequence[Any]) -> Any:
        """Combine the states of non-overlapping windows into the whole volume's state."""
        raise NotImplementedError

    def project(self, state: Any) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from a pool state."""
        raise NotImplementedError

    def forward(self, features: Features, weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.project(self.pool(features, weights))


class HeadConfig(Config):
    """Base of every classification-head config; ``from_dict`` picks the subclass by ``"name"``."""

    family: ClassVar[Registry[type[Config]]] = HEADS

    def build(
        self,
        encoder_info: Sequence[FeatureInfo],
        decoder_info: Sequence[FeatureInfo],
        *,
        spatial_dims: int = 3,
    ) -> ClassificationHead:
        raise NotImplementedError
