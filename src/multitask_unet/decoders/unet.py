"""nnU-Net's U-Net decoder: transposed-conv upsampling, skip concatenation, conv stacks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from multitask_unet.decoders.base import Decoder, DecoderConfig
from multitask_unet.encoders.base import per_axis, per_stage
from multitask_unet.errors import ConfigError
from multitask_unet.features import FeatureInfo
from multitask_unet.layers.blocks import stack_conv_blocks
from multitask_unet.layers.init import init_he
from multitask_unet.layers.specs import conv_transpose_type

__all__ = ["UNetDecoder", "UNetDecoderConfig"]


@dataclass(frozen=True)
class UNetDecoderConfig(DecoderConfig):
    """Config of :class:`UNetDecoder`.

    Attributes:
        convs_per_stage: Convolutions after each concatenation, an int or one per stage
            (coarse to fine; nnU-Net: 2 for plain U-Nets, 1 for ResEnc presets).
        kernel_sizes: Kernel size per stage (coarse to fine); ``None`` takes the kernel size of
            the encoder level the stage joins (nnU-Net's rule), or 3 where that is unknown.
        norm: Normalisation spec. act: Activation spec. dropout: Dropout probability.
        bias: Whether convolutions have biases.
    """

    name: ClassVar[str] = "unet"
    convs_per_stage: tuple[int, ...] | int = 2
    kernel_sizes: tuple[int | tuple[int, ...], ...] | None = None
    norm: str | tuple[str, dict[str, Any]] | None = "instance"
    act: str | tuple[str, dict[str, Any]] | None = "leaky_relu"
    dropout: float = 0.0
    bias: bool = False

    def build(
        self,
        feature_info: Sequence[FeatureInfo],
        *,
        spatial_dims: int = 3,
        kernel_sizes: Sequence[Sequence[int]] | None = None,
    ) -> UNetDecoder:
        return UNetDecoder(
            feature_info, self, spatial_dims=spatial_dims, encoder_kernel_sizes=kernel_sizes
        )


def _ratio(fine: tuple[int, ...], coarse: tuple[int, ...]) -> tuple[int, ...]:
    if any(c % f for f, c in zip(fine, coarse)):
        raise ConfigError(f"feature strides must divide each other, got {fine} then {coarse}")
    return tuple(c // f for f, c in zip(fine, coarse))


class UNetDecoder(Decoder):
    """U-Net decoder built from a list of :class:`FeatureInfo` (fine to coarse).

    Stage ``s`` upsamples the previous map (the bottleneck for ``s = 0``) with a transposed
    convolution whose kernel equals the stride between the two levels, concatenates the skip
    of the next finer level and applies a conv stack. When the finest encoder level is itself
    strided (e.g. a timm backbone at stride 2 or 4), extra stages without a skip upsample on to
    full resolution, so logits always come out at the input size.

    Example:
        >>> info = [FeatureInfo(8, (1, 1, 1)), FeatureInfo(16, (2, 2, 2))]
        >>> dec = UNetDecoderConfig().build(info)
        >>> [f.channels for f in dec.stage_info]
        [8]
    """

    def __init__(
        self,
        feature_info: Sequence[FeatureInfo],
        config: UNetDecoderConfig | None = None,
        *,
        spatial_dims: int = 3,
        encoder_kernel_sizes: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        config = config or UNetDecoderConfig()
        info = list(feature_info)
        if len(info) < 2:
            raise ConfigError(f"a U-Net decoder needs at least 2 encoder levels, got {len(info)}")
        extra = self._extra_stages(info[0].stride)
        num_stages = len(info) - 1 + len(extra)
        convs = per_stage(config.convs_per_stage, num_stages, "decoder convs_per_stage")
        kernels = self._kernels(config, info, encoder_kernel_sizes, num_stages, spatial_dims)
        transpose = conv_transpose_type(spatial_dims)
        ups, stages, stage_info = [], [], []
        below = info[-1]
        targets = [(lvl, True) for lvl in reversed(info[:-1])]
        targets += [(FeatureInfo(max(info[0].channels // 2, 8), s), False) for s in extra]
        for s, (target, has_skip) in enumerate(targets):
            up = _ratio(target.stride, below.stride)
            ups.append(transpose(below.channels, target.channels, up, up, bias=config.bias))
            stages.append(
                stack_conv_blocks(
                    convs[s],
                    target.channels * (2 if has_skip else 1),
                    target.channels,
                    kernels[s],
                    [1] * spatial_dims,
                    spatial_dims=spatial_dims,
                    norm=config.norm,
                    act=config.act,
                    dropout=config.dropout,
                    bias=config.bias,
                )
            )
            stage_info.append(target)
            below = target
        self.upsamples = nn.ModuleList(ups)
        self.stages = nn.ModuleList(stages)
        self.num_skips = len(info) - 1
        self.stage_info = tuple(stage_info)
        init_he(self)

    @staticmethod
    def _extra_stages(first_stride: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Strides of the skip-less stages that take a strided first level to stride 1 (x2 steps)."""
        out, current = [], first_stride
        while any(c > 1 for c in current):
            current = tuple(max(c // 2, 1) if c % 2 == 0 else 1 for c in current)
            out.append(current)
        return out

    @staticmethod
    def _kernels(
        config: UNetDecoderConfig,
        info: list[FeatureInfo],
        encoder_kernels: Sequence[Sequence[int]] | None,
        num_stages: int,
        spatial_dims: int,
    ) -> list[tuple[int, ...]]:
        if config.kernel_sizes is not None:
            given = per_stage(config.kernel_sizes, num_stages, "decoder kernel_sizes")
            return [per_axis(k, spatial_dims, "decoder kernel size") for k in given]
        joined = list(reversed(encoder_kernels[:-1])) if encoder_kernels else []
        joined = [tuple(k) for k in joined] + [(3,) * spatial_dims] * num_stages
        return joined[:num_stages]

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        x = features[-1]
        outputs = []
        for s, (up, stage) in enumerate(zip(self.upsamples, self.stages)):
            x = up(x)
            if s < self.num_skips:
                x = torch.cat((x, features[-(s + 2)]), dim=1)
            x = stage(x)
            outputs.append(x)
        return outputs
