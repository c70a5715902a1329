"""nnU-Net's residual encoder (``ResidualEncoder`` of dynamic-network-architectures, ResEnc presets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from multitask_unet.encoders.base import Encoder, per_stage
from multitask_unet.encoders.plain import StageLayout
from multitask_unet.errors import ConfigError
from multitask_unet.layers.blocks import (
    BasicResidualBlock,
    BottleneckResidualBlock,
    ConvNormAct,
)
from multitask_unet.layers.init import init_he, zero_init_residuals

__all__ = ["ResidualEncoder", "ResidualEncoderConfig"]


@dataclass(frozen=True)
class ResidualEncoderConfig(StageLayout):
    """Config of :class:`ResidualEncoder`.

    Attributes:
        blocks_per_stage: Residual blocks per stage (ResEnc-M: ``(1, 3, 4, 6, 6, 6)``).
        block: ``"basic"`` (two kxk convs) or ``"bottleneck"`` (1x1, kxk, 1x1).
        bottleneck_channels: Inner channels of bottleneck blocks, one per stage.
        stem_channels: Channels of the stem convolution (default: the first stage's).
    """

    name: ClassVar[str] = "residual"
    blocks_per_stage: tuple[int, ...] | int = 2
    block: Literal["basic", "bottleneck"] = "basic"
    bottleneck_channels: tuple[int, ...] | None = None
    stem_channels: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        per_stage(self.blocks_per_stage, self.num_levels, "blocks_per_stage")
        if self.block == "bottleneck":
            if self.bottleneck_channels is None:
                raise ConfigError("block='bottleneck' needs bottleneck_channels, one per stage")
            per_stage(self.bottleneck_channels, self.num_levels, "bottleneck_channels")

    def build(self, in_channels: int, *, spatial_dims: int = 3) -> ResidualEncoder:
        return ResidualEncoder(self, in_channels, spatial_dims=spatial_dims)


class ResidualEncoder(Encoder):
    """A stem convolution, then stages of ResNet-D blocks; each stage's first block strides.

    Example:
        >>> cfg = ResidualEncoderConfig(channels=(8, 16), strides=(1, 2), blocks_per_stage=1)
        >>> [tuple(f.shape) for f in cfg.build(2)(torch.zeros(1, 2, 8, 8, 8))]
        [(1, 8, 8, 8, 8), (1, 16, 4, 4, 4)]
    """

    def __init__(self, config: ResidualEncoderConfig, in_channels: int, *, spatial_dims: int = 3):
        super().__init__()
        self.spatial_dims = spatial_dims
        self.feature_info = config.feature_info(spatial_dims)
        kernels = config.stage_kernels(spatial_dims)
        common = {
            "spatial_dims": spatial_dims,
            "norm": config.norm,
            "act": config.act,
            "bias": config.bias,
        }
        stem_channels = config.stem_channels or config.channels[0]
        self.stem = ConvNormAct(
            in_channels, stem_channels, kernels[0], [1] * spatial_dims, **common
        )
        in_channels = stem_channels
        blocks = per_stage(config.blocks_per_stage, config.num_levels, "blocks_per_stage")
        inner = per_stage(config.bottleneck_channels, config.num_levels, "bottleneck_channels")
        stages = []
        for i, (c, stride, kernel) in enumerate(
            zip(config.channels, config.stage_strides(spatial_dims), kernels)
        ):
            stage = []
            for b in range(blocks[i]):
                first = b == 0
                args = (
                    in_channels if first else c,
                    c,
                    kernel,
                    stride if first else [1] * spatial_dims,
                )
                dropout = {"dropout": config.dropout}
                if config.block == "basic":
                    stage.append(BasicResidualBlock(*args, **common, **dropout))
                else:
                    stage.append(
                        BottleneckResidualBlock(
                            *args, bottleneck_channels=inner[i], **common, **dropout
                        )
                    )
            stages.append(nn.Sequential(*stage))
            in_channels = c
        self.stages = nn.ModuleList(stages)
        init_he(self)
        zero_init_residuals(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
