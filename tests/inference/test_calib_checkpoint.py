"""Calibrations in the checkpoint's calibration slot: fit per head, write, read back, check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import multitask_unet as mtu
from multitask_unet.checkpoints import load_checkpoint, save_checkpoint
from multitask_unet.errors import ConfigError, WeightsError
from multitask_unet.inference.calibration import Calibration
from multitask_unet.inference.checkpoint_calibration import (
    calibration_slot,
    check_calibrations,
    fit_heads,
    read_calibrations,
    write_calibrations,
)

HEADS = {"cls": ("panda", {"num_classes": 3}), "cls_ovr": ("ovr", {"num_classes": 3})}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return mtu.create_model("tiny_plain", heads=HEADS).eval()


def head_logits(seed: int = 0, n: int = 60):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    base = rng.standard_normal((n, 3)) + 1.5 * np.eye(3)[labels]
    return {"cls": 4 * base, "cls_ovr": 2 * base - 1}, labels


def test_fit_heads_picks_the_method_of_each_head(model):
    logits, labels = head_logits()
    cals = fit_heads(logits, labels, model=model)
    assert cals["cls"].method == "temperature" and cals["cls"].loss_kind == "ce"
    assert cals["cls_ovr"].method == "platt" and cals["cls_ovr"].loss_kind == "bce_ovr"
    assert cals["cls"].temperature > 1.5  # the logits were made overconfident
    forced = fit_heads(logits, labels, model=model, method="temperature")
    assert forced["cls_ovr"].method == "temperature"


def test_fit_heads_rejects_unknown_heads(model):
    logits, labels = head_logits()
    with pytest.raises(ConfigError, match="not classification heads"):
        fit_heads({"cls2": logits["cls"]}, labels, model=model)


def test_write_and_read_back_keeps_the_rest_of_the_checkpoint(model, tmp_path):
    path = save_checkpoint(
        tmp_path / "model.pt",
        model,
        class_names=["a", "b", "c"],
        training={"epoch": 7, "momentum": torch.ones(2)},
        extra={"note": "x"},
    )
    logits, labels = head_logits()
    cals = fit_heads(logits, labels, model=model)
    write_calibrations(path, cals)
    ckpt = load_checkpoint(path)
    assert read_calibrations(ckpt) == cals
    assert ckpt.calibration["version"] == 1
    assert ckpt.class_names == ("a", "b", "c") and ckpt.extra == {"note": "x"}
    assert ckpt.training["epoch"] == 7 and torch.equal(ckpt.training["momentum"], torch.ones(2))
    for key, value in model.state_dict().items():
        assert torch.equal(ckpt.state_dict[key], value), key
    write_calibrations(path, {}, output=tmp_path / "plain.pt")
    assert load_checkpoint(tmp_path / "plain.pt").calibration is None
    assert read_calibrations(load_checkpoint(tmp_path / "plain.pt")) == {}


@pytest.mark.parametrize(
    "slot",
    [
        {"temperature": 1.3},
        {"version": 99, "heads": {}},
        {"version": 1, "heads": {"cls": {"method": "temperature", "loss_kind": "ce"}}},
    ],
)
def test_bad_slots_raise(slot):
    with pytest.raises(WeightsError, match="calibrat"):
        read_calibrations(slot)


@pytest.mark.parametrize(
    ("name", "cal", "match"),
    [
        ("cls9", Calibration.identity(3), "lacks"),
        ("cls", Calibration.identity(3, "bce_ovr"), "'bce_ovr' head"),
        ("cls", Calibration.identity(2), "2 classes"),
    ],
)
def test_mismatched_calibrations_raise(model, name, cal, match):
    with pytest.raises(WeightsError, match=match):
        check_calibrations({name: cal}, model)


def test_slot_is_plain_data(model):
    logits, labels = head_logits(1)
    slot = calibration_slot(fit_heads(logits, labels, model=model))
    assert isinstance(slot["heads"]["cls"]["scale"], list)
    assert read_calibrations(slot)["cls"].scale == tuple(slot["heads"]["cls"]["scale"])
