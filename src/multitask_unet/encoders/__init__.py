"""Encoders: ``forward(x) -> list[Tensor]`` (fine to coarse) plus ``feature_info``."""

from multitask_unet.encoders.base import ENCODERS, Encoder, EncoderConfig
from multitask_unet.encoders.plain import PlainEncoder, PlainEncoderConfig
from multitask_unet.encoders.residual import ResidualEncoder, ResidualEncoderConfig
from multitask_unet.encoders.timm3d import Timm3dEncoder, Timm3dEncoderConfig

__all__ = [
    "ENCODERS",
    "Encoder",
    "EncoderConfig",
    "PlainEncoder",
    "PlainEncoderConfig",
    "ResidualEncoder",
    "ResidualEncoderConfig",
    "Timm3dEncoder",
    "Timm3dEncoderConfig",
]
