"""ModelConfig takes its parts in every form create_model takes them."""

from __future__ import annotations

import pytest
import torch

import multitask_unet as mtu
from multitask_unet import ConfigError, ModelConfig
from multitask_unet.encoders import PlainEncoderConfig
from multitask_unet.heads import PandaHeadConfig

ENCODER = {"name": "plain", "channels": (4, 8), "strides": (1, 2)}


def test_component_specs_become_configs() -> None:
    config = ModelConfig(
        encoder=("plain", {"channels": (4, 8), "strides": (1, 2)}),
        decoder="unet",
        heads={"cls": ("panda", {"num_classes": 3}), "aux": {"name": "ovr", "num_classes": 2}},
    )
    assert config.encoder == PlainEncoderConfig(channels=(4, 8), strides=(1, 2))
    assert config.heads["cls"] == PandaHeadConfig(num_classes=3)
    assert config.heads["aux"].name == "ovr"
    assert config == ModelConfig.from_dict(config.to_dict())
    assert config == mtu.models.resolve_config(
        "tiny_plain",
        encoder=ENCODER,
        heads={"cls": PandaHeadConfig(3), "aux": ("ovr", {"num_classes": 2})},
    ).replace(decoder={"name": "unet"})
    out = mtu.MultiTaskUNet(config).eval()(torch.zeros(1, 1, 4, 4, 4))
    assert sorted(out) == ["aux", "cls", "seg"]


def test_heads_are_copied() -> None:
    heads = {"cls": PandaHeadConfig(num_classes=3)}
    config = ModelConfig(encoder=ENCODER, heads=heads)
    heads["other"] = PandaHeadConfig(num_classes=2)
    assert list(config.heads) == ["cls"]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"encoder": 3}, "encoder must be a EncoderConfig, a name"),
        ({"encoder": ("plain", {"channel": (4, 8)})}, "Did you mean 'channels'"),
        ({"decoder": ("unet2", {})}, "Did you mean 'unet'"),
        ({"heads": ("panda", {"num_classes": 3})}, "heads must map output names"),
        ({"heads": {"cls": ("pand", {"num_classes": 3})}}, "Did you mean 'panda'"),
        ({"heads": {"seg": ("panda", {"num_classes": 3})}}, "head name 'seg' is not allowed"),
    ],
)
def test_bad_component_specs_are_config_errors(changes: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**{"encoder": ENCODER, **changes})
