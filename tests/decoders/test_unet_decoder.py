"""The U-Net decoder on its own: built from feature descriptions, shapes as it describes them."""

from __future__ import annotations

import pytest
import torch

from multitask_unet.decoders import DECODERS, UNetDecoderConfig
from multitask_unet.errors import ConfigError
from multitask_unet.features import FeatureInfo

ANISOTROPIC = [
    FeatureInfo(8, (1, 1, 1)),
    FeatureInfo(16, (1, 2, 2)),
    FeatureInfo(32, (2, 4, 4)),
    FeatureInfo(32, (4, 8, 8)),
]


def _maps(info, size=(8, 16, 16), batch=2):
    return [torch.randn(batch, f.channels, *(s // k for s, k in zip(size, f.stride))) for f in info]


def test_stages_are_described_before_any_tensor_and_come_out_as_described() -> None:
    decoder = UNetDecoderConfig(convs_per_stage=1).build(ANISOTROPIC)
    assert [f.channels for f in decoder.stage_info] == [32, 16, 8]  # coarse to fine
    assert [f.stride for f in decoder.stage_info] == [(2, 4, 4), (1, 2, 2), (1, 1, 1)]
    outputs = decoder(_maps(ANISOTROPIC))
    for info, out in zip(decoder.stage_info, outputs, strict=True):
        assert tuple(out.shape) == (
            2,
            info.channels,
            *(s // k for s, k in zip((8, 16, 16), info.stride)),
        )


def test_a_strided_finest_level_gets_stages_up_to_full_resolution() -> None:
    info = [FeatureInfo(16, (2, 2, 2)), FeatureInfo(32, (4, 4, 4))]  # e.g. a timm backbone
    decoder = UNetDecoderConfig().build(info)
    assert decoder.stage_info[-1].stride == (1, 1, 1)
    assert decoder(_maps(info))[-1].shape[2:] == (8, 16, 16)


def test_registered_by_name_and_strides_must_divide() -> None:
    assert DECODERS.get("unet") is UNetDecoderConfig
    with pytest.raises(ConfigError, match="divide"):
        UNetDecoderConfig().build([FeatureInfo(8, (2, 2, 2)), FeatureInfo(16, (3, 3, 3))])
