"""Starting a run from existing weights: ours, a state_dict, nnU-Net's; new heads; clear errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from _helpers import Prepared, config, trainer

import multitask_unet as mtu
from _references import reference
from multitask_unet.checkpoints import save_checkpoint
from multitask_unet.errors import WeightsError
from multitask_unet.training.init_weights import initialise_from

PANDA = {"cls": ("panda", {"num_classes": 3})}


def _with_head(seed: int = 1) -> mtu.MultiTaskUNet:
    torch.manual_seed(seed)
    return mtu.create_model("tiny_plain", heads=PANDA)


def test_a_checkpoint_of_ours_starts_a_network_whose_head_is_new(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = mtu.create_model("tiny_plain")  # segmentation only
    path = save_checkpoint(tmp_path / "seg.pt", source)
    target = _with_head()
    heads = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("heads.")}
    report = initialise_from(target, path)
    own = target.state_dict()
    assert all(torch.equal(own[k], v) for k, v in source.state_dict().items())
    assert all(torch.equal(own[k], v) for k, v in heads.items())  # left as initialised
    assert report.kind == "multitask_unet checkpoint" and not report.unused
    assert set(report.new) == set(heads) and len(report.loaded) == len(source.state_dict())
    assert report.describe().endswith("; newly initialised: heads.cls")


def test_a_state_dict_with_another_head_loads_and_reports_what_it_left_out(tmp_path: Path):
    torch.manual_seed(0)
    source = mtu.create_model("tiny_plain", heads={"aux": ("ovr", {"num_classes": 2})})
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    report = initialise_from(_with_head(), tmp_path / "weights.pt")
    assert report.kind == "state_dict"
    assert report.unused and all(k.startswith("heads.aux.") for k in report.unused)
    assert "not used from the file: heads.aux" in report.describe()


def test_an_nnunet_checkpoint_loads_as_load_nnunet_weights_does(tmp_path: Path) -> None:
    unet = reference("dynamic_network_architectures.architectures.unet")
    from multitask_unet.interop.nnunet import load_nnunet_weights, model_from_plans

    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 3, "features_per_stage": [4, 8, 16],
            "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * 3,
            "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "n_conv_per_stage": [1, 1, 1],
            "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
            "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
    }  # fmt: skip
    plans = {"configurations": {"3d_fullres": {"architecture": arch}}}
    kwargs = copy.deepcopy(arch["arch_kwargs"])
    for key in ("conv_op", "norm_op", "nonlin"):
        module, _, name = kwargs[key].rpartition(".")
        kwargs[key] = getattr(__import__(module, fromlist=[name]), name)
    torch.manual_seed(0)
    dna = unet.PlainConvUNet(input_channels=1, num_classes=3, deep_supervision=True, **kwargs)
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": dna.state_dict(), "trainer_name": "nnUNetTrainer"}, path)
    ours = model_from_plans(plans, in_channels=1, num_classes=3, heads=PANDA)
    report = initialise_from(ours, path)
    expected = model_from_plans(plans, in_channels=1, num_classes=3, heads=PANDA)
    load_nnunet_weights(expected, dna.state_dict())
    own = ours.state_dict()
    assert report.kind == "nnU-Net checkpoint"
    assert all(torch.equal(own[k], v) for k, v in expected.state_dict().items()
               if not k.startswith("heads."))  # fmt: skip


def test_a_tensor_of_another_shape_is_named_with_both_shapes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "two.pt", mtu.create_model("tiny_plain", in_channels=2))
    with pytest.raises(WeightsError, match=r"two\.pt \(multitask_unet checkpoint\): tensor "
                                           r"'encoder\..*' has shape \(8, 2, .*\) in the file but "
                                           r"\(8, 1, .*\) in the network"):  # fmt: skip
        initialise_from(_with_head(), path)
    with pytest.raises(WeightsError, match="do not exist"):
        initialise_from(_with_head(), tmp_path / "missing.pt")


def test_training_starts_from_the_file_and_says_so(
    prepared: Prepared, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "seg.pt", mtu.create_model("tiny_plain"))
    cfg = config(
        model={"preset": "tiny_plain", "head": "panda", "init_weights": str(path)},
        epochs=1,
        iterations_per_epoch=1,
    )
    trainer(prepared, tmp_path / "run", cfg).fit()
    assert f"initialised from {path} (multitask_unet checkpoint)" in capsys.readouterr().out
