"""ModelSpec: every network ``create_model`` builds is trainable from a config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from _helpers import Prepared, config

from _references import require
from multitask_unet import create_model
from multitask_unet.checkpoints import load_checkpoint
from multitask_unet.errors import ConfigError
from multitask_unet.models import MultiTaskUNet
from multitask_unet.training import ModelSpec, TrainConfig, train
from multitask_unet.training.builders import build_loss, build_model_config

#: A timm-3d backbone (no weights are downloaded) with two heads of their own options.
TIMM = {"name": "timm3d", "model_name": "tinynet_e", "out_indices": [0, 1, 2]}
HEADS = {"cls": ("panda", {"hidden": 16, "num_classes": 3}), "cls_ovr": ("ovr", {"num_classes": 3})}


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


@pytest.fixture(scope="module")
def reference() -> MultiTaskUNet:
    require("timm_3d")
    return create_model("tiny_residual", encoder=TIMM, heads=HEADS)


def test_the_yaml_of_a_create_model_network_builds_the_same_network(reference) -> None:
    spec = ModelSpec.from_model_config(reference.config)
    loaded = TrainConfig.from_yaml(TrainConfig(model=spec).to_yaml()).model
    assert loaded == spec and loaded.preset is None and "num_classes" not in loaded.heads["cls"]
    rebuilt = build_model_config(
        loaded, in_channels=reference.config.in_channels,
        seg_classes=reference.config.num_classes, case_classes=3,
    )  # fmt: skip
    assert rebuilt == reference.config
    assert _shapes(MultiTaskUNet(rebuilt)) == _shapes(reference)
    kept = ModelSpec.from_model_config(reference.config, head_classes=True)
    assert kept.heads["cls_ovr"]["num_classes"] == 3


def test_a_preset_with_an_encoder_decoder_and_heads_written_by_hand(reference) -> None:
    spec = TrainConfig.from_yaml(
        """
model:
  preset: tiny_residual
  encoder: {name: timm3d, model_name: tinynet_e, out_indices: [0, 1, 2]}
  decoder: {name: unet, convs_per_stage: 1}
  heads:
    cls: {name: panda, hidden: 16}
    cls_ovr: ovr
"""
    ).model
    built = build_model_config(spec, in_channels=1, seg_classes=3, case_classes=3)
    assert _shapes(MultiTaskUNet(built)) == _shapes(reference)


def test_heads_take_the_datasets_classes_unless_given() -> None:
    spec = ModelSpec(preset="tiny_plain", heads={"a": "panda", "b": ("ovr", {"num_classes": 2})})
    built = build_model_config(spec, in_channels=1, seg_classes=3, case_classes=4)
    assert (built.heads["a"].num_classes, built.heads["b"].num_classes) == (4, 2)
    alone = build_model_config(spec, in_channels=1, seg_classes=3, case_classes=0)
    assert set(alone.heads) == {"b"}  # no classes in the data: only the sized head stays
    assert (
        build_model_config(
            ModelSpec(preset="tiny_plain", heads={}), in_channels=1, seg_classes=3, case_classes=3
        ).heads
        == {}
    )


def test_an_encoder_name_keeps_the_presets_stage_layout() -> None:
    spec = ModelSpec(preset="small_residual", encoder="plain", head=None)
    built = build_model_config(spec, in_channels=2, seg_classes=3, case_classes=0)
    preset = create_model("small_residual").config.encoder
    assert built.encoder.name == "plain" and built.encoder.channels == preset.channels
    assert built.encoder.strides == preset.strides and built.in_channels == 2


def test_the_default_loss_gives_every_head_its_own_term() -> None:
    spec = ModelSpec(preset="tiny_plain", heads={"cls": "panda", "cls_ovr": "ovr"})
    model = MultiTaskUNet(build_model_config(spec, in_channels=1, seg_classes=3, case_classes=3))
    loss = build_loss(TrainConfig(model=spec), model)
    assert set(loss.losses) == {"seg", "cls", "cls_ovr"}
    kinds = {k: type(m).__name__ for k, m in loss.losses.items()}
    assert (kinds["cls"], kinds["cls_ovr"]) == ("CrossEntropyLoss", "OneVsRestBCELoss")
    assert loss.static_weights == {"seg": 1.0, "cls": 0.3, "cls_ovr": 0.3}


def test_weights_are_never_downloaded() -> None:
    require("timm_3d")
    with pytest.raises(ConfigError, match="never downloads"):
        ModelSpec(encoder={**TIMM, "pretrained": True})


def test_train_runs_a_timm3d_network_with_two_heads(
    prepared: Prepared, tmp_path: Path, reference
) -> None:
    spec = ModelSpec.from_model_config(reference.config)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(prepared.cache / "plan.json", run / "plan.json")
    cfg = config(model=spec.to_dict(), epochs=1, iterations_per_epoch=2)
    result = train(prepared.data, run, cfg, cache_dir=prepared.cache, workers=1, verbose=False)
    assert result.epochs == 1 and {"loss/cls", "loss/cls_ovr"} <= set(result.metrics)
    model = load_checkpoint(run / "checkpoints" / "last.pt").build_model()
    assert set(model.heads) == {"cls", "cls_ovr"}
    assert _shapes(model) == _shapes(reference)
    assert TrainConfig.load(run / "config.yaml") == cfg
