"""Named model configs: tiny ones for tests and nnU-Net-sized 3d_fullres networks."""

from __future__ import annotations

from collections.abc import Callable

from multitask_unet.decoders import UNetDecoderConfig
from multitask_unet.encoders import PlainEncoderConfig, ResidualEncoderConfig
from multitask_unet.models.config import ModelConfig
from multitask_unet.registry import Registry

__all__ = ["PRESETS"]

PRESETS: Registry[Callable[[], ModelConfig]] = Registry("model preset")

# nnU-Net's default 3d_fullres topology for roughly isotropic patches (e.g. 128^3): six
# stages, channels 32 doubling up to 320, every stage after the first halves each axis.
_NNUNET_CHANNELS = (32, 64, 128, 256, 320, 320)
_NNUNET_STRIDES = (1, 2, 2, 2, 2, 2)


@PRESETS.register("tiny_plain")
def tiny_plain() -> ModelConfig:
    """3 stages (8, 16, 32), one conv each: for tests and docs, runs in milliseconds on CPU."""
    return ModelConfig(
        encoder=PlainEncoderConfig(channels=(8, 16, 32), strides=(1, 2, 2), convs_per_stage=1),
        decoder=UNetDecoderConfig(convs_per_stage=1),
    )


@PRESETS.register("tiny_residual")
def tiny_residual() -> ModelConfig:
    """3 residual stages (8, 16, 32), one block each."""
    return ModelConfig(
        encoder=ResidualEncoderConfig(channels=(8, 16, 32), strides=(1, 2, 2), blocks_per_stage=1),
        decoder=UNetDecoderConfig(convs_per_stage=1),
    )


@PRESETS.register("tiny_anisotropic")
def tiny_anisotropic() -> ModelConfig:
    """3 stages with in-plane-only pooling first, like thick-slice CT plans."""
    return ModelConfig(
        encoder=PlainEncoderConfig(
            channels=(8, 16, 32),
            strides=(1, (1, 2, 2), 2),
            kernel_sizes=((1, 3, 3), 3, 3),
            convs_per_stage=1,
        ),
        decoder=UNetDecoderConfig(convs_per_stage=1),
    )


@PRESETS.register("small_residual")
def small_residual() -> ModelConfig:
    """5 residual stages (16..128), for CPU-budget training on small patches."""
    return ModelConfig(
        encoder=ResidualEncoderConfig(
            channels=(16, 32, 64, 128, 128),
            strides=(1, 2, 2, 2, 2),
            blocks_per_stage=(1, 2, 2, 2, 2),
        ),
        decoder=UNetDecoderConfig(convs_per_stage=1),
    )


@PRESETS.register("nnunet_3d_fullres")
def nnunet_3d_fullres() -> ModelConfig:
    """nnU-Net's default ``PlainConvUNet`` (6 stages, 32..320, two convs per stage)."""
    return ModelConfig(
        encoder=PlainEncoderConfig(
            channels=_NNUNET_CHANNELS, strides=_NNUNET_STRIDES, convs_per_stage=2
        ),
        decoder=UNetDecoderConfig(convs_per_stage=2),
    )


@PRESETS.register("nnunet_3d_fullres_resenc_m")
def nnunet_3d_fullres_resenc_m() -> ModelConfig:
    """nnU-Net's ResEnc-M ``ResidualEncoderUNet`` (blocks 1, 3, 4, 6, 6, 6; one decoder conv)."""
    return ModelConfig(
        encoder=ResidualEncoderConfig(
            channels=_NNUNET_CHANNELS,
            strides=_NNUNET_STRIDES,
            blocks_per_stage=(1, 3, 4, 6, 6, 6),
        ),
        decoder=UNetDecoderConfig(convs_per_stage=1),
    )
