"""The checkpoint file: round trip, atomic writes and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import multitask_unet as mtu
from multitask_unet.checkpoints import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from multitask_unet.data.planning import ChannelNormalization, PreprocessingConfig
from multitask_unet.errors import ConfigError, WeightsError


def _model() -> mtu.MultiTaskUNet:
    torch.manual_seed(0)
    return mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 3})}).eval()


def test_round_trip_gives_the_same_outputs(tmp_path: Path) -> None:
    model = _model()
    training = {"epoch": 3, "optimizer": {"state": {0: {"m": torch.ones(2)}}}, "rng": [1, 2]}
    path = save_checkpoint(
        tmp_path / "sub" / "model.pt",
        model,
        class_names=["subtype0", "subtype1", "subtype2"],
        calibration={"temperature": 1.5},
        training=training,
        extra={"note": "hello"},
    )
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt, Checkpoint)
    assert ckpt.class_names == ("subtype0", "subtype1", "subtype2")
    assert ckpt.label_names == {"background": 0, "label1": 1, "label2": 2}
    assert ckpt.calibration == {"temperature": 1.5}
    assert ckpt.training["epoch"] == 3
    assert torch.equal(ckpt.training["optimizer"]["state"][0]["m"], torch.ones(2))
    assert ckpt.extra == {"note": "hello"}
    assert ckpt.versions["torch"] == torch.__version__
    assert ckpt.format_version == FORMAT_VERSION
    rebuilt = ckpt.build_model()
    assert not rebuilt.training
    x = torch.randn(1, 1, 8, 16, 16)
    with torch.no_grad():
        a, b = model(x), rebuilt(x)
    assert torch.equal(a["seg"], b["seg"]) and torch.equal(a["cls"], b["cls"])
    assert not list(path.parent.glob(".*.tmp"))  # no temporary file left behind


def test_plan_round_trip(tmp_path: Path) -> None:
    prep = PreprocessingConfig(
        target_spacing=(2.0, 1.0, 1.0),
        normalization=(ChannelNormalization("ct", -100.0, 200.0, 50.0, 30.0),),
        labels=(0, 1, 2),
    )
    ckpt_path = save_checkpoint(tmp_path / "a.pt", _model(), plan={"preprocessing": prep.to_dict()})
    ckpt = load_checkpoint(ckpt_path)
    assert PreprocessingConfig.from_dict(ckpt.plan["preprocessing"]) == prep
    with pytest.raises(ConfigError):  # a partial plan dict is not a Plan
        ckpt.load_plan()
    with pytest.raises(ConfigError, match="holds no preprocessing plan"):
        load_checkpoint(save_checkpoint(tmp_path / "b.pt", _model())).load_plan()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(WeightsError, match=rf"checkpoint {re.escape(str(path))} does not exist; "
                                           "check the path"):  # fmt: skip
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("payload", "problem", "fix"),
    [
        ({"network_weights": {}}, "no format=", "model_from_plans and load it with load_nnunet"),
        ({"state_dict": {}}, "no format=", "written by multitask-unet train"),
        ([1, 2, 3], "no format=", "written by multitask-unet train"),
        ({"format": FORMAT, "format_version": FORMAT_VERSION + 1}, "format version",
         "Upgrade multitask_unet"),
        ({"format": FORMAT, "format_version": FORMAT_VERSION}, "damaged", "another checkpoint"),
    ],
)  # fmt: skip
def test_foreign_files_are_refused(tmp_path: Path, payload: object, problem: str, fix: str):
    path = tmp_path / "x.pt"
    torch.save(payload, path)
    with pytest.raises(WeightsError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert message.startswith(str(path)) and problem in message and fix in message


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.pt"
    torch.save({"format": FORMAT, "obj": Path("x")}, path)  # not loadable with weights_only
    fix = r"runs no code from the file\. Use a checkpoint written by multitask-unet train"
    with pytest.raises(WeightsError, match=rf"{re.escape(str(path))} is not a readable.*{fix}"):
        load_checkpoint(path)
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(WeightsError, match=rf"text\.pt is not a readable.*{fix}"):
        load_checkpoint(tmp_path / "text.pt")


def test_mismatched_weights_name_the_problem(tmp_path: Path) -> None:
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "m.pt", _model()))
    broken = Checkpoint(
        state_dict={k: v for k, v in ckpt.state_dict.items() if "seg_head" not in k},
        model_config=ckpt.model_config,
    )
    with pytest.raises(WeightsError, match="seg_head"):
        broken.build_model()


def test_interrupted_save_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = save_checkpoint(tmp_path / "m.pt", _model(), class_names=["old"])

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _model(), class_names=["new"])
    monkeypatch.undo()
    assert load_checkpoint(path).class_names == ("old",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_wrapped_and_foreign_models(tmp_path: Path) -> None:
    class Wrapper(torch.nn.Module):
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

    path = save_checkpoint(tmp_path / "w.pt", Wrapper(_model()))
    assert not any(k.startswith("module.") for k in load_checkpoint(path).state_dict)
    with pytest.raises(ConfigError, match="MultiTaskUNet"):
        save_checkpoint(tmp_path / "f.pt", torch.nn.Linear(2, 2))


@pytest.mark.parametrize(
    "training",
    [{"rng": [1, __import__("numpy").zeros(2)]}, {"v": torch.__version__}, {1.5: "x"}],
)
def test_unloadable_values_are_refused_at_save_time(tmp_path: Path, training: dict) -> None:
    with pytest.raises(ConfigError, match="training"):
        save_checkpoint(tmp_path / "m.pt", _model(), training=training)
    assert not list(tmp_path.iterdir())
