"""The decoder contract and the family of decoder configs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from multitask_unet.config import Config
from multitask_unet.features import FeatureInfo
from multitask_unet.registry import Registry

__all__ = ["DECODERS", "Decoder", "DecoderConfig"]

DECODERS: Registry[type[Config]] = Registry("decoder")


class Decoder(nn.Module):
    """Maps encoder features (fine to coarse) to one map per decoder stage, coarse to fine.

    A decoder is built from the encoder's ``feature_info`` alone and never holds the encoder.
    Subclasses set :attr:`stage_info`: channels and cumulative stride of each output stage.

    Attributes:
        stage_info: One :class:`~multitask_unet.features.FeatureInfo` (channels, cumulative
            stride per axis) per map ``forward`` returns, coarse to fine.
    """

    stage_info: tuple[FeatureInfo, ...]

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


class DecoderConfig(Config):
    """Base of every decoder config; ``from_dict`` picks the subclass by its ``"name"`` key."""

    family: ClassVar[Registry[type[Config]]] = DECODERS

    def build(
        self,
        feature_info: Sequence[FeatureInfo],
        *,
        spatial_dims: int = 3,
        kernel_sizes: Sequence[Sequence[int]] | None = None,
    ) -> Decoder:
        """Build the decoder; ``kernel_sizes`` (per encoder level) fill in unset kernel sizes."""
        raise NotImplementedError
