"""nnU-Net's plain convolutional encoder (``PlainConvEncoder`` of dynamic-network-architectures)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from multitask_unet.encoders.base import (
    Encoder,
    EncoderConfig,
    cumulative_strides,
    per_axis,
    per_stage,
)
from multitask_unet.errors import ConfigError
from multitask_unet.features import FeatureInfo
from multitask_unet.layers.blocks import stack_conv_blocks
from multitask_unet.layers.init import init_he

__all__ = ["PlainEncoder", "PlainEncoderConfig", "StageLayout"]

PerAxis = int | tuple[int, ...]


@dataclass(frozen=True)
class StageLayout(EncoderConfig):
    """Per-stage layout shared by the native encoders (not registered itself).

    Attributes:
        channels: Output channels of each stage, fine to coarse, e.g. ``(32, 64, 128)``.
        strides: Stride of each stage's first convolution, an int or one int per axis;
            the first stage usually has stride 1.
        kernel_sizes: Kernel size of each stage, an int or one int per axis (default 3).
        norm: Normalisation spec (nnU-Net: instance norm, eps 1e-5, affine).
        act: Activation spec (nnU-Net: leaky ReLU, slope 0.01).
        dropout: Channel dropout probability after each stage's convolutions.
        bias: Whether convolutions have biases (nnU-Net: no).
    """

    channels: tuple[int, ...] = ()
    strides: tuple[PerAxis, ...] = ()
    kernel_sizes: tuple[PerAxis, ...] | int = 3
    norm: str | tuple[str, dict[str, Any]] | None = "instance"
    act: str | tuple[str, dict[str, Any]] | None = "leaky_relu"
    dropout: float = 0.0
    bias: bool = False

    def __post_init__(self) -> None:
        n = len(self.channels)
        if n < 2:
            raise ConfigError(
                f"{type(self).__name__} needs at least 2 stages, got channels={self.channels!r}"
            )
        if any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ConfigError(f"channels must be positive ints, got {self.channels!r}")
        per_stage(self.strides, n, "strides")
        per_stage(self.kernel_sizes, n, "kernel_sizes")

    @property
    def num_levels(self) -> int:
        return len(self.channels)

    def stage_strides(self, spatial_dims: int) -> list[tuple[int, ...]]:
        return [per_axis(s, spatial_dims, "stride") for s in self.strides]

    def stage_kernels(self, spatial_dims: int) -> list[tuple[int, ...]]:
        ks = per_stage(self.kernel_sizes, self.num_levels, "kernel_sizes")
        kernels = [per_axis(k, spatial_dims, "kernel size") for k in ks]
        if any(k % 2 == 0 for kernel in kernels for k in kernel):
            raise ConfigError(f"kernel sizes must be odd to keep sizes, got {self.kernel_sizes!r}")
        return kernels

    def feature_info(self, spatial_dims: int) -> tuple[FeatureInfo, ...]:
        cum = cumulative_strides(self.stage_strides(spatial_dims))
        return tuple(FeatureInfo(c, s) for c, s in zip(self.channels, cum))


@dataclass(frozen=True)
class PlainEncoderConfig(StageLayout):
    """Config of :class:`PlainEncoder`.

    Attributes:
        convs_per_stage: Convolutions per stage, an int or one per stage (nnU-Net: 2).
    """

    name: ClassVar[str] = "plain"
    convs_per_stage: tuple[int, ...] | int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        per_stage(self.convs_per_stage, self.num_levels, "convs_per_stage")

    def build(self, in_channels: int, *, spatial_dims: int = 3) -> PlainEncoder:
        return PlainEncoder(self, in_channels, spatial_dims=spatial_dims)


class PlainEncoder(Encoder):
    """Stacks of conv-norm-act per stage; each stage starts with a strided convolution.

    Example:
        >>> cfg = PlainEncoderConfig(channels=(8, 16), strides=(1, (1, 2, 2)))
        >>> enc = cfg.build(1)
        >>> [tuple(f.shape) for f in enc(torch.zeros(1, 1, 8, 16, 16))]
        [(1, 8, 8, 16, 16), (1, 16, 8, 8, 8)]
    """

    def __init__(self, config: PlainEncoderConfig, in_channels: int, *, spatial_dims: int = 3):
        super().__init__()
        self.spatial_dims = spatial_dims
        self.feature_info = config.feature_info(spatial_dims)
        convs = per_stage(config.convs_per_stage, config.num_levels, "convs_per_stage")
        stages = []
        for c, stride, kernel, n in zip(
            config.channels,
            config.stage_strides(spatial_dims),
            config.stage_kernels(spatial_dims),
            convs,
        ):
            stages.append(
                stack_conv_blocks(
                    n,
                    in_channels,
                    c,
                    kernel,
                    stride,
                    spatial_dims=spatial_dims,
                    norm=config.norm,
                    act=config.act,
                    dropout=config.dropout,
                    bias=config.bias,
                )
            )
            in_channels = c
        self.stages = nn.ModuleList(stages)
        init_he(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
