"""Our networks equal dynamic-network-architectures' (nnU-Net's) after loading their weights."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from _references import reference

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the benchmarks package

from benchmarks.common import nnunet_architecture

from multitask_unet.errors import ConfigError, WeightsError
from multitask_unet.interop.nnunet import load_nnunet_weights, model_from_plans

dna_unet = reference("dynamic_network_architectures.architectures.unet")
nnunet_networks = reference("nnunetv2.utilities.get_network_from_plans")

ARCHS = {
    # nnU-Net ResEnc-M-style, anisotropic: 6 stages 32..320, in-plane pooling first.
    "resenc_m_anisotropic": (
        nnunet_architecture(
            "ResidualEncoderUNet",
            features_per_stage=[32, 64, 128, 256, 320, 320],
            kernel_sizes=[[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
            strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
            n_blocks_per_stage=[1, 3, 4, 6, 6, 6],
        ),
        (8, 64, 64),
    ),
    "plain_isotropic": (
        nnunet_architecture(
            "PlainConvUNet",
            features_per_stage=[8, 16, 32, 64],
            kernel_sizes=[[3, 3, 3]] * 4,
            strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
            n_conv_per_stage=[2, 2, 2, 2],
            n_conv_per_stage_decoder=[2, 2, 2],
        ),
        (16, 24, 32),
    ),
    "plain_anisotropic_batchnorm": (
        nnunet_architecture(
            "PlainConvUNet",
            features_per_stage=[4, 8, 16],
            kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3]],
            strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]],
            n_conv_per_stage=[1, 2, 2],
            conv_bias=False,
            norm_op="torch.nn.modules.batchnorm.BatchNorm3d",
            norm_op_kwargs={"eps": 1e-05, "momentum": 0.1},
        ),
        (6, 20, 12),
    ),
    "resenc_bottleneck_stem": (
        nnunet_architecture(
            "ResidualEncoderUNet",
            features_per_stage=[16, 32, 64],
            kernel_sizes=[[3, 3, 3]] * 3,
            strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]],
            n_blocks_per_stage=[1, 2, 2],
            block="dynamic_network_architectures.building_blocks.residual.BottleneckD",
            bottleneck_channels=[4, 8, 16],
            stem_channels=8,
        ),
        (8, 8, 12),
    ),
}


def _plans(arch: dict) -> dict:
    return {"configurations": {"3d_fullres": {"architecture": arch}}}


def _dna(arch: dict, in_channels: int, num_classes: int) -> torch.nn.Module:
    kwargs = copy.deepcopy(arch["arch_kwargs"])
    imports = list(arch["_kw_requires_import"])
    if "block" in kwargs:
        imports.append("block")
    return nnunet_networks.get_network_from_plans(
        arch["network_class_name"], kwargs, imports, in_channels, num_classes, deep_supervision=True
    )


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_same_network_and_outputs_after_loading(name: str) -> None:
    arch, size = ARCHS[name]
    torch.manual_seed(0)
    dna = _dna(arch, 2, 3).eval()
    ours = model_from_plans(_plans(arch), in_channels=2, num_classes=3).eval()

    dna_params = sum(p.numel() for p in {id(p): p for p in dna.parameters()}.values())
    assert sum(p.numel() for p in ours.parameters()) == dna_params

    left = load_nnunet_weights(ours, dna.state_dict())
    assert left == []
    x = torch.randn(1, 2, *size)
    with torch.no_grad():
        expected = dna(x)
        features = ours.features(x)
        got = [ours.seg_head(features.decoder[-1]), *ours.seg_head.deep(features.decoder)]
        plain = ours(x)["seg"]
    assert len(got) == len(expected) == len(arch["arch_kwargs"]["features_per_stage"]) - 1
    for level, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.shape == b.shape, level
        assert (a - b).abs().max().item() <= 1e-5, f"deep-supervision level {level}"
    assert torch.equal(plain, got[0])


def test_training_mode_deep_supervision_matches_dna() -> None:
    arch, size = ARCHS["plain_isotropic"]
    dna = _dna(arch, 1, 3).train()
    ours = model_from_plans(_plans(arch), in_channels=1, num_classes=3).train()
    load_nnunet_weights(ours, dna.state_dict())
    x = torch.randn(2, 1, *size)
    expected = dna(x)
    out = ours(x)
    for a, b in zip([out["seg"], *out["seg_deep"]], expected, strict=True):
        assert (a - b).abs().max().item() <= 1e-5


def test_checkpoint_file_and_heads(tmp_path) -> None:
    arch, _size = ARCHS["plain_isotropic"]
    dna = _dna(arch, 1, 3)
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": dna.state_dict(), "trainer_name": "nnUNetTrainer"}, path)
    heads = None
    from multitask_unet.heads import HEADS

    if "panda" in HEADS:
        heads = {"cls": ("panda", {"num_classes": 3})}
    ours = model_from_plans(_plans(arch), in_channels=1, num_classes=3, heads=heads)
    left = load_nnunet_weights(ours, path)
    assert all(k.startswith("heads.") for k in left)
    assert bool(left) == (heads is not None)


def test_mismatched_weights_are_rejected() -> None:
    arch, _ = ARCHS["plain_isotropic"]
    dna = _dna(arch, 1, 3)
    ours = model_from_plans(_plans(arch), in_channels=1, num_classes=4)
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_nnunet_weights(ours, dna.state_dict())


def test_unsupported_plans_name_the_problem() -> None:
    arch, _ = ARCHS["plain_isotropic"]
    bad = copy.deepcopy(arch)
    bad["network_class_name"] = "some.module.SwinUNETR"
    with pytest.raises(ConfigError, match="SwinUNETR"):
        model_from_plans(_plans(bad), in_channels=1, num_classes=3)
    with pytest.raises(ConfigError, match="available"):
        model_from_plans(_plans(arch), "2d", in_channels=1, num_classes=3)


def test_inherited_configuration_resolves() -> None:
    arch, _ = ARCHS["plain_isotropic"]
    plans = {
        "configurations": {
            "3d_fullres": {"architecture": arch},
            "3d_cascade_fullres": {"inherits_from": "3d_fullres", "batch_size": 2},
        }
    }
    model = model_from_plans(plans, "3d_cascade_fullres", in_channels=1, num_classes=3)
    assert model.size_divisor == (8, 8, 8)
