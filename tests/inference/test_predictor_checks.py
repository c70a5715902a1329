"""The Predictor refuses, when it is built, a model that cannot take the plan's images or window."""

from __future__ import annotations

import dataclasses

import pytest

import multitask_unet as mtu
from multitask_unet.checkpoints import load_checkpoint
from multitask_unet.data.planning import Plan
from multitask_unet.errors import ConfigError
from multitask_unet.inference import Predictor
from multitask_unet.inference.predictor_options import check_window_size


def _with_channels(plan: Plan, channels: int) -> Plan:
    norm = plan.preprocessing.normalization[0]
    preprocessing = dataclasses.replace(plan.preprocessing, normalization=(norm,) * channels)
    return dataclasses.replace(plan, preprocessing=preprocessing)


def test_a_model_of_other_input_channels_than_the_plan_is_refused_when_built(
    tiny_plan, tiny_checkpoint
) -> None:
    assert len(tiny_plan.preprocessing.normalization) == 1
    two_channels = mtu.create_model("tiny_plain", in_channels=2)
    with pytest.raises(
        ConfigError,
        match=r"takes 2 input channel\(s\).*plan's images have 1 .*in_channels=1",
    ):
        Predictor(two_channels, tiny_plan, mirror_axes=())
    with pytest.raises(ConfigError, match=r"takes 1 input channel\(s\).*plan's images have 2 "):
        Predictor.from_checkpoint(tiny_checkpoint, plan=_with_channels(tiny_plan, 2))
    # an ensemble is checked as one model
    model = load_checkpoint(tiny_checkpoint).build_model()
    with pytest.raises(ConfigError, match="plan's images have 2"):
        Predictor([model, model], _with_channels(tiny_plan, 2))
    assert Predictor(two_channels, _with_channels(tiny_plan, 2)).model is two_channels


def test_a_window_not_divisible_by_the_size_divisor_is_refused_when_built(
    tiny_plan, tiny_checkpoint
) -> None:
    model = load_checkpoint(tiny_checkpoint).build_model()
    assert model.size_divisor == (4, 4, 4) and tiny_plan.patch_size[0] >= 8
    window = (tiny_plan.patch_size[0] + 1, *tiny_plan.patch_size[1:])
    with pytest.raises(
        ConfigError,
        match=rf"window_size \({window[0]}, .*not divisible by the model's size_divisor "
        rf"\(4, 4, 4\); give window_size=\({tiny_plan.patch_size[0]}, ",
    ):
        Predictor(model, tiny_plan, window_size=window)
    with pytest.raises(ConfigError, match="window_size"):
        Predictor.from_checkpoint(tiny_checkpoint, window_size=window)
    with pytest.raises(ConfigError, match=r"\(16, 16\) must be 3 positive sizes"):
        Predictor(model, tiny_plan, window_size=(16, 16))
    # a plan made for a network of a smaller divisor: its patch_size is named as the culprit
    other = dataclasses.replace(tiny_plan, size_divisor=(2, 2, 2), patch_size=(6, 8, 8))
    with pytest.raises(ConfigError, match=r"plan's patch_size \(6, 8, 8\).*another network"):
        Predictor(model, other)
    assert Predictor(model, other, window_size=(8, 8, 8)).window_size == (8, 8, 8)


def test_check_window_size_names_the_nearest_window_that_fits() -> None:
    check_window_size((8, 12, 16), (4, 4, 4))
    with pytest.raises(ConfigError, match=r"give window_size=\(8, 6, 16\)"):
        check_window_size((9, 6, 16), (4, 2, 8))  # 9 -> 8, 6 fits 2, 16 fits 8
    with pytest.raises(ConfigError, match=r"give window_size=\(4, 4, 4\)"):
        check_window_size((1, 4, 4), (4, 4, 4))  # never below the divisor
    with pytest.raises(ConfigError, match="positive sizes"):
        check_window_size((0, 4, 4), (4, 4, 4))
