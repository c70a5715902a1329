from __future__ import annotations

import pytest
import torch

import multitask_unet as mtu
from _references import require
from multitask_unet import ConfigError, ModelConfig, RegistryError


def test_list_models_and_patterns() -> None:
    names = mtu.list_models()
    assert {
        "tiny_plain",
        "tiny_residual",
        "nnunet_3d_fullres",
        "nnunet_3d_fullres_resenc_m",
    } <= set(names)
    assert mtu.list_models("tiny*") == [n for n in names if n.startswith("tiny")]


def test_unknown_preset_suggests() -> None:
    with pytest.raises(RegistryError, match="tiny_plain"):
        mtu.create_model("tiny_plane")


@pytest.mark.parametrize("name", mtu.list_models())
def test_preset_configs_round_trip(name: str) -> None:
    config = mtu.models.resolve_config(name)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_yaml(config.to_yaml()) == config


def test_overrides_and_component_specs() -> None:
    model = mtu.create_model(
        "tiny_plain",
        in_channels=2,
        num_classes=5,
        encoder=("residual", {"channels": (4, 8), "strides": (1, 2)}),
        decoder={"name": "unet", "convs_per_stage": 2},
    )
    assert model.config.encoder.name == "residual"
    assert model.config.decoder.convs_per_stage == 2
    assert model(torch.zeros(1, 2, 4, 4, 4))["seg"].shape == (1, 5, 4, 4, 4)
    with pytest.raises(ConfigError, match="unknown create_model option"):
        mtu.create_model("tiny_plain", num_clases=3)
    with pytest.raises(ConfigError, match="head name 'seg'"):
        ModelConfig(encoder=model.config.encoder, heads={"seg": model.config.encoder})  # type: ignore[dict-item]


def test_anisotropic_preset_divisor_and_odd_sizes() -> None:
    model = mtu.create_model("tiny_anisotropic").eval()
    assert model.size_divisor == (2, 4, 4)
    with torch.no_grad():
        out = model(torch.randn(1, 1, 6, 20, 12))
    assert out["seg"].shape == (1, 3, 6, 20, 12)


@pytest.mark.parametrize("name", mtu.list_models())
def test_config_size_divisor_is_the_built_models(name: str) -> None:
    config = mtu.models.resolve_config(name)
    with torch.device("meta"):  # no memory: only the encoder's feature_info is read
        model = mtu.models.MultiTaskUNet(config)
    assert config.size_divisor == model.size_divisor


def test_config_size_divisor_of_an_encoder_without_feature_info() -> None:
    """Encoder configs that do not compute their feature_info are built on the meta device."""
    from multitask_unet.encoders import EncoderConfig, PlainEncoderConfig

    plain = PlainEncoderConfig(channels=(4, 8, 16), strides=(1, (1, 2, 2), 2))
    assert EncoderConfig.feature_info(plain, 3) == plain.feature_info(3)
    assert ModelConfig(encoder=plain).size_divisor == (2, 4, 4)
    flat = PlainEncoderConfig(channels=(4, 8), strides=(1, 2))
    assert ModelConfig(encoder=flat, spatial_dims=2).size_divisor == (2, 2)


@pytest.mark.parametrize(
    ("preset", "dna_kwargs"),
    [
        ("nnunet_3d_fullres", {"n_conv_per_stage": 2, "n_conv_per_stage_decoder": 2}),
        (
            "nnunet_3d_fullres_resenc_m",
            {"n_blocks_per_stage": [1, 3, 4, 6, 6, 6], "n_conv_per_stage_decoder": 1},
        ),
    ],
)
def test_nnunet_presets_equal_dna_networks(preset: str, dna_kwargs: dict) -> None:
    """Same parameters, and after loading DNA's weights the same logits at every
    deep-supervision level (in eval mode, the coarser levels through the deep heads)."""
    from multitask_unet.interop.nnunet import load_nnunet_weights

    unet = require("dynamic_network_architectures.architectures.unet")
    cls = unet.PlainConvUNet if "n_conv_per_stage" in dna_kwargs else unet.ResidualEncoderUNet
    dna = cls(
        input_channels=1,
        n_stages=6,
        features_per_stage=[32, 64, 128, 256, 320, 320],
        conv_op=torch.nn.Conv3d,
        kernel_sizes=3,
        strides=[1, 2, 2, 2, 2, 2],
        num_classes=3,
        conv_bias=False,
        norm_op=torch.nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=torch.nn.LeakyReLU,
        nonlin_kwargs={"inplace": True},
        deep_supervision=True,
        **dna_kwargs,
    ).eval()
    ours = mtu.create_model(preset).eval()
    expected = sum(p.numel() for p in {id(p): p for p in dna.parameters()}.values())
    assert sum(p.numel() for p in ours.parameters()) == expected
    assert load_nnunet_weights(ours, dna.state_dict()) == []
    torch.manual_seed(0)
    x = torch.randn(1, 1, 32, 64, 64)
    with torch.no_grad():
        theirs = dna(x)
        features = ours.features(x)
        levels = [ours.seg_head(features.decoder[-1]), *ours.seg_head.deep(features.decoder)]
    assert len(levels) == len(theirs) == 5  # every deep-supervision level
    for level, (a, b) in enumerate(zip(levels, theirs, strict=True)):
        assert a.shape == b.shape, level
        assert (a - b).abs().max().item() <= 1e-4, f"deep-supervision level {level}"
