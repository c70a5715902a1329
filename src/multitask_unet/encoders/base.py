"""The encoder contract and the family of encoder configs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from multitask_unet.config import Config
from multitask_unet.errors import ConfigError
from multitask_unet.features import FeatureInfo
from multitask_unet.registry import Registry

__all__ = ["ENCODERS", "Encoder", "EncoderConfig", "per_axis", "per_stage", "size_divisor_of"]

ENCODERS: Registry[type[Config]] = Registry("encoder")


class Encoder(nn.Module):
    """Maps ``(B, C_in, *S)`` to a list of feature maps, fine to coarse.

    Subclasses set :attr:`feature_info` in ``__init__``; it must describe exactly what
    ``forward`` returns (the contract tests check it).

    Attributes:
        feature_info: One :class:`~multitask_unet.features.FeatureInfo` (channels, cumulative
            stride per axis) per map ``forward`` returns, fine to coarse.
        spatial_dims: Number of spatial axes of the input.
    """

    feature_info: tuple[FeatureInfo, ...]
    spatial_dims: int

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def size_divisor(self) -> tuple[int, ...]:
        """Per-axis factor every input size must be a multiple of."""
        return size_divisor_of(self.feature_info)


class EncoderConfig(Config):
    """Base of every encoder config; ``from_dict`` picks the subclass by its ``"name"`` key."""

    family: ClassVar[Registry[type[Config]]] = ENCODERS

    def build(self, in_channels: int, *, spatial_dims: int = 3) -> Encoder:
        raise NotImplementedError

    @property
    def num_levels(self) -> int:
        raise NotImplementedError

    def feature_info(self, spatial_dims: int = 3) -> tuple[FeatureInfo, ...]:
        """The ``feature_info`` of the encoder this config builds.

        Subclasses compute it from their options; this default builds the encoder on the meta
        device (no memory, no initialisation) and reads it.
        """
        with torch.device("meta"):
            return tuple(self.build(1, spatial_dims=spatial_dims).feature_info)

    def size_divisor(self, spatial_dims: int = 3) -> tuple[int, ...]:
        """:attr:`Encoder.size_divisor` of the encoder this config builds, without building it.

        Example:
            >>> from multitask_unet.encoders import PlainEncoderConfig
            >>> PlainEncoderConfig(channels=(8, 16, 32), strides=(1, 2, (1, 2, 2))).size_divisor()
            (2, 4, 4)
        """
        return size_divisor_of(self.feature_info(spatial_dims))


def size_divisor_of(feature_info: Sequence[FeatureInfo]) -> tuple[int, ...]:
    """Per-axis factor every input size must be a multiple of: the deepest level's stride."""
    return tuple(feature_info[-1].stride)


def per_axis(value: int | Sequence[int], spatial_dims: int, what: str) -> tuple[int, ...]:
    """Expand an int to one value per axis and check the length of a sequence."""
    if isinstance(value, int):
        return (value,) * spatial_dims
    value = tuple(value)
    if len(value) != spatial_dims or not all(isinstance(v, int) and v > 0 for v in value):
        raise ConfigError(
            f"{what} needs {spatial_dims} positive ints (one per axis), got {value!r}"
        )
    return value


def per_stage(value, num_stages: int, what: str) -> tuple:  # type: ignore[no-untyped-def]
    """Expand a scalar to one value per stage, or check a per-stage tuple's length."""
    if not isinstance(value, (tuple, list)):
        return (value,) * num_stages
    if len(value) != num_stages:
        raise ConfigError(
            f"{what} needs one entry per stage ({num_stages}), got {len(value)}: {value!r}"
        )
    return tuple(value)


def cumulative_strides(strides: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Cumulative per-axis strides of consecutive stages."""
    out, current = [], (1,) * len(strides[0])
    for s in strides:
        current = tuple(c * k for c, k in zip(current, s))
        out.append(current)
    return out
