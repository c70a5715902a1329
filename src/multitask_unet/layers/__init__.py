"""Dimension-agnostic building blocks."""

from multitask_unet.layers.blocks import (
    BasicResidualBlock,
    BottleneckResidualBlock,
    ConvNormAct,
    stack_conv_blocks,
)
from multitask_unet.layers.init import init_he, zero_init_residuals
from multitask_unet.layers.specs import ACTIVATIONS, NORMS, LayerSpec, make_act, make_norm

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "BasicResidualBlock",
    "BottleneckResidualBlock",
    "ConvNormAct",
    "LayerSpec",
    "init_he",
    "make_act",
    "make_norm",
    "stack_conv_blocks",
    "zero_init_residuals",
]
