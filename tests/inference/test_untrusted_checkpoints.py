"""A weights file from elsewhere runs no code: every reader refuses a file whose unpickling would
execute something, and a sentinel file proves that nothing ran."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

import multitask_unet as mtu
from multitask_unet.checkpoints import FORMAT, FORMAT_VERSION, load_checkpoint
from multitask_unet.cli import main
from multitask_unet.errors import WeightsError
from multitask_unet.inference import Predictor


class _RunsCode:
    """Unpickling this object runs a shell command that creates ``sentinel``."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.sentinel))}",))


@pytest.fixture
def poisoned(tmp_path: Path, tiny_checkpoint: Path) -> tuple[Path, Path]:
    """A checkpoint of our format with one poisoned value, and the sentinel it would create."""
    sentinel = tmp_path / "code_ran"
    payload = torch.load(tiny_checkpoint, weights_only=True)
    assert payload["format"] == FORMAT and payload["format_version"] == FORMAT_VERSION
    payload["class_names"] = _RunsCode(sentinel)
    path = tmp_path / "poisoned.pt"
    torch.save(payload, path)
    return path, sentinel


def test_load_checkpoint_and_the_predictor_run_nothing(poisoned) -> None:
    path, sentinel = poisoned
    with pytest.raises(WeightsError, match=rf"{re.escape(str(path))}.*not a readable"):
        load_checkpoint(path)
    with pytest.raises(WeightsError, match=re.escape(str(path))):
        Predictor.from_checkpoint(path)
    assert not sentinel.exists()


def test_predict_and_calibrate_commands_run_nothing(poisoned, phantom_root, tmp_path, capsys):
    path, sentinel = poisoned
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(path), str(phantom_root / "test"),
                 "-o", str(out), "--no-progress"]) == 2  # fmt: skip
    assert str(path) in capsys.readouterr().err
    assert main(["calibrate", "--checkpoint", str(path), str(phantom_root), "-o",
                 str(tmp_path / "calibrated.pt"), "--quiet"]) == 2  # fmt: skip
    assert str(path) in capsys.readouterr().err
    assert not sentinel.exists() and not (tmp_path / "calibrated.pt").exists()


def test_nnunet_and_timm3d_weight_readers_run_nothing(tmp_path: Path) -> None:
    from multitask_unet.interop.nnunet import load_nnunet_weights
    from multitask_unet.interop.timm3d_weights import load_timm3d_checkpoint

    sentinel = tmp_path / "code_ran"
    model = mtu.create_model("tiny_plain")
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": model.state_dict(), "init_args": _RunsCode(sentinel)}, path)
    with pytest.raises(WeightsError, match=rf"{re.escape(str(path))}.*allow_pickle=True"):
        load_nnunet_weights(model, path)
    with pytest.raises(WeightsError, match=rf"cannot read {re.escape(str(path))}"):
        load_timm3d_checkpoint(torch.nn.Linear(2, 2), path)
    assert not sentinel.exists()


def test_a_real_nnunet_checkpoint_loads_without_allow_pickle(tmp_path: Path) -> None:
    """What ``nnUNetTrainer.save_checkpoint`` writes: NumPy scalars in the log, a torch.device."""
    from multitask_unet.interop.nnunet import _read_state_dict

    weights = {"conv.weight": torch.ones(2, 2)}
    checkpoint = {
        "network_weights": weights,
        "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0]}]},
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float64(0.5)], "ema_fg_dice": [np.float32(0.4)],
                    "epoch_start_timestamps": [1.0]},
        "_best_ema": np.float64(0.4),
        "current_epoch": 1000,
        "init_args": {"plans": {"plans_name": "nnUNetPlans"}, "configuration": "3d_fullres",
                      "fold": 0, "dataset_json": {"labels": {"background": 0}},
                      "device": torch.device("cpu")},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }  # fmt: skip
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint, path)
    loaded = _read_state_dict(path, allow_pickle=False)
    assert list(loaded) == ["conv.weight"] and torch.equal(
        loaded["conv.weight"], weights["conv.weight"]
    )
