"""Decoders: built from ``feature_info``; ``forward(features) -> list[Tensor]`` coarse to fine."""

from multitask_unet.decoders.base import DECODERS, Decoder, DecoderConfig
from multitask_unet.decoders.unet import UNetDecoder, UNetDecoderConfig

__all__ = ["DECODERS", "Decoder", "DecoderConfig", "UNetDecoder", "UNetDecoderConfig"]
