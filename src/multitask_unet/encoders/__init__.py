"""Encoders: ``forward(x) -> list[Tensor]`` (fine to coarse) plus ``feature_info``."""

from multitask_unet.encoders.base import ENCODERS, Encoder, EncoderConfig
from multitask_unet.encoders.plain import PlainEncoder, PlainEncoderConfig
from multitask_unet.encoders.residual import ResidualEncoder, ResidualEncoderConfig

__all__ = [
    "ENCODERS",
    "Encoder",
    "EncoderConfig",
    "PlainEncoder",
    "PlainEncoderConfig",
    "ResidualEncoder",
    "ResidualEncoderConfig",
]
