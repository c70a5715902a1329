"""TrainConfig: YAML round trips, strict keys, validation, and the documented example file."""

from __future__ import annotations

from pathlib import Path

import pytest

from multitask_unet.errors import ConfigError
from multitask_unet.training import TrainConfig

EXAMPLES = Path(__file__).parents[2] / "examples" / "configs"


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"model": {"preset": "tiny_plain", "head": None}, "epochs": 3},
        {
            "model": {
                "encoder": {"name": "plain", "channels": [8, 16]},
                "head_options": {"hidden": 8},
            }
        },
        {"optimizer": {"name": "adamw", "lr": 0.001, "betas": [0.8, 0.95]}, "amp": "fp16"},
        {"loss": {"terms": {"seg": {"loss": "dice_ce", "deep_supervision": True}}}},
        {"augmentation": {"p_rotation": 0.0}, "patch_size": [32, 64, 64], "batch_size": 4},
    ],
)
def test_yaml_round_trip(options: dict, tmp_path: Path) -> None:
    config = TrainConfig.from_dict(options)
    assert TrainConfig.from_yaml(config.to_yaml()) == config
    config.save(tmp_path / "c.yaml")
    assert TrainConfig.load(tmp_path / "c.yaml") == config


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epoch": 3}, "Did you mean 'epochs'"),
        ({"optimizer": {"name": "adam"}}, "'sgd', 'adamw'"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"amp": "fp8"}, "amp must be"),
        ({"optimizer": {"momentum": 1.0}}, "momentum"),
        ({"patch_size": [16, 16]}, "3 items"),
        ({"val_overlap": 1.0}, "val_overlap"),
        ({"weights_mode": "uniform"}, "weights_mode"),
    ],
)
def test_invalid_options_name_the_problem(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(options)


def test_defaults_are_nnunets_recipe() -> None:
    config = TrainConfig()
    assert (config.iterations_per_epoch, config.epochs) == (250, 1000)
    assert config.optimizer.grad_clip == 12.0 and config.optimizer.poly_exponent == 0.9
    assert config.foreground_probability == pytest.approx(1 / 3)


def test_the_demo_config_loads() -> None:
    config = TrainConfig.load(EXAMPLES / "demo.yaml")
    assert config.model.head == "panda" and config.time_limit_minutes is not None


def test_resumable_dict_ignores_cosmetic_options() -> None:
    a = TrainConfig(epochs=10, progress=True)
    assert a.resumable_dict() == TrainConfig(epochs=20, progress=False).resumable_dict()
    assert a.resumable_dict() != TrainConfig(seed=1).resumable_dict()
